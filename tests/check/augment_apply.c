/* augment_apply.c — `unet2022-check augment-apply IN.safetensors OUT.safetensors OP [key=value ...]`:
 * one augmentation transform with fixed parameters on a given image (and label), so that it
 * can be compared with batchgenerators on the same input
 * (tests/reference/test_augment_vs_batchgenerators.py).
 *
 * IN holds "image" F32 (C, H, W) and, for warp and center_crop, "label" I32 (H, W). OUT holds
 * "image" (and "label") after the transform. OPs and their keys:
 *   warp        angle (radians), scale, h, w   rotation/scaling about the centre, cropped to h×w
 *   center_crop h, w
 *   blur        sigma          contrast  factor        brightness  mult
 *   gamma       gamma, invert (0/1), retain (0/1)       lowres      zoom */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "check.h"
#include "check_modes.h"
#include "safetensors.h"

static double arg(int argc, char **argv, const char *key, double deflt, int *missing) {
    size_t n = strlen(key);
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], key, n) && argv[i][n] == '=') return strtod(argv[i] + n + 1, NULL);
    if (missing) *missing = 1;
    return deflt;
}

int cmd_augment_apply(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: unet2022-check augment-apply IN.safetensors OUT.safetensors "
                        "warp|center_crop|blur|contrast|brightness|gamma|lowres [key=value ...]\n");
        return 1;
    }
    const char *in = argv[0], *outp = argv[1], *op = argv[2];
    argc -= 3, argv += 3;
    char err[1024];
    StFile f;
    if (st_read(&f, in, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        return 2;
    }
    const StTensor *ti = st_find(&f, "image"), *tl = st_find(&f, "label");
    if (!ti || ti->dtype != ST_F32 || ti->ndim != 3) {
        fprintf(stderr, "unet2022: error: %s: expected tensor 'image' F32 (C, H, W)\n", in);
        st_free(&f);
        return 2;
    }
    int C = (int)ti->shape[0], H = (int)ti->shape[1], W = (int)ti->shape[2];
    int spatial = !strcmp(op, "warp") || !strcmp(op, "center_crop");
    if (spatial && (!tl || tl->dtype != ST_I32 || tl->ndim != 2 || tl->shape[0] != H || tl->shape[1] != W)) {
        fprintf(stderr, "unet2022: error: %s: op %s needs tensor 'label' I32 (%d, %d)\n", in, op, H, W);
        st_free(&f);
        return 2;
    }
    int missing = 0;
    int h = spatial ? (int)arg(argc, argv, "h", 0, &missing) : H, w = spatial ? (int)arg(argc, argv, "w", 0, &missing) : W;
    if (h < 1 || w < 1 || h > 16384 || w > 16384) missing = 1;
    float *img = xmalloc(sizeof(float) * (size_t)C * H * W);
    memcpy(img, ti->data, sizeof(float) * (size_t)C * H * W);
    float *out = xmalloc(sizeof(float) * (size_t)C * h * w);
    int32_t *olab = spatial ? xmalloc(sizeof(int32_t) * (size_t)h * w) : NULL;
    float *scratch = xmalloc(sizeof(float) * ((size_t)H * W + aug_lowres_scratch(H, W)));
    size_t n = (size_t)H * W;
    int known = 1;
    if (!strcmp(op, "warp")) {
        double angle = arg(argc, argv, "angle", 0, &missing), scale = arg(argc, argv, "scale", 1, &missing);
        aug_warp(out, olab, img, tl->data, C, H, W, h, w, angle, scale, H / 2.0 - 0.5, W / 2.0 - 0.5, scratch);
    } else if (!strcmp(op, "center_crop")) {
        aug_center_crop(out, olab, img, tl->data, C, H, W, h, w);
    } else {
        for (int c = 0; c < C; c++) {
            float *x = img + (size_t)c * n;
            if (!strcmp(op, "blur")) aug_blur(x, H, W, arg(argc, argv, "sigma", 1, &missing), scratch);
            else if (!strcmp(op, "contrast")) aug_contrast(x, n, arg(argc, argv, "factor", 1, &missing));
            else if (!strcmp(op, "brightness")) aug_scale(x, n, arg(argc, argv, "mult", 1, &missing));
            else if (!strcmp(op, "gamma"))
                aug_gamma(x, n, arg(argc, argv, "gamma", 1, &missing), (int)arg(argc, argv, "invert", 0, NULL),
                          (int)arg(argc, argv, "retain", 1, NULL));
            else if (!strcmp(op, "lowres")) aug_lowres(x, H, W, arg(argc, argv, "zoom", 1, &missing), scratch);
            else known = 0;
        }
        memcpy(out, img, sizeof(float) * n * C);
    }
    int rc = 0;
    if (!known || missing) {
        fprintf(stderr, "unet2022: error: augment-apply: unknown op '%s' or a missing/invalid parameter\n", op);
        rc = 1;
    } else {
        StFile o;
        st_init(&o);
        int64_t si[3] = {C, h, w}, sl[2] = {h, w};
        st_add(&o, "image", ST_F32, 3, si, out);
        if (olab) st_add(&o, "label", ST_I32, 2, sl, olab);
        if (st_write_file(&o, outp, err, sizeof err) != 0) {
            fprintf(stderr, "unet2022: error: %s\n", err);
            rc = 2;
        }
        st_free(&o);
    }
    free(img), free(out), free(olab), free(scratch);
    st_free(&f);
    return rc;
}
