/* predict.c — see predict.h. */
#include "predict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

void predict_gaussian(float *g /* (h, w) */, int h, int w, double sigma_scale) {
    /* separable: the filtered delta is ky(y - cy)·kx(x - cx) inside the kernels' radius
     * (scipy: int(4σ + 0.5)), 0 outside; the normalisations cancel in the scaling to max 1 */
    double sy = h * sigma_scale, sx = w * sigma_scale;
    int ry = (int)(4.0 * sy + 0.5), rx = (int)(4.0 * sx + 0.5);
    int cy = h / 2, cx = w / 2;
    float minpos = INFINITY;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int dy = y - cy, dx = x - cx;
            double v = 0.0;
            if (abs(dy) <= ry && abs(dx) <= rx)
                v = exp(-0.5 / (sy * sy) * (double)dy * dy) * exp(-0.5 / (sx * sx) * (double)dx * dx);
            g[(size_t)y * w + x] = (float)v;
            if ((float)v > 0 && (float)v < minpos) minpos = (float)v;
        }
    for (size_t i = 0; i < (size_t)h * w; i++)
        if (g[i] == 0) g[i] = minpos;
}

int predict_steps(int *steps, int image, int patch, double step_frac) {
    double target = patch * step_frac;
    int n = (int)ceil((image - patch) / target) + 1;
    double actual = n > 1 ? (double)(image - patch) / (n - 1) : 0.0;
    for (int i = 0; i < n; i++) steps[i] = (int)nearbyint(actual * i); /* np.round: half to even */
    return n;
}

void predictor_init(Predictor *p, const Model *m, Backend *be, const float *params_host, double step, int mirror) {
    memset(p, 0, sizeof *p);
    p->m = m;
    p->be = be;
    p->ch = m->net.crop[0];
    p->cw = m->net.crop[1];
    p->K = m->K;
    p->cin = m->cin;
    p->step = step;
    p->mirror = mirror;
    size_t plane = (size_t)p->ch * p->cw;
    p->acts = model_acts_create(m, be, 1, p->ch, p->cw, 0);
    p->params = be->alloc(be, m->params.total * sizeof(float));
    be->upload(be, p->params, params_host, m->params.total * sizeof(float));
    p->d_in = be->alloc(be, plane * p->cin * sizeof(float));
    p->gauss = xmalloc(plane * sizeof(float));
    predict_gaussian(p->gauss, p->ch, p->cw, 1.0 / 8.0);
    p->win_in = xmalloc(plane * p->cin * sizeof(float));
    p->win_out = xmalloc(plane * p->K * sizeof(float));
    p->win_prob = xmalloc(plane * p->K * sizeof(float));
}

void predictor_free(Predictor *p) {
    model_acts_free(p->acts);
    p->be->release(p->be, p->params);
    p->be->release(p->be, p->d_in);
    free(p->gauss);
    free(p->win_in);
    free(p->win_out);
    free(p->win_prob);
}

/* One forward pass on the window flipped by (fy, fx); adds softmax·scale, flipped back, to win_prob. */
static void pass(Predictor *p, const float *window /* (Cin, ch, cw) */, int fy, int fx, float scale) {
    const int H = p->ch, W = p->cw, C = p->cin, K = p->K;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sy = fy ? H - 1 - y : y, sx = fx ? W - 1 - x : x;
            for (int c = 0; c < C; c++)
                p->win_in[((size_t)y * W + x) * C + c] = window[((size_t)c * H + sy) * W + sx];
        }
    p->be->upload(p->be, p->d_in, p->win_in, (size_t)H * W * C * sizeof(float));
    PassOptions opt;
    memset(&opt, 0, sizeof opt); /* inference: no drop path */
    float *outs[3];
    model_forward(p->m, p->be, p->acts, p->params, p->d_in, &opt, outs);
    p->be->download(p->be, p->win_out, outs[0], (size_t)H * W * K * sizeof(float));
    /* serial: a window's softmax is tiny next to the forward pass, and a parallel region here
     * costs more than it saves when cores are shared */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const float *l = p->win_out + ((size_t)y * W + x) * K;
            float mx = l[0];
            for (int k = 1; k < K; k++) mx = l[k] > mx ? l[k] : mx;
            float e[1024], s = 0;
            for (int k = 0; k < K; k++) s += e[k] = expf(l[k] - mx);
            int ty = fy ? H - 1 - y : y, tx = fx ? W - 1 - x : x;
            for (int k = 0; k < K; k++) p->win_prob[((size_t)k * H + ty) * W + tx] += scale * (e[k] / s);
        }
}

void predict_window(Predictor *p, const float *window /* (Cin, ch, cw) */) {
    memset(p->win_prob, 0, (size_t)p->ch * p->cw * p->K * sizeof(float));
    if (!p->mirror) {
        pass(p, window, 0, 0, 1.0f);
        return;
    }
    for (int f = 0; f < 4; f++) pass(p, window, f >> 1, f & 1, 0.25f);
}

