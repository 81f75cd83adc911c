/* npz.h — strict readers for numpy's .npy and .npz (a zip archive of .npy members, read with
 * libzip). Arrays are returned as float32 in C order;
 * integer, bool and float dtypes of either byte order are accepted, anything else is an error. */
#ifndef UNET_NPZ_H
#define UNET_NPZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int ndim;
    int64_t shape[8];
    char descr[16];   /* numpy dtype string as stored, e.g. "<f4" */
    float *data;      /* (shape...), C order */
} NpyArray;

/* Member `key` (without ".npy") of an .npz file. */
int npz_read(const char *path, const char *key, NpyArray *out, char *err, size_t err_len);
/* An .npy image already in memory (name is for messages). */
int npy_parse(const char *name, const uint8_t *buf /* (n) */, size_t n, NpyArray *out, char *err, size_t err_len);
void npy_free(NpyArray *a);

#endif
