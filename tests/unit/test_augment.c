/* test_augment.c — the augmentation transforms alone: identities, label sets, statistics, the
 * per-sample draw's probabilities and ranges, and the recipe's enlarged crop sizes.
 * (Agreement with batchgenerators itself: tests/reference/test_augment_vs_batchgenerators.py.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "slice_source.h"
#include "testutil.h"

static double mean_d(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s / n;
}
static double std_d(const float *x, size_t n) {
    double m = mean_d(x, n), s = 0;
    for (size_t i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return sqrt(s / n);
}
static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* random labels in blobs, so that interpolation sees both boundaries and interiors */
static void fill_labels(int32_t *lab, int H, int W, int classes, TestRng *r) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) lab[y * W + x] = ((y / 3) * 7 + (x / 4) * 3 + (int)test_uniform(r, 0, 1.3f)) % classes;
}

static void test_sizes(void) {
    /* the released recipe's enlarged crops: [461, 376] for 320, [322, 263] for 224, [737, 602] for 512 */
    int e[2];
    augment_enlarged_size(320, 320, 15, 0.85, e);
    TEST_CHECK(e[0] == 461 && e[1] == 376, "enlarged crop for 320: [%d, %d] (spec [461, 376])", e[0], e[1]);
    augment_enlarged_size(224, 224, 15, 0.85, e);
    TEST_CHECK(e[0] == 322 && e[1] == 263, "enlarged crop for 224: [%d, %d] (spec [322, 263])", e[0], e[1]);
    augment_enlarged_size(512, 512, 15, 0.85, e);
    TEST_CHECK(e[0] == 737 && e[1] == 602, "enlarged crop for 512: [%d, %d] (spec [737, 602])", e[0], e[1]);
    /* DataLoader2D's crop origins for a 512 slice: need 141 -> [-71, 122] */
    int lo, hi;
    aug_crop_range(512, 461, 320, &lo, &hi);
    TEST_CHECK(lo == -71 && hi == 122, "crop origin range for 512 / 461 / 320: [%d, %d] (expected [-71, 122])", lo, hi);
    aug_crop_range(300, 461, 320, &lo, &hi); /* slice smaller than the enlarged crop: need widens to 161 */
    TEST_CHECK(lo == -81 && hi == -80, "crop origin range for a 300 slice: [%d, %d] (expected [-81, -80])", lo, hi);
}

static void test_crop(void) {
    int C = 2, h = 7, w = 9, H = 5, W = 6;
    float img[2 * 7 * 9], out[2 * 5 * 6];
    int32_t lab[7 * 9], olab[5 * 6];
    for (int i = 0; i < C * h * w; i++) img[i] = (float)(i + 1);
    for (int i = 0; i < h * w; i++) lab[i] = i % 4;
    aug_crop(out, olab, img, lab, C, h, w, -2, 5, H, W);
    int ok = 1;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int sy = y - 2, sx = x + 5, in = sy >= 0 && sy < h && sx >= 0 && sx < w;
                float e = in ? img[(c * h + sy) * w + sx] : 0.0f;
                int32_t el = in ? lab[sy * w + sx] : -1;
                ok &= out[(c * H + y) * W + x] == e && olab[y * W + x] == el;
            }
    TEST_CHECK(ok, "crop outside the slice pads the image with 0 and the label with -1");
}

