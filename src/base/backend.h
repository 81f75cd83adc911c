/* backend.h — the one interface through which the model calls every op.
 *
 * The CPU backend (kernels/cpu/) is the fp32 reference; the CUDA backend
 * (kernels/cuda/, a later issue) fills the same table. Model code never calls
 * an op directly, only through a Backend, so both run the same model.
 *
 * Conventions (all ops):
 *  - Activations are channels-last (NHWC) and contiguous. "N" in a shape
 *    comment means a flattened count of tokens (B*H*W).
 *  - Two element types. Every tensor with a token dimension (activations, their
 *    gradients, the attention's saved softmax, the logits) is an array of Act, whose
 *    storage the backend chooses: fp32 on the CPU and in the CUDA fp32/tf32 modes, bf16
 *    in the CUDA bf16 mode (Backend.act_bytes says which). Parameters, parameter
 *    gradients, optimiser state and statistics (LayerNorm mean/rstd, loss softmax and
 *    counts) are always float. Ops compute in fp32 whatever the storage: an Act is
 *    widened on load and rounded (to nearest even) once on store.
 *  - Parameters use the released PyTorch network's layouts so the flat
 *    parameter buffer is the state_dict byte for byte:
 *      conv            [Co][Ci][kh][kw]
 *      depthwise conv  [C][1][7][7]
 *      transposed conv [Ci][Co][k][k]
 *      linear          [Co][Ci]
 *  - Forward ops OVERWRITE their outputs.
 *  - Backward ops ACCUMULATE (+=) into every gradient they produce, input
 *    gradients and parameter gradients alike; the caller zeroes buffers. This
 *    makes residual connections and shared inputs free of extra adds.
 *  - A NULL input-gradient pointer means "not needed" (e.g. the network input).
 *  - Pointers are backend memory (host memory for the CPU backend, device
 *    memory for CUDA) unless the name ends in _host.
 *  - Outputs come first, then inputs, then sizes.
 */
#ifndef UNET_BACKEND_H
#define UNET_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct Backend Backend;

/* One activation element. Deliberately incomplete: model code cannot do arithmetic on an
 * Act * (every tensor is its own buffer) nor mistake one for a float * parameter. */
typedef struct Act Act;

struct Backend {
    const char *name; /* "cpu" or "cuda" */
    void *impl;       /* backend-private state (workspace, handles) */
    /* The native queue every op is ordered on: the cudaStream_t for CUDA, NULL for the CPU
     * (ops have finished when they return). Transports order their work against it. */
    void *queue;
    /* Bytes of one Act element: 4 (fp32 storage) or 2 (bf16 storage). Fixed at creation. */
    size_t act_bytes;

    /* ---- memory ---- */
    void *(*alloc)(Backend *be, size_t bytes); /* zero-filled; aborts with a clear message on OOM */
    void (*release)(Backend *be, void *ptr);
    void (*upload)(Backend *be, void *dst, const void *src_host, size_t bytes);
    /* Queued copy: returns at once; src_host (pinned memory for CUDA, or the copy is staged)
     * must stay unchanged until the queue has passed this point, i.e. until a call that waits
     * for the queue (download, synchronize, or an op that returns a host value). */
    void (*upload_async)(Backend *be, void *dst, const void *src_host, size_t bytes);
    void (*download)(Backend *be, void *dst_host, const void *src, size_t bytes);
    void (*zero)(Backend *be, void *dst, size_t bytes);
    void (*copy)(Backend *be, void *dst, const void *src, size_t bytes);
    void (*synchronize)(Backend *be);
    void (*destroy)(Backend *be);

    /* ---- element type conversion, backend memory to backend memory (n elements) ----
     * act_from_f32 rounds to nearest even when Acts are bf16; act_to_f32 is exact. */
    void (*act_from_f32)(Backend *be, Act *out /* (n) */, const float *in /* (n) */, size_t n);
    void (*act_to_f32)(Backend *be, float *out /* (n) */, const Act *in /* (n) */, size_t n);

