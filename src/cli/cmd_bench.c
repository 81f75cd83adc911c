/* cmd_bench.c — `unet2022 bench CONFIG [--batch B] [--runs N] [--threads T] [--backend cpu|cuda]
 *                                [--precision fp32|tf32|bf16] [--device D]`
 *
 * Times one training computation (forward, deep-supervision loss, backward) on the CPU
 * backend, N runs after a warm-up, and reports the median, the GFLOP/s it achieves (3x the
 * forward FLOPs, see model_flops.c) and that rate as a fraction of this machine's OpenBLAS
 * sgemm rate measured in the same process with the same threads. The last line is JSON,
 * for scripts/bench_cpu.sh. --profile adds one step with every op timed on its own (op_profile.h),
 * each next to its roofline (op_cost.h); --plan fp32|bf16 only counts and costs one step's ops
 * (nothing runs: any machine, any batch) and prints that table.
 *
 * With --backend cuda (builds with CUDA only) the same step runs on the GPU backend (device
 * --device D) in --precision (default bf16, the mixed-precision product mode; fp32 is the
 * exact-comparison mode, backend_cuda.h); the sgemm comparison is replaced by images/s and the
 * peak device memory the backend allocated; the JSON line then has "impl":"c-cuda" and
 * "precision" (tests/gpu/check.sh reads both). The CPU backend computes fp32 only.
 *
 * On cuda, one more training step — forward, loss, backward, gradient clipping and Adam, ended by
 * the one host sync that reads its results — is counted, not timed: launches_per_step (kernel
 * launches, queued memsets/copies, GEMMs, convolutions, collectives) and host_syncs_per_step
 * (every wait of the host for the device), as the backend's check macros count them
 * (src/base/work_count.h), in the text and in the JSON line. Neither depends on the batch size.
 * On the emulator its runtime counts the same things independently, and bench fails when the two
 * counts differ (a launch or sync that bypassed the macros).
 *
 * --cuda-graph auto|on|off (default auto on cuda): the step is captured once as a CUDA graph and
 * replayed (src/train/step_graph.h), as `train.cuda_graph` does in training. The timed runs are
 * then replays (after an eager warm-up and the capturing run), and the counted step is a replay:
 * launches_per_step is still the work executed, graph_launches_per_step the cudaGraphLaunch calls
 * and cpu_launch_calls_per_step what the host called (launches, copies, library calls, graph
 * launches); the eager step's counts are printed before it. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "backend.h"
#include "backend_select.h"
#include "check.h"
#include "clock.h"
#include "commands.h"
#include "op_profile.h"
#include "optimizer.h"
#include "rng.h"
#include "session.h"
#include "step_graph.h"
#include "work_count.h"
#ifdef UNET_HAVE_CUDA
#include "backend_cuda.h"
#endif


static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* OpenBLAS's own multi-threaded sgemm GFLOP/s on square matrices with `threads` threads: the
 * machine's reference rate, the BEST of 7 runs (a conservative denominator: noise from other
 * processes only ever lowers a run's rate). The backend itself keeps OpenBLAS single-threaded. */
static double sgemm_gflops(int n, int threads) {
    openblas_set_num_threads(threads);
    size_t nn = (size_t)n * n;
    float *a = xmalloc(nn * sizeof(float)), *b = xmalloc(nn * sizeof(float)), *c = xmalloc(nn * sizeof(float));
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)(rng_uniform(rng_key(1, 0, i)) - 0.5);
        b[i] = (float)(rng_uniform(rng_key(1, 1, i)) - 0.5);
    }
    double best = 1e30;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < 7; r++) {
        double t0 = monotonic_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = monotonic_seconds() - t0;
        if (dt < best) best = dt;
    }
    free(a);
    free(b);
    free(c);
    openblas_set_num_threads(1);
    return 2.0 * n * (double)n * n / best / 1e9;
}

/* --plan: backend memory that is never touched (the planned step runs no op). */
static void *plan_alloc(Backend *be, size_t bytes) {
    (void)be, (void)bytes;
    return xmalloc(64);
}
static void plan_release(Backend *be, void *ptr) {
    (void)be;
    free(ptr);
}

/* `bench --plan fp32|bf16`: one training step (forward, loss, backward, clip, Adam) of the config
 * at --batch, counted and costed op by op (op_profile_create_plan, op_cost.h) without running
 * anything: the roofline table of docs/performance.md, on any machine. */
