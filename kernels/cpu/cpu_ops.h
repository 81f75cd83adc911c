/* cpu_ops.h — the CPU reference backend's ops; signatures and semantics are those of
 * the Backend table in src/backend.h (read the comments there). Each op lives in the
 * kernels/cpu/ file named after its family.
 *
 * The CPU backend's Acts are floats (act_bytes 4): each op views its Act arguments as
 * float arrays at its entry point (`float *out = (float *)out_act`), and everything below
 * the entry point, helpers included, works on floats. */
#ifndef UNET_CPU_OPS_H
#define UNET_CPU_OPS_H

#include "backend.h"

/* A per-backend scratch buffer of at least `bytes`, grown on demand; valid until the
 * next call. Ops use it for im2col and similar temporaries. */
void *cpu_workspace(Backend *be, size_t bytes);

/* Row-major sgemm with the same arguments as cblas_sgemm (trans flags 0/1), split across
 * OpenMP threads by output blocks (gemm.c); OpenBLAS itself stays single-threaded. */
void cpu_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);

void cpu_conv3x3_forward(Backend *be, Act *out, /* (B, Ho, Wo, Co) */ const Act *in, /* (B, H, W, Ci) */ const float *w, /* (Co, Ci, 3, 3) */ const float *b, /* (Co) */ int B, int H, int W, int Ci, int Co, int stride);
void cpu_conv3x3_backward(Backend *be, Act *din, /* (B, H, W, Ci) or NULL */ float *dw, /* (Co, Ci, 3, 3) */ float *db, /* (Co) */ const Act *dout, /* (B, Ho, Wo, Co) */ const Act *in, /* (B, H, W, Ci) */ const float *w, /* (Co, Ci, 3, 3) */ int B, int H, int W, int Ci, int Co, int stride);
void cpu_dwconv7_forward(Backend *be, Act *out, /* (B, H, W, C) */ const Act *in, /* (B, H, W, C) */ const float *w, /* (C, 1, 7, 7) */ const float *b, /* (C) */ int B, int H, int W, int C);
void cpu_dwconv7_backward(Backend *be, Act *din, /* (B, H, W, C) or NULL */ float *dw, /* (C, 1, 7, 7) */ float *db, /* (C) */ const Act *dout, /* (B, H, W, C) */ const Act *in, /* (B, H, W, C) */ const float *w, /* (C, 1, 7, 7) */ int B, int H, int W, int C);
void cpu_convT_forward(Backend *be, Act *out, /* (B, H*k, W*k, Co) */ const Act *in, /* (B, H, W, Ci) */ const float *w, /* (Ci, Co, k, k) */ const float *b, /* (Co) */ int B, int H, int W, int Ci, int Co, int k);
void cpu_convT_backward(Backend *be, Act *din, /* (B, H, W, Ci) or NULL */ float *dw, /* (Ci, Co, k, k) */ float *db, /* (Co) */ const Act *dout, /* (B, H*k, W*k, Co) */ const Act *in, /* (B, H, W, Ci) */ const float *w, /* (Ci, Co, k, k) */ int B, int H, int W, int Ci, int Co, int k);
void cpu_linear_forward(Backend *be, Act *out, /* (N, Co) */ const Act *in, /* (N, Ci) */ const float *w, /* (Co, Ci) */ const float *b, /* (Co) or NULL */ size_t N, int Ci, int Co);
void cpu_linear_backward(Backend *be, Act *din, /* (N, Ci) or NULL */ float *dw, /* (Co, Ci) */ float *db, /* (Co) or NULL */ const Act *dout, /* (N, Co) */ const Act *in, /* (N, Ci) */ const float *w, /* (Co, Ci) */ size_t N, int Ci, int Co);
void cpu_layernorm_forward(Backend *be, Act *out, /* (N, C) */ float *mean, /* (N) saved for backward */ float *rstd, /* (N) saved for backward */ const Act *in, /* (N, C) */ const float *g, /* (C) */ const float *b, /* (C) */ size_t N, int C, float eps);
void cpu_layernorm_backward(Backend *be, Act *din, /* (N, C) or NULL */ float *dg, /* (C) */ float *db, /* (C) */ const Act *dout, /* (N, C) */ const Act *in, /* (N, C) */ const float *mean, /* (N) */ const float *rstd, /* (N) */ const float *g, /* (C) */ size_t N, int C);
void cpu_gelu_forward(Backend *be, Act *out /* (n) */, const Act *in /* (n) */, size_t n);
void cpu_gelu_backward(Backend *be, Act *din /* (n) */, const Act *dout /* (n) */, const Act *in /* (n) */, size_t n);
void cpu_pad_roll_forward(Backend *be, Act *out, /* (B, Hp, Wp, C) */ const Act *in, /* (B, H, W, C) */ int B, int H, int W, int C, int Hp, int Wp, int shift);
void cpu_pad_roll_backward(Backend *be, Act *din, /* (B, H, W, C) */ const Act *dout, /* (B, Hp, Wp, C) */ int B, int H, int W, int C, int Hp, int Wp, int shift);
void cpu_roll_crop_forward(Backend *be, Act *out, /* (B, H, W, C) */ const Act *in, /* (B, Hp, Wp, C) */ int B, int H, int W, int C, int Hp, int Wp, int shift);
void cpu_roll_crop_backward(Backend *be, Act *din, /* (B, Hp, Wp, C) */ const Act *dout, /* (B, H, W, C) */ int B, int H, int W, int C, int Hp, int Wp, int shift);
void cpu_window_attention_forward(Backend *be, Act *out, /* (B, Hp, Wp, C) */ Act *probs, /* (B, nWin, heads, w*w, w*w) saved softmax */ const Act *qkv, /* (B, Hp, Wp, 3C) */ const float *table,/* ((2w-1)^2, heads) */ int B, int Hp, int Wp, int C, int heads, int window, int shift);
void cpu_window_attention_backward(Backend *be, Act *dqkv, /* (B, Hp, Wp, 3C) */ float *dtable, /* ((2w-1)^2, heads) */ const Act *dout, /* (B, Hp, Wp, C) */ const Act *qkv, /* (B, Hp, Wp, 3C) */ const Act *probs, /* (B, nWin, heads, w*w, w*w) */ int B, int Hp, int Wp, int C, int heads, int window, int shift);
void cpu_add(Backend *be, Act *out /* (n) */, const Act *a /* (n) */, const Act *b /* (n) */, size_t n);
void cpu_accumulate(Backend *be, Act *dst /* (n) */, const Act *src /* (n) */, size_t n);
void cpu_channel_scale_forward(Backend *be, Act *out /* (N, C) */, const Act *in /* (N, C) */, const float *gamma /* (C) */, size_t N, int C);
void cpu_channel_scale_backward(Backend *be, Act *din /* (N, C) */, float *dgamma /* (C) */, const Act *dout /* (N, C) */, const Act *in /* (N, C) */, const float *gamma /* (C) */, size_t N, int C);
void cpu_sample_scale_forward(Backend *be, Act *out /* (B, per) */, const Act *in /* (B, per) */, const float *scale_host /* (B) */, int B, size_t per);
void cpu_sample_scale_backward(Backend *be, Act *din /* (B, per) */, const Act *dout /* (B, per) */, const float *scale_host /* (B) */, int B, size_t per);
void cpu_dice_ce_forward(Backend *be, float *loss_host, /* (3) */ float *probs, /* (N, K) saved softmax */ float *stats, /* (3, K) */ const Act *logits, /* (N, K) */ const int32_t *labels,/* (N) values in [0, K) */ size_t N, int K, float w_dice, float w_ce);
void cpu_dice_ce_backward(Backend *be, Act *dlogits, /* (N, K) */ const float *probs, /* (N, K) */ const float *stats, /* (3, K) */ const int32_t *labels,/* (N) */ size_t N, int K, float w_dice, float w_ce, float dloss);
void cpu_downsample_labels(Backend *be, int32_t *out /* (B, H/f, W/f) */, const int32_t *in /* (B, H, W) */, int B, int H, int W, int f);
void cpu_sum_squares(Backend *be, double *out_host /* (1) */, const float *x /* (n) */, size_t n);
void cpu_scale(Backend *be, float *x /* (n) */, float s, size_t n);
void cpu_adam_update(Backend *be, float *param /* (n) */, float *m /* (n) */, float *v /* (n) */, const float *grad /* (n) */, size_t n, double lr, double beta1, double beta2, double eps, int step);

#endif
