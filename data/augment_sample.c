/* augment_sample.c — one slice through the whole augmentation, into one NHWC batch entry. */
#include <stdlib.h>
#include <string.h>

#include "augment.h"

int augment_scratch_alloc(AugmentScratch *s, const AugmentParams *p, int C) {
    memset(s, 0, sizeof *s);
    size_t E = (size_t)p->enlarged[0] * p->enlarged[1], P = (size_t)p->patch[0] * p->patch[1];
    size_t tmp = aug_lowres_scratch(p->patch[0], p->patch[1]);
    if (tmp < E) tmp = E;
    s->a = malloc(E * C * sizeof(float));
    s->b = malloc(P * C * sizeof(float));
    s->la = malloc(E * sizeof(int32_t));
    s->lb = malloc(P * sizeof(int32_t));
    s->tmp = malloc(tmp * sizeof(float));
    if (!s->a || !s->b || !s->la || !s->lb || !s->tmp) {
        augment_scratch_free(s);
        return -1;
    }
    return 0;
}

void augment_scratch_free(AugmentScratch *s) {
    free(s->a), free(s->b), free(s->la), free(s->lb), free(s->tmp);
    memset(s, 0, sizeof *s);
}

void augment_sample(const AugmentParams *p, const AugmentDraw *d, const float *img, const int32_t *lab, int C, int h,
                    int w, AugmentScratch *s, float *out, int32_t *out_lab) {
    const int EH = p->enlarged[0], EW = p->enlarged[1], PH = p->patch[0], PW = p->patch[1];
    const size_t n = (size_t)PH * PW;
    aug_crop(s->a, s->la, img, lab, C, h, w, d->crop_y, d->crop_x, EH, EW);
    if (d->spatial) /* batchgenerators ≥ 0.23 rotates about the enlarged patch's centre, shape/2 - 0.5 */
        aug_warp(s->b, s->lb, s->a, s->la, C, EH, EW, PH, PW, d->angle, d->scale, EH / 2.0 - 0.5, EW / 2.0 - 0.5, s->tmp);
    else
        aug_center_crop(s->b, s->lb, s->a, s->la, C, EH, EW, PH, PW);
    float *x = s->b;
    if (d->noise) aug_noise(x, n * C, d->noise_std, d->noise_key);
    for (int c = 0; c < C; c++) {
        float *xc = x + (size_t)c * n;
        if (d->blur && d->blur_sigma[c] > 0) aug_blur(xc, PH, PW, d->blur_sigma[c], s->tmp);
    }
    for (int c = 0; c < C && d->brightness; c++) aug_scale(x + (size_t)c * n, n, d->brightness_mult[c]);
    for (int c = 0; c < C && d->contrast; c++) aug_contrast(x + (size_t)c * n, n, d->contrast_factor[c]);
    for (int c = 0; c < C && d->lowres; c++)
        if (d->lowres_zoom[c] > 0) aug_lowres(x + (size_t)c * n, PH, PW, d->lowres_zoom[c], s->tmp);
    for (int c = 0; c < C && d->gamma_inverted; c++) aug_gamma(x + (size_t)c * n, n, d->gamma_inv_value[c], 1, 1);
    for (int c = 0; c < C && d->gamma; c++) aug_gamma(x + (size_t)c * n, n, d->gamma_value[c], 0, 1);
    /* mirroring, the planar -> NHWC transpose and the label's -1 -> 0, in one pass */
    for (int y = 0; y < PH; y++) {
        int sy = d->mirror[0] ? PH - 1 - y : y;
        for (int xx = 0; xx < PW; xx++) {
            int sx = d->mirror[1] ? PW - 1 - xx : xx;
            size_t si = (size_t)sy * PW + sx, di = (size_t)y * PW + xx;
            if (C == 1) out[di] = x[si];
            else
                for (int c = 0; c < C; c++) out[di * C + c] = x[(size_t)c * n + si];
            int32_t l = s->lb[si];
            out_lab[di] = l < 0 ? 0 : l;
        }
    }
}
