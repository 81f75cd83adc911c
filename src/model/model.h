/* model.h — UNet-2022 as the authors' released code builds it (docs/network.md).
 *
 * A Model is a description: the parameter table (state_dict names, offsets into one flat
 * buffer) and, per layer, the offsets of its tensors plus its fixed hyper-parameters
 * (window, shift, heads, drop-path rate). Weights, gradients and Adam moments are flat
 * buffers in that layout, owned by whoever trains (see optimizer.h).
 *
 * Activations for one batch shape live in ModelActs (model_acts.c); the forward and
 * backward passes (model_forward.c, pi_block.c) call ops only through a Backend.
 * All activations are NHWC arrays of the backend's Act type (backend.h: fp32 or bf16 storage);
 * the public functions below take and return float only, so callers need not know which. */
#ifndef UNET_MODEL_H
#define UNET_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "net_config.h"
#include "param_table.h"

/* One PI block: ConvNeXt part then attention part (both residual). Offsets into the flat buffer. */
typedef struct {
    int dim, heads, window, shift;
    float drop_rate;
    int id; /* index among all blocks, keys the drop-path random stream */
    size_t gamma, dw_w, dw_b, norm_w, norm_b, fc1_w, fc1_b, fc2_w, fc2_b;
    size_t n1_w, n1_b, table, qkv_w, qkv_b, proj_w, proj_b, dw2_w, dw2_b;
} BlockDesc;

/* conv3x3 s2 → GELU → LN → conv3x3 s1 [→ GELU → LN unless last] */
typedef struct {
    int cin, cout, last;
    size_t conv1_w, conv1_b, norm1_w, norm1_b, conv2_w, conv2_b, norm2_w, norm2_b;
} StemBlockDesc;

/* P = 8 only: convT2 (d → d/2) → GELU → LN → conv3x3 → GELU → LN; then (both P) up_final convT4. */
typedef struct {
    int dim, mid; /* mid = channels into up_final */
    int has_project;
    size_t t_w, t_b, n1_w, n1_b, c_w, c_b, n2_w, n2_b;
    size_t up_w, up_b;
} HeadDesc;

typedef struct {
    NetConfig net; /* resolved (preset applied, validated): a copy, the caller's may go */
    int C, P, K, cin;
    int stage_window[4], stage_shift[4]; /* after clamping to the crop */

    int n_stem;
    StemBlockDesc stem[3];
    size_t stem_norm_w, stem_norm_b;

    BlockDesc enc[4][3];
    size_t down_norm_w[3], down_norm_b[3], down_w[3], down_b[3];
    size_t skip_norm_w[4], skip_norm_b[4];

    BlockDesc dec[3][3]; /* dec[i] = decoder.layers.i, dim C·2^i; runs 2 → 1 → 0 */
    size_t up_norm_w[3], up_norm_b[3], up_w[3], up_b[3];

    HeadDesc head[3]; /* final.i on decoder.layers.i's output */

    ParamTable params;
} Model;

/* Builds the description from a resolved, validated network config (config.h: Config.net). */
void model_build(Model *m, const NetConfig *net);
void model_free(Model *m);

/* Fresh weights with PyTorch's default initialisation, from a seed. `params` is host memory
 * of m->params.total floats. */
void model_init_params(const Model *m, float *params, uint64_t seed);

/* The Swin relative_position_index buffer for window w, (w², w²) int64 — the state_dict
 * carries it, and loading checks it. */
void model_relative_position_index(int64_t *out /* (w*w, w*w) */, int w);

/* ---- activations for one batch shape ---- */

typedef struct ModelActs ModelActs;

/* Plans (count_only=1: allocates nothing) or allocates activations and gradient buffers for
 * batch B at input H×W (H, W multiples of P·8), be->act_bytes per activation element. A plan
 * may pass be = NULL (fp32 activations) or a Backend of which only act_bytes is set. */
ModelActs *model_acts_create(const Model *m, Backend *be, int B, int H, int W, int count_only);
void model_acts_free(ModelActs *a);
size_t model_acts_bytes_forward(const ModelActs *a);  /* kept for backward */
size_t model_acts_bytes_backward(const ModelActs *a); /* gradient and scratch buffers */

/* ---- passes ---- */

