/* model_forward.c — the whole network's forward and backward passes and the
 * deep-supervision loss, composed from backend ops and PI blocks.
 *
 *   stem → encoder stages 0..3 (skips = norm_i(stage output); downsample from the
 *   un-normalised output: GELU → LN → conv3x3/2) → decoder stages 2 → 1 → 0
 *   (LN → convT2x2/2 + the skip, 3 blocks) → a head per decoder stage.  */
#include <string.h>

#include "check.h"
#include "model_internal.h"

#define EPS 1e-5f /* every LayerNorm outside the ConvNeXt part */

/* ---- conv → GELU → LN → conv [→ GELU → LN]: the stem blocks and the P=8 heads' project block ---- */

/* first layer: conv3x3/2 (stem) or convT2x2/2 (head) */
typedef enum { FIRST_CONV_S2, FIRST_CONVT_2 } FirstLayer;

static void conv_pair_forward(Backend *be, ConvPairActs *c, const float *P, const Act *x, FirstLayer first,
                              int B, int H, int W, int cin, int cout, size_t w1, size_t b1, size_t n1w, size_t n1b,
                              size_t w2, size_t b2, int second_norm, size_t n2w, size_t n2b) {
    int Ho = first == FIRST_CONV_S2 ? H / 2 : H * 2, Wo = first == FIRST_CONV_S2 ? W / 2 : W * 2;
    size_t rows = (size_t)B * Ho * Wo;
    if (first == FIRST_CONV_S2) be->conv3x3_forward(be, c->c1.v, x, P + w1, P + b1, B, H, W, cin, cout, 2);
    else be->convT_forward(be, c->c1.v, x, P + w1, P + b1, B, H, W, cin, cout, 2);
    be->gelu_layernorm_forward(be, c->n1.y.v, c->g1.v, c->n1.mean, c->n1.rstd, c->c1.v, P + n1w, P + n1b, rows, cout,
                               EPS);
    be->conv3x3_forward(be, c->c2.v, c->n1.y.v, P + w2, P + b2, B, Ho, Wo, cout, cout, 1);
    if (second_norm) {
        be->gelu_layernorm_forward(be, c->n2.y.v, c->g2.v, c->n2.mean, c->n2.rstd, c->c2.v, P + n2w, P + n2b, rows,
                                   cout, EPS);
    }
}

/* The pair's output gradient must already be in n2.y.g (second_norm) or c2.g. */
static void conv_pair_backward(Backend *be, ConvPairActs *c, const float *P, float *G, const Act *x, Act *dx,
                               FirstLayer first, int B, int H, int W, int cin, int cout, size_t w1, size_t b1,
                               size_t n1w, size_t n1b, size_t w2, size_t b2, int second_norm, size_t n2w, size_t n2b,
                               const GradReport *report) {
    int Ho = first == FIRST_CONV_S2 ? H / 2 : H * 2, Wo = first == FIRST_CONV_S2 ? W / 2 : W * 2;
    size_t rows = (size_t)B * Ho * Wo;
    if (second_norm) {
        be->layernorm_backward_gelu(be, c->c2.g, G + n2w, G + n2b, c->n2.y.g, c->g2.v, c->c2.v, c->n2.mean,
                                    c->n2.rstd, P + n2w, rows, cout);
        grads_final(report, n2w, n2b);
    }
    be->conv3x3_backward(be, c->n1.y.g, G + w2, G + b2, c->c2.g, c->n1.y.v, P + w2, B, Ho, Wo, cout, cout, 1);
    grads_final(report, w2, b2);
    be->layernorm_backward_gelu(be, c->c1.g, G + n1w, G + n1b, c->n1.y.g, c->g1.v, c->c1.v, c->n1.mean, c->n1.rstd,
                                P + n1w, rows, cout);
    grads_final(report, n1w, n1b);
    if (first == FIRST_CONV_S2) be->conv3x3_backward(be, dx, G + w1, G + b1, c->c1.g, x, P + w1, B, H, W, cin, cout, 2);
    else be->convT_backward(be, dx, G + w1, G + b1, c->c1.g, x, P + w1, B, H, W, cin, cout, 2);
    grads_final(report, w1, b1);
}

