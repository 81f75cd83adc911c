/* model_internal.h — the activation layout shared by model_acts.c (allocation),
 * model_forward.c (stem, encoder, decoder, heads) and pi_block.c (one PI block).
 * Not part of the public interface. */
#ifndef UNET_MODEL_INTERNAL_H
#define UNET_MODEL_INTERNAL_H

#include "model.h"

/* A stage-level tensor and its gradient (same shape; both NULL when planning only). Every
 * tensor with a token dimension is an Act array (backend.h); only LayerNorm statistics, the
 * loss's softmax and counts, and the fp32 copies of the outputs are float. */
typedef struct {
    Act *v, *g;
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
    Act *dw1;         /* (N, d)  ConvNeXt depthwise conv */
    Act *ln1;         /* (N, d)  LayerNorm eps 1e-6 */
    float *mean1, *rstd1; /* (N)   its statistics */
    Act *fc1, *ge;    /* (N, 4d) pwconv1 and its GELU */
    Act *fc2;         /* (N, d)  pwconv2 */
    Act *x1;          /* (N, d)  after the ConvNeXt residual */
    Act *u;           /* (N, d)  attention LayerNorm eps 1e-5 */
    float *mean2, *rstd2; /* (N)   its statistics */
    Act *r;           /* (Np, d) padded + rolled u; NULL when that is u itself (shift 0, no pad) */
    Act *qkv;         /* (Np, 3d) */
    Act *probs;       /* (B, nWin, heads, w², w²) */
    Act *att;         /* (Np, d) attention output, then + the depthwise conv of r in place (proj input) */
    Act *proj;        /* (Np, d) */
    Act *o;           /* (N, d)  rolled back + cropped; NULL when that is proj itself */
    Buf out;          /* (N, d)  block output and its gradient */
    /* Per-sample drop-path scales of this pass, (B) each: backend memory (what the residual ops
     * read), and the host staging the draw writes (model_draw_step), uploaded in one queued copy
     * for all blocks; both are slices of ModelActs.dp_dev / dp_host. */
    float *dp_scale1, *dp_scale2;
    float *dp_host1, *dp_host2;
    int dp_active;
} BlockActs;

/* Gradient scratch for one block's backward, shared by all blocks (sized for the largest). */
typedef struct {
    Act *d_o, *d_proj, *d_sum, *d_qkv, *d_r, *d_u; /* (N|Np, d|3d) */
    Act *d_fc2, *d_ge, *d_fc1, *d_ln1, *d_dw1;
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
    size_t act_bytes; /* bytes of one Act: be->act_bytes, or 4 when planning without a backend */
    int count_only;
    size_t bytes_fwd, bytes_bwd;
    void **ptrs;
    int n_ptrs, cap_ptrs;
    Buf *grads; /* every gradient buffer, zeroed at the start of backward */
    size_t *grad_numel;
    int n_grads, cap_grads;
    /* The gradient buffers are carved (256-byte aligned) from one arena, so backward zeroes them
     * all with one memset of grad_used bytes. grad_arena is NULL when only counting. */
    void *grad_arena;
    size_t grad_used;

    int B, H, W;
    const Act *image;  /* (B, H, W, Cin) the last forward's input, as Acts (the stem's backward reads it) */
    /* Only when Acts are not floats (bf16): the converted input and fp32 copies of the logits,
     * what model_forward returns. With fp32 Acts the caller's image and the logits serve as
     * they are, and these stay NULL. */
    Act *image_act;    /* (B, H, W, Cin) */
    float *outputs[3]; /* (B, H/2^k, W/2^k, K) */
    PassOptions opt;

    ConvPairActs stem[3];
    NormBuf stem_norm;
    /* every block's drop-path scales, (21 blocks, 2 branches, B) floats: backend memory and its
     * staging (Backend.host_alloc: pinned on CUDA, so a captured step's upload reads it) */
    float *dp_dev, *dp_host;
    size_t dp_bytes;
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
    float *loss_terms[3];       /* (3) each: dice_ce_forward's (total, dice, CE), after all stats */
    float *loss_out;            /* (3) loss_total's (total, dice, CE): model_loss's read-back */
    int32_t *labels[3];         /* (B, H/2^k, W/2^k); [0] points at the caller's labels */
    float loss_weight[3];
    float ce_weight[3]; /* 0.8 · local pixels / global pixels, set by model_loss */

    BlockScratch scratch;
};

/* model_backward's GradsReady (model.h) with the table that turns a layer's tensors into one
 * range of the flat buffer. */
typedef struct {
    const GradsReady *hook; /* NULL: nobody listens */
    const ParamTable *params;
} GradReport;

/* model_forward.c: after the op that finished the gradients of the tensors at offsets first..last
 * (one tensor, or a weight and the bias right after it), reports [first, end of last). */
void grads_final(const GradReport *r, size_t first, size_t last);

/* pi_block.c */
/* Draws the block's drop-path scales of this pass into its staging (dp_host1/2) and sets
 * dp_active; touches no backend memory. */
void pi_block_draw(const BlockDesc *bd, BlockActs *ba, int B, const PassOptions *opt);
void pi_block_forward(const BlockDesc *bd, Backend *be, BlockActs *ba, const float *params,
                      const Act *x /* (B, H, W, d) */, int B, const PassOptions *opt);
void pi_block_backward(const BlockDesc *bd, Backend *be, BlockActs *ba, BlockScratch *s, const float *params,
                       float *grads, const Act *x /* (B, H, W, d) */, Act *dx /* (B, H, W, d) */, int B,
                       const GradReport *report);

#endif
