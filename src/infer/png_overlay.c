/* png_overlay.c — one slice as an RGB PNG for a person to look at: the image (min-max
 * windowed, grey), the image with the ground truth blended in (when given), and the image with
 * the prediction blended in, side by side. Written atomically through libpng. */
#include "png_overlay.h"

#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* A fixed palette (class 1.. cycles through it); class 0 is not coloured. */
static const unsigned char PALETTE[12][3] = {
    {230, 25, 75}, {60, 180, 75}, {255, 225, 25}, {0, 130, 200}, {245, 130, 48}, {145, 30, 180},
    {70, 240, 240}, {240, 50, 230}, {210, 245, 60}, {250, 190, 212}, {0, 128, 128}, {170, 110, 40}};

static void panel(unsigned char *rgb /* (H, stride) RGB */, size_t stride, const unsigned char *grey /* (H, W) */,
                  const int32_t *lab /* (H, W) or NULL */, int H, int W) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            unsigned char g = grey[(size_t)y * W + x];
            unsigned char *o = rgb + (size_t)y * stride + 3 * (size_t)x;
            o[0] = o[1] = o[2] = g;
            int l = lab ? lab[(size_t)y * W + x] : 0;
            if (l > 0) {
                const unsigned char *c = PALETTE[(l - 1) % 12];
                for (int k = 0; k < 3; k++) o[k] = (unsigned char)((g * 2 + c[k] * 3) / 5); /* 60% colour */
            }
        }
}

int png_overlay_write(const char *path, const float *image /* (H, W) */, const int32_t *gt /* (H, W) or NULL */,
                      const int32_t *pred /* (H, W) */, int H, int W, char *err, size_t err_len) {
    float lo = image[0], hi = image[0];
    for (size_t i = 1; i < (size_t)H * W; i++) {
        if (image[i] < lo) lo = image[i];
        if (image[i] > hi) hi = image[i];
    }
    unsigned char *grey = xmalloc((size_t)H * W);
    for (size_t i = 0; i < (size_t)H * W; i++)
        grey[i] = hi > lo ? (unsigned char)(255.0f * (image[i] - lo) / (hi - lo) + 0.5f) : 0;
    int panels = gt ? 3 : 2;
    size_t stride = 3 * (size_t)W * panels;
    unsigned char *rgb = xmalloc(stride * H);
    panel(rgb, stride, grey, NULL, H, W);
    if (gt) panel(rgb + 3 * (size_t)W, stride, grey, gt, H, W);
    panel(rgb + 3 * (size_t)W * (panels - 1), stride, grey, pred, H, W);
    free(grey);

    char tmp[1200];
    const char *slash = strrchr(path, '/');
    snprintf(tmp, sizeof tmp, "%.*s.tmp-%ld-%s", slash ? (int)(slash - path + 1) : 0, path, (long)getpid(),
             slash ? slash + 1 : path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(rgb);
        snprintf(err, err_len, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = xmalloc((size_t)H * sizeof(png_bytep));
    int rc = 0;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        rc = -1;
    } else {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)(W * panels), (png_uint_32)H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        for (int y = 0; y < H; y++) rows[y] = rgb + (size_t)y * stride;
        png_write_info(png, info);
        png_write_image(png, rows);
        png_write_end(png, NULL);
    }
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    free(rows);
    free(rgb);
    if (rc == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0)) rc = -1;
    if (fclose(f) != 0) rc = -1;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    if (rc != 0) {
        unlink(tmp);
        snprintf(err, err_len, "%s: writing the PNG failed", path);
    }
    return rc;
}