void predict_slice(Predictor *p, float *probs /* (K, H, W) */, const float *image /* (Cin, H, W) */, int H, int W) {
    const int ch = p->ch, cw = p->cw, C = p->cin, K = p->K;
    /* pad to at least the crop: below = diff / 2, above = the rest (nnU-Net's pad_nd_image) */
    int Hp = H > ch ? H : ch, Wp = W > cw ? W : cw;
    int oy = (Hp - H) / 2, ox = (Wp - W) / 2;
    size_t plane = (size_t)Hp * Wp;
    float *img = xcalloc(plane * C, sizeof(float));
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            memcpy(img + ((size_t)c * Hp + y + oy) * Wp + ox, image + ((size_t)c * H + y) * W, (size_t)W * sizeof(float));
    float *acc = xcalloc(plane * K, sizeof(float));    /* (K, Hp, Wp) */
    float *wsum = xcalloc(plane, sizeof(float));       /* (Hp, Wp) */
    float *win = xmalloc((size_t)ch * cw * C * sizeof(float));
    int *sy = xmalloc(((size_t)Hp + 2) * sizeof(int)), *sx = xmalloc(((size_t)Wp + 2) * sizeof(int));
    int ny = predict_steps(sy, Hp, ch, p->step), nx = predict_steps(sx, Wp, cw, p->step);
    for (int a = 0; a < ny; a++)
        for (int b = 0; b < nx; b++) {
            int y0 = sy[a], x0 = sx[b];
            for (int c = 0; c < C; c++)
                for (int y = 0; y < ch; y++)
                    memcpy(win + ((size_t)c * ch + y) * cw, img + ((size_t)c * Hp + y0 + y) * Wp + x0, (size_t)cw * sizeof(float));
            predict_window(p, win);
            for (int y = 0; y < ch; y++)
                for (int x = 0; x < cw; x++) {
                    float g = p->gauss[(size_t)y * cw + x];
                    size_t o = (size_t)(y0 + y) * Wp + x0 + x;
                    wsum[o] += g;
                    for (int k = 0; k < K; k++) acc[(size_t)k * plane + o] += p->win_prob[((size_t)k * ch + y) * cw + x] * g;
                }
        }
    for (int k = 0; k < K; k++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t o = (size_t)(y + oy) * Wp + x + ox;
                probs[((size_t)k * H + y) * W + x] = acc[(size_t)k * plane + o] / wsum[o];
            }
    free(img);
    free(acc);
    free(wsum);
    free(win);
    free(sy);
    free(sx);
}

void predict_volume(Predictor *p, float *probs, int32_t *labels, const float *volume, int D, int H, int W) {
    const int K = p->K, C = p->cin;
    size_t plane = (size_t)H * W;
    float *sp = xmalloc((size_t)K * plane * sizeof(float)); /* (K, H, W) */
    float *img = xmalloc((size_t)C * plane * sizeof(float)); /* (C, H, W) */
    for (int z = 0; z < D; z++) {
        for (int c = 0; c < C; c++) memcpy(img + c * plane, volume + ((size_t)c * D + z) * plane, plane * sizeof(float));
        predict_slice(p, sp, img, H, W);
        for (int k = 0; k < K; k++) memcpy(probs + ((size_t)k * D + z) * plane, sp + k * plane, plane * sizeof(float));
        for (size_t i = 0; i < plane; i++) {
            int best = 0;
            for (int k = 1; k < K; k++)
                if (sp[k * plane + i] > sp[best * plane + i]) best = k;
            labels[plane * z + i] = best;
        }
    }
    free(sp);
    free(img);
}

int predict_norm_ok(const char *norm) {
    double lo, hi, mean, sd;
    char tail;
    if (!strcmp(norm, "none") || !strcmp(norm, "zscore")) return 1;
    return !strncmp(norm, "ct:", 3) && sscanf(norm + 3, "%lf,%lf,%lf,%lf%c", &lo, &hi, &mean, &sd, &tail) == 4 && sd > 0;
}

void predict_normalise(float *x, size_t n, const char *norm) {
    if (!strcmp(norm, "none")) return;
    double lo = -INFINITY, hi = INFINITY, mean = 0, sd = 1;
    if (!strncmp(norm, "ct:", 3)) {
        sscanf(norm + 3, "%lf,%lf,%lf,%lf", &lo, &hi, &mean, &sd);
    } else { /* zscore over the whole case */
        double s = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) s += x[i], s2 += (double)x[i] * x[i];
        mean = s / n;
        sd = sqrt(fmax(s2 / n - mean * mean, 0)) + 1e-8;
    }
    for (size_t i = 0; i < n; i++) {
        double v = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
        x[i] = (float)((v - mean) / sd);
    }
}