static int bench_plan(const Model *m, Backend *real, const char *name, int batch, int H, int W, const char *prec) {
    Backend pbk = *real;
    pbk.alloc = plan_alloc;
    pbk.release = plan_release;
    pbk.act_bytes = !strcmp(prec, "bf16") ? 2 : 4;
    OpProfile *prof = op_profile_create_plan(&pbk, pbk.act_bytes);
    Backend *pb = op_profile_backend(prof);
    float *params = pb->alloc(pb, m->params.total * sizeof(float));
    float *grads = pb->alloc(pb, m->params.total * sizeof(float));
    float *image = pb->alloc(pb, (size_t)batch * H * W * m->cin * sizeof(float));
    int32_t *labels = pb->alloc(pb, (size_t)batch * H * W * sizeof(int32_t));
    ModelActs *acts = model_acts_create(m, &pbk, batch, H, W, 0);
    PassOptions opt = {.training = 1, .seed = 1, .step = 0};
    Adam adam;
    adam_create(&adam, pb, m->params.total, 1e-4);
    pb->zero(pb, grads, m->params.total * sizeof(float));
    model_forward(m, pb, acts, params, image, &opt, NULL); /* as a training step */
    model_loss(m, pb, acts, labels, NULL, NULL);
    model_backward(m, pb, acts, params, grads, NULL);
    adam_clip_and_step(&adam, pb, params, grads);
    printf("plan: one training step of %s at batch %d, Acts %s (forward, loss, backward, clip, Adam), ops counted "
           "and costed, not run; %.1f GFLOP forward (model_flops.c)\n",
           name, batch, prec, model_forward_flops(m, batch, H, W) / 1e9);
    op_profile_print(prof, stdout);
    adam_destroy(&adam, pb);
    model_acts_free(acts);
    pb->release(pb, params);
    pb->release(pb, grads);
    pb->release(pb, image);
    pb->release(pb, labels);
    op_profile_destroy(prof);
    return 0;
}

/* The inputs and buffers of one timed training step, in backend memory. */
typedef struct {
    const Model *m;
    Backend *be;
    int batch, H, W;
    float *params, *grads, *image, *loss_dev /* (3) */;
    int32_t *labels;
    ModelActs *acts;
    PassOptions opt;
} BenchStep;

/* Fresh weights, a normal-noise image and labels in horizontal bands (every class present). */
static void bench_step_create(BenchStep *b, const Model *m, Backend *be, int batch, int H, int W) {
    size_t n_img = (size_t)batch * H * W * m->cin, n_lab = (size_t)batch * H * W;
    *b = (BenchStep){.m = m, .be = be, .batch = batch, .H = H, .W = W};
    b->params = be->alloc(be, m->params.total * sizeof(float));
    b->grads = be->alloc(be, m->params.total * sizeof(float));
    b->image = be->alloc(be, n_img * sizeof(float));
    b->labels = be->alloc(be, n_lab * sizeof(int32_t));
    b->loss_dev = be->alloc(be, 3 * sizeof(float));
    float *host = xmalloc(m->params.total * sizeof(float));
    model_init_params(m, host, 1);
    be->upload(be, b->params, host, m->params.total * sizeof(float));
    free(host);
    float *img_host = xmalloc(n_img * sizeof(float));
    int32_t *lab_host = xmalloc(n_lab * sizeof(int32_t));
    for (size_t i = 0; i < n_img; i++) img_host[i] = (float)rng_normal(rng_key(2, 0, i));
    for (size_t i = 0; i < n_lab; i++) lab_host[i] = (int32_t)((i / W % H) * m->K / H);
    be->upload(be, b->image, img_host, n_img * sizeof(float));
    be->upload(be, b->labels, lab_host, n_lab * sizeof(int32_t));
    free(img_host);
    free(lab_host);
    b->acts = model_acts_create(m, be, batch, H, W, 0);
    b->opt = (PassOptions){.training = 1, .seed = 1, .step = 0};
}

static void bench_step_free(BenchStep *b) {
    model_acts_free(b->acts);
    b->be->release(b->be, b->params);
    b->be->release(b->be, b->grads);
    b->be->release(b->be, b->image);
    b->be->release(b->be, b->labels);
    b->be->release(b->be, b->loss_dev);
}

/* Forward, loss and backward on `be` (the step's own backend or a wrapper of it), queued: the
 * loss's (total, dice, CE) go to loss_dev (backend memory), read by the caller when it waits. */
