/* png_overlay.h — a slice as an RGB PNG: image | image + ground truth | image + prediction
 * (the middle panel only when gt is given). Labels > 0 are blended in from a fixed palette. */
#ifndef UNET_PNG_OVERLAY_H
#define UNET_PNG_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

int png_overlay_write(const char *path, const float *image /* (H, W) */, const int32_t *gt /* (H, W) or NULL */,
                      const int32_t *pred /* (H, W) */, int H, int W, char *err, size_t err_len);

#endif
