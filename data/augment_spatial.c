/* augment_spatial.c — crops, the rotation/scaling warp, and the cubic B-spline prefilter.
 *
 * The warp reproduces scipy.ndimage.map_coordinates as batchgenerators calls it: order 3 with
 * mode 'constant' for images (B-spline coefficients with a whole-sample mirror boundary, 0 for
 * any coordinate outside [0, n-1]) and, for labels, each label's indicator at order 1 followed
 * by an argmax (batchgenerators ≥ 0.25.5's _resample_seg_by_argmax, tie-break 'nearest'). */
#include <math.h>
#include <string.h>

#include "augment.h"

static int floordiv(int a, int b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }

void aug_crop_range(int size, int enlarged, int patch, int *lo, int *hi) {
    /* DataLoader2D: need_to_pad = enlarged - patch, widened when the slice is smaller than the
     * enlarged patch; lb = -need // 2, ub = size + need // 2 + need % 2 - enlarged (Python's
     * floor division). */
    int need = enlarged - patch;
    if (need + size < enlarged) need = enlarged - size;
    *lo = floordiv(-need, 2);
    *hi = size + need / 2 + need % 2 - enlarged;
    if (*hi < *lo) *hi = *lo;
}

void aug_crop(float *out, int32_t *out_lab, const float *img, const int32_t *lab, int C, int h, int w, int y0,
              int x0, int H, int W) {
    for (int y = 0; y < H; y++) {
        int sy = y0 + y;
        int inside_y = sy >= 0 && sy < h;
        /* the columns of this row that fall inside the slice */
        int xa = x0 < 0 ? -x0 : 0, xb = (x0 + W > w) ? w - x0 : W;
        if (!inside_y || xb <= xa) xa = xb = 0;
        for (int c = 0; c < C; c++) {
            float *o = out + ((size_t)c * H + y) * W;
            if (xa > 0) memset(o, 0, (size_t)xa * sizeof *o);
            if (xb > xa) memcpy(o + xa, img + ((size_t)c * h + sy) * w + x0 + xa, (size_t)(xb - xa) * sizeof *o);
            if (xb < W) memset(o + xb, 0, (size_t)(W - xb) * sizeof *o);
        }
        int32_t *ol = out_lab + (size_t)y * W;
        for (int x = 0; x < xa; x++) ol[x] = -1;
        if (xb > xa) memcpy(ol + xa, lab + (size_t)sy * w + x0 + xa, (size_t)(xb - xa) * sizeof *ol);
        for (int x = xb > xa ? xb : 0; x < W; x++) ol[x] = -1;
    }
}

void aug_center_crop(float *out, int32_t *out_lab, const float *img, const int32_t *lab, int C, int H, int W, int h,
                     int w) {
    int oy = (H - h) / 2, ox = (W - w) / 2;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < h; y++)
            memcpy(out + ((size_t)c * h + y) * w, img + ((size_t)c * H + y + oy) * W + ox, (size_t)w * sizeof *out);
    for (int y = 0; y < h; y++) memcpy(out_lab + (size_t)y * w, lab + (size_t)(y + oy) * W + ox, (size_t)w * sizeof *out_lab);
}

/* ---- cubic B-spline prefilter (Unser's recursive filter, pole sqrt(3) - 2) ---- */

#define POLE (-0.26794919243112270) /* sqrt(3) - 2 */
#define GAIN 6.0                    /* (1 - z)(1 - 1/z) */
/* |z|^24 < 2e-14: the causal initial value's sum is cut there (the mirror-wrapped terms are
 * smaller still); scipy sums the whole line, the difference is below float precision. */
#define HORIZON 24

/* The causal initial value of a line x[0], x[s], ..., x[(n-1)s] (already multiplied by the
 * gain), mirror boundary: exact for short lines as scipy's _init_causal_mirror. */
