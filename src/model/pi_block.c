/* pi_block.c — one PI block (docs/network.md, "The PI block"), forward and backward.
 *
 *   ConvNeXt part:  x1 = x + DropPath(γ · pwconv2(GELU(pwconv1(LN₁e-6(dwconv7(x))))))
 *   attention part: u = LN₁e-5(x1); r = roll(pad(u), −s)
 *                   o = crop(roll(proj(WindowAttention(qkv(r)) + dwconv7(r)), +s))
 *                   out = x1 + DropPath(o)
 * The attention's depthwise conv sees the normed, padded, rolled map (a detail the paper
 * leaves out), and its output joins the merged heads before proj. qkv and proj are per-token
 * linears, so they run on the whole (padded) map; the window partition happens inside the
 * attention op's indexing. */
#include <string.h>

#include "model_internal.h"
#include "rng.h"

/* Per-sample drop-path scales for one residual branch: 0 or 1/keep (timm's DropPath).
 * Keyed by (seed, step, block, branch, sample) so any rank layout draws the same. */
static int draw_drop_path(float *scale_host, int B, float rate, const PassOptions *opt, int block_id, int branch) {
    if (!opt->training || rate <= 0.0f) return 0;
    float keep = 1.0f - rate;
    uint64_t stream = opt->step * 4096u + (uint64_t)block_id * 2u + (uint64_t)branch;
    for (int b = 0; b < B; b++) {
        double u = rng_uniform(rng_key(opt->seed, stream, opt->sample_offset + (uint64_t)b));
        scale_host[b] = u < keep ? 1.0f / keep : 0.0f;
    }
    return 1;
}

/* Shift 0 and a map that is a whole number of windows: pad and roll, and their inverse, are the
 * identity, so the attention works on u itself and the copies (forward and backward) are
 * skipped. */
static int window_is_identity(const BlockDesc *bd, const BlockActs *ba) {
    return bd->shift == 0 && ba->Hp == ba->H && ba->Wp == ba->W;
}

void pi_block_draw(const BlockDesc *bd, BlockActs *ba, int B, const PassOptions *opt) {
    ba->dp_active = draw_drop_path(ba->dp_host1, B, bd->drop_rate, opt, bd->id, 0);
    draw_drop_path(ba->dp_host2, B, bd->drop_rate, opt, bd->id, 1);
}

/* The drop-path scales were drawn and uploaded by model_forward (model_draw_step) */
void pi_block_forward(const BlockDesc *bd, Backend *be, BlockActs *ba, const float *params, const Act *x, int B,
                      const PassOptions *opt) {
    (void)opt;
    const float *P = params;
    int d = bd->dim, H = ba->H, W = ba->W, Hp = ba->Hp, Wp = ba->Wp;
    size_t N = ba->N, Np = ba->Np;

    /* ConvNeXt part */
    /* ln1 = LN(dw1), dw1 = dwconv7(x): one fused op (dw1 stays: LayerNorm's backward reads it) */
    be->dwconv7_layernorm_forward(be, ba->dw1, ba->ln1, ba->mean1, ba->rstd1, x, P + bd->dw_w, P + bd->dw_b,
                                  P + bd->norm_w, P + bd->norm_b, B, H, W, d, 1e-6f);
    be->linear_gelu_forward(be, ba->ge, ba->fc1, ba->ln1, P + bd->fc1_w, P + bd->fc1_b, N, d, 4 * d);
    be->linear_forward(be, ba->fc2, ba->ge, P + bd->fc2_w, P + bd->fc2_b, N, 4 * d, d);
    /* x1 = x + dp(γ·fc2) and the attention part's u = LN(x1): one fused op */
    const size_t per = (size_t)H * W * d;
    be->residual_layernorm_forward(be, ba->x1, ba->u, ba->mean2, ba->rstd2, x, ba->fc2, P + bd->gamma,
                                   ba->dp_active ? ba->dp_scale1 : NULL, P + bd->n1_w, P + bd->n1_b, B, per, d,
                                   1e-5f);

    /* attention part */
    const int ident = window_is_identity(bd, ba);
    const Act *r = ident ? ba->u : ba->r;
    if (!ident) be->pad_roll_forward(be, ba->r, ba->u, B, H, W, d, Hp, Wp, bd->shift);
    be->linear_forward(be, ba->qkv, r, P + bd->qkv_w, P + bd->qkv_b, Np, d, 3 * d);
    be->window_attention_forward(be, ba->att, ba->probs, ba->qkv, P + bd->table, B, Hp, Wp, d, bd->heads,
                                 bd->window, bd->shift);
    /* att += dwconv7(r): att now holds proj's input */
    be->dwconv7_forward_add(be, ba->att, r, P + bd->dw2_w, P + bd->dw2_b, B, Hp, Wp, d);
    be->linear_forward(be, ba->proj, ba->att, P + bd->proj_w, P + bd->proj_b, Np, d, d);
    const Act *o = ident ? ba->proj : ba->o;
    if (!ident) be->roll_crop_forward(be, ba->o, ba->proj, B, H, W, d, Hp, Wp, bd->shift);
    /* out = x1 + dp(o): one fused op */
    be->residual_forward(be, ba->out.v, ba->x1, o, NULL, ba->dp_active ? ba->dp_scale2 : NULL, B, per, d);
}

