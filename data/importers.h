/* importers.h — one function per dataset of `unet2022 prepare` (import_*.c). Each builds the
 * whole store or nothing: on failure the temporary directory is removed and the message names
 * the source file and the problem. */
#ifndef UNET_IMPORTERS_H
#define UNET_IMPORTERS_H

#include <stddef.h>

#include "import_common.h"

int import_synapse(const PrepareOptions *o, char *err, size_t err_len);
int import_synapse_transunet(const PrepareOptions *o, char *err, size_t err_len);
int import_acdc(const PrepareOptions *o, char *err, size_t err_len);
int import_em(const PrepareOptions *o, char *err, size_t err_len);
int import_isic(const PrepareOptions *o, char *err, size_t err_len);
int import_nnunet(const PrepareOptions *o, char *err, size_t err_len);
int import_ph2(const PrepareOptions *o, char *err, size_t err_len);

/* The per-file readers of the importers, on their own for the fuzzing harness (tests/fuzz):
 * all pages of a grey TIFF stack as float (pages, h, w); a TransUNet test_vol_h5 case file's
 * image and label (D, H, W) as float. *out / *img / *lab are malloc'ed and set only on success. */
int em_read_tiff_stack(const char *path, float **out, int *pages, int *h, int *w, char *err, size_t err_len);
int transunet_read_h5_case(const char *path, float **img, float **lab, int dims[3], char *err, size_t err_len);

#endif
