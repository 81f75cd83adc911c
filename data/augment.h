/* augment.h — the training augmentation of the released recipe (nnU-Net v1 "moreDA" as
 * batchgenerators ≥ 0.23 runs it), one 2D sample at a time.
 *
 * Per sample, in order (docs/network.md, "The released training recipe"):
 *   random crop of the enlarged patch (image 0, label -1 outside the slice)
 *   → rotation + scaling about the enlarged patch's centre, cropped to the patch (cubic B-spline
 *     for images, border 0; linear per-label for labels, border -1); neither drawn: centre crop
 *   → Gaussian noise → Gaussian blur → multiplicative brightness → contrast → low-resolution
 *     simulation → gamma on the inverted image → gamma → mirroring → label -1 becomes 0.
 *
 * Randomness: augment_draw() decides everything about one sample from src/base/rng.h keyed by
 * (seed, epoch, global sample index), each decision at its own fixed counter, so a sample's
 * augmentation never depends on which thread or rank makes it, nor on the other samples.
 * The transforms themselves take explicit parameters, so tests can fix them.
 *
 * Images are planar (C, H, W) float inside the pipeline; the sample is written out NHWC. */
#ifndef UNET_AUGMENT_H
#define UNET_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#define AUG_MAX_CHANNELS 64

typedef struct {
    int patch[2];    /* H, W of the patch the network sees */
    int enlarged[2]; /* H, W of the random crop taken before the spatial transform (0: the rule below) */
    double p_rotation, rotation_deg[2];       /* degrees */
    double p_scale, scale[2];
    double p_noise, noise_std[2];             /* std ~ U(noise_std) */
    double p_blur, p_blur_channel, blur_sigma[2];
    double p_brightness, brightness[2];       /* per channel */
    double p_contrast, contrast[2];           /* preserving range */
    double p_lowres, p_lowres_channel, lowres_zoom[2];
    double p_gamma_inverted, p_gamma, gamma[2]; /* retaining stats */
    double p_mirror[2];                       /* per axis (H, W) */
} AugmentParams;

/* The recipe's settings, one row each: X(key, member, lo, hi, default). key is the setting's
 * name (augment.KEY in a run config), member the AugmentParams field, [lo, hi] its allowed
 * values, default the released recipe's. This list is the only home of these
 * numbers: augment_params_default and augment_params_check expand it, and so does the run's
 * settings table (src/config/config.c), which can then name FILE:LINE:COL of a bad value.
 * The order is the order a printed config lists them in. */
#define AUGMENT_SETTINGS(X)                                   \
    X(p_rotation, p_rotation, 0, 1, 0.2)                      \
    X(rotation_min, rotation_deg[0], -180, 180, 0)            \
    X(rotation_max, rotation_deg[1], -180, 180, 15)           \
    X(p_scale, p_scale, 0, 1, 0.2)                            \
    X(scale_min, scale[0], 0.05, 20, 0.7)                     \
    X(scale_max, scale[1], 0.05, 20, 1.4)                     \
    X(p_noise, p_noise, 0, 1, 0.1)                            \
    X(noise_std_min, noise_std[0], 0, 100, 0)                 \
    X(noise_std_max, noise_std[1], 0, 100, 0.1)               \
    X(p_blur, p_blur, 0, 1, 0.2)                              \
    X(p_blur_channel, p_blur_channel, 0, 1, 0.5)              \
    X(blur_sigma_min, blur_sigma[0], 0.01, 15, 0.5)           \
    X(blur_sigma_max, blur_sigma[1], 0.01, 15, 1)             \
    X(p_brightness, p_brightness, 0, 1, 0.15)                 \
    X(brightness_min, brightness[0], 0, 100, 0.75)            \
    X(brightness_max, brightness[1], 0, 100, 1.25)            \
    X(p_contrast, p_contrast, 0, 1, 0.15)                     \
    X(contrast_min, contrast[0], 0, 100, 0.75)                \
    X(contrast_max, contrast[1], 0, 100, 1.25)                \
    X(p_lowres, p_lowres, 0, 1, 0.25)                         \
    X(p_lowres_channel, p_lowres_channel, 0, 1, 0.5)          \
    X(lowres_zoom_min, lowres_zoom[0], 0.05, 1, 0.5)          \
    X(lowres_zoom_max, lowres_zoom[1], 0.05, 1, 1)            \
    X(p_gamma_inverted, p_gamma_inverted, 0, 1, 0.1)          \
    X(p_gamma, p_gamma, 0, 1, 0.3)                            \
    X(gamma_min, gamma[0], 0.01, 100, 0.7)                    \
    X(gamma_max, gamma[1], 0.01, 100, 1.5)                    \
    X(p_mirror_y, p_mirror[0], 0, 1, 0.5)                     \
    X(p_mirror_x, p_mirror[1], 0, 1, 0.5)

/* augment.enlarged: each axis in [0, AUGMENT_ENLARGED_MAX]; 0 takes the rule below. */
#define AUGMENT_ENLARGED_MAX 16384

/* The released recipe's values (AUGMENT_SETTINGS' defaults) for a patch; enlarged by the rule below. */
void augment_params_default(AugmentParams *p, int patch_h, int patch_w);
/* Sets the patch and gives every enlarged axis still 0 the released recipe's rule:
 * nnU-Net's get_patch_size(patch, 15°, 0.85). */
void augment_params_set_patch(AugmentParams *p, int patch_h, int patch_w);
/* nnU-Net v1's enlarged patch: the patch's extent rotated by max_deg, divided by min_scale. */
void augment_enlarged_size(int patch_h, int patch_w, double max_deg, double min_scale, int out[2]);
/* Checks every value against AUGMENT_SETTINGS' bounds, then lo <= hi for each pair and
 * enlarged >= patch; -1 with "augment.KEY: ..." in err. */
