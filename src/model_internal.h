/* model_internal.h — the activation layout shared by model_acts.c (allocation),
 * model_forward.c (stem, encoder, decoder, heads) and pi_block.c (one PI block).
 * Not part of the public interface. */
#ifndef UNET_MODEL_INTERNAL_H
#define UNET_MODEL_INTERNAL_H

#include "model.h"

/* A stage-level tensor and its gradient (same shape; gradient NULL when planning only). */
typedef struct {
    float *v, *g;
} Buf;

/* LayerNorm output plus the statistics its backward needs. */
typedef struct {
    Buf y;
    float *mean, *rstd; /* (rows) */
} NormBuf;

/* One PI block's saved activations; x is the block input (owned by the caller). */
typedef struct {
    int H, W, Hp, Wp; /* runtime map size and its window-padded size */
    size_t N, Np;     /* B·H·W, B·Hp·Wp */
    float *dw1;       /* (N, d)  ConvNeXt depthwise conv */
    float *ln1, *mean1, *rstd1; /* (N, d), (N), (N)  LayerNorm eps 1e-6 */
    float *fc1, *ge;  /* (N, 4d) pwconv1 and its GELU */
    float *fc2, *ls;  /* (N, d)  pwconv2 and γ-scaled */
    float *dp1;       /* (N, d)  drop-path scaled ls (== ls when inactive) */
    float *x1;        /* (N, d)  after the ConvNeXt residual */
    float *u, *mean2, *rstd2;   /* (N, d)  attention LayerNorm eps 1e-5 */
    float *r;         /* (Np, d) padded + rolled u */
    float *qkv;       /* (Np, 3d) */
    float *probs;     /* (B, nWin, heads, w², w²) */
    float *att;       /* (Np, d) attention output, then + dw2 in place (proj input) */
    float *dw2;       /* (Np, d) depthwise conv of r */
    float *proj;      /* (Np, d) */
    float *o;         /* (N, d)  rolled back + cropped */
    float *dp2;       /* (N, d)  drop-path scaled o (== o when inactive) */
    Buf out;          /* (N, d)  block output and its gradient */
    float *dp_scale1, *dp_scale2; /* host (B): per-sample drop-path scales of this pass */
    int dp_active;
} BlockActs;

/* Gradient scratch for one block's backward, shared by all blocks (sized for the largest). */
typedef struct {
    float *d_x1, *d_o, *d_proj, *d_sum, *d_qkv, *d_r, *d_u; /* (N|Np, d|3d) */
    float *d_ls, *d_fc2, *d_ge, *d_fc1, *d_ln1, *d_dw1;
    size_t max_nd, max_npd; /* elements of the (N, d) and (Np, d) sized buffers */
} BlockScratch;

typedef struct {
    Buf c1, g1;
    NormBuf n1;
    Buf c2, g2;
    NormBuf n2;
} ConvPairActs; /* conv → GELU → LN → conv [→ GELU → LN] (stem block, P=8 head) */

struct ModelActs {
    Backend *be;
    int count_only;
    size_t bytes_fwd, bytes_bwd;
    void **ptrs;
    int n_ptrs, cap_ptrs;
    Buf *grads; /* every gradient buffer, zeroed at the start of backward */
    size_t *grad_numel;
    int n_grads, cap_grads;

    int B, H, W;
    const float *image; /* (B, H, W, Cin), the last forward's input */
    PassOptions opt;

    ConvPairActs stem[3];
    NormBuf stem_norm;
    BlockActs enc[4][3];
    NormBuf skip[4];
    struct {
        Buf g;
        NormBuf n;
        Buf conv;
    } down[3];
    struct {
        NormBuf n;
        Buf t, sum;
    } up[3];
    BlockActs dec[3][3];
    struct {
        ConvPairActs proj; /* P = 8 only */
        Buf logits;
    } head[3];
    int n_outputs;

    float *probs[3], *stats[3]; /* softmax and (tp, fp, fn) of each scored output */
    int32_t *labels[3];         /* (B, H/2^k, W/2^k); [0] points at the caller's labels */
    float loss_weight[3];
    float ce_weight[3]; /* 0.8 · local pixels / global pixels, set by model_loss */

    BlockScratch scratch;
};

/* pi_block.c */
void pi_block_forward(const BlockDesc *bd, Backend *be, BlockActs *ba, const float *params,
                      const float *x /* (B, H, W, d) */, int B, const PassOptions *opt);
void pi_block_backward(const BlockDesc *bd, Backend *be, BlockActs *ba, BlockScratch *s, const float *params,
                       float *grads, const float *x /* (B, H, W, d) */, float *dx /* (B, H, W, d) */, int B);

#endif
