/* nifti_volume.h — the one NIfTI-1 layer (.nii / .nii.gz, through nifticlib: niftiio + znz):
 * reading volumes for the importers (`prepare`), `predict` and `evaluate`, and writing them for
 * `synth` and `predict`.
 *
 * Memory layout is NIfTI's: x fastest, so a 3D volume is the C array (nz, ny, nx), which is the
 * store's (D, H, W) with W = x, H = y, D = z (no transposition), and a 4D one (nt, nz, ny, nx).
 * Values are returned as the file means them, as nibabel's get_fdata() does: scl_slope/scl_inter
 * applied (in double) when the slope is set and not the identity, and NaN or infinite floats kept
 * as they are, so that the caller can reject them by voxel (nifticlib's own loader would silently
 * turn them into 0). Errors are returned with a message naming the file; nothing here exits the
 * process. */
#ifndef UNET_NIFTI_VOLUME_H
#define UNET_NIFTI_VOLUME_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char path[PATH_MAX];
    int nx, ny, nz, nt;   /* nt = 4th dimension (1 for 3D volumes) */
    double spacing[3];    /* mm along x, y, z: |pixdim[1..3]|, 1 where that is 0 or not finite */
    double affine[16];    /* voxel (i, j, k, 1) -> world mm (RAS+), row-major: the sform when
                             sform_code > 0, else the qform when qform_code > 0, else the pixdim
                             scaling (nibabel's img.affine) */
    void *header;         /* nifti_image without data: the geometry to write outputs in */
} NiftiVolume;

/* Header only. Accepts 2D, 3D and 4D images (dimensions 5..7 must be 1). */
int nifti_volume_open(NiftiVolume *v, const char *path, char *err, size_t err_len);
void nifti_volume_close(NiftiVolume *v);

/* A header-only volume for a grid given by its affine (voxel (x, y, z, 1) -> mm, row-major) and
 * spacing, e.g. a store case's or a generated phantom's: outputs written "like" it carry that
 * affine as sform and as qform (code 1, scanner) and mm units. It has no voxels to read. */
void nifti_volume_from_affine(NiftiVolume *v, const char *name, int nx, int ny, int nz, const double spacing[3],
                              const double affine[16]);

/* Voxels as int32 labels (any integer or float type; the scaled values must be integers, else an
 * error naming the file and the first offending voxel, NaN included). *out: malloc'ed
 * (nt, nz, ny, nx). */
int nifti_volume_read_labels(const NiftiVolume *v, int32_t **out, char *err, size_t err_len);
/* Voxels as float, scaled; NaN and infinities kept. *out: malloc'ed (nt, nz, ny, nx). */
int nifti_volume_read_float(const NiftiVolume *v, float **out, char *err, size_t err_len);

/* Same grid: dimensions equal, spacing and affine within 1e-4 relative (1e-3 mm absolute).
 * Returns 0, or -1 with a message saying what differs. */
int nifti_volume_same_geometry(const NiftiVolume *a, const NiftiVolume *b, char *err, size_t err_len);

/* Writes data in ref's geometry (its header, affine, qform/sform codes, units, description),
 * with nt volumes along the 4th axis; dtype is a NIfTI code: 2 (uint8), 4 (int16) or 16 (float32),
 * data of that type, stored unscaled (slope 1, intercept 0). path must end in .nii or .nii.gz
 * (gzip-compressed). Atomic: a temporary file in the same directory, read back in full (header
 * and every voxel byte: a short write or a broken gzip stream is an error), fsync, rename, fsync
 * of the directory. */
int nifti_volume_write_like(const NiftiVolume *ref, const char *path, const void *data /* (nt, nz, ny, nx) */,
                            int nt, int dtype, char *err, size_t err_len);

#endif
