/* volume_source.h — the cases of "a slice store's split, a directory of NIfTI volumes, or one
 * NIfTI file", as `predict` reads its input and `evaluate` its ground truth and predictions:
 * open, visit the cases in order (name, grid, voxels, the store's labels), close.
 *
 * A path is a store when a split is named or it holds manifest.json (then the split is
 * required); a directory's cases are its *.nii / *.nii.gz files, sorted by name (a stem present
 * twice, as CASE.nii and CASE.nii.gz, is an error: which one was meant is unknowable). */
#ifndef UNET_VOLUME_SOURCE_H
#define UNET_VOLUME_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "nifti_volume.h"
#include "store.h"

typedef struct VolumeSource VolumeSource;

typedef struct {
    const char *name; /* file stem, or the store's case name (valid while the source is open) */
    const char *path; /* the NIfTI file; for a store case the store directory */
    NiftiVolume geom; /* the grid: the file's header, or one made from the store case's affine */
    int nx, ny, nz;   /* voxels along x, y, z */
    int channels;     /* NIfTI: the 4th dimension; store: the case's channels */
    int index;        /* position in the source, 0.. */
} VolumeCase;

/* volume_source_open()'s failures, each with a message in err: VS_NEED_SPLIT, a store named
 * without a split; VS_NOT_NIFTI, neither a store, a directory nor a .nii/.nii.gz name (a path
 * that does not exist included); VS_ERROR, anything else (an unreadable store or directory, no
 * cases, a duplicated case). Which of them is a usage error is the command's to say. */
enum { VS_ERROR = -1, VS_NEED_SPLIT = -2, VS_NOT_NIFTI = -3 };

int volume_source_open(VolumeSource **out, const char *path, const char *split, char *err, size_t err_len);
void volume_source_close(VolumeSource *vs);

int volume_source_count(const VolumeSource *vs);
const char *volume_source_name(const VolumeSource *vs, int i);
const char *volume_source_path(const VolumeSource *vs, int i); /* the file; a store case: the store */
int volume_source_find(const VolumeSource *vs, const char *name); /* its index, or -1 */
const Store *volume_source_store(const VolumeSource *vs);         /* NULL unless a store */

/* Case i: the header only (no voxels read yet). 0, or -1 with a message naming the file. */
int volume_source_case(VolumeSource *vs, int i, VolumeCase *c, char *err, size_t err_len);
/* The next case in order: 1, 0 after the last, -1 with a message. */
int volume_source_next(VolumeSource *vs, VolumeCase *c, char *err, size_t err_len);
void volume_case_close(VolumeCase *c);

/* The voxels; pass NULL for what is not wanted; both malloc'ed, the caller frees.
 * image: (channels, nz, ny, nx) float, a NIfTI image checked finite (as `prepare` checks it).
 * labels: (nz, ny, nx): a store case's labels, or a 3D NIfTI file read as integer labels. */
int volume_case_read(const VolumeSource *vs, const VolumeCase *c, float **image, int32_t **labels, char *err,
                     size_t err_len);

/* Whether `other` (e.g. a prediction) lies on the case's grid: same shape and affine, within
 * the tolerance of nifti_volume_same_geometry for files and of a store's stored affine; messages
 * name `other` first. */
int volume_case_same_grid(const VolumeSource *vs, const VolumeCase *c, const NiftiVolume *other, char *err,
                          size_t err_len);

#endif
