/* safetensors.h — read and write the safetensors format (F32, I32, I64 tensors).
 *
 * Format: 8-byte little-endian header length L, then L bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value", ...}}
 * then the data region; offsets are relative to its start. A file written by
 * PyTorch's safetensors package loads here, and ours loads there.
 *
 * Errors are returned, never fatal: every function that can fail returns 0 on
 * success and -1 on failure with a message naming the file (and tensor) in err. */
#ifndef UNET_SAFETENSORS_H
#define UNET_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32 = 0, ST_I32 = 1, ST_I64 = 2 } StDtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    const void *data; /* points into the loaded file's buffer (read) or the caller's (write) */
} StTensor;

typedef struct {
    char *key;
    char *value;
} StMeta;

typedef struct {
    char *path;
    unsigned char *buf; /* whole file (reader) */
    size_t buf_len;
    StTensor *tensors;
    int n_tensors, cap_tensors;
    StMeta *meta;
    int n_meta, cap_meta;
} StFile;

size_t st_dtype_size(StDtype dt);
const char *st_dtype_name(StDtype dt);

/* Reader: loads the whole file, validates the header (dtypes, shapes against offsets,
 * offsets within the file, no overlaps). Regular files only (src/base/file_check.h): a FIFO or
 * a directory is refused naming the path. Every reader of weights, checkpoints and batches
 * opens through it. */
int st_read(StFile *out, const char *path, char *err, size_t err_len);
const StTensor *st_find(const StFile *f, const char *name); /* NULL if absent */
const char *st_meta_get(const StFile *f, const char *key);  /* NULL if absent */
void st_free(StFile *f);

/* Writer: collect tensors (data is NOT copied; it must live until st_write_file),
 * then write atomically: temporary file in the same directory, fsync, rename,
 * fsync of the directory. Tensors are written in the order added. */
void st_init(StFile *f);
void st_add(StFile *f, const char *name, StDtype dtype, int ndim, const int64_t *shape, const void *data);
void st_add_meta(StFile *f, const char *key, const char *value);
int st_write_file(const StFile *f, const char *path, char *err, size_t err_len);

#endif
