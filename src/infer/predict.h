/* predict.h — per-slice sliding-window inference as the released code does it (nnU-Net v1's
 * 2D predict_2D: windows of the config's crop at a step that is a fraction of the crop, a
 * Gaussian importance map with σ = crop/8, softmax probabilities accumulated with that weight
 * and divided by the accumulated weight, optional mirror test-time augmentation over both
 * axes: 4 passes whose softmax outputs are averaged). */
#ifndef UNET_PREDICT_H
#define UNET_PREDICT_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "model.h"

/* nnU-Net's _get_gaussian(patch, sigma_scale): scipy.ndimage.gaussian_filter (truncate 4) of a
 * delta at (h/2, w/2), scaled to max 1, zeros replaced by the smallest non-zero value. */
void predict_gaussian(float *g /* (h, w) */, int h, int w, double sigma_scale);

/* nnU-Net's _compute_steps_for_sliding_window along one axis (image >= patch): the window
 * starts; returns their count. steps needs room for image/1 + 1 entries. */
int predict_steps(int *steps, int image, int patch, double step_frac);

typedef struct {
    const Model *m;
    Backend *be;
    ModelActs *acts;
    float *params;      /* backend, m->params.total */
    float *d_in;        /* backend (1, ch, cw, Cin) */
    int ch, cw, K, cin;
    double step;
    int mirror;
    float *gauss;       /* (ch, cw) */
    float *win_in;      /* host (ch, cw, Cin) */
    float *win_out;     /* host (ch, cw, K) logits */
    float *win_prob;    /* host (K, ch, cw) softmax, mirror-averaged */
} Predictor;

/* params_host: m->params.total floats (copied to the backend). */
void predictor_init(Predictor *p, const Model *m, Backend *be, const float *params_host, double step, int mirror);
void predictor_free(Predictor *p);

/* Softmax probabilities of one slice: image (Cin, H, W) -> probs (K, H, W). Slices smaller than
 * the crop are zero-padded symmetrically (nnU-Net's pad_nd_image) and cropped back. */
void predict_slice(Predictor *p, float *probs /* (K, H, W) */, const float *image /* (Cin, H, W) */, int H, int W);

/* A volume slice by slice (the released 2D network): probabilities and their argmax (the first
 * class wins a tie). volume: (Cin, D, H, W). */
void predict_volume(Predictor *p, float *probs /* (K, D, H, W) */, int32_t *labels /* (D, H, W) */,
                    const float *volume /* (Cin, D, H, W) */, int D, int H, int W);

/* Intensity normalisation of NIfTI input (a store's is normalised at import), per channel over
 * the whole case: "none", "zscore", or "ct:LO,HI,MEAN,SD" (clip to [LO, HI], then (v - MEAN) / SD).
 * predict_norm_ok: whether the spec is one of those (SD > 0). */
int predict_norm_ok(const char *norm);
void predict_normalise(float *x /* (n) */, size_t n, const char *norm);

/* Softmax of one window (mirror-averaged when p->mirror) into p->win_prob. window: (Cin, ch, cw). */
void predict_window(Predictor *p, const float *window /* (Cin, ch, cw) */);

#endif
