/* metrics.c — per-class counts, bounding boxes and HD95 of label volumes; the empty-mask
 * conventions; the EM protocol's thresholded IoU. See metrics.h and docs/evaluation.md. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

typedef struct {
    int64_t np, ng, ni;
    int lo[3], hi[3]; /* bounding box of pred ∪ gt, inclusive; lo > hi when empty */
} Acc;

static void acc_init(Acc *a, int n_labels) {
    for (int c = 0; c < n_labels; c++) {
        a[c].np = a[c].ng = a[c].ni = 0;
        for (int d = 0; d < 3; d++) a[c].lo[d] = 1 << 30, a[c].hi[d] = -1;
    }
}

static inline void acc_box(Acc *a, int i0, int i1, int i2) {
    if (i0 < a->lo[0]) a->lo[0] = i0;
    if (i0 > a->hi[0]) a->hi[0] = i0;
    if (i1 < a->lo[1]) a->lo[1] = i1;
    if (i1 > a->hi[1]) a->hi[1] = i1;
    if (i2 < a->lo[2]) a->lo[2] = i2;
    if (i2 > a->hi[2]) a->hi[2] = i2;
}

/* Copies mask (vol == label) of the box into m. */
static void extract(uint8_t *m /* (b0, b1, b2) */, const int32_t *vol /* (n0, n1, n2) */, const int n[3],
                    const int lo[3], const int b[3], int label) {
#pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < b[0]; j0++)
        for (int j1 = 0; j1 < b[1]; j1++) {
            const int32_t *src = vol + ((size_t)(lo[0] + j0) * n[1] + (size_t)(lo[1] + j1)) * n[2] + lo[2];
            uint8_t *dst = m + ((size_t)j0 * b[1] + j1) * b[2];
            for (int j2 = 0; j2 < b[2]; j2++) dst[j2] = src[j2] == label;
        }
}

/* medpy's and MONAI's HD95 from the two directed sets (which get reordered). */
static void hd95_of(double *medpy, double *monai, double *ab, size_t n_ab, double *ba, size_t n_ba) {
    double *all = xmalloc((n_ab + n_ba) * sizeof(double));
    memcpy(all, ab, n_ab * sizeof(double));
    memcpy(all + n_ab, ba, n_ba * sizeof(double));
    *medpy = metrics_percentile_numpy(all, n_ab + n_ba, 95.0);
    free(all);
    if (monai) {
        double qa = metrics_quantile_torch_f32(ab, n_ab, 95.0), qb = metrics_quantile_torch_f32(ba, n_ba, 95.0);
        *monai = qa > qb ? qa : qb;
    }
}

void metrics_classes(ClassStats *out /* (n_labels) */, const int32_t *pred /* (n0, n1, n2) */,
                     const int32_t *gt /* (n0, n1, n2) */, const int n[3], const double spacing[3],
                     const int *labels /* (n_labels) */, int n_labels, int hd_flags) {
    if (n_labels <= 0) return;
    /* label -> class index lookup over [lmin, lmax] */
    int lmin = labels[0], lmax = labels[0];
    for (int c = 1; c < n_labels; c++) {
        if (labels[c] < lmin) lmin = labels[c];
        if (labels[c] > lmax) lmax = labels[c];
    }
    CHECK((int64_t)lmax - lmin < (1 << 24), "metrics_classes: label range %d..%d too wide", lmin, lmax);
    int span = lmax - lmin + 1;
    int *lut = xmalloc((size_t)span * sizeof(int));
    for (int i = 0; i < span; i++) lut[i] = -1;
    for (int c = 0; c < n_labels; c++) lut[labels[c] - lmin] = c;

    Acc *acc = xmalloc((size_t)n_labels * sizeof(Acc));
    acc_init(acc, n_labels);
    const size_t n2 = (size_t)n[2];
    /* one pass: counts, intersections and the union box of every class */
#pragma omp parallel
    {
        Acc *mine = xmalloc((size_t)n_labels * sizeof(Acc));
        acc_init(mine, n_labels);
#pragma omp for schedule(static) collapse(2)
        for (int i0 = 0; i0 < n[0]; i0++)
            for (int i1 = 0; i1 < n[1]; i1++) {
                size_t r = ((size_t)i0 * n[1] + i1) * n2;
                for (size_t i2 = 0; i2 < n2; i2++) {
                    int lp = pred[r + i2], lg = gt[r + i2];
                    int cp = lp >= lmin && lp <= lmax ? lut[lp - lmin] : -1;
                    int cg = lg >= lmin && lg <= lmax ? lut[lg - lmin] : -1;
                    if (cp >= 0) {
                        mine[cp].np++;
                        mine[cp].ni += lp == lg;
                        acc_box(&mine[cp], i0, i1, (int)i2);
                    }
                    if (cg >= 0) {
                        mine[cg].ng++;
                        if (cg != cp) acc_box(&mine[cg], i0, i1, (int)i2);
                    }
                }
            }
#pragma omp critical
        for (int c = 0; c < n_labels; c++) {
            acc[c].np += mine[c].np;
            acc[c].ng += mine[c].ng;
            acc[c].ni += mine[c].ni;
            for (int d = 0; d < 3; d++) {
                if (mine[c].lo[d] < acc[c].lo[d]) acc[c].lo[d] = mine[c].lo[d];
                if (mine[c].hi[d] > acc[c].hi[d]) acc[c].hi[d] = mine[c].hi[d];
            }
        }
        free(mine);
    }

    static const double unit[3] = {1.0, 1.0, 1.0};
    for (int c = 0; c < n_labels; c++) {
        ClassStats *s = &out[c];
        s->n_pred = acc[c].np;
        s->n_gt = acc[c].ng;
        s->n_inter = acc[c].ni;
        s->hd95 = s->hd95_monai = s->hd95_vox = NAN;
        if (!hd_flags || s->n_pred == 0 || s->n_gt == 0) continue;
        int b[3];
        for (int d = 0; d < 3; d++) b[d] = acc[c].hi[d] - acc[c].lo[d] + 1;
        size_t vol = (size_t)b[0] * b[1] * b[2];
        uint8_t *ma = xmalloc(vol), *mb = xmalloc(vol);
        extract(ma, pred, n, acc[c].lo, b, labels[c]);
        extract(mb, gt, n, acc[c].lo, b, labels[c]);
        double *ab, *ba;
        size_t n_ab, n_ba;
        if (hd_flags & METRICS_HD_MM) {
            metrics_surface_distances(&ab, &n_ab, &ba, &n_ba, ma, mb, b, spacing);
            hd95_of(&s->hd95, &s->hd95_monai, ab, n_ab, ba, n_ba);
            free(ab);
            free(ba);
        }
        if (hd_flags & METRICS_HD_VOX) {
            metrics_surface_distances(&ab, &n_ab, &ba, &n_ba, ma, mb, b, unit);
            hd95_of(&s->hd95_vox, NULL, ab, n_ab, ba, n_ba);
            free(ab);
            free(ba);
        }
        free(ma);
        free(mb);
    }
    free(acc);
    free(lut);
}