static void test_warp_identity(void) {
    TestRng r = {11};
    int C = 2, H = 40, W = 36, h = 20, w = 18, oy = 5, ox = 7;
    float *img = malloc(sizeof(float) * C * H * W), *out = malloc(sizeof(float) * C * h * w),
          *ref = malloc(sizeof(float) * C * h * w), *scr = malloc(sizeof(float) * H * W);
    int32_t *lab = malloc(sizeof(int32_t) * H * W), *olab = malloc(sizeof(int32_t) * h * w),
            *rlab = malloc(sizeof(int32_t) * h * w);
    test_fill(img, (size_t)C * H * W, &r, -2, 3);
    fill_labels(lab, H, W, 5, &r);
    /* rotation 0, scale 1 about a centre that puts grid point (i, j) on input pixel (i+oy, j+ox) */
    aug_warp(out, olab, img, lab, C, H, W, h, w, 0.0, 1.0, (h - 1) / 2.0 + oy, (w - 1) / 2.0 + ox, scr);
    aug_crop(ref, rlab, img, lab, C, H, W, oy, ox, h, w);
    double e = max_abs_diff(out, ref, (size_t)C * h * w);
    TEST_CHECK(e < 2e-5, "rotation 0 and scale 1 is a crop: images (cubic B-spline at the nodes) max |diff| %.2e", e);
    TEST_CHECK(!memcmp(olab, rlab, sizeof(int32_t) * h * w), "rotation 0 and scale 1 is a crop: labels identical");
    /* as the pipeline calls it: about the enlarged centre; equal to the centre crop when H-h is even */
    aug_warp(out, olab, img, lab, C, H, W, h, w, 0.0, 1.0, H / 2.0 - 0.5, W / 2.0 - 0.5, scr);
    aug_center_crop(ref, rlab, img, lab, C, H, W, h, w);
    e = max_abs_diff(out, ref, (size_t)C * h * w);
    TEST_CHECK(e < 2e-5 && !memcmp(olab, rlab, sizeof(int32_t) * h * w),
               "rotation 0 / scale 1 about the enlarged centre equals the centre crop (max |diff| %.2e)", e);
    /* a full turn is the identity too (up to the coordinates' rounding) */
    aug_warp(out, olab, img, lab, C, H, W, h, w, 2 * M_PI, 1.0, H / 2.0 - 0.5, W / 2.0 - 0.5, scr);
    e = max_abs_diff(out, ref, (size_t)C * h * w);
    TEST_CHECK(e < 1e-4, "rotation by 360 degrees equals the centre crop (max |diff| %.2e)", e);
    /* rotating by 90 degrees about the centre of a square transposes-and-flips exactly */
    int S = 16;
    aug_warp(out, olab, img, lab, 1, H, W, S, S, M_PI / 2, 1.0, 19.5, 17.5, scr);
    aug_warp(ref, rlab, img, lab, 1, H, W, S, S, 0.0, 1.0, 19.5, 17.5, scr);
    /* grid (i, j) reads R·(ci, cj): y = cj + cy, x = -ci + cx, i.e. ref at (S-1-i', ...) */
    int ok = 1;
    double e90 = 0;
    for (int i = 0; i < S; i++)
        for (int j = 0; j < S; j++) {
            /* out(i, j) = input at (j - 7.5 + 19.5, -(i - 7.5) + 17.5) = ref(j, S-1-i) */
            e90 = fmax(e90, fabs(out[i * S + j] - ref[j * S + (S - 1 - i)]));
            ok &= olab[i * S + j] == rlab[j * S + (S - 1 - i)];
        }
    TEST_CHECK(e90 < 1e-4 && ok, "rotation by 90 degrees permutes the crop (max |diff| %.2e, labels equal %d)", e90, ok);
    free(img), free(out), free(ref), free(scr), free(lab), free(olab), free(rlab);
}

