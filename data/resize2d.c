/* resize2d.c — see resize2d.h. */
#include "resize2d.h"

#include <math.h>
#include <stdlib.h>

#include "check.h"

/* Weights of a 1-D resampling n -> m as a dense (m, n) matrix (sizes here are image sides). */
static double *axis_weights(int n, int m) {
    double *wt = xcalloc((size_t)n * m, sizeof *wt), s = (double)n / m;
    for (int i = 0; i < m; i++) {
        double *row = wt + (size_t)i * n;
        if (m <= n) { /* area: overlap of [i s, (i + 1) s) with each source pixel [j, j + 1) */
            double a = i * s, b = (i + 1) * s;
            for (int j = (int)floor(a); j < n && j < b; j++) {
                double ov = fmin(b, j + 1.0) - fmax(a, (double)j);
                if (ov > 0) row[j] += ov / s;
            }
        } else { /* bilinear between pixel centres, edges clamped */
            double x = (i + 0.5) * s - 0.5;
            if (x < 0) x = 0;
            int j = (int)floor(x);
            if (j >= n - 1) {
                row[n - 1] = 1;
                continue;
            }
            double f = x - j;
            row[j] += 1 - f;
            row[j + 1] += f;
        }
    }
    return wt;
}

float *resize2d_image(const float *src, int c, int h, int w, int oh, int ow) {
    double *wx = axis_weights(w, ow), *wy = axis_weights(h, oh);
    float *out = xmalloc((size_t)c * oh * ow * sizeof *out);
    double *tmp = xmalloc((size_t)h * ow * sizeof *tmp);
    for (int k = 0; k < c; k++) {
        const float *p = src + (size_t)k * h * w;
        for (int y = 0; y < h; y++) /* along x first */
            for (int i = 0; i < ow; i++) {
                double acc = 0;
                for (int j = 0; j < w; j++) acc += wx[(size_t)i * w + j] * p[(size_t)y * w + j];
                tmp[(size_t)y * ow + i] = acc;
            }
        for (int i = 0; i < oh; i++)
            for (int x = 0; x < ow; x++) {
                double acc = 0;
                for (int j = 0; j < h; j++) acc += wy[(size_t)i * h + j] * tmp[(size_t)j * ow + x];
                out[((size_t)k * oh + i) * ow + x] = (float)acc;
            }
    }
    free(tmp), free(wx), free(wy);
    return out;
}

uint8_t *resize2d_mask(const uint8_t *src, int h, int w, int oh, int ow) {
    uint8_t *out = xmalloc((size_t)oh * ow);
    for (int i = 0; i < oh; i++) {
        int y = (int)floor((i + 0.5) * h / oh);
        if (y > h - 1) y = h - 1;
        for (int x = 0; x < ow; x++) {
            int xs = (int)floor((x + 0.5) * w / ow);
            out[(size_t)i * ow + x] = src[(size_t)y * w + (xs > w - 1 ? w - 1 : xs)];
        }
    }
    return out;
}
