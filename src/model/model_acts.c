/* model_acts.c — plans and allocates every activation and gradient buffer of one batch
 * shape. The same walk either counts bytes (for `unet2022 info`'s memory estimate) or
 * allocates through the backend, so the estimate is exactly what a run allocates. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model_internal.h"

static void *take(ModelActs *a, size_t bytes, int backward) {
    if (backward) a->bytes_bwd += bytes;
    else a->bytes_fwd += bytes;
    if (a->count_only) return NULL;
    void *p = a->be->alloc(a->be, bytes);
    if (a->n_ptrs == a->cap_ptrs) {
        a->cap_ptrs = a->cap_ptrs ? 2 * a->cap_ptrs : 512;
        a->ptrs = realloc(a->ptrs, (size_t)a->cap_ptrs * sizeof(void *));
        CHECK(a->ptrs, "out of memory");
    }
    a->ptrs[a->n_ptrs++] = p;
    return p;
}

/* Act arrays (a->act_bytes each element) and float arrays, kept for backward or not. */
static Act *fwd(ModelActs *a, size_t numel) { return take(a, numel * a->act_bytes, 0); }
static Act *bwd(ModelActs *a, size_t numel) { return take(a, numel * a->act_bytes, 1); }
static float *fwd_f32(ModelActs *a, size_t numel) { return take(a, numel * sizeof(float), 0); }

#define GRAD_ALIGN 256 /* as cudaMalloc's: every vectorised access stays aligned */

/* A stage-level tensor with a gradient twin that backward zeroes first: the twin comes from the
 * gradient arena (model_acts_create sizes it with a counting pass of this same walk). */
static Buf buf(ModelActs *a, size_t numel) {
    size_t gb = (numel * a->act_bytes + GRAD_ALIGN - 1) / GRAD_ALIGN * GRAD_ALIGN;
    Buf b = {fwd(a, numel), NULL};
    if (a->grad_arena) b.g = (Act *)((char *)a->grad_arena + a->grad_used);
    else a->bytes_bwd += gb; /* counting: the arena's share (allocating: counted once, whole) */
    a->grad_used += gb;
    if (a->n_grads == a->cap_grads) {
        a->cap_grads = a->cap_grads ? 2 * a->cap_grads : 256;
        a->grads = realloc(a->grads, (size_t)a->cap_grads * sizeof(Buf));
        a->grad_numel = realloc(a->grad_numel, (size_t)a->cap_grads * sizeof(size_t));
        CHECK(a->grads && a->grad_numel, "out of memory");
    }
    a->grads[a->n_grads] = b;
    a->grad_numel[a->n_grads++] = numel;
    return b;
}

static NormBuf normbuf(ModelActs *a, size_t rows, int c) {
    NormBuf n = {buf(a, rows * (size_t)c), fwd_f32(a, rows), fwd_f32(a, rows)};
    return n;
}

/* Block k's two (B) slices of the drop-path scales, in backend memory and in the staging. */
static void dp_slices(BlockActs *ba, ModelActs *a, int k, int B) {
    ba->dp_scale1 = a->dp_dev + (size_t)(2 * k) * B;
    ba->dp_scale2 = a->dp_dev + (size_t)(2 * k + 1) * B;
    ba->dp_host1 = a->dp_host + (size_t)(2 * k) * B;
    ba->dp_host2 = a->dp_host + (size_t)(2 * k + 1) * B;
}

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