static void test_label_set(void) {
    /* the whole pipeline with every transform forced on: labels stay in the input's class set */
    SliceSource src;
    int C = 1, h = 64, w = 56, classes = 6;
    slice_source_phantom(&src, 4, C, h, w, classes, 3);
    AugmentParams p;
    augment_params_default(&p, 32, 32);
    p.p_rotation = p.p_scale = p.p_noise = p.p_blur = p.p_brightness = p.p_contrast = p.p_lowres = 1;
    p.p_gamma_inverted = p.p_gamma = 1;
    p.rotation_deg[0] = -180, p.rotation_deg[1] = 180;
    AugmentScratch s;
    TEST_CHECK(augment_scratch_alloc(&s, &p, C) == 0, "scratch allocated");
    float *img = malloc(sizeof(float) * C * h * w), out[32 * 32];
    int32_t *lab = malloc(sizeof(int32_t) * h * w), olab[32 * 32];
    char err[200];
    int ok = 1, finite = 1, seen_nonzero = 0;
    for (int k = 0; k < 200; k++) {
        src.read(src.ctx, k % 4, img, lab, err, sizeof err);
        AugmentDraw d;
        augment_draw(&p, C, h, w, 99, 0, (uint64_t)k, &d);
        augment_sample(&p, &d, img, lab, C, h, w, &s, out, olab);
        for (int i = 0; i < 32 * 32; i++) {
            ok &= olab[i] >= 0 && olab[i] < classes;
            seen_nonzero |= olab[i] > 0;
            finite &= isfinite(out[i]);
        }
    }
    TEST_CHECK(ok && seen_nonzero, "200 fully augmented samples: every label in [0, %d), foreground present", classes);
    TEST_CHECK(finite, "200 fully augmented samples: every image value finite");
    augment_scratch_free(&s);
    free(img), free(lab);
    slice_source_close(&src);
}

static void test_mirror(void) {
    SliceSource src;
    int C = 3, h = 40, w = 44;
    slice_source_phantom(&src, 1, C, h, w, 4, 5);
    AugmentParams p;
    augment_params_default(&p, 24, 32);
    AugmentScratch s;
    augment_scratch_alloc(&s, &p, C);
    float *img = malloc(sizeof(float) * C * h * w), a[24 * 32 * 3], b[24 * 32 * 3], c2[24 * 32 * 3];
    int32_t *lab = malloc(sizeof(int32_t) * h * w), la[24 * 32], lb[24 * 32], lc[24 * 32];
    char err[200];
    src.read(src.ctx, 0, img, lab, err, sizeof err);
    AugmentDraw d;
    memset(&d, 0, sizeof d);
    d.crop_y = 3, d.crop_x = -2, d.scale = 1;
    augment_sample(&p, &d, img, lab, C, h, w, &s, a, la);
    d.mirror[0] = d.mirror[1] = 1;
    augment_sample(&p, &d, img, lab, C, h, w, &s, b, lb);
    int ok = 1;
    for (int y = 0; y < 24; y++) /* mirroring the mirrored sample again gives the plain one */
        for (int x = 0; x < 32; x++) {
            int m = (23 - y) * 32 + (31 - x);
            for (int c = 0; c < C; c++) c2[m * C + c] = b[(y * 32 + x) * C + c];
            lc[m] = lb[y * 32 + x];
        }
    ok = !memcmp(a, c2, sizeof a) && !memcmp(la, lc, sizeof la) && memcmp(a, b, sizeof a);
    TEST_CHECK(ok, "mirroring both axes twice is the identity (bitwise), once is not");
    d.mirror[0] = 1, d.mirror[1] = 0;
    augment_sample(&p, &d, img, lab, C, h, w, &s, b, lb);
    ok = 1;
    for (int y = 0; y < 24; y++)
        for (int x = 0; x < 32; x++) ok &= lb[y * 32 + x] == la[(23 - y) * 32 + x] && b[(y * 32 + x) * C + 1] == a[((23 - y) * 32 + x) * C + 1];
    TEST_CHECK(ok, "mirroring the H axis flips rows only, images and labels alike");
    augment_scratch_free(&s);
    free(img), free(lab);
    slice_source_close(&src);
}

