/* augment_lowres.c — low-resolution simulation (batchgenerators' SimulateLowResolutionTransform
 * with nnU-Net's orders): skimage.transform.resize to round(zoom·shape) at order 0, then back
 * at order 3, both mode 'edge' without anti-aliasing, the result clipped to the input's range.
 * skimage calls scipy.ndimage.zoom(grid_mode=True): output pixel k reads input coordinate
 * (k + 0.5)·in/out - 0.5; order 3 pads 12 edge pixels before the spline prefilter. */
#include <math.h>
#include <string.h>

#include "augment.h"

#define PAD 12

size_t aug_lowres_scratch(int H, int W) {
    return (size_t)(H + 2 * PAD) * (W + 2 * PAD) /* padded coefficients */
           + (size_t)(H + 2 * PAD) * W          /* rows interpolated along x */
           + 5 * (size_t)W;                     /* per-column taps and weights */
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

static inline void cubic_weights(double t, float w[4]) {
    double t2 = t * t, t3 = t2 * t, u = 1.0 - t;
    w[0] = (float)(u * u * u / 6.0);
    w[1] = (float)((4.0 - 6.0 * t2 + 3.0 * t3) / 6.0);
    w[2] = (float)((1.0 + 3.0 * t + 3.0 * t2 - 3.0 * t3) / 6.0);
    w[3] = (float)(t3 / 6.0);
}

void aug_lowres(float *x, int H, int W, double zoom, float *scratch) {
    int sh = (int)rint(H * zoom), sw = (int)rint(W * zoom);
    if (sh < 1) sh = 1;
    if (sw < 1) sw = 1;
    int PH = sh + 2 * PAD, PW = sw + 2 * PAD;
    float *P = scratch, *T = P + (size_t)PH * PW, *wxs = T + (size_t)PH * W;
    int *ixs = (int *)(wxs + 4 * (size_t)W);
    /* nearest down, straight into the padded interior */
    double zy = (double)H / sh, zx = (double)W / sw;
    float lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < sh; i++) {
        int sy = clampi((int)floor((i + 0.5) * zy - 0.5 + 0.5), 0, H - 1);
        float *row = P + (size_t)(i + PAD) * PW + PAD;
        for (int j = 0; j < sw; j++) {
            int sx = clampi((int)floor((j + 0.5) * zx - 0.5 + 0.5), 0, W - 1);
            float v = x[(size_t)sy * W + sx];
            row[j] = v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    /* edge padding (mode 'edge' / 'nearest') */
    for (int i = PAD; i < PAD + sh; i++) {
        float *row = P + (size_t)i * PW;
        for (int j = 0; j < PAD; j++) row[j] = row[PAD], row[PAD + sw + j] = row[PAD + sw - 1];
    }
    for (int i = 0; i < PAD; i++) {
        memcpy(P + (size_t)i * PW, P + (size_t)PAD * PW, (size_t)PW * sizeof *P);
        memcpy(P + (size_t)(PAD + sh + i) * PW, P + (size_t)(PAD + sh - 1) * PW, (size_t)PW * sizeof *P);
    }
    aug_spline_prefilter(P, P, PH, PW);
    /* cubic up, separably: along x for every padded row, then along y */
    double uy = (double)sh / H, ux = (double)sw / W;
    for (int j = 0; j < W; j++) {
        double c = (j + 0.5) * ux - 0.5 + PAD;
        int ix = (int)floor(c);
        cubic_weights(c - ix, wxs + 4 * (size_t)j);
        ixs[j] = ix - 1;
    }
    for (int r = 0; r < PH; r++) {
        const float *p = P + (size_t)r * PW;
        float *t = T + (size_t)r * W;
        for (int j = 0; j < W; j++) {
            const float *w4 = wxs + 4 * (size_t)j, *q = p + ixs[j];
            t[j] = w4[0] * q[0] + w4[1] * q[1] + w4[2] * q[2] + w4[3] * q[3];
        }
    }
    for (int i = 0; i < H; i++) {
        double c = (i + 0.5) * uy - 0.5 + PAD;
        int iy = (int)floor(c);
        float wy[4];
        cubic_weights(c - iy, wy);
        const float *t0 = T + (size_t)(iy - 1) * W, *t1 = t0 + W, *t2 = t1 + W, *t3 = t2 + W;
        float *o = x + (size_t)i * W;
        for (int j = 0; j < W; j++) {
            float v = wy[0] * t0[j] + wy[1] * t1[j] + wy[2] * t2[j] + wy[3] * t3[j];
            o[j] = v < lo ? lo : (v > hi ? hi : v);
        }
    }
}