int augment_params_check(const AugmentParams *p, char *err, size_t err_len);

/* Everything random about one sample. */
typedef struct {
    int crop_y, crop_x;   /* top-left of the enlarged crop in slice pixels (may be negative) */
    int spatial;          /* 1: rotate/scale; 0: centre crop */
    double angle, scale;  /* radians, zoom factor of the sampling grid (0 and 1 when not drawn) */
    int noise;
    double noise_std;
    uint64_t noise_key;   /* stream of the per-pixel normal draws */
    int blur;             /* per-sample gate; blur_sigma[c] = 0 means channel c untouched */
    double blur_sigma[AUG_MAX_CHANNELS];
    int brightness;
    double brightness_mult[AUG_MAX_CHANNELS];
    int contrast;
    double contrast_factor[AUG_MAX_CHANNELS];
    int lowres;
    double lowres_zoom[AUG_MAX_CHANNELS]; /* 0 = channel untouched */
    int gamma_inverted, gamma;
    double gamma_inv_value[AUG_MAX_CHANNELS], gamma_value[AUG_MAX_CHANNELS];
    int mirror[2];        /* flip H, flip W */
} AugmentDraw;

/* Draws sample `index` of `epoch` for a slice of (C, h, w). */
void augment_draw(const AugmentParams *p, int C, int h, int w, uint64_t seed, uint64_t epoch, uint64_t index,
                  AugmentDraw *d);

/* ---- the transforms, with explicit parameters (augment_spatial.c, augment_intensity.c,
 * augment_lowres.c). Scratch sizes are given per function. ---- */

/* nnU-Net's DataLoader2D crop: the enlarged window at (y0, x0) of a (C, h, w) slice; image 0 and
 * label -1 outside the slice. */
void aug_crop(float *out /* (C, H, W) */, int32_t *out_lab /* (H, W) */, const float *img /* (C, h, w) */,
              const int32_t *lab /* (h, w) */, int C, int h, int w, int y0, int x0, int H, int W);
/* The range of crop origins DataLoader2D draws from (inclusive), per axis. */
void aug_crop_range(int size, int enlarged, int patch, int *lo, int *hi);

/* Cubic B-spline coefficients of a (H, W) image, whole-sample mirror boundary (scipy's
 * spline_filter, mode 'mirror'); in place allowed. */
void aug_spline_prefilter(float *coef /* (H, W) */, const float *img /* (H, W) */, int H, int W);
/* Rotation by `angle` and sampling-grid scaling by `scale` about (cy, cx) of the (C, H, W)
 * input, sampled on a (h, w) grid: the grid point (i, j) reads input coordinate
 * R(angle)·((i, j) - ((h-1)/2, (w-1)/2))·scale + (cy, cx), as batchgenerators' augment_spatial.
 * Images: cubic B-spline, 0 outside [0, H-1]×[0, W-1]. Labels: each label's indicator
 * interpolated linearly, argmax (ties: the nearest neighbour's label if tied, else the
 * lowest), -1 outside. scratch: H*W floats. */
void aug_warp(float *out /* (C, h, w) */, int32_t *out_lab /* (h, w) or NULL */, const float *img /* (C, H, W) */,
              const int32_t *lab /* (H, W) or NULL */, int C, int H, int W, int h, int w, double angle, double scale,
              double cy, double cx, float *scratch /* (H*W) */);
/* Centre crop (offset (H-h)/2, (W-w)/2 rounded down), as batchgenerators' center_crop. */
void aug_center_crop(float *out /* (C, h, w) */, int32_t *out_lab /* (h, w) */, const float *img /* (C, H, W) */,
                     const int32_t *lab /* (H, W) */, int C, int H, int W, int h, int w);

/* x += N(0, std²) per pixel, draws keyed by (key, pixel index). */
void aug_noise(float *x /* (n) */, size_t n, double std, uint64_t key);
/* scipy.ndimage.gaussian_filter(x, sigma), truncate 4, mode 'reflect'. scratch: H*W floats. */
void aug_blur(float *x /* (H, W) */, int H, int W, double sigma, float *scratch /* (H*W) */);
void aug_scale(float *x /* (n) */, size_t n, double mult);
/* (x - mean)·factor + mean, clipped to the original [min, max]. */
void aug_contrast(float *x /* (n) */, size_t n, double factor);
/* batchgenerators' augment_gamma for one channel (retain_stats: mean and std kept). */
void aug_gamma(float *x /* (n) */, size_t n, double gamma, int invert, int retain_stats);
/* Nearest down to round(zoom·(H, W)), cubic back up (skimage resize, mode 'edge', clipped to
 * the range). scratch: aug_lowres_scratch(H, W) floats. */
size_t aug_lowres_scratch(int H, int W);
void aug_lowres(float *x /* (H, W) */, int H, int W, double zoom, float *scratch);

/* ---- the whole sample (augment_sample.c) ---- */

typedef struct {
    float *a, *b;   /* (C, enlarged H, enlarged W) each */
    int32_t *la, *lb; /* (enlarged H, enlarged W) */
    float *tmp;     /* max(enlarged H·W, lowres scratch) */
} AugmentScratch;

int augment_scratch_alloc(AugmentScratch *s, const AugmentParams *p, int C); /* -1 on OOM */
void augment_scratch_free(AugmentScratch *s);

/* The full pipeline on one slice: writes the patch NHWC and its labels (-1 already 0). */
void augment_sample(const AugmentParams *p, const AugmentDraw *d, const float *img /* (C, h, w) */,
                    const int32_t *lab /* (h, w) */, int C, int h, int w, AugmentScratch *s,
                    float *out /* (patch H, patch W, C) */, int32_t *out_lab /* (patch H, patch W) */);

#endif
