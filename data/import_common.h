/* import_common.h — shared pieces of the dataset importers (`unet2022 prepare`): options,
 * checks on source arrays (finite intensities, label ids inside the mapping), normalisations,
 * split files. Every error names the source file and, for voxels, the (x, y, z) index. */
#ifndef UNET_IMPORT_COMMON_H
#define UNET_IMPORT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "store_write.h"

typedef struct {
    const char *dataset, *src, *out;
    int labels;             /* synapse: 13 (all BTCV organs, the released recipe) or 8 (baselines) */
    const char *norm;       /* synapse: "clip" ([-125, 275] -> [0, 1]) or "zscore" (nnU-Net CT) */
    const char *split_file; /* optional: `<split> <case number>` lines instead of the official split */
    double shard_mb;
    int force, quiet;
    int fold;               /* nnunet: the fold of the dataset's splits_final.json (default 0) */
    int resize;             /* isic: resize to resize x resize (0: keep the source size) */
    const char *command_line;
} PrepareOptions;

/* Creates the writer with the options' output, shard size and force flag. */
int imp_writer(const PrepareOptions *o, const char *const *classes, int nclasses, int channels, StoreWriter **w,
               char *err, size_t err_len);

/* Every value finite; else an error naming file and voxel (x, y, z[, channel]). */
int imp_check_finite(const char *file, const float *x /* (nc, nz, ny, nx) */, int nx, int ny, int nz, int nc, char *err,
                     size_t err_len);

/* dst[i] = map[src[i]] for integer-valued src in [0, map_len); map[v] < 0 marks ids that must not
 * occur. Errors name the file, the voxel and the offending value. */
int imp_map_labels(const char *file, const float *src /* (nz, ny, nx) */, uint8_t *dst /* (nz, ny, nx) */, int nx,
                   int ny, int nz, const int *map, int map_len, char *err, size_t err_len);

/* One NIfTI case (Synapse, ACDC): image and label volumes on the same 3-D grid, finite
 * intensities, label ids mapped through map as imp_map_labels does. */
typedef struct {
    int nx, ny, nz;
    double spacing[3], affine[16]; /* the image's (nifti_volume.h) */
    float *image;                  /* (nz, ny, nx), as the file means it (scaled) */
    uint8_t *label;                /* (nz, ny, nx), mapped */
} ImpNiftiCase;
/* Reads name's image and label files into out; errors name the case or the file (and the voxel). */
int imp_read_nifti_case(ImpNiftiCase *out, const char *name, const char *image_path, const char *label_path,
                        const int *map, int map_len, char *err, size_t err_len);
void imp_free_nifti_case(ImpNiftiCase *c);

/* x <- (clip(x, lo, hi) - lo) / (hi - lo). */
void imp_norm_clip(float *x /* (n) */, size_t n, float lo, float hi);
/* x <- (clip(x, lo, hi) - mean) / sd. */
void imp_norm_clip_zscore(float *x /* (n) */, size_t n, float lo, float hi, float mean, float sd);
/* Per-channel z-score over the whole case (MRI, RGB): (x - mean) / max(sd, 1e-8). */
void imp_norm_zscore(float *x /* (nc, n) */, size_t n, int nc);

/* The p-th percentile (0..100) of v (sorted in place), numpy's default linear interpolation. */
double imp_percentile_sorted(const float *v /* (n), sorted */, size_t n, double p);
void imp_sort(float *v /* (n) */, size_t n);

/* Split file: lines `<train|val|test> <case number>`, '#' comments. Fills ids/splits (max
 * entries); returns the count or -1 with an error naming file:line. */
typedef enum { SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST } SplitKind;
int imp_read_split(const char *path, int *ids /* (max) */, SplitKind *kinds /* (max) */, int max, char *err,
                   size_t err_len);
const char *imp_split_name(SplitKind k);

/* Identity geometry for sources without any (spacing 1, affine identity). */
void imp_identity_geometry(double spacing[3], double affine[16]);

/* "path/to/name" joined; returns a static-free buffer the caller owns (free()). */
char *imp_join(const char *a, const char *b);
int imp_file_exists(const char *path);

/* Per-case progress on stderr (not with --quiet): a bar redrawn in place on a terminal, a counted
 * line per case otherwise. imp_progress_total sets the expected count (0: unknown); imp_note
 * prints a line of its own; imp_progress_finish ends the bar (prepare_run calls it). */
void imp_progress_total(int total);
void imp_progress(const PrepareOptions *o, const char *fmt, ...);
void imp_note(const PrepareOptions *o, const char *fmt, ...);
void imp_progress_finish(void);

#endif