static void test_intensity_stats(void) {
    TestRng r = {21};
    enum { H = 64, W = 48, N = H * W };
    float x[N], y[N], scr[N];
    test_fill(x, N, &r, -1.5f, 2.5f);
    for (int i = 0; i < N; i++) x[i] = x[i] * x[i] * 0.5f - 0.3f; /* skewed, so gamma does something */
    double m0 = mean_d(x, N), s0 = std_d(x, N);

    memcpy(y, x, sizeof x);
    aug_scale(y, N, 1.2);
    TEST_CHECK(fabs(mean_d(y, N) / m0 - 1.2) < 1e-5 && fabs(std_d(y, N) / s0 - 1.2) < 1e-5,
               "brightness x1.2 scales mean and std by 1.2");

    memcpy(y, x, sizeof x);
    aug_contrast(y, N, 0.8);
    TEST_CHECK(fabs(mean_d(y, N) - m0) < 1e-5 && fabs(std_d(y, N) / s0 - 0.8) < 1e-5,
               "contrast 0.8 keeps the mean and scales the std by 0.8 (%.6f, %.6f)", mean_d(y, N) - m0, std_d(y, N) / s0);
    memcpy(y, x, sizeof x);
    aug_contrast(y, N, 1.25);
    float lo = x[0], hi = x[0], lo2 = y[0], hi2 = y[0];
    for (int i = 0; i < N; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]), lo2 = fminf(lo2, y[i]), hi2 = fmaxf(hi2, y[i]);
    TEST_CHECK(lo2 >= lo && hi2 <= hi && std_d(y, N) > s0, "contrast 1.25 preserves the range and raises the std");

    for (int inv = 0; inv < 2; inv++)
        for (int k = 0; k < 2; k++) {
            double g = k ? 1.45 : 0.72;
            memcpy(y, x, sizeof x);
            aug_gamma(y, N, g, inv, 1);
            double dm = fabs(mean_d(y, N) - m0), ds = fabs(std_d(y, N) / s0 - 1), change = max_abs_diff(x, y, N);
            TEST_CHECK(dm < 1e-5 && ds < 1e-5 && change > 0.05,
                       "gamma %.2f%s retains mean and std (|dmean| %.1e, |dstd|/std %.1e) and changes the image (%.2f)", g,
                       inv ? " on the inverted image" : "", dm, ds, change);
        }
    memcpy(y, x, sizeof x);
    aug_gamma(y, N, 1.0, 0, 0);
    TEST_CHECK(max_abs_diff(x, y, N) < 1e-5, "gamma 1 without retain_stats is the identity");

    memcpy(y, x, sizeof x);
    aug_noise(y, N, 0.1, 12345);
    for (int i = 0; i < N; i++) scr[i] = y[i] - x[i];
    double nm = mean_d(scr, N), ns = std_d(scr, N);
    TEST_CHECK(fabs(nm) < 4 * 0.1 / sqrt(N) && fabs(ns - 0.1) < 0.005, "noise std 0.1: mean %.4f, std %.4f", nm, ns);

    for (int i = 0; i < N; i++) y[i] = 0.7f;
    aug_blur(y, H, W, 0.8, scr);
    TEST_CHECK(max_abs_diff(y, (float[1]){0.7f}, 1) < 1e-6 && fabs(mean_d(y, N) - 0.7) < 1e-6, "blur keeps a constant image");
    memcpy(y, x, sizeof x);
    aug_blur(y, H, W, 0.9, scr);
    TEST_CHECK(fabs(mean_d(y, N) - m0) < 0.01 * s0 && std_d(y, N) < s0, "blur keeps the mean (reflect border) and lowers the std");

    float *lr = malloc(sizeof(float) * aug_lowres_scratch(H, W));
    memcpy(y, x, sizeof x);
    aug_lowres(y, H, W, 1.0, lr);
    TEST_CHECK(max_abs_diff(x, y, N) < 2e-5, "low-resolution simulation at zoom 1 is the identity (%.2e)", max_abs_diff(x, y, N));
    memcpy(y, x, sizeof x);
    aug_lowres(y, H, W, 0.5, lr);
    lo2 = y[0], hi2 = y[0];
    for (int i = 0; i < N; i++) lo2 = fminf(lo2, y[i]), hi2 = fmaxf(hi2, y[i]);
    TEST_CHECK(lo2 >= lo && hi2 <= hi && max_abs_diff(x, y, N) > 0.05, "low-resolution at zoom 0.5 stays in range and changes the image");
    free(lr);
}