static void plan_block(ModelActs *a, BlockActs *ba, const BlockDesc *bd, int B, int H, int W) {
    int d = bd->dim, w = bd->window;
    memset(ba, 0, sizeof *ba);
    ba->H = H;
    ba->W = W;
    ba->Hp = round_up(H, w);
    ba->Wp = round_up(W, w);
    ba->N = (size_t)B * H * W;
    ba->Np = (size_t)B * ba->Hp * ba->Wp;
    size_t N = ba->N, Np = ba->Np, nd = N * d, npd = Np * d;
    size_t n_win = (size_t)(ba->Hp / w) * (ba->Wp / w);
    ba->dw1 = fwd(a, nd);
    ba->ln1 = fwd(a, nd);
    ba->mean1 = fwd_f32(a, N);
    ba->rstd1 = fwd_f32(a, N);
    ba->fc1 = fwd(a, 4 * nd);
    ba->ge = fwd(a, 4 * nd);
    ba->fc2 = fwd(a, nd); /* layer scale and drop path are fused into the residual ops: no ls, dp1, dp2 */
    ba->x1 = fwd(a, nd);
    ba->u = fwd(a, nd);
    ba->mean2 = fwd_f32(a, N);
    ba->rstd2 = fwd_f32(a, N);
    /* shift 0 on a whole number of windows: the attention reads u itself (pi_block.c), no r, o */
    const int ident = bd->shift == 0 && ba->Hp == H && ba->Wp == W;
    if (!ident) ba->r = fwd(a, npd);
    ba->qkv = fwd(a, 3 * npd);
    ba->probs = fwd(a, (size_t)B * n_win * bd->heads * w * w * w * w);
    ba->att = fwd(a, npd);
    ba->proj = fwd(a, npd);
    if (!ident) ba->o = fwd(a, nd);
    ba->out = buf(a, nd);
    BlockScratch *s = &a->scratch;
    if (nd > s->max_nd) s->max_nd = nd;
    if (npd > s->max_npd) s->max_npd = npd;
}

static void plan_scratch(ModelActs *a) {
    BlockScratch *s = &a->scratch;
    size_t nd = s->max_nd, npd = s->max_npd;
    s->d_o = bwd(a, nd);
    s->d_u = bwd(a, nd);
    s->d_fc2 = bwd(a, nd);
    s->d_ln1 = bwd(a, nd);
    s->d_dw1 = bwd(a, nd);
    s->d_ge = bwd(a, 4 * nd);
    s->d_fc1 = bwd(a, 4 * nd);
    s->d_proj = bwd(a, npd);
    s->d_sum = bwd(a, npd);
    s->d_r = bwd(a, npd);
    s->d_qkv = bwd(a, 3 * npd);
}

static void plan_conv_pair(ModelActs *a, ConvPairActs *c, size_t rows, int ch, int with_second_norm) {
    c->c1 = buf(a, rows * ch);
    c->g1 = buf(a, rows * ch);
    c->n1 = normbuf(a, rows, ch);
    c->c2 = buf(a, rows * ch);
    if (with_second_norm) {
        c->g2 = buf(a, rows * ch);
        c->n2 = normbuf(a, rows, ch);
    }
}

