/* cmd_trace.c — `unet2022 trace CONFIG --weights W --batch X --out OUT [--steps S] [--lr LR]`
 *
 * Runs the training computation on one given batch and writes everything it computed:
 * the outputs ("out.k", NCHW logits), the loss ("loss"), every parameter gradient
 * ("grad.<state_dict key>", before clipping) and, with --steps S, the losses of S
 * training steps (forward, backward, clip 12, Adam) on that batch ("losses").
 * Stochastic depth is off, so the result is a deterministic function of the inputs:
 * this is how the C model is compared with a reference implementation, and how a user
 * checks a port or a weights file. The batch file holds "image" F32 (B, Cin, H, W) and
 * "labels" I32 (B, H, W), both in PyTorch's layout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "backend.h"
#include "check.h"
#include "commands.h"
#include "config.h"
#include "model.h"
#include "optimizer.h"
#include "session.h"
#include "safetensors.h"
#include "weights_io.h"

static int error(const char *msg) {
    fprintf(stderr, "unet2022: error: %s\n", msg);
    return 2;
}

/* NCHW ↔ NHWC on the host */
static void nchw_to_nhwc(float *dst, const float *src, int B, int C, int H, int W) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    dst[(((size_t)b * H + y) * W + x) * C + c] = src[(((size_t)b * C + c) * H + y) * W + x];
}

static void nhwc_to_nchw(float *dst, const float *src, int B, int C, int H, int W) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    dst[(((size_t)b * C + c) * H + y) * W + x] = src[(((size_t)b * H + y) * W + x) * C + c];
}

static const char *SUMMARY =
    "  runs one training computation on a given batch and writes its outputs, loss and gradients\n"
    "  (and with --steps S the losses of S training steps), to check against PyTorch";

/* The batch file's tensors, checked against the network: 'image' F32 (B, Cin, H, W) with H, W
 * multiples of P·8, 'labels' I32 (B, H, W) in [0, K). 0, or -1 with the message in err. */
typedef struct {
    int B, H, W;
    const float *image_nchw;
    const int32_t *labels;
} TraceBatch;

static int check_batch(TraceBatch *tb, const Model *m, const StFile *batch, const char *path, char *err,
                       size_t err_len) {
    const StTensor *img = st_find(batch, "image"), *lab = st_find(batch, "labels");
    if (!img || img->dtype != ST_F32 || img->ndim != 4 || img->shape[1] != m->cin)
        return error_at(err, err_len, "%s: expected tensor 'image' F32 (B, %d, H, W)", path, m->cin);
    int B = (int)img->shape[0], H = (int)img->shape[2], W = (int)img->shape[3];
    if (!lab || lab->dtype != ST_I32 || lab->ndim != 3 || lab->shape[0] != B || lab->shape[1] != H ||
        lab->shape[2] != W)
        return error_at(err, err_len, "%s: expected tensor 'labels' I32 (%d, %d, %d)", path, B, H, W);
    const int32_t *labels = lab->data;
    for (size_t i = 0; i < (size_t)B * H * W; i++)
        if (labels[i] < 0 || labels[i] >= m->K)
            return error_at(err, err_len, "%s: labels[%zu] = %d is outside [0, %d)", path, i, labels[i], m->K);
    int unit = m->P * 8;
    if (H % unit || W % unit)
        return error_at(err, err_len, "%s: image is %d x %d; both sides must be multiples of %d", path, H, W, unit);
    *tb = (TraceBatch){.B = B, .H = H, .W = W, .image_nchw = img->data, .labels = labels};
    return 0;
}

/* The backend buffers of one traced pass. */
typedef struct {
    float *image, *params, *grads;
    int32_t *labels;
    ModelActs *acts;
} TraceBufs;

static void trace_bufs_create(TraceBufs *t, const Model *m, Backend *be, const TraceBatch *tb, const float *params) {
    size_t n_img = (size_t)tb->B * m->cin * tb->H * tb->W, n_lab = (size_t)tb->B * tb->H * tb->W;
    float *tmp = xmalloc(n_img * sizeof(float));
    nchw_to_nhwc(tmp, tb->image_nchw, tb->B, m->cin, tb->H, tb->W);
    t->image = be->alloc(be, n_img * sizeof(float));
    be->upload(be, t->image, tmp, n_img * sizeof(float));
    free(tmp);
    t->labels = be->alloc(be, n_lab * sizeof(int32_t));
    be->upload(be, t->labels, tb->labels, n_lab * sizeof(int32_t));
    t->params = be->alloc(be, m->params.total * sizeof(float));
    be->upload(be, t->params, params, m->params.total * sizeof(float));
    t->grads = be->alloc(be, m->params.total * sizeof(float));
    t->acts = model_acts_create(m, be, tb->B, tb->H, tb->W, 0);
}

static void trace_bufs_free(TraceBufs *t, Backend *be) {
    model_acts_free(t->acts);
    be->release(be, t->image);
    be->release(be, t->labels);
    be->release(be, t->params);
    be->release(be, t->grads);
}

/* "out.k": the outputs in PyTorch's NCHW layout; host_outs[k] owns each tensor's data. */
static void add_outputs(StFile *out, float **host_outs, Backend *be, const Model *m, const TraceBatch *tb,
                        float *const *outs, int n_out) {
    for (int k = 0; k < n_out; k++) {
        int hk = tb->H >> k, wk = tb->W >> k;
        size_t n = (size_t)tb->B * m->K * hk * wk;
        float *nhwc = xmalloc(n * sizeof(float));
        host_outs[k] = xmalloc(n * sizeof(float));
        be->download(be, nhwc, outs[k], n * sizeof(float));
        nhwc_to_nchw(host_outs[k], nhwc, tb->B, m->K, hk, wk);
        free(nhwc);
        char name[16];
        snprintf(name, sizeof name, "out.%d", k);
        int64_t shape[4] = {tb->B, m->K, hk, wk};
        st_add(out, name, ST_F32, 4, shape, host_outs[k]);
    }
}

