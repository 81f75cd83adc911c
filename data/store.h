/* store.h — reading the HDF5 sharded slice store (format: docs/formats.md, "Slice store").
 *
 * A store is a directory: manifest.json plus shard files shard-NNNNN.h5, each holding whole
 * cases: image (D, C, H, W) float32, already normalised, and label (D, H, W) uint8, chunked one
 * slice per chunk, deflate + fletcher32. The training loader and `predict` read only this.
 *
 * Thread safety: every function taking a const Store* may be called from any thread;
 * store_read_slice() may be called concurrently (see docs/architecture.md for how reads work
 * around HDF5's global lock). Errors are returned with a message naming the store, the case
 * and the slice; nothing here exits the process. */
#ifndef UNET_STORE_H
#define UNET_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_NAME_MAX 64

typedef struct {
    char name[STORE_NAME_MAX]; /* case id, e.g. "img0001" */
    char split[16];            /* "train", "val" or "test" */
    int shard;                 /* index of the shard file holding it */
    int depth, channels, height, width; /* image (D, C, H, W); label (D, H, W) */
    double spacing[3];         /* voxel size in mm along x (W), y (H), z (D) */
    double affine[16];         /* voxel (i=x, j=y, k=z, 1) -> world mm, 4x4 row-major */
} StoreCase;

typedef struct Store Store;

int store_open(Store **out, const char *dir, char *err, size_t err_len);
void store_close(Store *s);

int store_num_cases(const Store *s);
const StoreCase *store_case(const Store *s, int i);
int store_num_classes(const Store *s);            /* including background */
const char *store_class_name(const Store *s, int k);
/* Indices of the cases of a split in manifest order (at most max); returns how many. */
int store_split(const Store *s, const char *split, int *case_idx /* (max) */, int max);

/* Slice z of case i: image (C, H, W) and label (H, W) as int32. One chunk read each, checksum
 * verified. Returns 0, or -1 with a message naming the store, case and slice. */
int store_read_slice(const Store *s, int case_idx, int z,
                     float *image /* (C, H, W) */, int32_t *label /* (H, W) */, char *err, size_t err_len);

#endif
