/* nifti_io.h — reading and writing NIfTI-1 volumes (.nii / .nii.gz) through nifticlib, with
 * their geometry, for the importers (prepare), the phantom generator (synth) and `predict`
 * (writing a prediction back in the input's geometry).
 *
 * Layout: NIfTI stores x fastest, then y, then z, which is the store's (D, H, W) order with
 * W = x, H = y, D = z: a volume needs no transposition. */
#ifndef UNET_NIFTI_IO_H
#define UNET_NIFTI_IO_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int nx, ny, nz;       /* W, H, D (missing dimensions are 1) */
    int nt;               /* product of dimensions 4..7 (1 for a plain volume) */
    int datatype;         /* NIfTI datatype code of the file (DT_INT16, DT_FLOAT32, ...) */
    double spacing[3];    /* pixdim[1..3]: mm along x, y, z */
    double affine[16];    /* voxel (x, y, z, 1) -> world mm (RAS+), row-major: the sform when
                             sform_code > 0, else the qform (nifticlib's rules) */
    int sform_code, qform_code;
    float *data;          /* (nt, nz, ny, nx), scl_slope/scl_inter applied */
} NiftiVol;

/* Reads a whole volume as float. Returns 0, or -1 with a message naming the file and the
 * problem (unreadable, truncated, unsupported datatype...). */
int nvol_read(const char *path, NiftiVol *out, char *err, size_t err_len);
void nvol_free(NiftiVol *v);

/* Writes a 3-D volume (nx, ny, nz) of `datatype` (DT_UINT8, DT_INT16 or DT_FLOAT32; data is in
 * that type, (nz, ny, nx)) with the given geometry, as both sform and qform (code 1, scanner).
 * .nii.gz names are gzip-compressed. Atomic: a temporary file in the same directory, fsync,
 * rename. Returns 0 or -1 with a message. */
int nvol_write(const char *path, const void *data, int datatype, int nx, int ny, int nz, const double spacing[3],
               const double affine[16], char *err, size_t err_len);

#endif