static double causal_init(const float *x, int n, size_t s) {
    const double z = POLE;
    double c0;
    if (n <= HORIZON) {
        double zn1 = pow(z, n - 1), zi = z;
        c0 = x[0] + zn1 * x[(size_t)(n - 1) * s];
        for (int i = 1; i < n - 1; i++) {
            c0 += zi * (x[(size_t)i * s] + zn1 * x[(size_t)(n - 1 - i) * s]);
            zi *= z;
        }
        c0 /= 1 - zn1 * zn1;
    } else {
        double zi = 1;
        c0 = 0;
        for (int i = 0; i < HORIZON; i++, zi *= z) c0 += zi * x[(size_t)i * s];
    }
    return c0;
}

/* One contiguous line in place; the running values stay in double. */
static void prefilter_row(float *c, int n) {
    if (n < 2) return;
    const double z = POLE;
    for (int i = 0; i < n; i++) c[i] *= (float)GAIN;
    double prev = causal_init(c, n, 1);
    c[0] = (float)prev;
    for (int i = 1; i < n; i++) c[i] = (float)(prev = c[i] + z * prev);
    double next = (z * c[n - 2] + c[n - 1]) * z / (z * z - 1);
    c[n - 1] = (float)next;
    for (int i = n - 2; i >= 0; i--) c[i] = (float)(next = z * (next - c[i]));
}

void aug_spline_prefilter(float *coef, const float *img, int H, int W) {
    const double z = POLE;
    if (coef != img) memcpy(coef, img, (size_t)H * W * sizeof *coef);
    for (int y = 0; y < H; y++) prefilter_row(coef + (size_t)y * W, W);
    if (H < 2) return;
    /* columns: the recursion runs down the rows, vectorised across the columns */
    for (size_t i = 0; i < (size_t)H * W; i++) coef[i] *= (float)GAIN;
    for (int x = 0; x < W; x++) coef[x] = (float)causal_init(coef + x, H, (size_t)W);
    const float zf = (float)z;
    for (int y = 1; y < H; y++) {
        float *r = coef + (size_t)y * W, *p = r - W;
        for (int x = 0; x < W; x++) r[x] += zf * p[x];
    }
    {
        float *last = coef + (size_t)(H - 1) * W, *prev = last - W;
        const float k = (float)(z / (z * z - 1));
        for (int x = 0; x < W; x++) last[x] = (zf * prev[x] + last[x]) * k;
    }
    for (int y = H - 2; y >= 0; y--) {
        float *r = coef + (size_t)y * W, *nx = r + W;
        for (int x = 0; x < W; x++) r[x] = zf * (nx[x] - r[x]);
    }
}

/* Whole-sample mirror of an index into [0, n-1]. */
static inline int mirror_index(int k, int n) {
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    if (k < 0) k = -k;
    k %= period;
    return k > n - 1 ? period - k : k;
}

static inline void cubic_weights(double t, double w[4]) {
    double t2 = t * t, t3 = t2 * t, u = 1.0 - t;
    w[0] = u * u * u / 6.0;
    w[1] = (4.0 - 6.0 * t2 + 3.0 * t3) / 6.0;
    w[2] = (1.0 + 3.0 * t + 3.0 * t2 - 3.0 * t3) / 6.0;
    w[3] = t3 / 6.0;
}

/* The cubic spline at (y, x), both inside [0, n-1]. */
static inline float spline_at(const float *coef, int H, int W, double y, double x) {
    int iy = (int)floor(y), ix = (int)floor(x);
    double wy[4], wx[4];
    cubic_weights(y - iy, wy);
    cubic_weights(x - ix, wx);
    double v = 0;
    if (iy >= 1 && iy + 2 < H && ix >= 1 && ix + 2 < W) {
        const float *p = coef + (size_t)(iy - 1) * W + (ix - 1);
        for (int a = 0; a < 4; a++, p += W)
            v += wy[a] * (wx[0] * p[0] + wx[1] * p[1] + wx[2] * p[2] + wx[3] * p[3]);
    } else {
        int xs[4];
        for (int b = 0; b < 4; b++) xs[b] = mirror_index(ix - 1 + b, W);
        for (int a = 0; a < 4; a++) {
            const float *p = coef + (size_t)mirror_index(iy - 1 + a, H) * W;
            v += wy[a] * (wx[0] * p[xs[0]] + wx[1] * p[xs[1]] + wx[2] * p[xs[2]] + wx[3] * p[xs[3]]);
        }
    }
    return (float)v;
}

