/* metrics.h — segmentation metrics on label volumes: DSC, IoU, HD95 (docs/evaluation.md).
 *
 * Volumes are (n0, n1, n2) arrays, axis 2 fastest: for a NIfTI volume n = (nz, ny, nx) and
 * spacing = (sz, sy, sx) mm. A label volume is int32; "class k" is the binary mask label == k.
 *
 * Surface distances follow medpy.metric.binary exactly: the surface of a mask is the mask
 * minus its binary erosion by the 3D connectivity-1 cross (scipy's generate_binary_structure
 * (3, 1)), with everything outside the volume counting as background; the directed distances
 * are, for each surface voxel of one mask, the Euclidean distance (with spacing) to the
 * nearest surface voxel of the other. medpy's HD95 is the 95th percentile (numpy's linear
 * interpolation) of the union of both directed sets; MONAI's is the larger of the two
 * directed 95th percentiles (torch.quantile on float32 distances).
 *
 * Speed: distances come from an exact separable Euclidean distance transform (Felzenszwalb–
 * Huttenlocher, per-axis spacing) run only inside the bounding box of the two masks — exact,
 * because every surface voxel lies inside that box. */
#ifndef UNET_METRICS_H
#define UNET_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* What one class of one case yields, before any empty-mask convention is applied. */
typedef struct {
    int64_t n_pred, n_gt, n_inter; /* voxel counts: |P|, |G|, |P ∩ G| */
    /* The HD95 values are NaN unless both masks are non-empty (and the distance was asked for). */
    double hd95;        /* mm (with spacing), medpy: 95th percentile of the union of both sets */
    double hd95_monai;  /* mm (with spacing), MONAI: max of the two directed 95th percentiles */
    double hd95_vox;    /* voxels (no spacing), medpy's definition: the baselines' protocol */
} ClassStats;

enum { METRICS_HD_MM = 1, METRICS_HD_VOX = 2 }; /* which distance sets to compute */

/* Counts and surface distances of every class in labels[] (n_labels of them).
 * pred, gt: (n0, n1, n2) int32 label volumes. spacing: (3) mm per axis. Threads: OpenMP. */
void metrics_classes(ClassStats *out /* (n_labels) */, const int32_t *pred /* (n0, n1, n2) */,
                     const int32_t *gt /* (n0, n1, n2) */, const int n[3], const double spacing[3],
                     const int *labels /* (n_labels) */, int n_labels, int hd_flags);

/* ---- the pieces (exposed for the tests and the benchmark) ---- */

/* Squared exact Euclidean distance transform in place: d enters with 0 at feature voxels and
 * +INFINITY elsewhere and leaves with the squared distance (mm²) to the nearest feature,
 * +INFINITY everywhere when there is none. need (optional, (n0, n1)): row (i0, i1) of the last
 * axis is only computed where need[i0 * n1 + i1] is non-zero (others are left undefined). */
void metrics_edt_sq(double *d /* (n0, n1, n2) */, const int n[3], const double spacing[3],
                    const uint8_t *need /* (n0, n1) or NULL */);

/* Directed surface distances between two binary masks of a box: for every surface voxel of a,
 * the distance to the nearest surface voxel of b (ab), and the other way (ba). Both masks must
 * be non-empty. Returns the counts through n_ab, n_ba; the arrays are malloc'ed (free()). */
void metrics_surface_distances(double **ab, size_t *n_ab, double **ba, size_t *n_ba,
                               const uint8_t *a /* (n0, n1, n2) */, const uint8_t *b /* (n0, n1, n2) */,
                               const int n[3], const double spacing[3]);

/* numpy.percentile(x, q) with the default linear method; x is reordered. n > 0. */
double metrics_percentile_numpy(double *x /* (n) */, size_t n, double q);
/* torch.quantile(x.float(), q / 100) in float32 arithmetic; x is reordered. n > 0. */
double metrics_quantile_torch_f32(double *x /* (n) */, size_t n, double q);

/* ---- empty-mask conventions (docs/evaluation.md) ---- */

typedef enum { CONV_MEDPY = 0, CONV_MONAI = 1 } MetricsConvention;

typedef struct {
    double dsc, iou, hd95;        /* under the chosen convention; hd95 in mm */
    double dsc_base, hd95_base;   /* the baselines' protocol (TransUNet's calculate_metric_percase) */
} ClassScores;

void metrics_scores(ClassScores *out, const ClassStats *s, MetricsConvention conv);

/* EM protocol: foreground IoU and two-class mean IoU (background and foreground averaged, as
 * UNet++'s tf.metrics.mean_iou) of prob > t against gt == label, for the n_t thresholds t.
 * Both-empty foreground IoU is 1 (medpy's jc). */
void metrics_iou_thresholds(double *iou_fg /* (n_t) */, double *iou_2class /* (n_t) */,
                            const float *prob /* (count) */, const int32_t *gt /* (count) */, size_t count,
                            int label, const double *thresholds /* (n_t) */, int n_t);

#endif