/* --steps S: S training steps (forward, loss, backward, clip 12, Adam) on the same batch, each
 * loss taken before its update; losses[s] receives them. */
static void run_steps(float *losses, Backend *be, const Model *m, TraceBufs *t, double lr, int steps) {
    Adam adam;
    adam_create(&adam, be, m->params.total, lr);
    PassOptions opt = {.training = 0, .seed = 0, .step = 0};
    float *outs[3];
    for (int s = 0; s < steps; s++) {
        opt.step = (uint64_t)s;
        model_forward(m, be, t->acts, t->params, t->image, &opt, outs);
        model_loss_queue(m, be, t->acts, t->labels, adam_loss_slot(&adam), NULL);
        be->zero(be, t->grads, m->params.total * sizeof(float));
        model_backward(m, be, t->acts, t->params, t->grads, NULL);
        adam_clip_and_step(&adam, be, t->params, t->grads);
        float loss3[3];
        double norm = adam_step_scalars(&adam, be, loss3); /* one read per step, as the trainer */
        losses[s] = loss3[0];
        fprintf(stderr, "step %d: loss %.6f grad-norm %.4f\n", s + 1, losses[s], norm);
    }
    adam_destroy(&adam, be);
}

int cmd_trace(int argc, char **argv) {
    const char *cfg_path = NULL, *weights = NULL, *batch_path = NULL, *out_path = NULL;
    int steps = 0, threads = 0;
    double lr = 0; /* 0: the config's train.lr */
    const ArgPos pos[] = {{"CONFIG", &cfg_path, 1}};
    const ArgOpt opts[] = {
        OPT_REQUIRED("--weights", &weights, "W.safetensors", "the network's weights"),
        OPT_REQUIRED("--batch", &batch_path, "BATCH.safetensors", "'image' F32 (B, Cin, H, W), 'labels' I32 (B, H, W)"),
        OPT_REQUIRED("--out", &out_path, "OUT.safetensors", "outputs, loss, gradients (and losses)"),
        OPT_INT("--steps", &steps, "S", "training steps on the batch after the first pass (default 0)", 0, 100000),
        OPT_POSITIVE("--lr", &lr, "LR", "learning rate of those steps (default: train.lr)", 1e9),
        OPT_INT("--threads", &threads, "T", "CPU threads (default: all cores)", 0, 65536),
    };
    const ArgSpec spec = {"trace", SUMMARY, pos, ARGS_N(pos), opts, ARGS_N(opts), NULL, NULL, NULL};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    Session s;
    SessionOptions so = {.command = "trace", .config = cfg_path, .weights = weights, .backend = "cpu", .threads = threads};
    if ((st = session_open(&s, &so)) != 0) return st;
    if (lr > 0) s.cfg.lr = lr;
    const Model *m = &s.model;
    Backend *be = s.be;
    char err[1024];
    StFile batch;
    TraceBatch tb = {0};
    if (st_read(&batch, batch_path, err, sizeof err) != 0) return session_close(&s), error(err);
    if (check_batch(&tb, m, &batch, batch_path, err, sizeof err) != 0) { /* released: the ASan build checks */
        st_free(&batch);
        session_close(&s);
        return error(err);
    }

    TraceBufs t;
    trace_bufs_create(&t, m, be, &tb, s.params);
    PassOptions opt = {.training = 0, .seed = 0, .step = 0}; /* no drop path: a deterministic function */
    float *outs[3];
    int n_out = model_forward(m, be, t.acts, t.params, t.image, &opt, outs);
    float loss = model_loss(m, be, t.acts, t.labels, NULL, NULL);
    model_backward(m, be, t.acts, t.params, t.grads, NULL);

    StFile out;
    st_init(&out);
    st_add_meta(&out, "config", cfg_path);
    float *host_outs[3];
    add_outputs(&out, host_outs, be, m, &tb, outs, n_out);
    int64_t one = 1;
    st_add(&out, "loss", ST_F32, 1, &one, &loss);
    float *grads_host = xmalloc(m->params.total * sizeof(float));
    be->download(be, grads_host, t.grads, m->params.total * sizeof(float));
    char (*gnames)[PARAM_NAME_MAX + 8] = xmalloc((size_t)m->params.count * sizeof *gnames);
    for (int i = 0; i < m->params.count; i++) {
        const ParamInfo *p = &m->params.items[i];
        snprintf(gnames[i], sizeof gnames[i], "grad.%s", p->name);
        st_add(&out, gnames[i], ST_F32, p->ndim, p->shape, grads_host + p->offset);
    }
    float *losses = xcalloc(steps ? (size_t)steps : 1, sizeof(float));
    if (steps > 0) {
        run_steps(losses, be, m, &t, s.cfg.lr, steps);
        int64_t ns = steps;
        st_add(&out, "losses", ST_F32, 1, &ns, losses);
    }

    int rc = st_write_file(&out, out_path, err, sizeof err) == 0 ? 0 : error(err);
    printf("trace: %d output(s), loss %.6f, %d gradients -> %s\n", n_out, loss, m->params.count, out_path);
    st_free(&out);
    free(losses);
    free(gnames);
    free(grads_host);
    for (int k = 0; k < n_out; k++) free(host_outs[k]);
    trace_bufs_free(&t, be);
    st_free(&batch);
    session_close(&s);
    return rc;
}
