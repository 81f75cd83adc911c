/* predict_output.c — see predict_output.h. */
#include "predict_output.h"

#include <nifti1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "png_overlay.h"

int predict_write_volumes(const NiftiVolume *ref, const char *out_dir, const char *name, const int32_t *labels,
                          const float *probs, int K, char *err, size_t err_len) {
    size_t vox = (size_t)ref->nx * ref->ny * ref->nz;
    int small = K <= 256;
    void *buf = xmalloc(vox * (small ? 1 : 2));
    for (size_t i = 0; i < vox; i++) {
        if (small) ((uint8_t *)buf)[i] = (uint8_t)labels[i];
        else ((int16_t *)buf)[i] = (int16_t)labels[i];
    }
    char path[1400];
    snprintf(path, sizeof path, "%s/%s.nii.gz", out_dir, name);
    int rc = nifti_volume_write_like(ref, path, buf, 1, small ? DT_UINT8 : DT_INT16, err, err_len);
    free(buf);
    if (rc == 0 && probs) {
        snprintf(path, sizeof path, "%s/probs/%s.nii.gz", out_dir, name);
        rc = nifti_volume_write_like(ref, path, probs, K, DT_FLOAT32, err, err_len);
    }
    return rc;
}

/* The next slice of spec at *p (advanced past it and its comma): 0, or -1 when malformed. */
static int next_slice(const char **p, int D, int *z) {
    const char *s = *p;
    char *end;
    if (!strncmp(s, "mid", 3)) *z = D / 2, end = (char *)s + 3;
    else {
        long v = strtol(s, &end, 10);
        if (end == s || v < -1000000 || v > 1000000) return -1;
        *z = (int)v;
    }
    if (*end == ',') end++;
    else if (*end) return -1;
    *p = end;
    return 0;
}

int predict_overlay_spec_ok(const char *spec) {
    int z;
    if (!*spec) return 0;
    for (const char *p = spec; *p;)
        if (next_slice(&p, 1, &z) != 0) return 0;
    return 1;
}

int predict_write_overlays(const char *out_dir, const char *name, const char *spec, const float *image,
                           const int32_t *gt, const int32_t *labels, int D, int H, int W, char *err, size_t err_len) {
    size_t plane = (size_t)H * W;
    char path[1400];
    int z;
    for (const char *p = spec; *p;) {
        if (next_slice(&p, D, &z) != 0) return error_at(err, err_len, "--overlay '%s': expected 'mid' or slice indices", spec), -2;
        if (z < 0 || z >= D)
            return error_at(err, err_len, "--overlay: slice %d outside case %s (0..%d)", z, name, D - 1), -2;
        snprintf(path, sizeof path, "%s/%s_z%03d.png", out_dir, name, z);
        if (png_overlay_write(path, image + z * plane, gt ? gt + z * plane : NULL, labels + z * plane, H, W, err,
                              err_len) != 0)
            return -1;
    }
    return 0;
}