ModelActs *model_acts_create(const Model *m, Backend *be, int B, int H, int W, int count_only) {
    int unit = m->P * 8;
    CHECK(H % unit == 0 && W % unit == 0, "input %dx%d is not a multiple of %d (patch size x 8)", H, W, unit);
    ModelActs *a = xcalloc(1, sizeof(ModelActs));
    CHECK(be || count_only, "model_acts_create: allocating needs a backend");
    a->be = be;
    a->act_bytes = be ? be->act_bytes : sizeof(float);
    a->count_only = count_only;
    a->B = B;
    a->H = H;
    a->W = W;
    size_t need = 0;
    if (!count_only) { /* the gradient arena: sized by a counting pass of the same walk */
        ModelActs *plan = model_acts_create(m, be, B, H, W, 1);
        need = plan->grad_used;
        model_acts_free(plan);
        a->grad_arena = take(a, need ? need : GRAD_ALIGN, 1);
    }
    size_t b = (size_t)B;

    int convert = a->act_bytes != sizeof(float); /* fp32 Acts need no copies at the boundary */
    if (convert) a->image_act = fwd(a, b * H * W * m->cin);
    for (int i = 0; i < m->n_stem; i++) {
        const StemBlockDesc *s = &m->stem[i];
        size_t rows = b * (H >> (i + 1)) * (W >> (i + 1));
        plan_conv_pair(a, &a->stem[i], rows, s->cout, !s->last);
    }
    int h0 = H / m->P, w0 = W / m->P;
    a->stem_norm = normbuf(a, b * h0 * w0, m->C);

    for (int i = 0; i < 4; i++) {
        int hi = h0 >> i, wi = w0 >> i, d = m->C << i;
        size_t rows = b * hi * wi;
        for (int j = 0; j < 3; j++) plan_block(a, &a->enc[i][j], &m->enc[i][j], B, hi, wi);
        a->skip[i] = normbuf(a, rows, d);
        if (i < 3) {
            a->down[i].g = buf(a, rows * d);
            a->down[i].n = normbuf(a, rows, d);
            a->down[i].conv = buf(a, rows / 4 * 2 * d);
        }
    }
    for (int i = 2; i >= 0; i--) {
        int hi = h0 >> i, wi = w0 >> i, d = m->C << i;
        size_t rows = b * hi * wi;
        a->up[i].n = normbuf(a, rows / 4, 2 * d);
        a->up[i].t = (Buf){fwd(a, rows * d), NULL}; /* no gradient twin: backward reads sum's (model_forward.c) */
        a->up[i].sum = buf(a, rows * d);
        for (int j = 0; j < 3; j++) plan_block(a, &a->dec[i][j], &m->dec[i][j], B, hi, wi);
    }

    a->n_outputs = m->net.deep_supervision ? 3 : 1;
    model_ds_weights(m, a->loss_weight);
    /* the outputs' (tp, fp, fn), then their loss terms, in one block: the ranks sum it in one
     * all-reduce and loss_total reads it on the device */
    float *stats = fwd_f32(a, (size_t)a->n_outputs * 3 * ((size_t)m->K + 1));
    a->loss_out = fwd_f32(a, 3);
    for (int k = 0; k < a->n_outputs; k++) {
        const HeadDesc *hd = &m->head[k];
        int hk = h0 >> k, wk = w0 >> k;
        if (hd->has_project) {
            plan_conv_pair(a, &a->head[k].proj, b * (2 * hk) * (2 * wk), hd->mid, 1);
        }
        size_t out_rows = b * (H >> k) * (W >> k);
        a->head[k].logits = buf(a, out_rows * m->K);
        if (convert) a->outputs[k] = fwd_f32(a, out_rows * m->K);
        a->probs[k] = fwd_f32(a, out_rows * m->K);
        a->stats[k] = stats + (size_t)k * 3 * (size_t)m->K;
        a->loss_terms[k] = stats + (size_t)a->n_outputs * 3 * (size_t)m->K + 3 * (size_t)k;
        if (k > 0) a->labels[k] = take(a, out_rows * sizeof(int32_t), 0);
    }
    /* drop-path scales of every block, both branches: one upload per pass (model_forward) */
    a->dp_bytes = (size_t)(4 * 3 + 3 * 3) * 2 * (size_t)B * sizeof(float);
    a->dp_dev = fwd_f32(a, a->dp_bytes / sizeof(float));
    if (!a->count_only) {
        a->dp_host = be->host_alloc(be, a->dp_bytes);
        int k = 0;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 3; j++, k++) dp_slices(&a->enc[i][j], a, k, B);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++, k++) dp_slices(&a->dec[i][j], a, k, B);
    }
    plan_scratch(a);
    CHECK(!a->grad_arena || a->grad_used == need, "model_acts_create: the gradient arena (%zu bytes) is not what the walk carved (%zu)",
          need, a->grad_used);
    return a;
}

void model_acts_free(ModelActs *a) {
    if (!a) return;
    if (a->dp_host) a->be->host_free(a->be, a->dp_host);
    for (int i = 0; i < a->n_ptrs; i++) a->be->release(a->be, a->ptrs[i]);
    free(a->ptrs);
    free(a->grads);
    free(a->grad_numel);
    free(a);
}

size_t model_acts_bytes_forward(const ModelActs *a) { return a->bytes_fwd; }
size_t model_acts_bytes_backward(const ModelActs *a) { return a->bytes_bwd; }