/* ---- stages ---- */

static const Act *stage_forward(const BlockDesc *bd, Backend *be, BlockActs *ba, const float *params,
                                const Act *x /* (B, H, W, d) */, int B, const PassOptions *opt) {
    for (int j = 0; j < 3; j++) {
        pi_block_forward(&bd[j], be, &ba[j], params, x, B, opt);
        x = ba[j].out.v;
    }
    return x;
}

/* The stage output's gradient must be in ba[2].out.g; accumulates into dx. */
static void stage_backward(const BlockDesc *bd, Backend *be, BlockActs *ba, BlockScratch *s, const float *params,
                           float *grads, const Act *x /* (B, H, W, d) */, Act *dx /* (B, H, W, d) */, int B,
                           const GradReport *report) {
    for (int j = 2; j >= 0; j--) {
        const Act *xin = j == 0 ? x : ba[j - 1].out.v;
        Act *dxin = j == 0 ? dx : ba[j - 1].out.g;
        pi_block_backward(&bd[j], be, &ba[j], s, params, grads, xin, dxin, B, report);
    }
}

int model_draw_step(const Model *m, ModelActs *a, const PassOptions *opt) {
    CHECK(!a->count_only, "model_draw_step on a planning-only ModelActs");
    int any = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) {
            pi_block_draw(&m->enc[i][j], &a->enc[i][j], a->B, opt);
            any |= a->enc[i][j].dp_active;
        }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            pi_block_draw(&m->dec[i][j], &a->dec[i][j], a->B, opt);
            any |= a->dec[i][j].dp_active;
        }
    return any;
}