static void bench_step_run(BenchStep *b, Backend *be, float *loss_dev) {
    be->zero(be, b->grads, b->m->params.total * sizeof(float));
    model_forward(b->m, be, b->acts, b->params, b->image, &b->opt, NULL); /* as a training step */
    model_loss_queue(b->m, be, b->acts, b->labels, loss_dev, NULL);
    model_backward(b->m, be, b->acts, b->params, b->grads, NULL);
}

static void bench_queue_fwd_bwd(void *ctx) {
    BenchStep *b = ctx;
    bench_step_run(b, b->be, b->loss_dev);
}

/* t[r] = seconds of run r, after one warm-up run (first-touch page faults, workspace growth);
 * with a graph (graph_mode not "off" on cuda), after a second one that captures the step, so the
 * timed runs are replays. */
static void bench_time_runs(BenchStep *b, double *t, int runs, const char *graph_mode) {
    StepGraph g;
    char err[256];
    if (step_graph_init(&g, b->be, NULL, graph_mode, err, sizeof err) != 0) die("bench: %s", err);
    int warm = g.enabled ? 2 : 1;
    for (int r = -warm; r < runs; r++) {
        double t0 = monotonic_seconds();
        step_graph_run(&g, bench_queue_fwd_bwd, b);
        b->be->synchronize(b->be);
        double dt = monotonic_seconds() - t0;
        float loss;
        b->be->download(b->be, &loss, b->loss_dev, sizeof loss);
        if (r >= 0) {
            t[r] = dt;
            printf("run %d: %.1f ms (loss %.4f)%s\n", r + 1, dt * 1e3, loss, g.ready ? " (graph replay)" : "");
        }
    }
    step_graph_destroy(&g);
}

/* --profile: one more step, every op waited for and timed on its own. */
static void bench_profile(BenchStep *b, const char *name, double median_s) {
    OpProfile *prof = op_profile_create(b->be);
    bench_step_run(b, op_profile_backend(prof), b->loss_dev);
    printf("profile: one step of %s at batch %d, each op waited for on its own (sum %.1f ms vs %.1f ms median "
           "unprofiled step)\n",
           name, b->batch, op_profile_total(prof) * 1e3, median_s * 1e3);
    op_profile_print(prof, stdout);
    op_profile_destroy(prof);
}

#ifdef UNET_HAVE_CUDA
/* What one step costs the host and the device (src/base/work_count.h): launches = work items
 * executed (kernels, queued copies and memsets, library calls), eagerly or by a replay;
 * graph_launches = cudaGraphLaunch calls; cpu_calls = what the host itself called. */
typedef struct {
    unsigned long long launches, syncs, graph_launches, cpu_calls;
} StepCounts;

typedef struct {
    BenchStep *b;
    Adam *adam;
} BenchTrain;

static void bench_queue_train(void *ctx) {
    BenchTrain *q = ctx;
    bench_step_run(q->b, q->b->be, adam_loss_slot(q->adam));
    adam_queue_step(q->adam, q->b->be, q->b->params, q->b->grads);
}

/* One training step (forward, loss, backward, clip, Adam) through g, ended by the read of its
 * scalars, counted by the check macros; on the emulator also by its runtime, which must agree (a
 * launch or sync that bypassed the macros would not be counted on a GPU). */
static StepCounts bench_counted_step(StepGraph *g, BenchTrain *q) {
    Backend *be = q->b->be;
    be->synchronize(be);
    WorkCount c0 = unet_work_count;
    unsigned long long rl0 = 0, rs0 = 0, rg0 = 0, rl1 = 0, rs1 = 0, rg1 = 0;
    int exact = backend_cuda_runtime_counts(&rl0, &rs0, &rg0);
    adam_next_step(q->adam);
    step_graph_run(g, bench_queue_train, q);
    (void)adam_step_scalars(q->adam, be, NULL); /* the step's end: its scalars in one read, as the trainer */
    StepCounts n = {unet_work_count.launches - c0.launches, unet_work_count.syncs - c0.syncs,
                    unet_work_count.graph_launches - c0.graph_launches, 0};
    n.cpu_calls = n.launches - (unet_work_count.replayed - c0.replayed) + n.graph_launches;
    if (exact) {
        backend_cuda_runtime_counts(&rl1, &rs1, &rg1);
        if (rl1 - rl0 != n.launches || rs1 - rs0 != n.syncs || rg1 - rg0 != n.graph_launches)
            die("bench: the backend counted %llu launches, %llu host syncs and %llu graph launches, the emulator's "
                "runtime %llu, %llu and %llu: a launch or sync bypassed the counting macros (src/base/cuda_check.h)",
                n.launches, n.syncs, n.graph_launches, rl1 - rl0, rs1 - rs0, rg1 - rg0);
    }
    return n;
}