static void test_draw_stats(void) {
    AugmentParams p;
    augment_params_default(&p, 320, 320);
    int n = 20000, C = 2;
    int rot = 0, sc = 0, noise = 0, blur = 0, blur_ch = 0, br = 0, con = 0, low = 0, low_ch = 0, gi = 0, g = 0, my = 0, mx = 0;
    int in_range = 1, scale_below = 0, crops_ok = 1;
    int lo, hi, lox, hix;
    aug_crop_range(512, p.enlarged[0], p.patch[0], &lo, &hi);
    aug_crop_range(512, p.enlarged[1], p.patch[1], &lox, &hix);
    for (int k = 0; k < n; k++) {
        AugmentDraw d;
        augment_draw(&p, C, 512, 512, 7, 3, (uint64_t)k, &d);
        rot += d.angle != 0;
        if (d.scale != 1) {
            sc++;
            scale_below += d.scale < 1;
            in_range &= d.scale >= 0.7 && d.scale <= 1.4;
        }
        in_range &= d.angle >= 0 && d.angle <= 15 * M_PI / 180;
        noise += d.noise;
        if (d.noise) in_range &= d.noise_std >= 0 && d.noise_std <= 0.1;
        blur += d.blur;
        for (int c = 0; c < C; c++) {
            if (d.blur) blur_ch += d.blur_sigma[c] > 0;
            if (d.blur_sigma[c] > 0) in_range &= d.blur_sigma[c] >= 0.5 && d.blur_sigma[c] <= 1;
            if (d.lowres) low_ch += d.lowres_zoom[c] > 0;
            if (d.brightness) in_range &= d.brightness_mult[c] >= 0.75 && d.brightness_mult[c] <= 1.25;
            if (d.gamma) in_range &= d.gamma_value[c] >= 0.7 && d.gamma_value[c] <= 1.5;
        }
        br += d.brightness, con += d.contrast, low += d.lowres, gi += d.gamma_inverted, g += d.gamma;
        my += d.mirror[0], mx += d.mirror[1];
        crops_ok &= d.crop_y >= lo && d.crop_y <= hi && d.crop_x >= lox && d.crop_x <= hix;
    }
    struct { const char *name; int count, trials; double p; } f[] = {
        {"rotation", rot, n, 0.2}, {"scaling", sc, n, 0.2}, {"noise", noise, n, 0.1}, {"blur", blur, n, 0.2},
        {"blur per channel", blur_ch, blur * C, 0.5}, {"brightness", br, n, 0.15}, {"contrast", con, n, 0.15},
        {"low resolution", low, n, 0.25}, {"low resolution per channel", low_ch, low * C, 0.5},
        {"inverted gamma", gi, n, 0.1}, {"gamma", g, n, 0.3}, {"mirror H", my, n, 0.5}, {"mirror W", mx, n, 0.5},
        {"scale below 1 (of scaled)", scale_below, sc, 0.5}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        double rate = (double)f[i].count / f[i].trials, sd = sqrt(f[i].p * (1 - f[i].p) / f[i].trials);
        TEST_CHECK(fabs(rate - f[i].p) < 4.5 * sd, "draw frequency of %s: %.4f (spec %.2f, 4.5 sigma = %.4f)", f[i].name, rate,
                   f[i].p, 4.5 * sd);
    }
    TEST_CHECK(in_range, "every drawn parameter lies in its spec range");
    TEST_CHECK(crops_ok, "every crop origin lies in DataLoader2D's range [%d, %d] x [%d, %d]", lo, hi, lox, hix);
    AugmentDraw a, b;
    augment_draw(&p, C, 512, 512, 7, 3, 17, &a);
    augment_draw(&p, C, 512, 512, 7, 3, 17, &b);
    TEST_CHECK(!memcmp(&a, &b, sizeof a), "a draw is a pure function of (seed, epoch, index)");
    augment_draw(&p, C, 512, 512, 7, 4, 17, &b);
    TEST_CHECK(memcmp(&a, &b, sizeof a) != 0, "another epoch draws differently");
}

int main(void) {
    test_sizes();
    test_crop();
    test_warp_identity();
    test_mirror();
    test_label_set();
    test_intensity_stats();
    test_draw_stats();
    return test_summary("test_augment");
}
