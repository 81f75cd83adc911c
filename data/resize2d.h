/* resize2d.h — 2-D resampling for `prepare isic --resize N` (the released pipeline trains ISIC at a
 * fixed size). Images: separable, per channel; shrinking an axis averages the source pixels each
 * output pixel covers, weighted by overlap (area, as OpenCV's INTER_AREA and, for integer factors,
 * PyTorch's "area"), enlarging interpolates linearly between pixel centres (bilinear,
 * align_corners=False). Masks: nearest, source pixel floor((i + 0.5) * in / out) (pixel centres,
 * as PIL's NEAREST), so labels stay labels. */
#ifndef UNET_RESIZE2D_H
#define UNET_RESIZE2D_H

#include <stdint.h>

/* src (c, h, w) -> malloc'ed (c, oh, ow). */
float *resize2d_image(const float *src, int c, int h, int w, int oh, int ow);
/* src (h, w) -> malloc'ed (oh, ow). */
uint8_t *resize2d_mask(const uint8_t *src, int h, int w, int oh, int ow);

#endif
