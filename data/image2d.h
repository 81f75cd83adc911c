/* image2d.h — 8-bit 2-D images from JPEG (libjpeg), PNG (libpng) and BMP (a strict reader of
 * uncompressed 1/8/24/32-bit Windows bitmaps: what PH2 ships and PIL writes), picked by the
 * file's magic bytes. Pixels are (H, W, C) interleaved, top row first, C = 1 (grey) or 3 (RGB). */
#ifndef UNET_IMAGE2D_H
#define UNET_IMAGE2D_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int width, height, channels;
    uint8_t *data; /* (height, width, channels) */
} Image2D;

int img2d_read(const char *path, Image2D *out, char *err, size_t err_len);
void img2d_free(Image2D *im);

#endif