    /* ---- 3x3 convolution, zero pad 1, stride 1 or 2, with bias ----
     * Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1                    */
    void (*conv3x3_forward)(Backend *be,
                            Act *out,      /* (B, Ho, Wo, Co) */
                            const Act *in, /* (B, H, W, Ci) */
                            const float *w,  /* (Co, Ci, 3, 3) */
                            const float *b,  /* (Co) */
                            int B, int H, int W, int Ci, int Co, int stride);
    void (*conv3x3_backward)(Backend *be,
                             Act *din,        /* (B, H, W, Ci) or NULL */
                             float *dw,         /* (Co, Ci, 3, 3) */
                             float *db,         /* (Co) */
                             const Act *dout, /* (B, Ho, Wo, Co) */
                             const Act *in,   /* (B, H, W, Ci) */
                             const float *w,    /* (Co, Ci, 3, 3) */
                             int B, int H, int W, int Ci, int Co, int stride);

    /* ---- depthwise 7x7 convolution, zero pad 3, stride 1, with bias ---- */
    void (*dwconv7_forward)(Backend *be,
                            Act *out,      /* (B, H, W, C) */
                            const Act *in, /* (B, H, W, C) */
                            const float *w,  /* (C, 1, 7, 7) */
                            const float *b,  /* (C) */
                            int B, int H, int W, int C);
    void (*dwconv7_backward)(Backend *be,
                             Act *din,        /* (B, H, W, C) or NULL */
                             float *dw,         /* (C, 1, 7, 7) */
                             float *db,         /* (C) */
                             const Act *dout, /* (B, H, W, C) */
                             const Act *in,   /* (B, H, W, C) */
                             const float *w,    /* (C, 1, 7, 7) */
                             int B, int H, int W, int C);

    /* ---- transposed convolution with kernel == stride == k (2 or 4), bias ----
     * Non-overlapping: out[b, h*k+i, w*k+j, co] = b[co] + sum_ci in[b,h,w,ci] * w[ci,co,i,j] */
    void (*convT_forward)(Backend *be,
                          Act *out,      /* (B, H*k, W*k, Co) */
                          const Act *in, /* (B, H, W, Ci) */
                          const float *w,  /* (Ci, Co, k, k) */
                          const float *b,  /* (Co) */
                          int B, int H, int W, int Ci, int Co, int k);
    void (*convT_backward)(Backend *be,
                           Act *din,        /* (B, H, W, Ci) or NULL */
                           float *dw,         /* (Ci, Co, k, k) */
                           float *db,         /* (Co) */
                           const Act *dout, /* (B, H*k, W*k, Co) */
                           const Act *in,   /* (B, H, W, Ci) */
                           const float *w,    /* (Ci, Co, k, k) */
                           int B, int H, int W, int Ci, int Co, int k);

    /* ---- linear: out = in · wᵀ + b (b may be NULL) ---- */
    void (*linear_forward)(Backend *be,
                           Act *out,      /* (N, Co) */
                           const Act *in, /* (N, Ci) */
                           const float *w,  /* (Co, Ci) */
                           const float *b,  /* (Co) or NULL */
                           size_t N, int Ci, int Co);
    void (*linear_backward)(Backend *be,
                            Act *din,        /* (N, Ci) or NULL */
                            float *dw,         /* (Co, Ci) */
                            float *db,         /* (Co) or NULL */
                            const Act *dout, /* (N, Co) */
                            const Act *in,   /* (N, Ci) */
                            const float *w,    /* (Co, Ci) */
                            size_t N, int Ci, int Co);

    /* ---- LayerNorm over the last (channel) dim, biased variance as PyTorch ---- */
    void (*layernorm_forward)(Backend *be,
                              Act *out,      /* (N, C) */
                              float *mean,     /* (N)  saved for backward */
                              float *rstd,     /* (N)  saved for backward */
                              const Act *in, /* (N, C) */
                              const float *g,  /* (C) */
                              const float *b,  /* (C) */
                              size_t N, int C, float eps);
    void (*layernorm_backward)(Backend *be,
                               Act *din,        /* (N, C) or NULL */
                               float *dg,         /* (C) */
                               float *db,         /* (C) */
                               const Act *dout, /* (N, C) */
                               const Act *in,   /* (N, C) */
                               const float *mean, /* (N) */
                               const float *rstd, /* (N) */
                               const float *g,    /* (C) */
                               size_t N, int C);