int model_forward(const Model *m, Backend *be, ModelActs *a, const float *P, const float *image,
                  const PassOptions *opt, float **outputs) {
    CHECK(!a->count_only, "model_forward on a planning-only ModelActs");
    int B = a->B, H = a->H, W = a->W;
    a->opt = *opt;
    /* this pass's drop-path scales: drawn on the host, one queued upload from the staging */
    if (model_draw_step(m, a, opt)) be->upload_async(be, a->dp_dev, a->dp_host, a->dp_bytes);
    /* this pass's weights (and backward's, which uses the same P) in the GEMMs' operand type */
    be->weights_prepare(be, P, m->params.total);
    /* Every op takes Acts, and the stem's backward reads the input again. fp32 Acts are floats,
     * so the caller's image serves as it is (it must then live until backward, as ever); bf16
     * Acts get the one conversion. */
    a->image = (const Act *)image;
    if (a->image_act) {
        be->act_from_f32(be, a->image_act, image, (size_t)B * H * W * m->cin);
        a->image = a->image_act;
    }

    /* stem */
    const Act *x = a->image;
    int h = H, w = W;
    for (int i = 0; i < m->n_stem; i++) {
        const StemBlockDesc *s = &m->stem[i];
        conv_pair_forward(be, &a->stem[i], P, x, FIRST_CONV_S2, B, h, w, s->cin, s->cout, s->conv1_w, s->conv1_b,
                          s->norm1_w, s->norm1_b, s->conv2_w, s->conv2_b, !s->last, s->norm2_w, s->norm2_b);
        x = s->last ? a->stem[i].c2.v : a->stem[i].n2.y.v;
        h /= 2;
        w /= 2;
    }
    size_t rows0 = (size_t)B * h * w;
    be->layernorm_forward(be, a->stem_norm.y.v, a->stem_norm.mean, a->stem_norm.rstd, x, P + m->stem_norm_w,
                          P + m->stem_norm_b, rows0, m->C, EPS);

    /* encoder */
    x = a->stem_norm.y.v;
    for (int i = 0; i < 4; i++) {
        int d = m->C << i, hi = h >> i, wi = w >> i;
        size_t rows = (size_t)B * hi * wi;
        const Act *s_out = stage_forward(m->enc[i], be, a->enc[i], P, x, B, opt);
        NormBuf *sk = &a->skip[i];
        be->layernorm_forward(be, sk->y.v, sk->mean, sk->rstd, s_out, P + m->skip_norm_w[i], P + m->skip_norm_b[i],
                              rows, d, EPS);
        if (i < 3) {
            NormBuf *n = &a->down[i].n;
            be->gelu_layernorm_forward(be, n->y.v, a->down[i].g.v, n->mean, n->rstd, s_out, P + m->down_norm_w[i],
                                       P + m->down_norm_b[i], rows, d, EPS);
            be->conv3x3_forward(be, a->down[i].conv.v, n->y.v, P + m->down_w[i], P + m->down_b[i], B, hi, wi, d,
                                2 * d, 2);
            x = a->down[i].conv.v;
        }
    }

    /* decoder: stage 2 (4C) first; input of stage i is the previous output at 2d channels */
    const Act *y = a->skip[3].y.v;
    for (int i = 2; i >= 0; i--) {
        int d = m->C << i, hi = h >> i, wi = w >> i;
        size_t rows_in = (size_t)B * (hi / 2) * (wi / 2);
        NormBuf *n = &a->up[i].n;
        be->layernorm_forward(be, n->y.v, n->mean, n->rstd, y, P + m->up_norm_w[i], P + m->up_norm_b[i], rows_in,
                              2 * d, EPS);
        be->convT_forward_add(be, a->up[i].sum.v, n->y.v, a->skip[i].y.v, P + m->up_w[i], P + m->up_b[i], B, hi / 2,
                              wi / 2, 2 * d, d, 2);
        y = stage_forward(m->dec[i], be, a->dec[i], P, a->up[i].sum.v, B, opt);
    }

    /* heads */
    for (int k = 0; k < a->n_outputs; k++) {
        const HeadDesc *hd = &m->head[k];
        int hk = h >> k, wk = w >> k;
        const Act *hx = a->dec[k][2].out.v;
        if (hd->has_project) {
            conv_pair_forward(be, &a->head[k].proj, P, hx, FIRST_CONVT_2, B, hk, wk, hd->dim, hd->mid,
                              hd->t_w, hd->t_b, hd->n1_w, hd->n1_b, hd->c_w, hd->c_b, 1, hd->n2_w, hd->n2_b);
            hx = a->head[k].proj.n2.y.v;
            hk *= 2;
            wk *= 2;
        }
        be->convT_forward(be, a->head[k].logits.v, hx, P + hd->up_w, P + hd->up_b, B, hk, wk, hd->mid, m->K, 4);
        /* callers see fp32 logits whatever the Act storage (the loss reads the Acts themselves):
         * the logits themselves when Acts are floats, else one conversion; none for a caller that
         * asked for no outputs (a training step: only the loss reads them) */
        if (!outputs) continue;
        outputs[k] = (float *)a->head[k].logits.v;
        if (a->outputs[k]) {
            be->act_to_f32(be, a->outputs[k], a->head[k].logits.v, (size_t)B * (H >> k) * (W >> k) * m->K);
            outputs[k] = a->outputs[k];
        }
    }
    return a->n_outputs;
}

#define W_DICE 1.2f
#define W_CE 0.8f
#define DICE_SMOOTH 1e-5
#define DICE_EPS 1e-8 /* nnU-Net v1 adds it to the denominator */

void model_loss_queue(const Model *m, Backend *be, ModelActs *a, const int32_t *labels, float *out,
                      const LossReduce *reduce) {
    int B = a->B, H = a->H, W = a->W, K = m->K;
    CHECK(K <= 1024, "too many classes");
    a->labels[0] = (int32_t *)labels;
    /* every output's loss op, then (several ranks) one sum of all statistics and CE terms, then
     * the total on the device: nothing is read back here */
    double n_all[3] = {0, 0, 0};
    for (int k = 0; k < a->n_outputs; k++) {
        if (k > 0) be->downsample_labels(be, a->labels[k], labels, B, H, W, 1 << k);
        size_t n = (size_t)B * (H >> k) * (W >> k);
        be->dice_ce_forward(be, a->loss_terms[k], a->probs[k], a->stats[k], a->head[k].logits.v, a->labels[k], n, K,
                            W_DICE, W_CE);
        n_all[k] = (double)n;
    }
    /* global CE = Σ_ranks CE_local·n_local / Σ n_local: Σ n_local is the global batch's pixels */
    if (reduce)
        for (int k = 0; k < a->n_outputs; k++) n_all[k] = (double)reduce->global_batch * (H >> k) * (W >> k);
    for (int k = 0; k < a->n_outputs; k++) {
        size_t n = (size_t)B * (H >> k) * (W >> k);
        a->ce_weight[k] = (float)(W_CE * (double)n / n_all[k]);
        if (reduce) be->scale(be, a->loss_terms[k] + 2, (float)((double)n / n_all[k]), 1);
    }
    if (reduce) reduce->sum_f32(reduce->ctx, a->stats[0], (size_t)a->n_outputs * 3 * ((size_t)K + 1));
    be->loss_total(be, out, a->stats[0], a->n_outputs, K, W_DICE, W_CE, a->loss_weight[0],
                   a->n_outputs > 1 ? a->loss_weight[1] : 0.0f, a->n_outputs > 2 ? a->loss_weight[2] : 0.0f);
}