void pi_block_backward(const BlockDesc *bd, Backend *be, BlockActs *ba, BlockScratch *s, const float *params,
                       float *grads, const Act *x, Act *dx, int B, const GradReport *report) {
    const float *P = params;
    float *G = grads;
    int d = bd->dim, H = ba->H, W = ba->W, Hp = ba->Hp, Wp = ba->Wp;
    size_t N = ba->N, Np = ba->Np;
    const Act *dout = ba->out.g; /* (N, d) */
    size_t per = (size_t)H * W * d;

    /* attention part: out = x1 + dp(o); the residual path's gradient (dout into d_x1) joins in
     * layernorm_backward_residual below */
    const int ident = window_is_identity(bd, ba);
    const Act *r = ident ? ba->u : ba->r;
    const Act *d_o = dout;
    if (ba->dp_active) { /* d_o = dp(dout), overwritten */
        be->residual_backward(be, NULL, s->d_o, NULL, dout, NULL, NULL, ba->dp_scale2, B, per, d);
        d_o = s->d_o;
    }
    const Act *d_proj = d_o;
    if (!ident) {
        be->roll_crop_backward_first(be, s->d_proj, d_o, B, H, W, d, Hp, Wp, bd->shift); /* padding gets 0 */
        d_proj = s->d_proj;
    }
    be->linear_backward_first(be, s->d_sum, G + bd->proj_w, G + bd->proj_b, d_proj, ba->att, P + bd->proj_w, Np, d, d);
    grads_final(report, bd->proj_w, bd->proj_b);
    /* d_sum flows to both the attention output and the depthwise branch; d_r's first writer
     * overwrites it, qkv's backward below adds to it */
    be->dwconv7_backward_first(be, s->d_r, G + bd->dw2_w, G + bd->dw2_b, s->d_sum, r, P + bd->dw2_w, B, Hp, Wp, d);
    grads_final(report, bd->dw2_w, bd->dw2_b);
    be->window_attention_backward_first(be, s->d_qkv, G + bd->table, s->d_sum, ba->qkv, ba->probs, B, Hp, Wp, d,
                                        bd->heads, bd->window, bd->shift);
    grads_final(report, bd->table, bd->table);
    be->linear_backward(be, s->d_r, G + bd->qkv_w, G + bd->qkv_b, s->d_qkv, r, P + bd->qkv_w, Np, d, 3 * d);
    grads_final(report, bd->qkv_w, bd->qkv_b);
    const Act *d_u = s->d_r;
    if (!ident) {
        be->pad_roll_backward_first(be, s->d_u, s->d_r, B, H, W, d, Hp, Wp, bd->shift);
        d_u = s->d_u;
    }
    /* d_x1 = dout (the residual path) + LayerNorm's input gradient, and straight on into the
     * ConvNeXt part: x1 = x + dp(γ·fc2): dx += d_x1 (residual path), d_fc2 = γ·dp(d_x1), dγ; one
     * op, d_x1 never stored */
    be->layernorm_backward_residual_branch(be, dx, s->d_fc2, G + bd->n1_w, G + bd->n1_b, G + bd->gamma, dout, d_u,
                                           ba->x1, ba->mean2, ba->rstd2, P + bd->n1_w, ba->fc2, P + bd->gamma,
                                           ba->dp_active ? ba->dp_scale1 : NULL, B, per, d);
    grads_final(report, bd->n1_w, bd->n1_b);
    grads_final(report, bd->gamma, bd->gamma);
    be->linear_backward_first(be, s->d_ge, G + bd->fc2_w, G + bd->fc2_b, s->d_fc2, ba->ge, P + bd->fc2_w, N, 4 * d, d);
    grads_final(report, bd->fc2_w, bd->fc2_b);
    be->gelu_backward_bias_first(be, s->d_fc1, G + bd->fc1_b, s->d_ge, ba->fc1, N, 4 * d); /* + fc1's bias gradient */
    be->linear_backward_first(be, s->d_ln1, G + bd->fc1_w, NULL, s->d_fc1, ba->ln1, P + bd->fc1_w, N, d, 4 * d);
    grads_final(report, bd->fc1_w, bd->fc1_b);
    be->layernorm_backward_residual(be, s->d_dw1, G + bd->norm_w, G + bd->norm_b, NULL, s->d_ln1, ba->dw1, ba->mean1,
                                    ba->rstd1, P + bd->norm_w, N, d); /* d_dw1 overwritten */
    grads_final(report, bd->norm_w, bd->norm_b);
    be->dwconv7_backward(be, dx, G + bd->dw_w, G + bd->dw_b, s->d_dw1, x, P + bd->dw_w, B, H, W, d);
    grads_final(report, bd->dw_w, bd->dw_b);
}
