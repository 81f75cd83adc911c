/* gpu_check_nccl.c — `unet2022-check gpu-check-ops --nccl`: the NCCL transport on this job's GPUs, one
 * rank per GPU (on the one-GPU check machine: one rank, an MPI singleton).
 *
 *  1. A plain all-reduce of 4M+3 floats on the device: every sum exact; the f64 (MPI) path.
 *  2. Gradient buckets (src/train/grad_sync.c) through NCCL on the CUDA backend (fp32): every rank
 *     runs the same batch through the demo network, so after the all-reduce each gradient must
 *     be size × the gradient of a plain backward pass, to fp32 rounding (a sum over several ranks
 *     rounds; with one rank the two are equal). Three passes:
 *     the planning pass, then two whose buckets must start while backward still runs — this
 *     exercises the event handshake between the compute stream and NCCL's stream, the grouped
 *     launches, and the compute stream's wait before anything reads the gradients.
 * The last line starts with "nccl:" (tests/gpu/check.sh puts it in its table). */
#if defined(UNET_HAVE_CUDA) && defined(UNET_HAVE_MPI)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "check.h"
#include "clock.h"
#include "comm.h"
#include "comm_nccl.h"
#include "config.h"
#include "gpu_check_nccl.h"
#include "grad_sync.h"
#include "model.h"
#include "rng.h"

#define BUCKET_BYTES ((size_t)64 << 10) /* small: the demo network makes dozens of buckets */
#define TOL_GRAD 1e-5                   /* of the largest |gradient|: the rounding of a sum over ranks */

/* 1: the plain all-reduce. Returns 1 when every sum is exact. */
static int check_plain(Comm *c, Backend *gpu, double *ms) {
    const size_t n = ((size_t)1 << 22) + 3; /* not a multiple of anything convenient */
    float *h = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = (float)((c->rank + 1) * (int)(i % 7 + 1));
    float *d = gpu->alloc(gpu, n * sizeof(float));
    gpu->upload(gpu, d, h, n * sizeof(float));
    double t0 = monotonic_seconds();
    c->allreduce_sum(c, d, n);
    *ms = (monotonic_seconds() - t0) * 1e3;
    gpu->download(gpu, h, d, n * sizeof(float));
    size_t wrong = 0;
    double tri = (double)c->size * (c->size + 1) / 2; /* Σ_r (r + 1) */
    for (size_t i = 0; i < n; i++) wrong += h[i] != (float)(tri * (double)(i % 7 + 1));
    double f64[2] = {1.0, (double)c->rank};
    c->allreduce_sum_f64(c, f64, 2);
    if (c->rank == 0)
        printf("nccl-plain: %d rank(s), all-reduce of %zu floats in %.2f ms, %zu wrong sums, f64 path %s\n", c->size,
               n, *ms, wrong, f64[0] == c->size ? "ok" : "wrong");
    gpu->release(gpu, d);
    free(h);
    return wrong == 0 && f64[0] == c->size;
}

typedef struct {
    Model m;
    ModelActs *acts;
    float *params, *grads, *image; /* device */
    int32_t *labels;               /* device */
} Net;

static void forward_loss(Net *n, Backend *gpu) {
    PassOptions opt = {.training = 0};
    float *outs[3];
    model_forward(&n->m, gpu, n->acts, n->params, n->image, &opt, outs);
    model_loss(&n->m, gpu, n->acts, n->labels, NULL, NULL);
}

/* One pass with the all-reduce through g; returns ms for backward + reduction. */
static double bucketed_pass(Net *n, Backend *gpu, GradSync *g) {
    gpu->zero(gpu, n->grads, n->m.params.total * sizeof(float));
    forward_loss(n, gpu);
    gpu->synchronize(gpu);
    double t0 = monotonic_seconds();
    grad_sync_begin(g);
    model_backward(&n->m, gpu, n->acts, n->params, n->grads, &(GradsReady){grad_sync_ready, g});
    grad_sync_end(g);
    gpu->synchronize(gpu); /* the compute stream waited for the comm stream: the sums are in */
    return (monotonic_seconds() - t0) * 1e3;
}

/* max |got - size·ref| / max |size·ref| */
static double rel_diff(const float *got, const float *ref, size_t n, int size) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double r = (double)size * ref[i];
        num = fmax(num, fabs(got[i] - r));
        den = fmax(den, fabs(r));
    }
    return den > 0 ? num / den : (num > 0 ? INFINITY : 0);
}

