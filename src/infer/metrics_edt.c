/* metrics_edt.c — exact squared Euclidean distance transform with anisotropic spacing.
 *
 * Felzenszwalb & Huttenlocher (2012): the squared distance separates into one 1D lower-envelope
 * -of-parabolas pass per axis, f(q) = min_p w (q - p)² + g(p) with w = spacing², which is exact
 * (not an approximation like chamfer transforms), so it matches scipy's exact feature-transform
 * EDT up to floating-point rounding. Passes run axis 0, 1, then 2 (the contiguous one) so the
 * last pass can skip rows where no distance is needed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "metrics.h"

/* One 1D pass over f (length len, weight w) into out; v, z are scratch of len and len + 1.
 * Entries of f that are +inf carry no parabola. Returns 0 if every entry is +inf. */
static int edt_1d(double *out /* (len) */, const double *f /* (len) */, int len, double w,
                  int *v /* (len) */, double *z /* (len + 1) */) {
    int k = -1;
    for (int q = 0; q < len; q++) {
        if (f[q] == INFINITY) continue;
        double fq = f[q] + w * (double)q * q;
        double s = -INFINITY;
        while (k >= 0) {
            int p = v[k];
            s = (fq - (f[p] + w * (double)p * p)) / (2.0 * w * (double)(q - p));
            if (s > z[k]) break;
            k--;
        }
        k++;
        v[k] = q;
        z[k] = k == 0 ? -INFINITY : s;
        z[k + 1] = INFINITY;
    }
    if (k < 0) {
        for (int q = 0; q < len; q++) out[q] = INFINITY;
        return 0;
    }
    int j = 0;
    for (int q = 0; q < len; q++) {
        while (z[j + 1] < (double)q) j++;
        double dq = (double)(q - v[j]);
        out[q] = w * dq * dq + f[v[j]];
    }
    return 1;
}

void metrics_edt_sq(double *d /* (n0, n1, n2) */, const int n[3], const double spacing[3],
                    const uint8_t *need /* (n0, n1) or NULL */) {
    const size_t n0 = (size_t)n[0], n1 = (size_t)n[1], n2 = (size_t)n[2];
    int maxlen = n[0] > n[1] ? n[0] : n[1];
    if (n[2] > maxlen) maxlen = n[2];

#pragma omp parallel
    {
        double *f = xmalloc((size_t)maxlen * sizeof(double));
        double *o = xmalloc((size_t)maxlen * sizeof(double));
        double *z = xmalloc(((size_t)maxlen + 1) * sizeof(double));
        int *v = xmalloc((size_t)maxlen * sizeof(int));

        /* axis 0: columns (i1, i2), stride n1*n2. A column without features stays +inf. */
        double w0 = spacing[0] * spacing[0];
#pragma omp for schedule(static)
        for (size_t c = 0; c < n1 * n2; c++) {
            double *base = d + c;
            int any = 0;
            for (size_t i = 0; i < n0; i++) {
                f[i] = base[i * n1 * n2];
                any |= f[i] != INFINITY;
            }
            if (!any) continue;
            edt_1d(o, f, (int)n0, w0, v, z);
            for (size_t i = 0; i < n0; i++) base[i * n1 * n2] = o[i];
        }

        /* axis 1: columns (i0, i2), stride n2 */
        double w1 = spacing[1] * spacing[1];
#pragma omp for schedule(static)
        for (size_t c = 0; c < n0 * n2; c++) {
            size_t i0 = c / n2, i2 = c % n2;
            double *base = d + i0 * n1 * n2 + i2;
            int any = 0;
            for (size_t i = 0; i < n1; i++) {
                f[i] = base[i * n2];
                any |= f[i] != INFINITY;
            }
            if (!any) continue;
            edt_1d(o, f, (int)n1, w1, v, z);
            for (size_t i = 0; i < n1; i++) base[i * n2] = o[i];
        }

        /* axis 2: contiguous rows; only where asked */
        double w2 = spacing[2] * spacing[2];
#pragma omp for schedule(dynamic, 64)
        for (size_t r = 0; r < n0 * n1; r++) {
            if (need && !need[r]) continue;
            double *row = d + r * n2;
            memcpy(f, row, n2 * sizeof(double));
            edt_1d(row, f, (int)n2, w2, v, z);
        }
        free(f);
        free(o);
        free(z);
        free(v);
    }
}