/* The counts of an eager step; with a graph also those of a replayed one (the step after the one
 * that captures it), which are what the JSON line reports then. */
static StepCounts bench_count_step(BenchStep *b, const char *graph_mode) {
    Adam adam;
    adam_create(&adam, b->be, b->m->params.total, 1e-4);
    BenchTrain q = {b, &adam};
    StepGraph g;
    char err[256];
    if (step_graph_init(&g, b->be, NULL, graph_mode, err, sizeof err) != 0) die("bench: %s", err);
    StepCounts eager = bench_counted_step(&g, &q), n = eager;
    int exact = backend_cuda_runtime_counts(&(unsigned long long){0}, &(unsigned long long){0},
                                            &(unsigned long long){0});
    printf("eager step: launches_per_step %llu, host_syncs_per_step %llu%s\n", eager.launches, eager.syncs,
           exact ? " (equal to the emulator runtime's count)" : "");
    if (g.enabled) {
        (void)bench_counted_step(&g, &q); /* captures the step, then replays it */
        n = bench_counted_step(&g, &q);
        CHECK(g.ready && n.graph_launches == 1, "bench: the step was not replayed as a graph");
        printf("graph step (replay): launches_per_step %llu, host_syncs_per_step %llu, graph_launches_per_step %llu, "
               "cpu_launch_calls_per_step %llu%s\n",
               n.launches, n.syncs, n.graph_launches, n.cpu_calls, exact ? " (equal to the emulator runtime's count)" : "");
    }
    step_graph_destroy(&g);
    adam_destroy(&adam, b->be);
    printf("launches_per_step %llu\nhost_syncs_per_step %llu\ngraph_launches_per_step %llu\ncpu_launch_calls_per_step "
           "%llu\n", n.launches, n.syncs, n.graph_launches, n.cpu_calls);
    return n;
}

/* images/s, TFLOP/s and peak device memory; the JSON line tests/gpu/check.sh reads. */
static void bench_report_cuda(const BenchStep *b, const char *name, int device, const double *t, int runs,
                              double med, double flops, StepCounts n) {
    double peak_mib = (double)backend_cuda_peak_bytes(b->be) / (1 << 20);
    const char *prec = backend_cuda_precision(b->be);
    printf("%s batch %d, cuda device %d, %s: median %.2f ms, %.1f images/s, %.1f TFLOP/s, peak %.0f MiB\n", name,
           b->batch, device, prec, med * 1e3, b->batch / med, flops / med / 1e12, peak_mib);
    printf("{\"impl\":\"c-cuda\",\"precision\":\"%s\",\"config\":\"%s\",\"batch\":%d,\"median_ms\":%.3f,"
           "\"images_per_s\":%.2f,\"peak_mib\":%.0f,\"gflop_per_step\":%.3f,\"launches_per_step\":%llu,"
           "\"host_syncs_per_step\":%llu,\"graph_launches_per_step\":%llu,\"cpu_launch_calls_per_step\":%llu,"
           "\"runs_ms\":[",
           prec, name, b->batch, med * 1e3, b->batch / med, peak_mib, flops / 1e9, n.launches, n.syncs,
           n.graph_launches, n.cpu_calls);
    for (int r = 0; r < runs; r++) printf("%s%.3f", r ? "," : "", t[r] * 1e3);
    printf("]}\n");
}
#endif

/* GFLOP/s against this machine's sgemm rate with the same threads; the JSON line
 * scripts/bench_cpu.sh reads. */
