/* nifti_volume.h — minimal NIfTI-1 volume reading and writing for `evaluate` and `predict`
 * (nifticlib: niftiio + znz; .nii and .nii.gz).
 *
 * Memory layout is NIfTI's: x fastest, so a 3D volume is the C array (nz, ny, nx) and a 4D one
 * (nt, nz, ny, nx). Spacing is pixdim[1..3] (mm, as nibabel's header.get_zooms()).
 * Errors are returned with a message naming the file; nothing here exits the process. */
#ifndef UNET_NIFTI_VOLUME_H
#define UNET_NIFTI_VOLUME_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char path[1024];
    int nx, ny, nz, nt;   /* nt = 4th dimension (1 for 3D volumes) */
    double spacing[3];    /* mm along x, y, z */
    double affine[16];    /* voxel (i, j, k, 1) -> world mm, row-major (sform, else qform, else pixdim) */
    void *header;         /* nifti_image without data: the geometry to write outputs in */
} NiftiVolume;

/* Header only. */
int nifti_volume_open(NiftiVolume *v, const char *path, char *err, size_t err_len);
void nifti_volume_close(NiftiVolume *v);

/* A header-only volume for a grid given by its affine (voxel (x, y, z, 1) -> mm, row-major) and
 * spacing, e.g. a store case's: outputs written "like" it carry that sform and qform. */
void nifti_volume_from_affine(NiftiVolume *v, const char *name, int nx, int ny, int nz, const double spacing[3],
                              const double affine[16]);

/* Voxels as int32 labels (any integer or float type; floats must hold integers, else an error
 * naming the file and the first offending voxel). Applies scl_slope/scl_inter when set.
 * *out: malloc'ed (nt, nz, ny, nx). */
int nifti_volume_read_labels(const NiftiVolume *v, int32_t **out, char *err, size_t err_len);
/* Voxels as float (scaled). *out: malloc'ed (nt, nz, ny, nx). */
int nifti_volume_read_float(const NiftiVolume *v, float **out, char *err, size_t err_len);

/* Same grid: dimensions equal, spacing and affine within 1e-4 relative (1e-3 mm absolute).
 * Returns 0, or -1 with a message saying what differs. */
int nifti_volume_same_geometry(const NiftiVolume *a, const NiftiVolume *b, char *err, size_t err_len);

/* Writes data in ref's geometry (its header, affine, qform/sform codes, units, description),
 * with nt volumes along the 4th axis; dtype is a NIfTI code: 2 (uint8), 4 (int16) or 16 (float32),
 * data of that type.
 * Atomic: temporary file in the same directory, fsync, rename, fsync of the directory. */
int nifti_volume_write_like(const NiftiVolume *ref, const char *path, const void *data /* (nt, nz, ny, nx) */,
                            int nt, int dtype, char *err, size_t err_len);

#endif