void metrics_scores(ClassScores *out, const ClassStats *s, MetricsConvention conv) {
    double p = (double)s->n_pred, g = (double)s->n_gt, i = (double)s->n_inter, u = p + g - i;
    double dsc = p + g > 0 ? 2.0 * i / (p + g) : 1.0;
    double iou = u > 0 ? i / u : 1.0;
    if (conv == CONV_MONAI) {
        /* DiceMetric / MeanIoU with ignore_empty=True: NaN without ground truth.
         * compute_hausdorff_distance: NaN when either mask is empty (both empty: no distances;
         * one empty: MONAI's +inf distances meet torch.quantile's interpolation, inf - inf) */
        out->dsc = g > 0 ? dsc : NAN;
        out->iou = g > 0 ? iou : NAN;
        out->hd95 = p > 0 && g > 0 ? s->hd95_monai : NAN;
    } else {
        /* medpy: dc and jc give 1 when both are empty; hd95 raises (NaN here) when either is */
        out->dsc = dsc;
        out->iou = iou;
        out->hd95 = p > 0 && g > 0 ? s->hd95 : NAN;
    }
    /* TransUNet's calculate_metric_percase */
    if (p > 0 && g > 0) out->dsc_base = dsc, out->hd95_base = s->hd95_vox;
    else if (p > 0) out->dsc_base = 1.0, out->hd95_base = 0.0;
    else out->dsc_base = 0.0, out->hd95_base = 0.0;
}

void metrics_iou_thresholds(double *iou_fg /* (n_t) */, double *iou_2class /* (n_t) */,
                            const float *prob /* (count) */, const int32_t *gt /* (count) */, size_t count,
                            int label, const double *thresholds /* (n_t) */, int n_t) {
    for (int t = 0; t < n_t; t++) {
        double th = thresholds[t];
        int64_t tp = 0, fp = 0, fn = 0, tn = 0;
#pragma omp parallel for schedule(static) reduction(+ : tp, fp, fn, tn)
        for (size_t i = 0; i < count; i++) {
            int pp = (double)prob[i] > th, gg = gt[i] == label;
            tp += pp & gg;
            fp += pp & (!gg);
            fn += (!pp) & gg;
            tn += (!pp) & (!gg);
        }
        double uf = (double)(tp + fp + fn), ub = (double)(tn + fp + fn);
        double f = uf > 0 ? (double)tp / uf : 1.0, b = ub > 0 ? (double)tn / ub : 1.0;
        iou_fg[t] = f;
        /* tf.metrics.mean_iou averages over the classes that occur (non-zero denominator) */
        iou_2class[t] = uf > 0 && ub > 0 ? 0.5 * (f + b) : (uf > 0 ? f : b);
    }
}
