/* predict_output.h — what `unet2022 predict` writes for a case: the labels as NIfTI in the
 * input's geometry (OUT/CASE.nii.gz), optionally the softmax probabilities
 * (OUT/probs/CASE.nii.gz, float32, a channel per class along the 4th axis) and PNG overlays of
 * chosen slices (OUT/CASE_zNNN.png). */
#ifndef UNET_PREDICT_OUTPUT_H
#define UNET_PREDICT_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "nifti_volume.h"

/* labels: (D, H, W), written as uint8 (int16 beyond 256 classes); probs: (K, D, H, W) or NULL.
 * 0, or -1 with a message. */
int predict_write_volumes(const NiftiVolume *ref, const char *out_dir, const char *name, const int32_t *labels,
                          const float *probs, int K, char *err, size_t err_len);

/* Whether spec ('mid' or slice indices, comma-separated: "mid,0,12") is well formed. */
int predict_overlay_spec_ok(const char *spec);

/* One PNG per slice of spec: image (channel 0, (D, H, W)) | ground truth (when gt) | labels.
 * Returns 0, -1 with a message (a write failed), or -2 with a message (a slice outside 0..D-1). */
int predict_write_overlays(const char *out_dir, const char *name, const char *spec, const float *image,
                           const int32_t *gt, const int32_t *labels, int D, int H, int W, char *err, size_t err_len);

#endif