    /* ---- exact (erf) GELU ---- */
    void (*gelu_forward)(Backend *be, Act *out /* (n) */, const Act *in /* (n) */, size_t n);
    void (*gelu_backward)(Backend *be, Act *din /* (n) */, const Act *dout /* (n) */,
                          const Act *in /* (n) */, size_t n);

    /* ---- zero-pad to (Hp, Wp) at the bottom/right, then cyclic roll by (-s, -s) ----
     * out[b, y, x, c] = padded[b, (y + s) % Hp, (x + s) % Wp, c], padded = 0 outside (H, W) */
    void (*pad_roll_forward)(Backend *be,
                             Act *out,      /* (B, Hp, Wp, C) */
                             const Act *in, /* (B, H, W, C) */
                             int B, int H, int W, int C, int Hp, int Wp, int shift);
    void (*pad_roll_backward)(Backend *be,
                              Act *din,        /* (B, H, W, C) */
                              const Act *dout, /* (B, Hp, Wp, C) */
                              int B, int H, int W, int C, int Hp, int Wp, int shift);
    /* ---- the inverse: roll by (+s, +s), then crop to (H, W) ---- */
    void (*roll_crop_forward)(Backend *be,
                              Act *out,      /* (B, H, W, C) */
                              const Act *in, /* (B, Hp, Wp, C) */
                              int B, int H, int W, int C, int Hp, int Wp, int shift);
    void (*roll_crop_backward)(Backend *be,
                               Act *din,        /* (B, Hp, Wp, C) */
                               const Act *dout, /* (B, H, W, C) */
                               int B, int H, int W, int C, int Hp, int Wp, int shift);

    /* ---- windowed multi-head self-attention (Swin) on an already padded+rolled map ----
     * Windows are the w×w tiles of the (Hp, Wp) map, in row-major window order, tokens in
     * row-major order inside a window (Swin's window_partition). qkv channel layout per
     * token is PyTorch's reshape(3, heads, head_dim): c = t*C + h*hd + j, t in {q,k,v}.
     * attn = softmax(q·kᵀ·hd^-0.5 + table[rel_index, h] + mask), mask = Swin's shift mask
     * (−100 between regions cut at (0:-w), (-w:-s), (-s:) per axis), only when shift > 0.
     * out[token, h*hd + j] = sum_k attn[q, k] v[k, h*hd + j]                        */
    void (*window_attention_forward)(Backend *be,
                                     Act *out,        /* (B, Hp, Wp, C) */
                                     Act *probs,      /* (B, nWin, heads, w*w, w*w) saved softmax */
                                     const Act *qkv,  /* (B, Hp, Wp, 3C) */
                                     const float *table,/* ((2w-1)^2, heads) */
                                     int B, int Hp, int Wp, int C, int heads, int window, int shift);
    void (*window_attention_backward)(Backend *be,
                                      Act *dqkv,        /* (B, Hp, Wp, 3C) */
                                      float *dtable,      /* ((2w-1)^2, heads) */
                                      const Act *dout,  /* (B, Hp, Wp, C) */
                                      const Act *qkv,   /* (B, Hp, Wp, 3C) */
                                      const Act *probs, /* (B, nWin, heads, w*w, w*w) */
                                      int B, int Hp, int Wp, int C, int heads, int window, int shift);

