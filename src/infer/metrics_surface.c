/* metrics_surface.c — medpy's surface distances between two binary masks of a box, and the
 * percentiles numpy and torch would take of them. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "metrics.h"

/* surface = mask AND NOT erosion(mask) by the 6-neighbour cross; outside the box counts as
 * background (the box holds every mask voxel, so that equals "outside the volume" and
 * scipy's binary_erosion with border_value 0). Returns the number of surface voxels. */
static size_t surface(uint8_t *s /* (n0, n1, n2) */, const uint8_t *m /* (n0, n1, n2) */, const int n[3]) {
    const size_t n0 = (size_t)n[0], n1 = (size_t)n[1], n2 = (size_t)n[2], plane = n1 * n2;
    size_t count = 0;
#pragma omp parallel for schedule(static) reduction(+ : count)
    for (size_t i0 = 0; i0 < n0; i0++) {
        for (size_t i1 = 0; i1 < n1; i1++) {
            size_t r = (i0 * n1 + i1) * n2;
            for (size_t i2 = 0; i2 < n2; i2++) {
                size_t i = r + i2;
                uint8_t on = 0;
                if (m[i]) {
                    on = i0 == 0 || i0 + 1 == n0 || i1 == 0 || i1 + 1 == n1 || i2 == 0 || i2 + 1 == n2 ||
                         !m[i - plane] || !m[i + plane] || !m[i - n2] || !m[i + n2] || !m[i - 1] || !m[i + 1];
                }
                s[i] = on;
                count += on;
            }
        }
    }
    return count;
}

/* Distances from every voxel of `from` to the nearest voxel of `to` (both surfaces). */
static void directed(double *out /* (count) */, double *d /* (n0, n1, n2) scratch */, uint8_t *need /* (n0, n1) */,
                     const uint8_t *from /* (n0, n1, n2) */, const uint8_t *to /* (n0, n1, n2) */, const int n[3],
                     const double spacing[3]) {
    const size_t rows = (size_t)n[0] * n[1], n2 = (size_t)n[2];
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        uint8_t any = 0;
        for (size_t i = r * n2; i < (r + 1) * n2; i++) {
            d[i] = to[i] ? 0.0 : INFINITY;
            any |= from[i];
        }
        need[r] = any;
    }
    metrics_edt_sq(d, n, spacing, need);
    /* gather in voxel order (serial: the order must not depend on threads; it is cheap) */
    size_t k = 0;
    for (size_t r = 0; r < rows; r++) {
        if (!need[r]) continue;
        for (size_t i = r * n2; i < (r + 1) * n2; i++)
            if (from[i]) out[k++] = sqrt(d[i]);
    }
}

void metrics_surface_distances(double **ab, size_t *n_ab, double **ba, size_t *n_ba,
                               const uint8_t *a /* (n0, n1, n2) */, const uint8_t *b /* (n0, n1, n2) */,
                               const int n[3], const double spacing[3]) {
    size_t total = (size_t)n[0] * n[1] * n[2];
    uint8_t *sa = xmalloc(total), *sb = xmalloc(total), *need = xmalloc((size_t)n[0] * n[1]);
    double *d = xmalloc(total * sizeof(double));
    *n_ab = surface(sa, a, n);
    *n_ba = surface(sb, b, n);
    CHECK(*n_ab > 0 && *n_ba > 0, "metrics_surface_distances: empty mask");
    *ab = xmalloc(*n_ab * sizeof(double));
    *ba = xmalloc(*n_ba * sizeof(double));
    directed(*ab, d, need, sa, sb, n, spacing);
    directed(*ba, d, need, sb, sa, n, spacing);
    free(sa);
    free(sb);
    free(need);
    free(d);
}

/* ---- order statistics ---- */

static void swap_d(double *x, size_t i, size_t j) {
    double t = x[i];
    x[i] = x[j];
    x[j] = t;
}

/* Reorders x so x[k] is the k-th smallest, with smaller-or-equal values before it and
 * larger-or-equal after (quickselect with a three-way partition: distances have many ties). */
static void select_kth(double *x, size_t n, size_t k) {
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
    while (hi > lo) {
        ptrdiff_t mid = lo + (hi - lo) / 2;
        double a = x[lo], b = x[mid], c = x[hi];
        double pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        ptrdiff_t lt = lo, i = lo, gt = hi;
        while (i <= gt) {
            if (x[i] < pivot) swap_d(x, (size_t)lt++, (size_t)i++);
            else if (x[i] > pivot) swap_d(x, (size_t)i, (size_t)gt--);
            else i++;
        }
        if (kk < lt) hi = lt - 1;
        else if (kk > gt) lo = gt + 1;
        else return;
    }
}

/* x[k] and x[k + 1] of the sorted order (k + 1 clamped to n - 1). */
static void two_order_stats(double *x, size_t n, size_t k, double *lo, double *hi) {
    select_kth(x, n, k);
    *lo = x[k];
    double m = x[k];
    if (k + 1 < n) {
        m = x[k + 1];
        for (size_t i = k + 2; i < n; i++)
            if (x[i] < m) m = x[i];
    }
    *hi = m;
}

double metrics_percentile_numpy(double *x /* (n) */, size_t n, double q) {
    /* numpy 'linear': virtual index (n - 1)·q/100, floor/next, then numpy's _lerp */
    double quant = q / 100.0;
    double vi = (double)(n - 1) * quant;
    double prev = floor(vi);
    size_t k = (size_t)prev;
    if (k > n - 1) k = n - 1;
    double a, b;
    two_order_stats(x, n, k, &a, &b);
    double t = vi - prev;
    double diff = b - a;
    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

double metrics_quantile_torch_f32(double *x /* (n) */, size_t n, double q) {
    /* torch.quantile on float32: ranks = q·(n - 1) in float32, below = trunc, above = ceil,
     * lerp(below, above, rank - below) in float32 with torch's two-sided formula */
    for (size_t i = 0; i < n; i++) x[i] = (double)(float)x[i];
    float qf = (float)(q / 100.0);
    float rank = qf * (float)(int64_t)(n - 1);
    size_t below = (size_t)rank;
    size_t above = (size_t)ceilf(rank);
    if (above > n - 1) above = n - 1;
    double lo, hi;
    two_order_stats(x, n, below, &lo, &hi);
    float a = (float)lo, b = above == below ? a : (float)hi;
    float w = rank - (float)below;
    float diff = b - a;
    float r = w < 0.5f ? a + w * diff : b - diff * (1.0f - w);
    return (double)r;
}