typedef struct {
    int training;           /* drop path active when training and rate > 0 */
    uint64_t seed;          /* drop-path stream: (seed, step, block, global sample) */
    uint64_t step;
    uint64_t sample_offset; /* global index of this rank's first sample in the global batch */
} PassOptions;

/* How the loss sees the other ranks' shares of a global batch. Soft Dice over the batch is not
 * a mean of per-rank Dice, so the ranks sum their (tp, fp, fn) statistics and CE sums before
 * the loss is formed; every rank then gets the exact global loss, and its gradient is its
 * share of the global batch's gradient (the gradient all-reduce is then a plain sum). */
typedef struct {
    void (*sum_f32)(void *ctx, float *buf /* backend memory */, size_t n); /* in-place all-reduce */
    void *ctx;
    /* Samples in the global batch (all ranks; every rank has the same crop): the global pixel
     * counts the CE weights need follow from it, with no host collective inside the step (a
     * blocking host collective would only notice a dead peer at the transport's timeout). */
    int global_batch;
} LossReduce;

/* image: (B, H, W, Cin) NHWC fp32 backend memory, read again by model_backward (so it must stay
 * unchanged until then) unless the backend's Acts are bf16, when it is converted once.
 * Returns the number of outputs (3 with deep supervision, else 1); outputs[k] are
 * (B, H/2^k, W/2^k, K) fp32 logits in backend memory inside the acts, valid until the next
 * forward. outputs NULL: the caller reads none (a training step, whose loss reads the logits
 * where they lie), so bf16 Acts are not converted. */
int model_forward(const Model *m, Backend *be, ModelActs *a, const float *params,
                  const float *image /* (B, H, W, Cin) */, const PassOptions *opt, float **outputs);

/* The host side of a forward pass's per-pass values: draws the drop-path scales of every block
 * for opt (seed, step, sample offset) into the acts' staging, which model_forward then uploads
 * with one queued copy (it calls this itself). A replayed captured step (src/train/step_graph.h)
 * runs no model code, so the trainer calls this before each replay: the recorded upload then
 * carries this step's draw. Returns 1 when any block drops paths in this pass. */
int model_draw_step(const Model *m, ModelActs *a, const PassOptions *opt);

/* Deep-supervision loss on the outputs of the last forward; labels (B, H, W) backend memory.
 * Returns the weighted total over the global batch; parts_host (optional, 3 floats): total,
 * dice term and CE term of the full-resolution output. */
float model_loss(const Model *m, Backend *be, ModelActs *a, const int32_t *labels /* (B, H, W) */,
                 float *parts_host, const LossReduce *reduce /* NULL: one process */);

/* model_loss without the read-back: queues the loss ops (and, with several ranks, one sum of the
 * statistics on the backend's queue), the CE weights for model_backward (from pixel counts) and
 * the total into out (backend memory, 3 floats: total, dice and CE terms of output 0), which the
 * caller reads when it next waits (the trainer: with the gradient norm, once per step). */
void model_loss_queue(const Model *m, Backend *be, ModelActs *a, const int32_t *labels /* (B, H, W) */,
                      float *out /* (3) backend memory */, const LossReduce *reduce /* NULL: one process */);

/* How model_backward tells its caller which parameter gradients are final, so that their
 * all-reduce can start while backward goes on (grad_sync.h). ready(ctx, offset, count) is called
 * right after the op that finished the gradients of floats [offset, offset + count) of the flat
 * buffer has been queued: whole tensors, one layer's at a time (a weight and its bias lie next to
 * each other, so they come as one range). Work queued after it on the backend sees them final. */
typedef struct {
    void (*ready)(void *ctx, size_t offset, size_t count);
    void *ctx;
} GradsReady;

/* Backward of loss ∘ forward; ACCUMULATES into grads (flat, m->params.total). */
void model_backward(const Model *m, Backend *be, ModelActs *a, const float *params, float *grads,
                    const GradsReady *ready /* NULL: nobody listens */);

/* Loss weights of the deep-supervision outputs (normalised 1, ½, ¼ → 4/7, 2/7, 1/7). */
void model_ds_weights(const Model *m, float w[3]);

/* Forward-pass FLOPs at batch B and input H×W (model_flops.c); a training step ≈ 3×. */
double model_forward_flops(const Model *m, int B, int H, int W);

/* Human-readable description (resolved network, windows, parameter count) to a FILE*. */
void model_print(const Model *m, void *file);

#endif
