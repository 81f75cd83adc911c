/* test_metrics.c — the exact EDT and the surface distances against brute force: for random
 * masks in small boxes with anisotropic spacing, every directed distance must equal the minimum
 * over all surface voxels of the other mask computed pair by pair. (medpy/MONAI agreement of the
 * whole metric is tests/reference/test_metrics_vs_medpy.py.) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "rng.h"
#include "testutil.h"

static int is_surface(const uint8_t *m, const int n[3], int i0, int i1, int i2) {
    if (!m[((size_t)i0 * n[1] + i1) * n[2] + i2]) return 0;
    const int d[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
    for (int k = 0; k < 6; k++) {
        int a = i0 + d[k][0], b = i1 + d[k][1], c = i2 + d[k][2];
        if (a < 0 || b < 0 || c < 0 || a >= n[0] || b >= n[1] || c >= n[2]) return 1;
        if (!m[((size_t)a * n[1] + b) * n[2] + c]) return 1;
    }
    return 0;
}

/* Directed distances from surface(a) to surface(b), in voxel order. */
static size_t brute(double *out, const uint8_t *a, const uint8_t *b, const int n[3], const double sp[3]) {
    size_t k = 0;
    for (int i0 = 0; i0 < n[0]; i0++)
        for (int i1 = 0; i1 < n[1]; i1++)
            for (int i2 = 0; i2 < n[2]; i2++) {
                if (!is_surface(a, n, i0, i1, i2)) continue;
                double best = INFINITY;
                for (int j0 = 0; j0 < n[0]; j0++)
                    for (int j1 = 0; j1 < n[1]; j1++)
                        for (int j2 = 0; j2 < n[2]; j2++) {
                            if (!is_surface(b, n, j0, j1, j2)) continue;
                            double d0 = (i0 - j0) * sp[0], d1 = (i1 - j1) * sp[1], d2 = (i2 - j2) * sp[2];
                            double dd = d0 * d0 + d1 * d1 + d2 * d2;
                            if (dd < best) best = dd;
                        }
                out[k++] = sqrt(best);
            }
    return k;
}

int main(void) {
    const int shapes[4][3] = {{7, 9, 11}, {1, 12, 13}, {15, 4, 6}, {10, 10, 10}};
    const double spacing[4][3] = {{2.5, 0.7, 0.9}, {1, 1, 1}, {0.3, 1.7, 1.1}, {3.0, 0.5, 0.5}};
    double worst = 0;
    for (int t = 0; t < 4; t++) {
        for (int rep = 0; rep < 5; rep++) {
            const int *n = shapes[t];
            size_t vol = (size_t)n[0] * n[1] * n[2];
            uint8_t *a = calloc(vol, 1), *b = calloc(vol, 1);
            double pa = 0.1 + 0.2 * rep, pb = 0.05 + 0.15 * rep;
            for (size_t i = 0; i < vol; i++) {
                a[i] = rng_uniform(rng_key(1234, (uint64_t)t * 10 + rep, 2 * i)) < pa;
                b[i] = rng_uniform(rng_key(1234, (uint64_t)t * 10 + rep, 2 * i + 1)) < pb;
            }
            if (rep == 0) { /* one-voxel masks */
                memset(a, 0, vol), memset(b, 0, vol);
                a[vol / 3] = 1, b[vol - 1] = 1;
            }
            a[0] = 1, b[vol / 2] = 1; /* never empty */
            double *ab, *ba;
            size_t nab, nba;
            metrics_surface_distances(&ab, &nab, &ba, &nba, a, b, n, spacing[t]);
            double *rab = malloc(vol * sizeof(double)), *rba = malloc(vol * sizeof(double));
            size_t mab = brute(rab, a, b, n, spacing[t]), mba = brute(rba, b, a, n, spacing[t]);
            TEST_CHECK(mab == nab && mba == nba, "shape %d rep %d: surface sizes %zu/%zu vs %zu/%zu", t, rep, nab, nba,
                       mab, mba);
            for (size_t i = 0; i < nab && i < mab; i++) {
                double e = fabs(ab[i] - rab[i]) / fmax(rab[i], 1e-12);
                if (e > worst) worst = e;
            }
            for (size_t i = 0; i < nba && i < mba; i++) {
                double e = fabs(ba[i] - rba[i]) / fmax(rba[i], 1e-12);
                if (e > worst) worst = e;
            }
            free(a), free(b), free(ab), free(ba), free(rab), free(rba);
        }
    }
    TEST_CHECK(worst < 1e-12, "EDT distances differ from brute force: max relative %.3e", worst);

    /* numpy's linear percentile on a known set: np.percentile([1..10], 95) = 9.55 */
    double x[10] = {10, 3, 7, 1, 9, 2, 8, 4, 6, 5};
    TEST_CHECK(fabs(metrics_percentile_numpy(x, 10, 95.0) - 9.55) < 1e-12, "percentile of 1..10");
    double one = 4.25;
    TEST_CHECK(metrics_percentile_numpy(&one, 1, 95.0) == 4.25, "percentile of one value");
    return test_summary("metrics");
}