/* Linear per-label interpolation then argmax at (y, x) inside the map. The scores are summed in
 * scipy's tap order so that exact ties (every half-integer coordinate) are ties here too. */
static inline int32_t label_at(const int32_t *lab, int H, int W, double y, double x) {
    int iy = (int)floor(y), ix = (int)floor(x);
    double ty = y - iy, tx = x - ix;
    int y1 = mirror_index(iy + 1, H), x1 = mirror_index(ix + 1, W);
    int32_t v[4] = {lab[(size_t)iy * W + ix], lab[(size_t)iy * W + x1], lab[(size_t)y1 * W + ix],
                    lab[(size_t)y1 * W + x1]};
    if (v[0] == v[1] && v[0] == v[2] && v[0] == v[3]) return v[0];
    double wy[2] = {1.0 - ty, ty}, wx[2] = {1.0 - tx, tx};
    double w[4] = {wy[0] * wx[0], wy[0] * wx[1], wy[1] * wx[0], wy[1] * wx[1]};
    int32_t L[4];
    double S[4];
    int n = 0;
    for (int k = 0; k < 4; k++) {
        int j = 0;
        while (j < n && L[j] != v[k]) j++;
        if (j == n) L[n] = v[k], S[n++] = 0.0;
        S[j] += w[k];
    }
    double best = S[0];
    for (int j = 1; j < n; j++)
        if (S[j] > best) best = S[j];
    /* tie-break 'nearest': the nearest neighbour's label if it has the top score */
    int32_t nn = lab[(size_t)(int)floor(y + 0.5) * W + (int)floor(x + 0.5)];
    int32_t win = 0;
    int have = 0;
    for (int j = 0; j < n; j++) {
        if (S[j] != best) continue;
        if (L[j] == nn) return nn;
        if (!have || L[j] < win) win = L[j], have = 1;
    }
    return win;
}

/* Where output pixel (i, j) samples the source: rotation and scaling about the patch centre
 * (hy, hx), moved to (cy, cx). Returns whether that point lies inside the H×W source. */
static inline int warp_source(double *y, double *x, int i, int j, double hy, double hx, double ca, double sa,
                              double scale, double cy, double cx, int H, int W) {
    double ci = i - hy, cj = j - hx;
    *y = (ci * ca + cj * sa) * scale + cy;
    *x = (ci * -sa + cj * ca) * scale + cx;
    return *y >= 0 && *y <= H - 1 && *x >= 0 && *x <= W - 1;
}

void aug_warp(float *out, int32_t *out_lab, const float *img, const int32_t *lab, int C, int H, int W, int h, int w,
              double angle, double scale, double cy, double cx, float *scratch) {
    double ca = cos(angle), sa = sin(angle);
    double hy = (h - 1) / 2.0, hx = (w - 1) / 2.0;
    for (int c = 0; c < C; c++) {
        aug_spline_prefilter(scratch, img + (size_t)c * H * W, H, W);
        float *o = out + (size_t)c * h * w;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                double y, x;
                o[(size_t)i * w + j] =
                    warp_source(&y, &x, i, j, hy, hx, ca, sa, scale, cy, cx, H, W) ? spline_at(scratch, H, W, y, x) : 0.0f;
            }
    }
    if (!out_lab) return;
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            double y, x;
            out_lab[(size_t)i * w + j] =
                warp_source(&y, &x, i, j, hy, hx, ca, sa, scale, cy, cx, H, W) ? label_at(lab, H, W, y, x) : -1;
        }
}
