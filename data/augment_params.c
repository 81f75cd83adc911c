/* augment_params.c — the recipe's defaults and the per-sample draw.
 *
 * Every decision about a sample is one counter of the sample's own stream, at a fixed slot
 * (below), so changing one probability in a config never shifts the others' draws, and no
 * draw depends on any other sample. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "augment.h"
#include "rng.h"

void augment_enlarged_size(int patch_h, int patch_w, double max_deg, double min_scale, int out[2]) {
    /* nnU-Net v1 get_patch_size (2D): rotate the patch's extent vector, keep the larger extent
     * per axis, divide by the smallest scale, truncate. */
    double a = fabs(max_deg) * M_PI / 180.0;
    if (a > M_PI / 2) a = M_PI / 2;
    double r0 = fabs(patch_h * cos(a) + patch_w * sin(a)), r1 = fabs(-patch_h * sin(a) + patch_w * cos(a));
    out[0] = (int)(fmax(r0, patch_h) / min_scale);
    out[1] = (int)(fmax(r1, patch_w) / min_scale);
}

void augment_params_set_patch(AugmentParams *p, int patch_h, int patch_w) {
    p->patch[0] = patch_h, p->patch[1] = patch_w;
    /* the released recipe sizes its enlarged crop for 15° and nnU-Net's default scale 0.85:
     * 320 -> [461, 376], 224 -> [322, 263], 512 -> [737, 602] */
    int rule[2];
    augment_enlarged_size(patch_h, patch_w, 15.0, 0.85, rule);
    for (int a = 0; a < 2; a++)
        if (p->enlarged[a] == 0) p->enlarged[a] = rule[a];
}

void augment_params_default(AugmentParams *p, int patch_h, int patch_w) {
    memset(p, 0, sizeof *p);
#define AUG_DEFAULT(key, member, lo, hi, dflt) p->member = dflt;
    AUGMENT_SETTINGS(AUG_DEFAULT)
#undef AUG_DEFAULT
    augment_params_set_patch(p, patch_h, patch_w);
}

/* lo <= hi for a (min, max) pair, named by its keys. */
static int pair_ok(const double r[2], const char *lo_key, const char *hi_key, char *err, size_t n) {
    if (r[0] <= r[1]) return 1;
    snprintf(err, n, "augment.%s: %g is above augment.%s %g", lo_key, r[0], hi_key, r[1]);
    return 0;
}