    /* ---- elementwise ---- */
    void (*add)(Backend *be, Act *out /* (n) */, const Act *a /* (n) */, const Act *b /* (n) */,
                size_t n); /* out may alias a or b */
    void (*accumulate)(Backend *be, Act *dst /* (n) */, const Act *src /* (n) */, size_t n); /* dst += src */
    /* layer scale: out[n, c] = gamma[c] * in[n, c] */
    void (*channel_scale_forward)(Backend *be, Act *out /* (N, C) */, const Act *in /* (N, C) */,
                                  const float *gamma /* (C) */, size_t N, int C);
    void (*channel_scale_backward)(Backend *be, Act *din /* (N, C) */, float *dgamma /* (C) */,
                                   const Act *dout /* (N, C) */, const Act *in /* (N, C) */,
                                   const float *gamma /* (C) */, size_t N, int C);
    /* drop path: out[b, :] = in[b, :] * scale_host[b] (0 or 1/keep, drawn by the caller) */
    void (*sample_scale_forward)(Backend *be, Act *out /* (B, per) */, const Act *in /* (B, per) */,
                                 const float *scale_host /* (B) */, int B, size_t per);
    void (*sample_scale_backward)(Backend *be, Act *din /* (B, per) */, const Act *dout /* (B, per) */,
                                  const float *scale_host /* (B) */, int B, size_t per);

    /* ---- loss: w_dice * SoftDice + w_ce * CrossEntropy (nnU-Net v1 DC_and_CE_loss) ----
     * Soft Dice on softmax probabilities, batch dice (sums over all N pixels), background
     * (class 0) excluded, smooth 1e-5, dc = (2tp + smooth) / (2tp + fp + fn + smooth + 1e-8),
     * dice term = -mean_c dc. CE = mean over N pixels of -log softmax[label].
     * loss_host[0] = total, [1] = dice term, [2] = CE term (unweighted).
     * stats keeps (tp, fp, fn) per class for backward.                           */
    void (*dice_ce_forward)(Backend *be,
                            float *loss_host,     /* (3) */
                            float *probs,         /* (N, K) saved softmax */
                            float *stats,         /* (3, K) */
                            const Act *logits,  /* (N, K) */
                            const int32_t *labels,/* (N) values in [0, K) */
                            size_t N, int K, float w_dice, float w_ce);
    /* dlogits += dloss * d(total)/d(logits) */
    void (*dice_ce_backward)(Backend *be,
                             Act *dlogits,       /* (N, K) */
                             const float *probs,   /* (N, K) */
                             const float *stats,   /* (3, K) */
                             const int32_t *labels,/* (N) */
                             size_t N, int K, float w_dice, float w_ce, float dloss);
    /* nearest downsampling of a label map by an integer factor f, picking the pixel at
     * (y*f + f/2, x*f + f/2) (nnU-Net's order-0 resize at exact factors) */
    void (*downsample_labels)(Backend *be, int32_t *out /* (B, H/f, W/f) */,
                              const int32_t *in /* (B, H, W) */, int B, int H, int W, int f);

    /* ---- optimiser ---- */
    void (*sum_squares)(Backend *be, double *out_host /* (1) */, const float *x /* (n) */, size_t n);
    void (*scale)(Backend *be, float *x /* (n) */, float s, size_t n); /* x *= s */
    /* PyTorch Adam (no weight decay, no amsgrad), step counts from 1. Hyper-parameters are
     * doubles because PyTorch computes 1 - beta and the bias corrections from Python floats:
     * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;
     * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)                */
    void (*adam_update)(Backend *be, float *param /* (n) */, float *m /* (n) */, float *v /* (n) */,
                        const float *grad /* (n) */, size_t n, double lr, double beta1, double beta2,
                        double eps, int step);
};

/* Host <-> backend copies of Act arrays through a float staging buffer (backend_act.c):
 * for tests, checks and one-off transfers, not hot paths (they allocate and synchronise). */
void backend_upload_act(Backend *be, Act *dst /* (n) */, const float *src_host /* (n) */, size_t n);
void backend_download_act(Backend *be, float *dst_host /* (n) */, const Act *src /* (n) */, size_t n);

/* The CPU reference backend (kernels/cpu/backend_cpu.c). threads <= 0: OpenMP default.
 * Its Acts are floats: a float array may be passed as (Act *) and read back as (float *). */
Backend *backend_cpu_create(int threads);

#endif