static void bench_report_cpu(const BenchStep *b, const char *name, int threads, const double *t, int runs,
                             double med, double flops) {
    double gf = flops / med / 1e9, peak = sgemm_gflops(2048, threads);
    printf("%s batch %d, %d threads, fp32: median %.1f ms, %.1f GFLOP per step, %.1f GFLOP/s = %.0f%% of sgemm "
           "(%.1f GFLOP/s)\n",
           name, b->batch, threads, med * 1e3, flops / 1e9, gf, 100 * gf / peak, peak);
    printf("{\"impl\":\"c\",\"precision\":\"fp32\",\"config\":\"%s\",\"batch\":%d,\"threads\":%d,"
           "\"median_ms\":%.2f,\"runs_ms\":[",
           name, b->batch, threads, med * 1e3);
    for (int r = 0; r < runs; r++) printf("%s%.2f", r ? "," : "", t[r] * 1e3);
    printf("],\"gflop_per_step\":%.3f,\"gflops\":%.2f,\"sgemm_gflops\":%.2f,\"fraction_of_sgemm\":%.3f}\n",
           flops / 1e9, gf, peak, gf / peak);
}

static const char *SUMMARY =
    "  times forward + loss + backward of one training step (median of N runs after a warm-up)\n"
    "  against this machine's sgemm rate (cpu) or as images/s and peak memory (cuda)";

int cmd_bench(int argc, char **argv) {
    const char *cfg_path = NULL, *overrides[ARGS_MAX_OVERRIDES];
    const char *backend = "cpu", *precision = NULL; /* NULL: the backend's default */
    const char *plan = NULL, *graph = NULL; /* NULL: auto on cuda, off on the CPU */
    int batch = 1, runs = 5, threads = 0, device = 0, profile = 0, n_overrides = 0;
    const ArgPos pos[] = {{"CONFIG", &cfg_path, 1}};
    const ArgOpt opts[] = {
        OPT_INT("--batch", &batch, "B", "batch size (default 1)", 1, 4096),
        OPT_INT("--runs", &runs, "N", "timed runs (default 5)", 1, 1000),
        OPT_INT("--threads", &threads, "T", "CPU threads (default: all cores)", 0, 65536),
        OPT_CHOICE("--backend", &backend, "cpu|cuda", "the backend (default cpu)"),
        OPT_CHOICE("--precision", &precision, "fp32|tf32|bf16", "cuda only, default bf16 (the CPU backend computes fp32)"),
        OPT_INT("--device", &device, "D", "the CUDA device (default 0)", 0, 1024),
        OPT_FLAG("--profile", &profile, "one more step with every op timed on its own"),
        OPT_CHOICE("--plan", &plan, "fp32|bf16", "no run: one step's ops counted and costed against the roofline"),
        OPT_CHOICE("--cuda-graph", &graph, "auto|on|off",
                   "cuda: time and count the step captured once and replayed (train.cuda_graph; default auto = on)"),
    };
    const ArgSpec spec = {"bench", SUMMARY, pos, ARGS_N(pos), opts, ARGS_N(opts), overrides, &n_overrides, NULL};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    Session s;
    SessionOptions so = {.command = "bench", .config = cfg_path, .overrides = overrides, .n_overrides = n_overrides,
                         .backend = backend, .precision = precision, .device = device, .threads = threads,
                         .backend_status = 2};
    if ((st = session_open(&s, &so)) != 0) return st;
    const Config *cfg = &s.cfg;
    const Model *m = &s.model;
    threads = omp_get_max_threads();
    int H = cfg->net.crop[0], W = cfg->net.crop[1];
    if (plan) {
        st = bench_plan(m, s.be, cfg->name, batch, H, W, plan);
        session_close(&s);
        return st;
    }
    if (!graph) graph = strcmp(backend, "cuda") ? "off" : "auto";
    BenchStep b;
    bench_step_create(&b, m, s.be, batch, H, W);
    double *t = xcalloc((size_t)runs, sizeof(double));
    bench_time_runs(&b, t, runs, graph);
    double *sorted = xmalloc((size_t)runs * sizeof(double)); /* t stays in run order for the JSON */
    memcpy(sorted, t, (size_t)runs * sizeof(double));
    double med = median(sorted, runs), flops = 3.0 * model_forward_flops(m, batch, H, W);
    free(sorted);
    if (profile) bench_profile(&b, cfg->name, med);
#ifdef UNET_HAVE_CUDA
    if (!strcmp(backend, "cuda")) {
        StepCounts n = bench_count_step(&b, graph); /* the CPU backend queues nothing: cuda only */
        bench_report_cuda(&b, cfg->name, device, t, runs, med, flops, n);
    } else
#endif
        bench_report_cpu(&b, cfg->name, threads, t, runs, med, flops);
    free(t);
    bench_step_free(&b);
    session_close(&s);
    return 0;
}