float model_loss(const Model *m, Backend *be, ModelActs *a, const int32_t *labels, float *parts_host,
                 const LossReduce *reduce) {
    float back[3];
    model_loss_queue(m, be, a, labels, a->loss_out, reduce);
    be->download(be, back, a->loss_out, sizeof back);
    if (parts_host) memcpy(parts_host, back, sizeof back);
    return back[0];
}

void grads_final(const GradReport *r, size_t first, size_t last) {
    if (!r->hook) return;
    const ParamInfo *a = param_at_offset(r->params, first), *b = param_at_offset(r->params, last);
    CHECK(a && b && (b == a || b == a + 1),
          "model_backward: the tensors at floats %zu and %zu are not one tensor or two adjacent ones", first, last);
    r->hook->ready(r->hook->ctx, first, b->offset + b->numel - first);
}

/* After every op that accumulates into parameter gradients comes grads_final for those
 * parameters: each gets its whole gradient from that one op, so it is final there. */
void model_backward(const Model *m, Backend *be, ModelActs *a, const float *P, float *G, const GradsReady *ready) {
    int B = a->B, H = a->H, W = a->W;
    const GradReport rep = {ready, &m->params}, *report = &rep;
    int h = H / m->P, w = W / m->P;
    be->zero(be, a->grad_arena, a->grad_used); /* every stage-level gradient: one memset of their arena */

    /* loss and heads */
    for (int k = 0; k < a->n_outputs; k++) {
        const HeadDesc *hd = &m->head[k];
        size_t n = (size_t)B * (H >> k) * (W >> k);
        be->dice_ce_backward(be, a->head[k].logits.g, a->probs[k], a->stats[k], a->labels[k], n, m->K, W_DICE,
                             a->ce_weight[k], a->loss_weight[k]);
        int hk = h >> k, wk = w >> k;
        Act *dec_g = a->dec[k][2].out.g;
        const Act *dec_v = a->dec[k][2].out.v;
        if (hd->has_project) {
            be->convT_backward(be, a->head[k].proj.n2.y.g, G + hd->up_w, G + hd->up_b, a->head[k].logits.g,
                               a->head[k].proj.n2.y.v, P + hd->up_w, B, 2 * hk, 2 * wk, hd->mid, m->K, 4);
            grads_final(report, hd->up_w, hd->up_b);
            conv_pair_backward(be, &a->head[k].proj, P, G, dec_v, dec_g, FIRST_CONVT_2, B, hk, wk,
                               hd->dim, hd->mid, hd->t_w, hd->t_b, hd->n1_w, hd->n1_b, hd->c_w, hd->c_b, 1, hd->n2_w,
                               hd->n2_b, report);
        } else {
            be->convT_backward(be, dec_g, G + hd->up_w, G + hd->up_b, a->head[k].logits.g, dec_v, P + hd->up_w, B, hk,
                               wk, hd->mid, m->K, 4);
            grads_final(report, hd->up_w, hd->up_b);
        }
    }

    /* decoder, in reverse of the forward order: 0 → 1 → 2 */
    for (int i = 0; i <= 2; i++) {
        int d = m->C << i, hi = h >> i, wi = w >> i;
        size_t rows_in = (size_t)B * (hi / 2) * (wi / 2), rows = (size_t)B * hi * wi;
        stage_backward(m->dec[i], be, a->dec[i], &a->scratch, P, G, a->up[i].sum.v, a->up[i].sum.g, B, report);
        /* sum = t + skip: skip's gradient gains sum's; t (read by nothing else) has exactly sum's,
         * so the transposed conv's backward reads sum's gradient itself */
        be->accumulate(be, a->skip[i].y.g, a->up[i].sum.g, rows * d);
        NormBuf *n = &a->up[i].n;
        be->convT_backward(be, n->y.g, G + m->up_w[i], G + m->up_b[i], a->up[i].sum.g, n->y.v, P + m->up_w[i], B,
                           hi / 2, wi / 2, 2 * d, d, 2);
        grads_final(report, m->up_w[i], m->up_b[i]);
        const Act *y_in = i == 2 ? a->skip[3].y.v : a->dec[i + 1][2].out.v;
        Act *dy_in = i == 2 ? a->skip[3].y.g : a->dec[i + 1][2].out.g;
        be->layernorm_backward(be, dy_in, G + m->up_norm_w[i], G + m->up_norm_b[i], n->y.g, y_in, n->mean, n->rstd,
                               P + m->up_norm_w[i], rows_in, 2 * d);
        grads_final(report, m->up_norm_w[i], m->up_norm_b[i]);
    }

    /* encoder, deepest first */
    for (int i = 3; i >= 0; i--) {
        int d = m->C << i, hi = h >> i, wi = w >> i;
        size_t rows = (size_t)B * hi * wi;
        BlockActs *last = &a->enc[i][2];
        if (i < 3) {
            NormBuf *n = &a->down[i].n;
            be->conv3x3_backward(be, n->y.g, G + m->down_w[i], G + m->down_b[i], a->down[i].conv.g, n->y.v,
                                 P + m->down_w[i], B, hi, wi, d, 2 * d, 2);
            grads_final(report, m->down_w[i], m->down_b[i]);
            be->layernorm_backward_gelu(be, last->out.g, G + m->down_norm_w[i], G + m->down_norm_b[i], n->y.g,
                                        a->down[i].g.v, last->out.v, n->mean, n->rstd, P + m->down_norm_w[i], rows,
                                        d);
            grads_final(report, m->down_norm_w[i], m->down_norm_b[i]);
        }
        NormBuf *sk = &a->skip[i];
        be->layernorm_backward(be, last->out.g, G + m->skip_norm_w[i], G + m->skip_norm_b[i], sk->y.g, last->out.v,
                               sk->mean, sk->rstd, P + m->skip_norm_w[i], rows, d);
        grads_final(report, m->skip_norm_w[i], m->skip_norm_b[i]);
        const Act *x_in = i == 0 ? a->stem_norm.y.v : a->down[i - 1].conv.v;
        Act *dx_in = i == 0 ? a->stem_norm.y.g : a->down[i - 1].conv.g;
        stage_backward(m->enc[i], be, a->enc[i], &a->scratch, P, G, x_in, dx_in, B, report);
    }

    /* stem */
    ConvPairActs *lc = &a->stem[m->n_stem - 1];
    be->layernorm_backward(be, lc->c2.g, G + m->stem_norm_w, G + m->stem_norm_b, a->stem_norm.y.g, lc->c2.v,
                           a->stem_norm.mean, a->stem_norm.rstd, P + m->stem_norm_w, (size_t)B * h * w, m->C);
    grads_final(report, m->stem_norm_w, m->stem_norm_b);
    for (int i = m->n_stem - 1; i >= 0; i--) {
        const StemBlockDesc *s = &m->stem[i];
        int hi = H >> i, wi = W >> i;
        const Act *x = i == 0 ? a->image : a->stem[i - 1].n2.y.v;
        Act *dx = i == 0 ? NULL : a->stem[i - 1].n2.y.g;
        conv_pair_backward(be, &a->stem[i], P, G, x, dx, FIRST_CONV_S2, B, hi, wi, s->cin, s->cout, s->conv1_w,
                           s->conv1_b, s->norm1_w, s->norm1_b, s->conv2_w, s->conv2_b, !s->last, s->norm2_w,
                           s->norm2_b, report);
    }
}