/* 2: gradient buckets. Returns 1 when every pass's sums are right and buckets overlapped. */
static int check_buckets(Comm *c, Backend *gpu, const char *cfg_path, char *summary, size_t summary_len) {
    Config cfg;
    char err[1024];
    if (config_load(&cfg, cfg_path, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        snprintf(summary, summary_len, "buckets: no config");
        return 0;
    }
    Net n;
    model_build(&n.m, &cfg.net);
    int B = 2, H = cfg.net.crop[0], W = cfg.net.crop[1];
    size_t np = n.m.params.total, ni = (size_t)B * H * W * n.m.cin, nl = (size_t)B * H * W;
    float *hp = xmalloc(np * sizeof(float)), *himg = xmalloc(ni * sizeof(float));
    float *ref = xmalloc(np * sizeof(float)), *got = xmalloc(np * sizeof(float));
    int32_t *hlab = xmalloc(nl * sizeof(int32_t));
    model_init_params(&n.m, hp, 5);
    for (int i = 0; i < n.m.params.count; i++) /* layer scale 1, not 1e-6: every branch matters */
        if (strstr(n.m.params.items[i].name, "gamma"))
            for (size_t j = 0; j < n.m.params.items[i].numel; j++) hp[n.m.params.items[i].offset + j] = 1.0f;
    for (size_t i = 0; i < ni; i++) himg[i] = (float)rng_normal(rng_key(5, 77, i));
    for (size_t i = 0; i < nl; i++) hlab[i] = (int32_t)((i / W % H) * n.m.K / H);
    n.params = gpu->alloc(gpu, np * sizeof(float));
    n.grads = gpu->alloc(gpu, np * sizeof(float));
    n.image = gpu->alloc(gpu, ni * sizeof(float));
    n.labels = gpu->alloc(gpu, nl * sizeof(int32_t));
    gpu->upload(gpu, n.params, hp, np * sizeof(float));
    gpu->upload(gpu, n.image, himg, ni * sizeof(float));
    gpu->upload(gpu, n.labels, hlab, nl * sizeof(int32_t));
    n.acts = model_acts_create(&n.m, gpu, B, H, W, 0);

    /* the reference: a plain backward, no transport */
    gpu->zero(gpu, n.grads, np * sizeof(float));
    forward_loss(&n, gpu);
    model_backward(&n.m, gpu, n.acts, n.params, n.grads, NULL);
    gpu->download(gpu, ref, n.grads, np * sizeof(float));

    int overlapped_min = 1 << 30;
    double worst = 0, ms_bucketed = 0, ms_one = 0;
    GradSync *g = grad_sync_create(c, gpu, &n.m.params, n.grads, BUCKET_BYTES);
    for (int pass = 0; pass < 3; pass++) {
        ms_bucketed = bucketed_pass(&n, gpu, g);
        gpu->download(gpu, got, n.grads, np * sizeof(float));
        double d = rel_diff(got, ref, np, c->size);
        worst = fmax(worst, d);
        if (pass > 0 && grad_sync_overlapped(g) < overlapped_min) overlapped_min = grad_sync_overlapped(g);
        if (c->rank == 0)
            printf("nccl-buckets: pass %d (%s): %d bucket(s), %d started during backward, rel diff %.2e, %.2f ms\n",
                   pass + 1, pass ? "planned" : "planning", grad_sync_bucket_count(g), grad_sync_overlapped(g), d,
                   ms_bucketed);
    }
    int nb = grad_sync_bucket_count(g);
    grad_sync_destroy(g);
    g = grad_sync_create(c, gpu, &n.m.params, n.grads, 0); /* one bucket after backward: the baseline */
    for (int pass = 0; pass < 3; pass++) ms_one = bucketed_pass(&n, gpu, g);
    gpu->download(gpu, got, n.grads, np * sizeof(float));
    worst = fmax(worst, rel_diff(got, ref, np, c->size));
    grad_sync_destroy(g);

    int ok = worst <= TOL_GRAD && nb > 1 && overlapped_min >= 1;
    snprintf(summary, summary_len,
             "buckets: %d of <= %zu KiB, >= %d started during backward, worst rel diff %.2e (tol %.0e), "
             "backward+all-reduce %.2f ms bucketed vs %.2f ms one bucket",
             nb, BUCKET_BYTES >> 10, overlapped_min, worst, TOL_GRAD, ms_bucketed, ms_one);
    model_acts_free(n.acts);
    gpu->release(gpu, n.params);
    gpu->release(gpu, n.grads);
    gpu->release(gpu, n.image);
    gpu->release(gpu, n.labels);
    model_free(&n.m);
    free(hp), free(himg), free(ref), free(got), free(hlab);
    return ok;
}

int gpu_check_nccl(int *argc, char ***argv, const char *cfg_path) {
    Comm *c = comm_nccl_create(argc, argv); /* picks the device of this rank */
    /* the same device: local rank modulo the visible devices (comm_nccl.c's rule, and that of
     * unet2022's backend_local_device) */
    int ndev = cuda_device_count();
    Backend *gpu = backend_cuda_create(ndev > 0 ? c->local_rank % ndev : 0, "fp32");
    double ms = 0;
    char summary[512];
    int ok_plain = check_plain(c, gpu, &ms);
    int ok_buckets = check_buckets(c, gpu, cfg_path, summary, sizeof summary);
    int ok = ok_plain && ok_buckets;
    if (c->rank == 0)
        printf("nccl: %d rank(s): plain all-reduce %s (%.2f ms); %s: %s\n", c->size, ok_plain ? "exact" : "WRONG", ms,
               summary, ok ? "ok" : "FAIL");
    gpu->destroy(gpu);
    c->destroy(c);
    return ok ? 0 : 3;
}
#else
/* Built without CUDA or MPI: gpu_check_ops.c reports the NCCL check as skipped. */
typedef int gpu_check_nccl_unavailable;
#endif