int augment_params_check(const AugmentParams *p, char *err, size_t err_len) {
    /* the negated test also rejects NaN */
#define AUG_BOUNDS(key, member, lo, hi, dflt)                                                                 \
    if (!(p->member >= (lo) && p->member <= (hi))) {                                                          \
        snprintf(err, err_len, "augment.%s: %g is out of range [%g, %g]", #key, p->member, (double)(lo), (double)(hi)); \
        return -1;                                                                                            \
    }
    AUGMENT_SETTINGS(AUG_BOUNDS)
#undef AUG_BOUNDS
    if (!pair_ok(p->rotation_deg, "rotation_min", "rotation_max", err, err_len) ||
        !pair_ok(p->scale, "scale_min", "scale_max", err, err_len) ||
        !pair_ok(p->noise_std, "noise_std_min", "noise_std_max", err, err_len) ||
        !pair_ok(p->blur_sigma, "blur_sigma_min", "blur_sigma_max", err, err_len) ||
        !pair_ok(p->brightness, "brightness_min", "brightness_max", err, err_len) ||
        !pair_ok(p->contrast, "contrast_min", "contrast_max", err, err_len) ||
        !pair_ok(p->lowres_zoom, "lowres_zoom_min", "lowres_zoom_max", err, err_len) ||
        !pair_ok(p->gamma, "gamma_min", "gamma_max", err, err_len))
        return -1;
    for (int a = 0; a < 2; a++) {
        if (p->patch[a] < 1 || p->patch[a] > 8192 || p->enlarged[a] > AUGMENT_ENLARGED_MAX) {
            snprintf(err, err_len, "augment: patch %dx%d / enlarged %dx%d out of range", p->patch[0], p->patch[1],
                     p->enlarged[0], p->enlarged[1]);
            return -1;
        }
        if (p->enlarged[a] < p->patch[a]) {
            snprintf(err, err_len, "augment.enlarged: [%d, %d] is smaller than the patch [%d, %d]", p->enlarged[0],
                     p->enlarged[1], p->patch[0], p->patch[1]);
            return -1;
        }
    }
    return 0;
}

/* Counter slots of a sample's stream. Per-channel slots follow at K_CHANNEL + 16·c + slot. */
enum {
    K_CROP_Y, K_CROP_X, K_ROT, K_ANGLE, K_SCALE, K_SCALE_BRANCH, K_SCALE_VALUE, K_NOISE, K_NOISE_STD, K_NOISE_KEY,
    K_BLUR, K_BRIGHT, K_CONTRAST, K_LOWRES, K_GAMMA_INV, K_GAMMA, K_MIRROR_Y, K_MIRROR_X,
    K_CHANNEL = 64
};
enum {
    C_BLUR, C_BLUR_SIGMA, C_BRIGHT, C_CONTRAST_BRANCH, C_CONTRAST, C_LOWRES, C_LOWRES_ZOOM, C_GINV_BRANCH, C_GINV,
    C_GAMMA_BRANCH, C_GAMMA
};

typedef struct {
    uint64_t seed, stream;
} Stream;

static double u01(const Stream *s, uint64_t counter) { return rng_uniform(rng_key(s->seed, s->stream, counter)); }
static double uab(const Stream *s, uint64_t counter, double a, double b) { return a + (b - a) * u01(s, counter); }
static uint64_t chan(int c, int slot) { return K_CHANNEL + 16 * (uint64_t)c + (uint64_t)slot; }

/* batchgenerators' two-sided draw: below 1 or above 1 with equal odds when the range spans 1. */
static double branch_draw(const Stream *s, uint64_t k_branch, uint64_t k_value, const double r[2]) {
    if (u01(s, k_branch) < 0.5 && r[0] < 1) return uab(s, k_value, r[0], 1.0);
    return uab(s, k_value, fmax(r[0], 1.0), r[1]);
}

/* A tag keeps the loader's streams apart from drop path's, which share the run's seed. */
#define AUG_SEED_TAG 0x4155474D454E5421ull /* "AUGMENT!" */

void augment_draw(const AugmentParams *p, int C, int h, int w, uint64_t seed, uint64_t epoch, uint64_t index,
                  AugmentDraw *d) {
    memset(d, 0, sizeof *d);
    Stream s = {rng_mix(seed ^ AUG_SEED_TAG), (epoch << 32) ^ index};
    int lo, hi;
    aug_crop_range(h, p->enlarged[0], p->patch[0], &lo, &hi);
    d->crop_y = lo + (int)floor(u01(&s, K_CROP_Y) * (hi - lo + 1));
    aug_crop_range(w, p->enlarged[1], p->patch[1], &lo, &hi);
    d->crop_x = lo + (int)floor(u01(&s, K_CROP_X) * (hi - lo + 1));

    d->scale = 1.0;
    if (u01(&s, K_ROT) < p->p_rotation) {
        d->angle = uab(&s, K_ANGLE, p->rotation_deg[0], p->rotation_deg[1]) * M_PI / 180.0;
        d->spatial = 1;
    }
    if (u01(&s, K_SCALE) < p->p_scale) {
        d->scale = branch_draw(&s, K_SCALE_BRANCH, K_SCALE_VALUE, p->scale);
        d->spatial = 1;
    }
    if (u01(&s, K_NOISE) < p->p_noise) {
        d->noise = 1;
        d->noise_std = uab(&s, K_NOISE_STD, p->noise_std[0], p->noise_std[1]);
        d->noise_key = rng_key(s.seed, s.stream, K_NOISE_KEY);
    }
    if (u01(&s, K_BLUR) < p->p_blur) {
        d->blur = 1;
        for (int c = 0; c < C; c++)
            if (u01(&s, chan(c, C_BLUR)) <= p->p_blur_channel)
                d->blur_sigma[c] = uab(&s, chan(c, C_BLUR_SIGMA), p->blur_sigma[0], p->blur_sigma[1]);
    }
    if (u01(&s, K_BRIGHT) < p->p_brightness) {
        d->brightness = 1;
        for (int c = 0; c < C; c++) d->brightness_mult[c] = uab(&s, chan(c, C_BRIGHT), p->brightness[0], p->brightness[1]);
    }
    if (u01(&s, K_CONTRAST) < p->p_contrast) {
        d->contrast = 1;
        for (int c = 0; c < C; c++)
            d->contrast_factor[c] = branch_draw(&s, chan(c, C_CONTRAST_BRANCH), chan(c, C_CONTRAST), p->contrast);
    }
    if (u01(&s, K_LOWRES) < p->p_lowres) {
        d->lowres = 1;
        for (int c = 0; c < C; c++)
            if (u01(&s, chan(c, C_LOWRES)) < p->p_lowres_channel)
                d->lowres_zoom[c] = uab(&s, chan(c, C_LOWRES_ZOOM), p->lowres_zoom[0], p->lowres_zoom[1]);
    }
    if (u01(&s, K_GAMMA_INV) < p->p_gamma_inverted) {
        d->gamma_inverted = 1;
        for (int c = 0; c < C; c++) d->gamma_inv_value[c] = branch_draw(&s, chan(c, C_GINV_BRANCH), chan(c, C_GINV), p->gamma);
    }
    if (u01(&s, K_GAMMA) < p->p_gamma) {
        d->gamma = 1;
        for (int c = 0; c < C; c++) d->gamma_value[c] = branch_draw(&s, chan(c, C_GAMMA_BRANCH), chan(c, C_GAMMA), p->gamma);
    }
    d->mirror[0] = u01(&s, K_MIRROR_Y) < p->p_mirror[0];
    d->mirror[1] = u01(&s, K_MIRROR_X) < p->p_mirror[1];
}
