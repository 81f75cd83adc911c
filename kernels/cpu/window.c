/* window.c — the Swin shift/pad plumbing around window attention (NHWC):
 *   pad_roll:  zero-pad bottom/right from (H, W) to (Hp, Wp), then torch.roll by (−s, −s):
 *              out[b, y, x, :] = padded[b, (y + s) % Hp, (x + s) % Wp, :]
 *   roll_crop: the inverse, torch.roll by (+s, +s), then crop to (H, W):
 *              out[b, y, x, :] = in[b, (y − s) mod Hp, (x − s) mod Wp, :]
 * Each is a pure gather of whole channel vectors (contiguous C floats), so both directions
 * copy rows of C floats; backward ops scatter-add through the same map (it is a bijection
 * between the valid (H, W) pixels and part of the (Hp, Wp) grid, so no two sources collide
 * and the loops parallelise without atomics). */
#include <string.h>

#include "cpu_ops.h"

/* v mod n in [0, n) for any sign of v (C's % keeps the sign of v) */
static inline int wrap(int v, int n) {
    v %= n;
    return v < 0 ? v + n : v;
}

void cpu_pad_roll_forward(Backend *be, Act *out_act, /* (B, Hp, Wp, C) */ const Act *in_act, /* (B, H, W, C) */
                          int B, int H, int W, int C, int Hp, int Wp, int shift) {
    float *out = (float *)out_act;           /* (B, Hp, Wp, C) */
    const float *in = (const float *)in_act; /* (B, H, W, C) */
    (void)be;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < Hp; y++) {
            int sy = wrap(y + shift, Hp);
            for (int x = 0; x < Wp; x++) {
                int sx = wrap(x + shift, Wp);
                float *o = out + (((size_t)b * Hp + y) * Wp + x) * C; /* (C) */
                if (sy < H && sx < W)
                    memcpy(o, in + (((size_t)b * H + sy) * W + sx) * C, (size_t)C * sizeof(float));
                else
                    memset(o, 0, (size_t)C * sizeof(float)); /* zero padding */
            }
        }
}

void cpu_pad_roll_backward(Backend *be, Act *din_act, /* (B, H, W, C) */ const Act *dout_act, /* (B, Hp, Wp, C) */
                           int B, int H, int W, int C, int Hp, int Wp, int shift) {
    float *din = (float *)din_act;               /* (B, H, W, C) */
    const float *dout = (const float *)dout_act; /* (B, Hp, Wp, C) */
    (void)be;
    if (!din) return;
    /* input pixel (y, x) went to rolled position ((y − s) mod Hp, (x − s) mod Wp) */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++) {
            int ry = wrap(y - shift, Hp);
            for (int x = 0; x < W; x++) {
                int rx = wrap(x - shift, Wp);
                float *d = din + (((size_t)b * H + y) * W + x) * C;                       /* (C) */
                const float *g = dout + (((size_t)b * Hp + ry) * Wp + rx) * C;            /* (C) */
                for (int c = 0; c < C; c++) d[c] += g[c];
            }
        }
}

void cpu_roll_crop_forward(Backend *be, Act *out_act, /* (B, H, W, C) */ const Act *in_act, /* (B, Hp, Wp, C) */
                           int B, int H, int W, int C, int Hp, int Wp, int shift) {
    float *out = (float *)out_act;           /* (B, H, W, C) */
    const float *in = (const float *)in_act; /* (B, Hp, Wp, C) */
    (void)be;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++) {
            int sy = wrap(y - shift, Hp);
            for (int x = 0; x < W; x++) {
                int sx = wrap(x - shift, Wp);
                memcpy(out + (((size_t)b * H + y) * W + x) * C, in + (((size_t)b * Hp + sy) * Wp + sx) * C,
                       (size_t)C * sizeof(float));
            }
        }
}

void cpu_roll_crop_backward(Backend *be, Act *din_act, /* (B, Hp, Wp, C) */ const Act *dout_act, /* (B, H, W, C) */
                            int B, int H, int W, int C, int Hp, int Wp, int shift) {
    float *din = (float *)din_act;               /* (B, Hp, Wp, C) */
    const float *dout = (const float *)dout_act; /* (B, H, W, C) */
    (void)be;
    if (!din) return;
    /* rolled-map pixels that land in the cropped-away padding get no gradient (+= 0) */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++) {
            int sy = wrap(y - shift, Hp);
            for (int x = 0; x < W; x++) {
                int sx = wrap(x - shift, Wp);
                float *d = din + (((size_t)b * Hp + sy) * Wp + sx) * C;          /* (C) */
                const float *g = dout + (((size_t)b * H + y) * W + x) * C;       /* (C) */
                for (int c = 0; c < C; c++) d[c] += g[c];
            }
        }
}

/* The first writers (backend_ops.h): zero, then the accumulating op (0 + x, as the caller's
 * zero + op did: a -0 gradient still arrives as +0). */
void cpu_pad_roll_backward_first(Backend *be, Act *din /* (B, H, W, C) */, const Act *dout /* (B, Hp, Wp, C) */,
                                 int B, int H, int W, int C, int Hp, int Wp, int shift) {
    if (din) memset(din, 0, (size_t)B * H * W * C * sizeof(float));
    cpu_pad_roll_backward(be, din, dout, B, H, W, C, Hp, Wp, shift);
}

void cpu_roll_crop_backward_first(Backend *be, Act *din /* (B, Hp, Wp, C) */, const Act *dout /* (B, H, W, C) */,
                                  int B, int H, int W, int C, int Hp, int Wp, int shift) {
    if (din) memset(din, 0, (size_t)B * Hp * Wp * C * sizeof(float));
    cpu_roll_crop_backward(be, din, dout, B, H, W, C, Hp, Wp, shift);
}
