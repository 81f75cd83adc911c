/* gpu_check_ops.c — `unet2022-check gpu-check-ops [--precision fp32|tf32|bf16] [--steps S] [--config C]
 *                                                 [--kernels OP=IMPL,...] [--nccl] [--device D]`
 *
 * Verifies the CUDA backend, created in --precision (default fp32), against the CPU reference
 * backend (the fp32 oracle, itself tested against PyTorch):
 *   default   every op, forward and backward, on fresh random inputs, both backends; prints a
 *             table of max errors relative to the reference's largest magnitude;
 *   --steps S S training steps (forward, loss, backward, clip, Adam; stochastic depth off, as
 *             `trace`) of a small config on a fixed batch on both backends; compares losses;
 *             --kernels OP=IMPL,... forces implementations of the tuned ops there (as
 *             train.kernels; kernels/cuda/tune.h);
 *   --nccl    the NCCL transport (comm/comm_nccl.c), any number of ranks (e.g. one): a plain
 *             all-reduce, then gradient buckets overlapped with backward (gpu_check_nccl.c).
 * Poisoning: every forward output and saved buffer starts as NaN on the GPU side, so an element
 * the kernel forgets to write shows up as a failure. Gradients cannot start as NaN, because
 * backward ops accumulate (backend.h): they start from the same random values on both sides,
 * which also checks that the CUDA ops add rather than overwrite. Act tensors (backend.h) are read
 * back as fp32 on both sides; their random inputs reach the CPU as the GPU stores them (rounded to
 * bf16 in that mode), so only the op's own error and its output's rounding are measured.
 * Exit status: 0 all within tolerance, 1 usage, 2 error, 3 a check failed, 77 no CUDA device
 * (the ctest SKIP code). Compiled only with UNET_HAVE_CUDA (main.c guards the dispatch). */
#ifdef UNET_HAVE_CUDA
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "adam_coefs.h"
#include "backend_cuda.h"
#include "check.h"
#include "clock.h"
#include "config.h"
#include "model.h"
#include "optimizer.h"
#include "rng.h"
#include "check_modes.h"
#include "gpu_check_nccl.h"

/* fp32 mode: both backends compute in fp32 with different summation orders; errors are
 * measured against the reference's largest magnitude (so cancellation in one element does not
 * masquerade as a large relative error). */
#define TOL_FP32 1e-4
/* tf32/bf16 modes: only the products cuBLAS and cuDNN compute change (linear and convT out, din,
 * dw through cuBLAS; conv3x3 out, din, dw through cuDNN); their bias gradients are fp32 sums of
 * the stored dout (our own column sums; in bf16 the linear's comes from cuBLASLt's BGRADB epilogue,
 * which sums the same bf16 values in fp32) and every other op is our own fp32 kernel, so those
 * keep TOL_FP32 (and exact 0).
 * A GEMM whose inputs are rounded to p stored mantissa bits (relative error ≤ 2^-(p+1) each, so
 * up to ~2^-p per product) and summed in fp32 over K terms of random sign has an error that grows
 * like sqrt(K), as the result itself does: per element a relative error of a fraction of 2^-p,
 * a few times that at the worst of thousands of elements, less against the tensor's largest
 * magnitude, which is what compare() divides by.
 *   TF32 (p = 10: 2^-10 ≈ 1e-3): 1e-2 leaves a margin of several times, also for cuDNN's
 *        Winograd/FFT algorithms, whose transforms add rounding of their own;
 *   BF16 (p = 7): the activation operands are bf16 already (bf16 storage, exact in the GEMM),
 *        so only the weight operand is rounded, by at most 2^-9 relative: a per-element error
 *        of about 2^-9/sqrt(3) ≈ 1e-3 of the result's spread, a few times that at the worst
 *        element, less against the largest magnitude. 1e-2 leaves a margin of several times
 *        (the emulator, which rounds exactly as the GPU does, shows ≤ 3.1e-3 for the whole
 *        error, storage rounding included); the weight gradient (both operands activations)
 *        is fp32-exact but for summation order. The storage rounding of the output is added
 *        separately (ACT_ROUND_BF16). cuDNN convolutions run as TF32 on the widened
 *        activations in bf16 mode (conv_cudnn.cu "tf32copy"), so conv3x3 keeps the TF32 limit
 *        there; its "bf16" implementation (native bf16 cuDNN) rounds the weight to bf16 as the
 *        cuBLAS ops do, and its output twice (conv, then + bias) and its filter gradient once
 *        (2^-9 relative each): the same 1e-2 holds (the emulator shows ≤ 6.5e-3 with the
 *        storage rounding, 2.8e-3 for dw).
 * A real fault (a wrong operand or transpose, an overwrite instead of an accumulation, a stale
 * workspace) gives errors of order 1 against these magnitudes, far above either limit. */
#define TOL_TF32 1e-2
#define TOL_BF16 1e-2
/* bf16 mode stores every Act as bf16: an op's Act output is its fp32 result rounded once to
 * nearest even (accumulating ops: old + delta in fp32, then rounded). bf16 keeps 8 significant
 * bits, so for v in [2^e, 2^(e+1)) half an ulp is 2^(e-8) <= 2^-8 |v| <= 2^-8 max|ref|: the bound
 * is exact, not an estimate (ties land on it), and compare_act() adds it to the op's own
 * tolerance. Inputs are rounded the same way on both sides (act_rand), so nothing else differs;
 * pure data movement stays exact (compare_act_exact). A lost accumulation or a wrong index is
 * still an error of order 1. */
#define ACT_ROUND_BF16 (1.0 / 256)
/* --steps: step-1 loss (same weights, same batch) and the worst step over S steps, relative. */
#define TOL_STEP1_FP32 1e-5
#define TOL_STEPS_FP32 2e-3
/* tf32/bf16 --steps: step 1 differs only by the forward's rounding. The loss is a mean over
 * every pixel of B images, so the per-element GEMM errors (~2^-p, chained through the network,
 * LayerNorm renormalising between blocks) largely average out in it: 2e-3 (tf32) is generous
 * for that; bf16 below. Later steps drift further apart: Adam's first updates are about
 * lr·sign(g), so parameters whose small gradients change sign under the rounding move the other
 * way and the runs follow slightly different trajectories (the fp32 limit allows 200x its step-1
 * limit for the same effect of summation order). The worst-step limits, 1e-2 (tf32) and 2e-2
 * (bf16), ask that over the steps on one batch the mixed run's loss stays within 1-2% of the
 * fp32 reference: tight enough that a mode that trains differently (a wrong gradient, a lost
 * accumulation) fails. Estimates, not measurements, until the first GPU run: the per-step table
 * shows the actual margin. */
#define TOL_STEP1_TF32 2e-3
#define TOL_STEPS_TF32 1e-2
/* bf16 step 1 with bf16 activations: every stored Act is rounded (≤ 2^-8 relative, random sign),
 * and the loss averages over B·H·W pixels, so its error is of order 2^-8 / sqrt(pixels): about
 * 1e-5 at the demo config's batch 2 (the emulator, which rounds exactly as the GPU does, shows
 * 8.5e-6). 1e-3 leaves two orders of magnitude for the GPU's own summation orders while a
 * systematic fault (a biased rounding, a dropped term) stays visible. */
#define TOL_STEP1_BF16 1e-3
#define TOL_STEPS_BF16 2e-2

typedef struct {
    Backend *cpu, *gpu;
    const char *precision; /* the CUDA backend's: "fp32", "tf32" or "bf16" */
    double tol_blas;       /* products computed by cuBLAS (linear, convT): out, din, dw */
    double tol_dnn;        /* products computed by cuDNN (conv3x3): out, din, dw */
    double act_round;      /* storing an Act: ACT_ROUND_BF16 in bf16 mode, 0 when Acts are fp32 */
    uint64_t seed;
    uint64_t stream; /* next random stream: every tensor gets fresh numbers */
    const char *impl; /* the forced implementation of the op under check (kernels/cuda/tune.h), or NULL */
    int rows, fails;
} Ctx;

/* The GEMM tolerances of a precision (see TOL_TF32, TOL_BF16). */
static void set_tolerances(Ctx *x, const char *precision) {
    x->precision = precision;
    x->act_round = !strcmp(precision, "bf16") ? ACT_ROUND_BF16 : 0;
    if (!strcmp(precision, "bf16")) x->tol_blas = TOL_BF16, x->tol_dnn = TOL_TF32; /* convs run as tf32 */
    else if (!strcmp(precision, "tf32")) x->tol_blas = TOL_TF32, x->tol_dnn = TOL_TF32;
    else x->tol_blas = TOL_FP32, x->tol_dnn = TOL_FP32;
}

/* One float tensor (parameters, their gradients, statistics) on both backends. */
typedef struct {
    size_t n;
    float *c, *g; /* (n) CPU memory, device memory */
} Pair;

/* One Act tensor (activations, their gradients, attention probs, logits) on both backends. */
typedef struct {
    size_t n;
    Act *c, *g; /* (n) CPU memory, device memory, each in its backend's Act storage */
} ActPair;

/* " [impl]" while an implementation is forced, for the op column. */
static const char *impl_tag(const Ctx *x) {
    static char tag[40];
    if (!x->impl) return "";
    snprintf(tag, sizeof tag, " [%s]", x->impl);
    return tag;
}

/* Runs CALL once per implementation of the tuned op OP available in this precision, each forced in turn (train.kernels
 * "OP=impl"), then returns to the automatic choice: every implementation meets the same checks. */
#define FOR_EACH_IMPL(x, OP, CALL)                                                                   \
    do {                                                                                             \
        char err_[256], force_[96];                                                                  \
        for (int i_ = 0; backend_cuda_kernel_impl(OP, i_); i_++) {                                   \
            if (!backend_cuda_kernel_available((x)->gpu, OP, i_)) continue; /* e.g. bf16 in fp32 mode */ \
            (x)->impl = backend_cuda_kernel_impl(OP, i_);                                            \
            snprintf(force_, sizeof force_, "%s=%s", OP, (x)->impl);                                 \
            if (backend_cuda_set_tuning((x)->gpu, NULL, force_, err_, sizeof err_) != 0) die("%s", err_); \
            CALL;                                                                                    \
        }                                                                                            \
        (x)->impl = NULL;                                                                            \
        if (backend_cuda_set_tuning((x)->gpu, NULL, "auto", err_, sizeof err_) != 0) die("%s", err_); \
    } while (0)

static float *host_rand(Ctx *x, size_t n, float lo, float hi) {
    float *h = xmalloc((n ? n : 1) * sizeof(float));
    uint64_t s = x->stream++;
    for (size_t i = 0; i < n; i++) h[i] = (float)(lo + (hi - lo) * rng_uniform(rng_key(x->seed, s, i)));
    return h;
}

static float *host_nan(size_t n) {
    float *h = xmalloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    return h;
}

static Pair pair_from(Ctx *x, const float *h, size_t n) {
    Pair p = {n, x->cpu->alloc(x->cpu, n * sizeof(float)), x->gpu->alloc(x->gpu, n * sizeof(float))};
    x->cpu->upload(x->cpu, p.c, h, n * sizeof(float));
    x->gpu->upload(x->gpu, p.g, h, n * sizeof(float));
    return p;
}

static Pair pair_rand(Ctx *x, size_t n, float lo, float hi) {
    float *h = host_rand(x, n, lo, hi);
    Pair p = pair_from(x, h, n);
    free(h);
    return p;
}

/* A forward output: zero on the CPU, NaN on the GPU. */
static Pair pair_out(Ctx *x, size_t n) {
    Pair p = {n, x->cpu->alloc(x->cpu, n * sizeof(float)), x->gpu->alloc(x->gpu, n * sizeof(float))};
    float *h = host_nan(n); /* (n) */
    x->gpu->upload(x->gpu, p.g, h, n * sizeof(float));
    free(h);
    return p;
}

static void pair_free(Ctx *x, Pair *p) {
    x->cpu->release(x->cpu, p->c);
    x->gpu->release(x->gpu, p->g);
}

static ActPair act_alloc(Ctx *x, size_t n) {
    ActPair p = {n, x->cpu->alloc(x->cpu, n * x->cpu->act_bytes), x->gpu->alloc(x->gpu, n * x->gpu->act_bytes)};
    return p;
}

/* Random inputs go to the GPU first and come back as the GPU stores them (rounded to bf16 in
 * that mode); the CPU gets those values, so both sides start from the same numbers and a
 * comparison measures the op's own error, not the rounding of its inputs. */
static ActPair act_rand(Ctx *x, size_t n, float lo, float hi) {
    ActPair p = act_alloc(x, n);
    float *h = host_rand(x, n, lo, hi); /* (n) */
    backend_upload_act(x->gpu, p.g, h, n);
    backend_download_act(x->gpu, h, p.g, n);
    backend_upload_act(x->cpu, p.c, h, n);
    free(h);
    return p;
}

/* A forward output: zero on the CPU, NaN on the GPU (a NaN stays NaN in every Act storage). */
static ActPair act_out(Ctx *x, size_t n) {
    ActPair p = act_alloc(x, n);
    float *h = host_nan(n); /* (n) */
    backend_upload_act(x->gpu, p.g, h, n);
    free(h);
    return p;
}

static void act_free(Ctx *x, ActPair *p) {
    x->cpu->release(x->cpu, p->c);
    x->gpu->release(x->gpu, p->g);
}

static void report(Ctx *x, const char *op, const char *what, double err, double ref, size_t nbad, double tol) {
    double rel = ref > 0 ? err / ref : err;
    int ok = nbad == 0 && rel <= tol;
    printf("%-30s %-8s %11.3e %11.3e %11.3e %9.1e  %s\n", op, what, err, ref, rel, tol, ok ? "ok" : "FAIL");
    x->rows++;
    if (!ok) x->fails++;
}

/* max |gpu − cpu| and max |cpu| over a tensor, both read back as fp32; non-finite GPU values
 * count as failures. A failure also prints where: the worst element, both values there, and how
 * many elements are beyond the tolerance (what the first GPU run needs to tell an indexing slip
 * from rounding). */
static void compare_host(Ctx *x, const char *op, const char *what, const float *hc /* (n) */,
                         const float *hg /* (n) */, size_t n, double tol) {
    double err = 0, ref = 0;
    size_t bad = 0, worst = 0, first_bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(hg[i]) && isfinite(hc[i])) {
            if (!bad++) first_bad = i;
            continue;
        }
        double d = fabs((double)hg[i] - (double)hc[i]);
        if (d > err) err = d, worst = i;
        if (fabs((double)hc[i]) > ref) ref = fabs((double)hc[i]);
    }
    if (bad)
        printf("  (%s %s: %zu non-finite GPU values, e.g. never written; first at [%zu] of %zu)\n", op, what, bad,
               first_bad, n);
    int before = x->fails;
    report(x, op, what, err, ref, bad, tol);
    if (x->fails > before && n) {
        size_t beyond = 0;
        for (size_t i = 0; i < n; i++)
            if (isfinite(hg[i]) && fabs((double)hg[i] - (double)hc[i]) > tol * ref) beyond++;
        printf("  (%s %s: worst at [%zu] of %zu: cpu %.9g, cuda %.9g; %zu elements beyond tolerance)\n", op, what,
               worst, n, (double)hc[worst], (double)hg[worst], beyond);
    }
}

static void compare(Ctx *x, const char *op, const char *what, Pair p, double tol) {
    float *hc = xmalloc((p.n ? p.n : 1) * sizeof(float)), *hg = xmalloc((p.n ? p.n : 1) * sizeof(float));
    x->cpu->download(x->cpu, hc, p.c, p.n * sizeof(float));
    x->gpu->download(x->gpu, hg, p.g, p.n * sizeof(float));
    compare_host(x, op, what, hc, hg, p.n, tol);
    free(hc);
    free(hg);
}

/* Both sides of an Act tensor read back as fp32, compared at exactly tol. */
static void compare_act_at(Ctx *x, const char *op, const char *what, ActPair p, double tol) {
    float *hc = xmalloc((p.n ? p.n : 1) * sizeof(float)), *hg = xmalloc((p.n ? p.n : 1) * sizeof(float));
    backend_download_act(x->cpu, hc, p.c, p.n);
    backend_download_act(x->gpu, hg, p.g, p.n);
    compare_host(x, op, what, hc, hg, p.n, tol);
    free(hc);
    free(hg);
}

/* An Act the op computed: tol is the op's own error, the storage's rounding is added. */
static void compare_act(Ctx *x, const char *op, const char *what, ActPair p, double tol) {
    compare_act_at(x, op, what, p, tol + x->act_round);
}

/* An Act the op only moved (pad, roll, crop): bit-exact in every storage. */
static void compare_act_exact(Ctx *x, const char *op, const char *what, ActPair p) {
    compare_act_at(x, op, what, p, 0);
}

/* ---- the op cases ---------------------------------------------------------------------- */

static void case_conv3x3(Ctx *x, int B, int H, int W, int Ci, int Co, int s) {
    char op[64];
    snprintf(op, sizeof op, "conv3x3 %dx%d %d>%d s%d%s", H, W, Ci, Co, s, impl_tag(x));
    int Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
    ActPair in = act_rand(x, (size_t)B * H * W * Ci, -1, 1), out = act_out(x, (size_t)B * Ho * Wo * Co);
    Pair w = pair_rand(x, (size_t)Co * Ci * 9, -0.3f, 0.3f), b = pair_rand(x, Co, -0.5f, 0.5f);
    ActPair dout = act_rand(x, out.n, -1, 1), din = act_rand(x, in.n, -1, 1);
    Pair dw = pair_rand(x, w.n, -1, 1), db = pair_rand(x, Co, -1, 1);
    x->cpu->conv3x3_forward(x->cpu, out.c, in.c, w.c, b.c, B, H, W, Ci, Co, s);
    x->gpu->conv3x3_forward(x->gpu, out.g, in.g, w.g, b.g, B, H, W, Ci, Co, s);
    compare_act(x, op, "out", out, x->tol_dnn);
    x->cpu->conv3x3_backward(x->cpu, din.c, dw.c, db.c, dout.c, in.c, w.c, B, H, W, Ci, Co, s);
    x->gpu->conv3x3_backward(x->gpu, din.g, dw.g, db.g, dout.g, in.g, w.g, B, H, W, Ci, Co, s);
    compare_act(x, op, "din", din, x->tol_dnn);
    compare(x, op, "dw", dw, x->tol_dnn);
    compare(x, op, "db", db, TOL_FP32); /* our own column sum, fp32 in every mode */
    ActPair *acts[] = {&in, &out, &dout, &din};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
    Pair *all[] = {&w, &b, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
}

static void case_dwconv7(Ctx *x, int B, int H, int W, int C) {
    char op[64];
    snprintf(op, sizeof op, "dwconv7 %dx%d C%d B%d%s", H, W, C, B, impl_tag(x));
    ActPair in = act_rand(x, (size_t)B * H * W * C, -1, 1), out = act_out(x, in.n);
    Pair w = pair_rand(x, (size_t)C * 49, -0.3f, 0.3f), b = pair_rand(x, C, -0.5f, 0.5f);
    ActPair dout = act_rand(x, in.n, -1, 1), din = act_rand(x, in.n, -1, 1);
    Pair dw = pair_rand(x, w.n, -1, 1), db = pair_rand(x, C, -1, 1);
    x->cpu->dwconv7_forward(x->cpu, out.c, in.c, w.c, b.c, B, H, W, C);
    x->gpu->dwconv7_forward(x->gpu, out.g, in.g, w.g, b.g, B, H, W, C);
    compare_act(x, op, "out", out, TOL_FP32);
    /* dwconv7_forward_add: acc += conv(in) */
    char op0[80];
    snprintf(op0, sizeof op0, "%s add", op);
    ActPair acc = act_rand(x, in.n, -1, 1);
    x->cpu->dwconv7_forward_add(x->cpu, acc.c, in.c, w.c, b.c, B, H, W, C);
    x->gpu->dwconv7_forward_add(x->gpu, acc.g, in.g, w.g, b.g, B, H, W, C);
    compare_act(x, op0, "out", acc, TOL_FP32);
    act_free(x, &acc);
    x->cpu->dwconv7_backward(x->cpu, din.c, dw.c, db.c, dout.c, in.c, w.c, B, H, W, C);
    x->gpu->dwconv7_backward(x->gpu, din.g, dw.g, db.g, dout.g, in.g, w.g, B, H, W, C);
    compare_act(x, op, "din", din, TOL_FP32);
    compare(x, op, "dw", dw, TOL_FP32);
    compare(x, op, "db", db, TOL_FP32);
    /* dwconv7_backward_first: din overwritten (NaN on the GPU until written), dw and db accumulate */
    char op1[80];
    snprintf(op1, sizeof op1, "%s first", op);
    ActPair din1 = act_out(x, in.n);
    x->cpu->dwconv7_backward_first(x->cpu, din1.c, dw.c, db.c, dout.c, in.c, w.c, B, H, W, C);
    x->gpu->dwconv7_backward_first(x->gpu, din1.g, dw.g, db.g, dout.g, in.g, w.g, B, H, W, C);
    compare_act(x, op1, "din", din1, TOL_FP32);
    compare(x, op1, "dw", dw, TOL_FP32);
    compare(x, op1, "db", db, TOL_FP32);
    act_free(x, &din1);
    ActPair *acts[] = {&in, &out, &dout, &din};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
    Pair *all[] = {&w, &b, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
}

/* dwconv7_layernorm_forward, every output NaN on the GPU until written: the conv against the CPU's
 * dwconv7_forward, and the LayerNorm against the CPU's layernorm_forward of the GPU's STORED conv
 * (so the check measures the normalisation alone, as case_residual does, and fails if the kernel
 * normalised anything but what it stored: in bf16 mode its unrounded sums). */
static void case_dwconv7_layernorm(Ctx *x, int B, int H, int W, int C) {
    char op[96];
    snprintf(op, sizeof op, "dwconv7_ln %dx%d C%d B%d%s", H, W, C, B, impl_tag(x));
    const size_t N = (size_t)B * H * W;
    ActPair in = act_rand(x, N * C, -1, 1), out = act_out(x, in.n), ln = act_out(x, in.n);
    Pair w = pair_rand(x, (size_t)C * 49, -0.3f, 0.3f), b = pair_rand(x, C, -0.5f, 0.5f);
    Pair g = pair_rand(x, C, 0.5f, 1.5f), beta = pair_rand(x, C, -0.5f, 0.5f);
    Pair mean = pair_out(x, N), rstd = pair_out(x, N);
    x->cpu->dwconv7_forward(x->cpu, out.c, in.c, w.c, b.c, B, H, W, C);
    x->gpu->dwconv7_layernorm_forward(x->gpu, out.g, ln.g, mean.g, rstd.g, in.g, w.g, b.g, g.g, beta.g, B, H, W, C,
                                      1e-6f);
    compare_act(x, op, "out", out, TOL_FP32);
    float *h = xmalloc(in.n * sizeof(float)); /* (N, C) the GPU's stored conv */
    backend_download_act(x->gpu, h, out.g, in.n);
    backend_upload_act(x->cpu, out.c, h, in.n);
    free(h);
    x->cpu->layernorm_forward(x->cpu, ln.c, mean.c, rstd.c, out.c, g.c, beta.c, N, C, 1e-6f);
    compare_act(x, op, "ln", ln, TOL_FP32);
    compare(x, op, "mean", mean, TOL_FP32);
    compare(x, op, "rstd", rstd, TOL_FP32);
    ActPair *acts[] = {&in, &out, &ln};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
    Pair *all[] = {&w, &b, &g, &beta, &mean, &rstd};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
}

static void case_convT(Ctx *x, int B, int H, int W, int Ci, int Co, int k) {
    char op[64];
    snprintf(op, sizeof op, "convT k%d %dx%d %d>%d", k, H, W, Ci, Co);
    ActPair in = act_rand(x, (size_t)B * H * W * Ci, -1, 1), out = act_out(x, (size_t)B * H * k * W * k * Co);
    Pair w = pair_rand(x, (size_t)Ci * Co * k * k, -0.3f, 0.3f), b = pair_rand(x, Co, -0.5f, 0.5f);
    ActPair dout = act_rand(x, out.n, -1, 1), din = act_rand(x, in.n, -1, 1);
    Pair dw = pair_rand(x, w.n, -1, 1), db = pair_rand(x, Co, -1, 1);
    x->cpu->convT_forward(x->cpu, out.c, in.c, w.c, b.c, B, H, W, Ci, Co, k);
    x->gpu->convT_forward(x->gpu, out.g, in.g, w.g, b.g, B, H, W, Ci, Co, k);
    compare_act(x, op, "out", out, x->tol_blas);
    x->cpu->convT_backward(x->cpu, din.c, dw.c, db.c, dout.c, in.c, w.c, B, H, W, Ci, Co, k);
    x->gpu->convT_backward(x->gpu, din.g, dw.g, db.g, dout.g, in.g, w.g, B, H, W, Ci, Co, k);
    compare_act(x, op, "din", din, x->tol_blas);
    compare(x, op, "dw", dw, x->tol_blas);
    compare(x, op, "db", db, TOL_FP32); /* our own column sum, fp32 in every mode */
    /* convT_forward_add: out = convT(in) + skip, overwritten (NaN on the GPU until written) */
    char op1[80];
    snprintf(op1, sizeof op1, "%s add", op);
    ActPair skip = act_rand(x, out.n, -1, 1), sum = act_out(x, out.n);
    x->cpu->convT_forward_add(x->cpu, sum.c, in.c, skip.c, w.c, b.c, B, H, W, Ci, Co, k);
    x->gpu->convT_forward_add(x->gpu, sum.g, in.g, skip.g, w.g, b.g, B, H, W, Ci, Co, k);
    compare_act(x, op1, "out", sum, x->tol_blas);
    ActPair *acts[] = {&in, &out, &dout, &din, &skip, &sum};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
    Pair *all[] = {&w, &b, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
}

static void case_linear(Ctx *x, size_t N, int Ci, int Co, int bias) {
    char op[64];
    snprintf(op, sizeof op, "linear N%zu %d>%d%s", N, Ci, Co, bias ? "" : " nobias");
    ActPair in = act_rand(x, N * Ci, -1, 1), out = act_out(x, N * Co);
    Pair w = pair_rand(x, (size_t)Co * Ci, -0.3f, 0.3f), b = pair_rand(x, Co, -0.5f, 0.5f);
    ActPair dout = act_rand(x, out.n, -1, 1), din = act_rand(x, in.n, -1, 1);
    Pair dw = pair_rand(x, w.n, -1, 1), db = pair_rand(x, Co, -1, 1);
    /* db is OVERWRITTEN (backend_ops.h): before each backward it holds NaN on the GPU and 100 on
     * the CPU, so a backend that reads or adds to it fails the db rows (dw still accumulates) */
    float *db_nan = host_nan(Co), *db_junk = xmalloc(Co * sizeof(float)); /* (Co) each */
    for (int c = 0; c < Co; c++) db_junk[c] = 100.0f;
    x->cpu->linear_forward(x->cpu, out.c, in.c, w.c, bias ? b.c : NULL, N, Ci, Co);
    x->gpu->linear_forward(x->gpu, out.g, in.g, w.g, bias ? b.g : NULL, N, Ci, Co);
    compare_act(x, op, "out", out, x->tol_blas);
    x->cpu->upload(x->cpu, db.c, db_junk, Co * sizeof(float));
    x->gpu->upload(x->gpu, db.g, db_nan, Co * sizeof(float));
    x->cpu->linear_backward(x->cpu, din.c, dw.c, bias ? db.c : NULL, dout.c, in.c, w.c, N, Ci, Co);
    x->gpu->linear_backward(x->gpu, din.g, dw.g, bias ? db.g : NULL, dout.g, in.g, w.g, N, Ci, Co);
    compare_act(x, op, "din", din, x->tol_blas);
    compare(x, op, "dw", dw, x->tol_blas);
    if (bias) compare(x, op, "db", db, TOL_FP32); /* fp32 sums of dout in every mode (bf16: the BGRADB epilogue) */
    /* linear_backward_first: din overwritten (NaN on the GPU until written), db overwritten too,
     * dw accumulates */
    char op1[80];
    snprintf(op1, sizeof op1, "%s first", op);
    ActPair din1 = act_out(x, in.n);
    x->cpu->upload(x->cpu, db.c, db_junk, Co * sizeof(float));
    x->gpu->upload(x->gpu, db.g, db_nan, Co * sizeof(float));
    x->cpu->linear_backward_first(x->cpu, din1.c, dw.c, bias ? db.c : NULL, dout.c, in.c, w.c, N, Ci, Co);
    x->gpu->linear_backward_first(x->gpu, din1.g, dw.g, bias ? db.g : NULL, dout.g, in.g, w.g, N, Ci, Co);
    compare_act(x, op1, "din", din1, x->tol_blas);
    compare(x, op1, "dw", dw, x->tol_blas);
    if (bias) compare(x, op1, "db", db, TOL_FP32);
    free(db_nan);
    free(db_junk);
    /* the same from a weights_prepare copy of a buffer that holds w at an offset (bf16 mode:
     * the bf16 shadow instead of a per-call rounding; elsewhere a no-op) */
    size_t off = 7;
    float *hw = xmalloc((w.n + off + 5) * sizeof(float));
    for (size_t i = 0; i < w.n + off + 5; i++) hw[i] = 0.5f;
    x->gpu->download(x->gpu, hw + off, w.g, w.n * sizeof(float));
    float *flat = x->gpu->alloc(x->gpu, (w.n + off + 5) * sizeof(float));
    x->gpu->upload(x->gpu, flat, hw, (w.n + off + 5) * sizeof(float));
    free(hw);
    x->gpu->weights_prepare(x->gpu, flat, w.n + off + 5);
    char op2[80];
    snprintf(op2, sizeof op2, "%s prepared", op);
    ActPair out2 = act_out(x, out.n), din2 = act_out(x, in.n);
    x->cpu->linear_forward(x->cpu, out2.c, in.c, w.c, bias ? b.c : NULL, N, Ci, Co);
    x->gpu->linear_forward(x->gpu, out2.g, in.g, flat + off, bias ? b.g : NULL, N, Ci, Co);
    compare_act(x, op2, "out", out2, x->tol_blas);
    x->cpu->linear_backward_first(x->cpu, din2.c, dw.c, bias ? db.c : NULL, dout.c, in.c, w.c, N, Ci, Co);
    x->gpu->linear_backward_first(x->gpu, din2.g, dw.g, bias ? db.g : NULL, dout.g, in.g, flat + off, N, Ci, Co);
    compare_act(x, op2, "din", din2, x->tol_blas);
    x->gpu->release(x->gpu, flat); /* forgets the prepared copy */
    act_free(x, &out2);
    act_free(x, &din2);
    act_free(x, &din1);
    ActPair *acts[] = {&in, &out, &dout, &din};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
    Pair *all[] = {&w, &b, &dw, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
}

static void case_layernorm(Ctx *x, size_t N, int C, float eps) {
    char op[64];
    snprintf(op, sizeof op, "layernorm N%zu C%d%s", N, C, impl_tag(x));
    ActPair in = act_rand(x, N * C, 2, 6), out = act_out(x, in.n);
    Pair g = pair_rand(x, C, 0.5f, 1.5f), b = pair_rand(x, C, -0.5f, 0.5f);
    Pair mean = pair_out(x, N), rstd = pair_out(x, N);
    ActPair dout = act_rand(x, in.n, -1, 1), din = act_rand(x, in.n, -1, 1);
    Pair dg = pair_rand(x, C, -1, 1), db = pair_rand(x, C, -1, 1);
    x->cpu->layernorm_forward(x->cpu, out.c, mean.c, rstd.c, in.c, g.c, b.c, N, C, eps);
    x->gpu->layernorm_forward(x->gpu, out.g, mean.g, rstd.g, in.g, g.g, b.g, N, C, eps);
    compare_act(x, op, "out", out, TOL_FP32);
    compare(x, op, "mean", mean, TOL_FP32);
    compare(x, op, "rstd", rstd, TOL_FP32);
    x->cpu->layernorm_backward(x->cpu, din.c, dg.c, db.c, dout.c, in.c, mean.c, rstd.c, g.c, N, C);
    x->gpu->layernorm_backward(x->gpu, din.g, dg.g, db.g, dout.g, in.g, mean.g, rstd.g, g.g, N, C);
    compare_act(x, op, "din", din, TOL_FP32);
    compare(x, op, "dg", dg, TOL_FP32);
    compare(x, op, "db", db, TOL_FP32);
    ActPair *acts[] = {&in, &out, &dout, &din};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
    Pair *all[] = {&g, &b, &mean, &rstd, &dg, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
}

static void case_gelu(Ctx *x, size_t n) {
    ActPair in = act_rand(x, n, -6, 6), out = act_out(x, n), dout = act_rand(x, n, -1, 1),
            din = act_rand(x, n, -1, 1);
    x->cpu->gelu_forward(x->cpu, out.c, in.c, n);
    x->gpu->gelu_forward(x->gpu, out.g, in.g, n);
    compare_act(x, "gelu", "out", out, TOL_FP32);
    x->cpu->gelu_backward(x->cpu, din.c, dout.c, in.c, n);
    x->gpu->gelu_backward(x->gpu, din.g, dout.g, in.g, n);
    compare_act(x, "gelu", "din", din, TOL_FP32);
    ActPair *acts[] = {&in, &out, &dout, &din};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
}

/* The fused GELU → LayerNorm pair. Forward: ge (overwritten: NaN on the GPU until written) against
 * gelu_forward's reference; out, mean and rstd against the CPU's LayerNorm of the GPU's stored ge
 * (as case_residual: the LayerNorm's own error on inputs both sides share; in bf16 mode ge is
 * rounded where gelu_forward rounds it). Backward on those shared inputs: din, dg and db
 * accumulate (random start). */
static void case_gelu_layernorm(Ctx *x, size_t N, int C, float eps) {
    char op[64];
    snprintf(op, sizeof op, "gelu_layernorm N%zu C%d", N, C);
    size_t n = N * C;
    ActPair in = act_rand(x, n, -3, 5), ge = act_out(x, n), out = act_out(x, n);
    Pair g = pair_rand(x, C, 0.5f, 1.5f), b = pair_rand(x, C, -0.5f, 0.5f);
    Pair mean = pair_out(x, N), rstd = pair_out(x, N);
    x->cpu->gelu_layernorm_forward(x->cpu, out.c, ge.c, mean.c, rstd.c, in.c, g.c, b.c, N, C, eps);
    x->gpu->gelu_layernorm_forward(x->gpu, out.g, ge.g, mean.g, rstd.g, in.g, g.g, b.g, N, C, eps);
    compare_act(x, op, "ge", ge, TOL_FP32);
    float *h = xmalloc(n * sizeof(float)); /* (n) the GPU's stored ge */
    backend_download_act(x->gpu, h, ge.g, n);
    backend_upload_act(x->cpu, ge.c, h, n);
    free(h);
    x->cpu->layernorm_forward(x->cpu, out.c, mean.c, rstd.c, ge.c, g.c, b.c, N, C, eps);
    compare_act(x, op, "out", out, TOL_FP32);
    compare(x, op, "mean", mean, TOL_FP32);
    compare(x, op, "rstd", rstd, TOL_FP32);
    ActPair dout = act_rand(x, n, -1, 1), din = act_rand(x, n, -1, 1);
    Pair dg = pair_rand(x, C, -1, 1), db = pair_rand(x, C, -1, 1);
    x->cpu->layernorm_backward_gelu(x->cpu, din.c, dg.c, db.c, dout.c, ge.c, in.c, mean.c, rstd.c, g.c, N, C);
    x->gpu->layernorm_backward_gelu(x->gpu, din.g, dg.g, db.g, dout.g, ge.g, in.g, mean.g, rstd.g, g.g, N, C);
    compare_act(x, op, "din", din, TOL_FP32);
    compare(x, op, "dg", dg, TOL_FP32);
    compare(x, op, "db", db, TOL_FP32);
    ActPair *acts[] = {&in, &ge, &out, &dout, &din};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
    Pair *all[] = {&g, &b, &mean, &rstd, &dg, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
}

/* The fused fc1 → GELU ops: forward against linear_forward + gelu_forward's reference, backward
 * (din overwritten: NaN on the GPU until written; db accumulates) on the same pre-activation. */
static void case_mlp(Ctx *x, size_t N, int Ci, int Co) {
    char op[64];
    snprintf(op, sizeof op, "linear_gelu N%zu %d>%d", N, Ci, Co);
    ActPair in = act_rand(x, N * Ci, -1, 1), pre = act_out(x, N * Co), out = act_out(x, N * Co);
    Pair w = pair_rand(x, (size_t)Co * Ci, -0.3f, 0.3f), b = pair_rand(x, Co, -0.5f, 0.5f);
    x->cpu->linear_gelu_forward(x->cpu, out.c, pre.c, in.c, w.c, b.c, N, Ci, Co);
    x->gpu->linear_gelu_forward(x->gpu, out.g, pre.g, in.g, w.g, b.g, N, Ci, Co);
    compare_act(x, op, "pre", pre, x->tol_blas);
    compare_act(x, op, "out", out, x->tol_blas);
    char op2[80];
    snprintf(op2, sizeof op2, "gelu_backward_bias_first N%zu C%d", N, Co);
    ActPair p2 = act_rand(x, N * Co, -6, 6), dout = act_rand(x, N * Co, -1, 1), din = act_out(x, N * Co);
    Pair db = pair_rand(x, Co, -1, 1);
    x->cpu->gelu_backward_bias_first(x->cpu, din.c, db.c, dout.c, p2.c, N, Co);
    x->gpu->gelu_backward_bias_first(x->gpu, din.g, db.g, dout.g, p2.g, N, Co);
    compare_act(x, op2, "din", din, TOL_FP32);
    compare(x, op2, "db", db, TOL_FP32); /* our own column sum, fp32 in every mode */
    ActPair *acts[] = {&in, &pre, &out, &p2, &dout, &din};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
    Pair *all[] = {&w, &b, &db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
}

static void case_window(Ctx *x, int B, int H, int W, int C, int Hp, int Wp, int s) {
    char op[64];
    snprintf(op, sizeof op, "pad_roll/roll_crop s%d", s);
    size_t ns = (size_t)B * H * W * C, nb = (size_t)B * Hp * Wp * C;
    ActPair in = act_rand(x, ns, -1, 1), big = act_out(x, nb), back = act_out(x, ns);
    ActPair dbig = act_rand(x, nb, -1, 1), dsmall = act_rand(x, ns, -1, 1);
    ActPair gsmall = act_rand(x, ns, -1, 1), gbig = act_rand(x, nb, -1, 1);
    x->cpu->pad_roll_forward(x->cpu, big.c, in.c, B, H, W, C, Hp, Wp, s);
    x->gpu->pad_roll_forward(x->gpu, big.g, in.g, B, H, W, C, Hp, Wp, s);
    compare_act_exact(x, op, "pad_roll", big);
    x->cpu->roll_crop_forward(x->cpu, back.c, big.c, B, H, W, C, Hp, Wp, s);
    x->gpu->roll_crop_forward(x->gpu, back.g, big.g, B, H, W, C, Hp, Wp, s);
    compare_act_exact(x, op, "crop", back);
    x->cpu->pad_roll_backward(x->cpu, gsmall.c, dbig.c, B, H, W, C, Hp, Wp, s);
    x->gpu->pad_roll_backward(x->gpu, gsmall.g, dbig.g, B, H, W, C, Hp, Wp, s);
    compare_act(x, op, "d_pad", gsmall, TOL_FP32);
    x->cpu->roll_crop_backward(x->cpu, gbig.c, dsmall.c, B, H, W, C, Hp, Wp, s);
    x->gpu->roll_crop_backward(x->gpu, gbig.g, dsmall.g, B, H, W, C, Hp, Wp, s);
    compare_act(x, op, "d_crop", gbig, TOL_FP32);
    /* the first writers: every element overwritten (NaN on the GPU until written), the padding too */
    ActPair fsmall = act_out(x, ns), fbig = act_out(x, nb);
    x->cpu->pad_roll_backward_first(x->cpu, fsmall.c, dbig.c, B, H, W, C, Hp, Wp, s);
    x->gpu->pad_roll_backward_first(x->gpu, fsmall.g, dbig.g, B, H, W, C, Hp, Wp, s);
    compare_act_exact(x, op, "d_pad first", fsmall);
    x->cpu->roll_crop_backward_first(x->cpu, fbig.c, dsmall.c, B, H, W, C, Hp, Wp, s);
    x->gpu->roll_crop_backward_first(x->gpu, fbig.g, dsmall.g, B, H, W, C, Hp, Wp, s);
    compare_act_exact(x, op, "d_crop first", fbig);
    ActPair *acts[] = {&in, &big, &back, &dbig, &dsmall, &gsmall, &gbig, &fsmall, &fbig};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
}

/* Forces implementation `impl` of a tuned op on the GPU backend ("" = back to the backend's own
 * choice), as train.kernels does. */
static void force_kernel(Ctx *x, const char *op, const char *impl) {
    char spec[96], err[256];
    snprintf(spec, sizeof spec, "%s=%s", op, impl);
    if (backend_cuda_set_tuning(x->gpu, NULL, impl[0] ? spec : "", err, sizeof err) != 0) die("%s", err);
}

/* impl: the window_attention implementation forced (kernels/cuda/window_attention.cu). "smem"
 * and "gemm" save the softmax in probs, which is compared; "flash" saves its own state there
 * (row log-sum-exps), so the CPU's backward reads the CPU's own softmax and probs is not
 * compared (dqkv and dtable check what the flash backward recomputes from that state). */
static void case_attention_impl(Ctx *x, int B, int Hp, int Wp, int C, int heads, int w, int s, const char *impl) {
    char op[64];
    snprintf(op, sizeof op, "attention w%d s%d C%d h%d %s", w, s, C, heads, impl);
    const int saves_softmax = strcmp(impl, "flash") != 0;
    force_kernel(x, "window_attention", impl);
    int n = w * w, nWin = (Hp / w) * (Wp / w), T = (2 * w - 1) * (2 * w - 1);
    size_t nq = (size_t)B * Hp * Wp * 3 * C, no = (size_t)B * Hp * Wp * C;
    size_t np = (size_t)B * nWin * heads * n * n;
    ActPair qkv = act_rand(x, nq, -1.5f, 1.5f), out = act_out(x, no), probs = act_out(x, np);
    Pair table = pair_rand(x, (size_t)T * heads, -1, 1);
    ActPair dout = act_rand(x, no, -1, 1), dqkv = act_rand(x, nq, -1, 1);
    Pair dtable = pair_rand(x, table.n, -1, 1);
    x->cpu->window_attention_forward(x->cpu, out.c, probs.c, qkv.c, table.c, B, Hp, Wp, C, heads, w, s);
    x->gpu->window_attention_forward(x->gpu, out.g, probs.g, qkv.g, table.g, B, Hp, Wp, C, heads, w, s);
    compare_act(x, op, "out", out, TOL_FP32);
    if (saves_softmax) {
        compare_act(x, op, "probs", probs, TOL_FP32);
        /* The backward reads the saved softmax: the CPU gets the GPU's (rounded in bf16 mode), so
         * dqkv and dtable measure the backward alone, like every other op's inputs (act_rand). */
        float *saved = xmalloc(np * sizeof(float)); /* (np) */
        backend_download_act(x->gpu, saved, probs.g, np);
        backend_upload_act(x->cpu, probs.c, saved, np);
        free(saved);
    }
    x->cpu->window_attention_backward(x->cpu, dqkv.c, dtable.c, dout.c, qkv.c, probs.c, B, Hp, Wp, C, heads, w, s);
    x->gpu->window_attention_backward(x->gpu, dqkv.g, dtable.g, dout.g, qkv.g, probs.g, B, Hp, Wp, C, heads, w, s);
    compare_act(x, op, "dqkv", dqkv, TOL_FP32);
    compare(x, op, "dtable", dtable, TOL_FP32);
    /* window_attention_backward_first: dqkv overwritten (NaN on the GPU until written), dtable
     * accumulates */
    char op1[80];
    snprintf(op1, sizeof op1, "%s first", op);
    ActPair dqkv1 = act_out(x, nq);
    x->cpu->window_attention_backward_first(x->cpu, dqkv1.c, dtable.c, dout.c, qkv.c, probs.c, B, Hp, Wp, C, heads, w,
                                            s);
    x->gpu->window_attention_backward_first(x->gpu, dqkv1.g, dtable.g, dout.g, qkv.g, probs.g, B, Hp, Wp, C, heads, w,
                                            s);
    compare_act(x, op1, "dqkv", dqkv1, TOL_FP32);
    compare(x, op1, "dtable", dtable, TOL_FP32);
    ActPair *acts[] = {&qkv, &out, &probs, &dout, &dqkv, &dqkv1};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
    Pair *all[] = {&table, &dtable};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
    force_kernel(x, "window_attention", "");
}

/* Every implementation of window_attention, forced one after another. "flash" (bf16 tensor
 * cores) exists only in bf16 mode: the fp32-mode checks keep their exact-comparison tolerance
 * and report it as unavailable. */
static void case_attention(Ctx *x, int B, int Hp, int Wp, int C, int heads, int w, int s) {
    static const char *const impls[] = {"smem", "gemm", "flash"};
    for (size_t i = 0; i < sizeof impls / sizeof *impls; i++) {
        if (!strcmp(impls[i], "flash") && strcmp(x->precision, "bf16") != 0) continue;
        case_attention_impl(x, B, Hp, Wp, C, heads, w, s, impls[i]);
    }
}

/* One attention shape of case_attention_replay: inputs, NaN-filled GPU outputs, and the CPU's
 * forward (the reference). */
typedef struct {
    int B, Hp, Wp, C, heads, w, s;
    ActPair qkv, out, probs;
    Pair table;
} AttShape;

static void att_shape_init(Ctx *x, AttShape *a) {
    int n = a->w * a->w, nWin = (a->Hp / a->w) * (a->Wp / a->w), T = (2 * a->w - 1) * (2 * a->w - 1);
    size_t no = (size_t)a->B * a->Hp * a->Wp * a->C;
    a->qkv = act_rand(x, 3 * no, -1.5f, 1.5f);
    a->out = act_out(x, no);
    a->probs = act_out(x, (size_t)a->B * nWin * a->heads * n * n);
    a->table = pair_rand(x, (size_t)T * a->heads, -1, 1);
    x->cpu->window_attention_forward(x->cpu, a->out.c, a->probs.c, a->qkv.c, a->table.c, a->B, a->Hp, a->Wp, a->C,
                                     a->heads, a->w, a->s);
}

static void att_shape_gpu(Ctx *x, AttShape *a, ActPair *out, ActPair *probs) {
    x->gpu->window_attention_forward(x->gpu, out->g, probs->g, a->qkv.g, a->table.g, a->B, a->Hp, a->Wp, a->C,
                                     a->heads, a->w, a->s);
}

/* A captured step replays every launch it recorded: a kernel's dynamic shared memory limit is
 * the function's, so a later, smaller shape must not lower it below what an earlier, larger
 * shape's recorded launch needs (synapse_320: the window-20 stage, then window-10 ones). Both
 * shapes run eagerly once (workspace settled), then are captured in that order into fresh
 * NaN-filled outputs, replayed, and compared with the CPU. Same head dim, so the flash kernel is
 * one function for both. */
static void case_attention_replay(Ctx *x, const char *impl) {
    if (!x->gpu->capture_begin) return;
    force_kernel(x, "window_attention", impl);
    AttShape big = {.B = 1, .Hp = 20, .Wp = 20, .C = 64, .heads = 2, .w = 20, .s = 0}; /* n = 400, hd 32 */
    AttShape small = {.B = 1, .Hp = 8, .Wp = 12, .C = 64, .heads = 2, .w = 4, .s = 2}; /* n = 16 */
    AttShape *shapes[2] = {&big, &small};
    ActPair out2[2], probs2[2];
    for (int i = 0; i < 2; i++) {
        att_shape_init(x, shapes[i]);
        att_shape_gpu(x, shapes[i], &shapes[i]->out, &shapes[i]->probs); /* eager */
        out2[i] = act_out(x, shapes[i]->out.n);
        probs2[i] = act_out(x, shapes[i]->probs.n);
    }
    char why[256];
    if (x->gpu->capture_begin(x->gpu, why, sizeof why) != 0) die("attention replay: capture_begin: %s", why);
    for (int i = 0; i < 2; i++) att_shape_gpu(x, shapes[i], &out2[i], &probs2[i]);
    if (x->gpu->capture_end(x->gpu, why, sizeof why) != 0) die("attention replay: capture_end: %s", why);
    if (x->gpu->replay(x->gpu) != 0) die("attention replay: the recorded launches could not be replayed");
    x->gpu->synchronize(x->gpu); /* a launch the replay refuses ends the process here, naming the call */
    for (int i = 0; i < 2; i++) {
        char op[64];
        snprintf(op, sizeof op, "attention replay w%d %s", shapes[i]->w, impl);
        ActPair o = {shapes[i]->out.n, shapes[i]->out.c, out2[i].g};
        compare_act(x, op, "out", o, TOL_FP32);
        if (strcmp(impl, "flash") != 0) { /* flash saves row log-sum-exps there, not the softmax */
            ActPair p = {shapes[i]->probs.n, shapes[i]->probs.c, probs2[i].g};
            compare_act(x, op, "probs", p, TOL_FP32);
        }
        act_free(x, &out2[i]);
        act_free(x, &probs2[i]);
        ActPair *acts[] = {&shapes[i]->qkv, &shapes[i]->out, &shapes[i]->probs};
        for (size_t k = 0; k < sizeof acts / sizeof *acts; k++) act_free(x, acts[k]);
        pair_free(x, &shapes[i]->table);
    }
    x->gpu->capture_drop(x->gpu);
    force_kernel(x, "window_attention", "");
}

static void case_elementwise(Ctx *x, size_t N, int C, int B) {
    size_t n = N * C;
    ActPair a = act_rand(x, n, -1, 1), b = act_rand(x, n, -1, 1), out = act_out(x, n), acc = act_rand(x, n, -1, 1);
    x->cpu->add(x->cpu, out.c, a.c, b.c, n);
    x->gpu->add(x->gpu, out.g, a.g, b.g, n);
    compare_act(x, "add", "out", out, 0);
    x->cpu->accumulate(x->cpu, acc.c, a.c, n);
    x->gpu->accumulate(x->gpu, acc.g, a.g, n);
    compare_act(x, "accumulate", "dst", acc, 0);
    Pair gamma = pair_rand(x, C, -1, 1), dg = pair_rand(x, C, -1, 1);
    ActPair cs = act_out(x, n), din = act_rand(x, n, -1, 1);
    x->cpu->channel_scale_forward(x->cpu, cs.c, a.c, gamma.c, N, C);
    x->gpu->channel_scale_forward(x->gpu, cs.g, a.g, gamma.g, N, C);
    compare_act(x, "channel_scale", "out", cs, 0);
    x->cpu->channel_scale_backward(x->cpu, din.c, dg.c, b.c, a.c, gamma.c, N, C);
    x->gpu->channel_scale_backward(x->gpu, din.g, dg.g, b.g, a.g, gamma.g, N, C);
    compare_act(x, "channel_scale", "din", din, TOL_FP32);
    compare(x, "channel_scale", "dgamma", dg, TOL_FP32);
    float scale_host[64];
    for (int i = 0; i < B && i < 64; i++) scale_host[i] = i % 3 == 1 ? 0.0f : 1.25f; /* drop path: 0 or 1/keep */
    size_t per = n / B;
    ActPair ss = act_out(x, per * B), sdin = act_rand(x, per * B, -1, 1);
    Pair sc = pair_from(x, scale_host, (size_t)B); /* the scales live in backend memory */
    x->cpu->sample_scale_forward(x->cpu, ss.c, a.c, sc.c, B, per);
    x->gpu->sample_scale_forward(x->gpu, ss.g, a.g, sc.g, B, per);
    compare_act(x, "sample_scale", "out", ss, 0);
    x->cpu->sample_scale_backward(x->cpu, sdin.c, b.c, sc.c, B, per);
    x->gpu->sample_scale_backward(x->gpu, sdin.g, b.g, sc.g, B, per);
    compare_act(x, "sample_scale", "din", sdin, TOL_FP32);
    ActPair *acts[] = {&a, &b, &out, &acc, &cs, &din, &ss, &sdin};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
    Pair *all[] = {&gamma, &dg, &sc};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
}

/* The fused residual branch (residual_forward, residual_layernorm_forward, residual_backward,
 * layernorm_backward_residual, layernorm_backward_residual_branch) with and without layer scale
 * and drop path. The elementwise
 * values repeat the unfused ops' float operations, so they are held at 0 (exact in fp32 mode,
 * only the storage rounding in bf16 mode). The fused LayerNorm is compared with the CPU's
 * LayerNorm of the GPU's stored residual sum (as the LayerNorm check measures its own error on
 * inputs both sides share); in fp32 mode that sum is the CPU's own bit for bit. Outputs that the
 * ops overwrite start as NaN on the GPU; accumulated ones (dres, dgamma, dg, db) start random. */
static void case_residual(Ctx *x, int B, size_t per, int C, int with_gamma, int with_drop) {
    char op[64];
    snprintf(op, sizeof op, "residual B%d C%d%s%s", B, C, with_gamma ? " gamma" : "", with_drop ? " drop" : "");
    size_t N = (size_t)B * per / C, n = N * C;
    float scale_host[64];
    for (int i = 0; i < B && i < 64; i++) scale_host[i] = i % 3 == 1 ? 0.0f : 1.25f; /* 0 or 1/keep */
    Pair scale = pair_from(x, scale_host, (size_t)B); /* backend memory, as the model uploads it */
    const float *sh = with_drop ? scale.c : NULL, *shg = with_drop ? scale.g : NULL;
    ActPair res = act_rand(x, n, 1, 3), y = act_rand(x, n, -1, 1), out = act_out(x, n), out2 = act_out(x, n),
            ln = act_out(x, n);
    Pair gamma = pair_rand(x, C, -1, 1), g = pair_rand(x, C, 0.5f, 1.5f), b = pair_rand(x, C, -0.5f, 0.5f);
    Pair mean = pair_out(x, N), rstd = pair_out(x, N);
    const float *gc = with_gamma ? gamma.c : NULL, *gg = with_gamma ? gamma.g : NULL;
    x->cpu->residual_forward(x->cpu, out.c, res.c, y.c, gc, sh, B, per, C);
    x->gpu->residual_forward(x->gpu, out.g, res.g, y.g, gg, shg, B, per, C);
    compare_act(x, op, "out", out, 0);
    x->cpu->residual_layernorm_forward(x->cpu, out2.c, ln.c, mean.c, rstd.c, res.c, y.c, gc, sh, g.c, b.c, B, per,
                                       C, 1e-5f);
    x->gpu->residual_layernorm_forward(x->gpu, out2.g, ln.g, mean.g, rstd.g, res.g, y.g, gg, shg, g.g, b.g, B, per,
                                       C, 1e-5f);
    compare_act(x, op, "ln.out", out2, 0);
    float *h = xmalloc(n * sizeof(float)); /* (n) the GPU's stored residual sum */
    backend_download_act(x->gpu, h, out2.g, n);
    backend_upload_act(x->cpu, out2.c, h, n);
    free(h);
    x->cpu->layernorm_forward(x->cpu, ln.c, mean.c, rstd.c, out2.c, g.c, b.c, N, C, 1e-5f);
    compare_act(x, op, "ln", ln, TOL_FP32);
    compare(x, op, "mean", mean, TOL_FP32);
    compare(x, op, "rstd", rstd, TOL_FP32);
    /* backward of the branch: dres accumulates, dy is overwritten */
    ActPair dout = act_rand(x, n, -1, 1), dres = act_rand(x, n, -1, 1), dy = act_out(x, n);
    Pair dgamma = pair_rand(x, C, -1, 1);
    x->cpu->residual_backward(x->cpu, dres.c, dy.c, dgamma.c, dout.c, y.c, gc, sh, B, per, C);
    x->gpu->residual_backward(x->gpu, dres.g, dy.g, dgamma.g, dout.g, y.g, gg, shg, B, per, C);
    compare_act(x, op, "dres", dres, 0);
    compare_act(x, op, "dy", dy, 0);
    if (with_gamma) compare(x, op, "dgamma", dgamma, TOL_FP32);
    /* LayerNorm backward from the residual gradient (without layer scale: from none, dres NULL):
     * din overwritten */
    ActPair din = act_out(x, n), dres2 = act_rand(x, n, -1, 1);
    Pair dg = pair_rand(x, C, -1, 1), db = pair_rand(x, C, -1, 1);
    x->cpu->layernorm_backward_residual(x->cpu, din.c, dg.c, db.c, with_gamma ? dres2.c : NULL, dout.c, out2.c, mean.c, rstd.c, g.c, N, C);
    x->gpu->layernorm_backward_residual(x->gpu, din.g, dg.g, db.g, with_gamma ? dres2.g : NULL, dout.g, out2.g, mean.g, rstd.g, g.g, N, C);
    compare_act(x, op, "ln.din", din, TOL_FP32);
    compare(x, op, "ln.dg", dg, TOL_FP32);
    compare(x, op, "ln.db", db, TOL_FP32);
    /* both in one op: d = dres2 + the LayerNorm term, then the branch backward of d (dx, dg, db,
     * dgamma accumulate from random values, dy overwritten); d is no Act on the GPU (no bf16
     * rounding), the CPU's is its temporary */
    ActPair bdx = act_rand(x, n, -1, 1), bdy = act_out(x, n);
    Pair bdg = pair_rand(x, C, -1, 1), bdb = pair_rand(x, C, -1, 1), bdgamma = pair_rand(x, C, -1, 1);
    x->cpu->layernorm_backward_residual_branch(x->cpu, bdx.c, bdy.c, bdg.c, bdb.c, bdgamma.c, dres2.c, dout.c, out2.c,
                                               mean.c, rstd.c, g.c, y.c, gc, sh, B, per, C);
    x->gpu->layernorm_backward_residual_branch(x->gpu, bdx.g, bdy.g, bdg.g, bdb.g, bdgamma.g, dres2.g, dout.g, out2.g,
                                               mean.g, rstd.g, g.g, y.g, gg, shg, B, per, C);
    compare_act(x, op, "branch.dx", bdx, TOL_FP32);
    compare_act(x, op, "branch.dy", bdy, TOL_FP32);
    compare(x, op, "branch.dg", bdg, TOL_FP32);
    compare(x, op, "branch.db", bdb, TOL_FP32);
    if (with_gamma) compare(x, op, "branch.dgamma", bdgamma, TOL_FP32);
    ActPair *acts[] = {&res, &y, &out, &out2, &ln, &dout, &dres, &dy, &din, &dres2, &bdx, &bdy};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
    Pair *all[] = {&gamma, &g, &b, &mean, &rstd, &dgamma, &dg, &db, &scale, &bdg, &bdb, &bdgamma};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
}

static void case_loss(Ctx *x, int B, int H, int W, int K) {
    char op[64];
    snprintf(op, sizeof op, "dice_ce N%d K%d", B * H * W, K);
    size_t N = (size_t)B * H * W;
    int32_t *lab = xmalloc(N * sizeof(int32_t));
    uint64_t st = x->stream++;
    for (size_t i = 0; i < N; i++) lab[i] = (int32_t)(rng_uniform(rng_key(x->seed, st, i)) * K) % K;
    int32_t *lc = x->cpu->alloc(x->cpu, N * sizeof(int32_t)), *lg = x->gpu->alloc(x->gpu, N * sizeof(int32_t));
    x->cpu->upload(x->cpu, lc, lab, N * sizeof(int32_t));
    x->gpu->upload(x->gpu, lg, lab, N * sizeof(int32_t));
    ActPair logits = act_rand(x, N * K, -3, 3), dlog = act_rand(x, N * K, -1e-4f, 1e-4f);
    Pair probs = pair_out(x, N * K), stats = pair_out(x, 3 * (size_t)K);
    float lossc[3], lossg[3] = {NAN, NAN, NAN};
    Pair loss = pair_out(x, 3); /* the loss terms live in backend memory */
    x->cpu->dice_ce_forward(x->cpu, loss.c, probs.c, stats.c, logits.c, lc, N, K, 1.2f, 0.8f);
    x->gpu->dice_ce_forward(x->gpu, loss.g, probs.g, stats.g, logits.g, lg, N, K, 1.2f, 0.8f);
    x->cpu->download(x->cpu, lossc, loss.c, sizeof lossc);
    x->gpu->download(x->gpu, lossg, loss.g, sizeof lossg);
    pair_free(x, &loss);
    const char *names[3] = {"total", "dice", "ce"};
    for (int i = 0; i < 3; i++) {
        double e = fabs((double)lossg[i] - lossc[i]);
        report(x, op, names[i], isfinite(lossg[i]) ? e : INFINITY, fabs(lossc[i]), !isfinite(lossg[i]), TOL_FP32);
    }
    compare(x, op, "probs", probs, TOL_FP32);
    compare(x, op, "stats", stats, TOL_FP32);
    x->cpu->dice_ce_backward(x->cpu, dlog.c, probs.c, stats.c, lc, N, K, 1.2f, 0.8f, 0.5f);
    x->gpu->dice_ce_backward(x->gpu, dlog.g, probs.g, stats.g, lg, N, K, 1.2f, 0.8f, 0.5f);
    compare_act(x, op, "dlogits", dlog, TOL_FP32);
    /* loss_total: the deep-supervision total of three outputs from one statistics block */
    {
        Pair blk = pair_rand(x, 3 * 3 * ((size_t)K + 1), 0.0f, 50.0f), tot = pair_out(x, 3);
        float tc[3], tg[3] = {NAN, NAN, NAN};
        x->cpu->loss_total(x->cpu, tot.c, blk.c, 3, K, 1.2f, 0.8f, 0.5714286f, 0.2857143f, 0.1428571f);
        x->gpu->loss_total(x->gpu, tot.g, blk.g, 3, K, 1.2f, 0.8f, 0.5714286f, 0.2857143f, 0.1428571f);
        x->cpu->download(x->cpu, tc, tot.c, sizeof tc);
        x->gpu->download(x->gpu, tg, tot.g, sizeof tg);
        char op2[64];
        snprintf(op2, sizeof op2, "loss_total K%d", K);
        for (int i = 0; i < 3; i++) {
            double e = fabs((double)tg[i] - tc[i]);
            report(x, op2, names[i], isfinite(tg[i]) ? e : INFINITY, fabs(tc[i]), !isfinite(tg[i]), TOL_FP32);
        }
        pair_free(x, &blk);
        pair_free(x, &tot);
    }
    /* label downsampling: exact */
    for (int f = 2; f <= 4; f *= 2) {
        size_t nd = (size_t)B * (H / f) * (W / f);
        int32_t *dc = x->cpu->alloc(x->cpu, nd * sizeof(int32_t)), *dg = x->gpu->alloc(x->gpu, nd * sizeof(int32_t));
        int32_t *hc = xmalloc(nd * sizeof(int32_t)), *hg = xmalloc(nd * sizeof(int32_t));
        x->cpu->downsample_labels(x->cpu, dc, lc, B, H, W, f);
        x->gpu->downsample_labels(x->gpu, dg, lg, B, H, W, f);
        x->cpu->download(x->cpu, hc, dc, nd * sizeof(int32_t));
        x->gpu->download(x->gpu, hg, dg, nd * sizeof(int32_t));
        size_t diff = 0;
        for (size_t i = 0; i < nd; i++) diff += hc[i] != hg[i];
        report(x, f == 2 ? "downsample_labels f2" : "downsample_labels f4", "labels", (double)diff, (double)nd, diff,
               0);
        x->cpu->release(x->cpu, dc);
        x->gpu->release(x->gpu, dg);
        free(hc);
        free(hg);
    }
    ActPair *acts[] = {&logits, &dlog};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) act_free(x, acts[i]);
    Pair *all[] = {&probs, &stats};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
    x->cpu->release(x->cpu, lc);
    x->gpu->release(x->gpu, lg);
    free(lab);
}

static void case_optim(Ctx *x, size_t n) {
    Pair g = pair_rand(x, n, -1, 1);
    /* the sum of squares and the norm live in backend memory: [0] sumsq, [1] norm (NaN on the GPU
     * until written, so a missing write shows) */
    double *dc = x->cpu->alloc(x->cpu, 2 * sizeof(double)), *dg = x->gpu->alloc(x->gpu, 2 * sizeof(double));
    const double nan2[2] = {NAN, NAN};
    x->gpu->upload(x->gpu, dg, nan2, sizeof nan2);
    double hc[2] = {0, 0}, hg[2] = {NAN, NAN};
    x->cpu->sum_squares(x->cpu, &dc[0], g.c, n);
    x->gpu->sum_squares(x->gpu, &dg[0], g.g, n);
    x->cpu->download(x->cpu, hc, dc, sizeof hc);
    x->gpu->download(x->gpu, hg, dg, sizeof hg);
    report(x, "sum_squares", "out", isfinite(hg[0]) ? fabs(hg[0] - hc[0]) : INFINITY, hc[0], !isfinite(hg[0]), 1e-10);
    x->cpu->scale(x->cpu, g.c, 0.37f, n);
    x->gpu->scale(x->gpu, g.g, 0.37f, n);
    compare(x, "scale", "x", g, 0);
    /* clip_by_norm on the CPU's sum (the same input on both sides): a max_norm below the norm
     * clips, one above it leaves x alone */
    x->gpu->upload(x->gpu, dg, hc, sizeof(double));
    for (int clip = 0; clip < 2; clip++) {
        double max_norm = clip ? 0.5 * sqrt(hc[0]) : 2.0 * sqrt(hc[0]) + 1.0;
        x->gpu->upload(x->gpu, &dg[1], &nan2[1], sizeof(double));
        x->cpu->clip_by_norm(x->cpu, g.c, &dc[1], &dc[0], max_norm, n);
        x->gpu->clip_by_norm(x->gpu, g.g, &dg[1], &dg[0], max_norm, n);
        compare(x, "clip_by_norm", clip ? "x-clip" : "x-keep", g, 0);
        x->cpu->download(x->cpu, hc, dc, sizeof hc);
        x->gpu->download(x->gpu, hg, dg, sizeof hg);
        report(x, "clip_by_norm", "norm", isfinite(hg[1]) ? fabs(hg[1] - hc[1]) : INFINITY, hc[1], !isfinite(hg[1]), 0);
    }
    x->cpu->release(x->cpu, dc);
    x->gpu->release(x->gpu, dg);
    Pair p = pair_rand(x, n, -1, 1), m = pair_rand(x, n, -0.1f, 0.1f), v = pair_rand(x, n, 0, 0.01f);
    float coef_host[2];
    adam_coefs(1e-3, 0.9, 0.999, 3, coef_host);
    Pair coef = pair_from(x, coef_host, 2);
    x->cpu->adam_update(x->cpu, p.c, m.c, v.c, g.c, n, 0.9, 0.999, 1e-8, coef.c);
    x->gpu->adam_update(x->gpu, p.g, m.g, v.g, g.g, n, 0.9, 0.999, 1e-8, coef.g);
    pair_free(x, &coef);
    compare(x, "adam_update", "param", p, 1e-6);
    compare(x, "adam_update", "m", m, 1e-6);
    compare(x, "adam_update", "v", v, 1e-6);
    Pair *all[] = {&g, &p, &m, &v};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) pair_free(x, all[i]);
}

static int check_ops(Ctx *x) {
    char head[32];
    snprintf(head, sizeof head, "op (%s)", x->precision);
    printf("%-30s %-8s %11s %11s %11s %9s  %s\n", head, "tensor", "max|err|", "max|ref|", "rel", "tol", "result");
    /* the tuned ops: every implementation, on the model's kinds of shapes (C = 8..96, odd H/W,
     * B = 1..3, tiles cut at the edges); odd C and C that vector loads cannot take fall back */
    FOR_EACH_IMPL(x, "dwconv7", {
        case_dwconv7(x, 2, 13, 11, 24);
        case_dwconv7(x, 2, 20, 20, 96);
        case_dwconv7(x, 3, 9, 17, 8);
        case_dwconv7(x, 1, 23, 7, 64);
        case_dwconv7(x, 1, 5, 6, 15);
        /* the dw/db finish's groups (last_block.cuh, ~sqrt(rows) rows each): one group of two rows
         * ("tiled": 2 tiles, "direct": 2 image rows), one row ("tiled": 1 tile); the shapes above
         * have several groups, the last one shorter (e.g. 23 rows: 4 × 5 + 3) */
        case_dwconv7(x, 2, 1, 7, 6);
        case_dwconv7(x, 1, 5, 6, 16);
    });
    /* the fused conv + LayerNorm: channels from one warp per strip (24: 8 strips per block) to
     * 768 (3 channels per thread, 150 KB of weights in shared memory), odd maps (strips cut at
     * the right edge, maps narrower than a strip); 2 x 33 x 127 at C 200 is 1056 strips of one
     * block each: more than the grid's 1024 blocks, so blocks loop */
    FOR_EACH_IMPL(x, "dwconv7_layernorm", {
        case_dwconv7_layernorm(x, 2, 13, 11, 24);
        case_dwconv7_layernorm(x, 1, 9, 17, 96);
        case_dwconv7_layernorm(x, 1, 7, 5, 200);
        case_dwconv7_layernorm(x, 2, 5, 3, 768);
        case_dwconv7_layernorm(x, 1, 3, 9, 45);
        case_dwconv7_layernorm(x, 2, 33, 127, 200);
    });
    case_convT(x, 2, 5, 6, 16, 8, 2);
    case_convT(x, 2, 5, 6, 8, 14, 4);
    case_linear(x, 300, 48, 80, 1);
    case_linear(x, 257, 96, 288, 0);
    FOR_EACH_IMPL(x, "layernorm", {
        case_layernorm(x, 500, 96, 1e-5f);
        case_layernorm(x, 333, 768, 1e-6f);
        case_layernorm(x, 3 * 13 * 11, 8, 1e-5f);
        case_layernorm(x, 2 * 9 * 7, 40, 1e-5f);
        case_layernorm(x, 1 * 17 * 19, 64, 1e-6f);
        case_layernorm(x, 131, 12, 1e-5f);
        /* more rows than the backward's 512 chunks: several rows per chunk, then the last block's sum */
        case_layernorm(x, 9001, 96, 1e-5f);
        case_layernorm(x, 4999, 40, 1e-6f);
    });
    case_gelu(x, 10000);
    case_gelu_layernorm(x, 500, 96, 1e-5f);
    case_gelu_layernorm(x, 333, 768, 1e-5f);
    case_gelu_layernorm(x, 3 * 13 * 11, 8, 1e-5f);
    case_gelu_layernorm(x, 131, 12, 1e-5f);
    /* more rows than the backward's 512 chunks: several rows per chunk, then the last block's sum */
    case_gelu_layernorm(x, 9001, 96, 1e-5f);
    case_gelu_layernorm(x, 4999, 40, 1e-5f);
    case_mlp(x, 300, 48, 192);
    case_mlp(x, 1037, 40, 160);
    case_window(x, 2, 13, 11, 8, 14, 14, 3);
    case_window(x, 2, 14, 14, 8, 14, 14, 0);
    case_attention(x, 2, 14, 14, 64, 2, 7, 0);
    case_attention(x, 2, 21, 14, 64, 2, 7, 3);
    case_attention(x, 1, 28, 28, 48, 3, 14, 7);
    case_attention(x, 1, 40, 40, 64, 2, 20, 10);
    case_attention(x, 1, 8, 12, 32, 2, 4, 2);   /* n = 16: no padding of the flash tiles, hd 16 */
    case_attention(x, 1, 20, 30, 48, 2, 10, 5); /* n = 100 padded to 112, hd = 24 (the demo's) to 32 */
    /* the bias-table finish's groups (last_block.cuh): 2 windows, one group; above 8 windows in
     * groups of 3, 3, 2 (14x14 map, w 7, B 2) */
    case_attention(x, 1, 10, 20, 48, 2, 10, 5);
    case_attention_replay(x, "smem");
    case_attention_replay(x, "gemm");
    if (!strcmp(x->precision, "bf16")) case_attention_replay(x, "flash");
    if (strcmp(x->precision, "bf16") != 0)
        printf("(window_attention=flash: bf16 tensor cores, unavailable in %s mode: not checked)\n", x->precision);
    case_elementwise(x, 1000, 24, 4);
    case_residual(x, 4, 250 * 24, 24, 1, 1);
    case_residual(x, 3, 37 * 96, 96, 1, 0);
    case_residual(x, 2, 61 * 40, 40, 0, 1);
    case_residual(x, 4, 1300 * 40, 40, 1, 1); /* 5,200 rows: several per dgamma chunk */
    case_residual(x, 2, 2550 * 264, 264, 1, 0);
    case_residual(x, 3, 3000 * 96, 96, 1, 1); /* 9,000 rows: several per chunk, a dropped sample */
    case_loss(x, 2, 32, 48, 14);
    case_optim(x, 1000003);
    /* cuDNN last: if it offers no algorithm for a shape, CHECK ends the process, and every
     * row above is already printed */
    FOR_EACH_IMPL(x, "conv3x3", {
        case_conv3x3(x, 2, 17, 19, 8, 12, 1);
        case_conv3x3(x, 2, 17, 20, 8, 16, 2);
        case_conv3x3(x, 2, 40, 40, 48, 48, 1);
        case_conv3x3(x, 3, 9, 7, 16, 32, 2);
    });
    if (!strcmp(x->precision, "fp32"))
        printf("ops: %s: %d checks, %d failed (fp32 tolerance %.0e of the reference's max magnitude)\n", x->precision,
               x->rows, x->fails, TOL_FP32);
    else
        printf("ops: %s: %d checks, %d failed (tolerances of the reference's max magnitude: cuBLAS products %.0e, "
               "cuDNN products %.0e, everything else fp32's %.0e; plus %.1e for each Act an op stores)\n",
               x->precision, x->rows, x->fails, x->tol_blas, x->tol_dnn, TOL_FP32, x->act_round);
    return x->fails ? 3 : 0;
}

/* ---- --steps: a few training steps on both backends ------------------------------------ */

typedef struct {
    Backend *be;
    float *params, *grads, *image;
    int32_t *labels;
    ModelActs *acts;
    Adam adam;
} Replica;

static void replica_init(Replica *r, Backend *be, const Model *m, double lr, const float *params, const float *img,
                         const int32_t *lab, int B, int H, int W) {
    r->be = be;
    size_t np = m->params.total, ni = (size_t)B * H * W * m->cin, nl = (size_t)B * H * W;
    r->params = be->alloc(be, np * sizeof(float));
    r->grads = be->alloc(be, np * sizeof(float));
    r->image = be->alloc(be, ni * sizeof(float));
    r->labels = be->alloc(be, nl * sizeof(int32_t));
    be->upload(be, r->params, params, np * sizeof(float));
    be->upload(be, r->image, img, ni * sizeof(float));
    be->upload(be, r->labels, lab, nl * sizeof(int32_t));
    r->acts = model_acts_create(m, be, B, H, W, 0);
    adam_create(&r->adam, be, np, lr);
}

static float replica_step(Replica *r, const Model *m, int step, double *norm) {
    Backend *be = r->be;
    PassOptions opt = {.training = 0, .seed = 0, .step = (uint64_t)step};
    float *outs[3];
    model_forward(m, be, r->acts, r->params, r->image, &opt, outs);
    float loss = model_loss(m, be, r->acts, r->labels, NULL, NULL);
    be->zero(be, r->grads, m->params.total * sizeof(float));
    model_backward(m, be, r->acts, r->params, r->grads, NULL);
    adam_clip_and_step(&r->adam, be, r->params, r->grads);
    *norm = adam_last_norm(&r->adam, be);
    return loss;
}

static void replica_free(Replica *r) {
    Backend *be = r->be;
    adam_destroy(&r->adam, be);
    model_acts_free(r->acts);
    be->release(be, r->params);
    be->release(be, r->grads);
    be->release(be, r->image);
    be->release(be, r->labels);
}


static int check_steps(Ctx *x, const char *cfg_path, int steps, int B) {
    Config cfg;
    char err[1024];
    if (config_load(&cfg, cfg_path, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        return 2;
    }
    Model m;
    model_build(&m, &cfg.net);
    int H = cfg.net.crop[0], W = cfg.net.crop[1];
    size_t ni = (size_t)B * H * W * m.cin, nl = (size_t)B * H * W;
    float *params = xmalloc(m.params.total * sizeof(float)), *img = xmalloc(ni * sizeof(float));
    int32_t *lab = xmalloc(nl * sizeof(int32_t));
    model_init_params(&m, params, x->seed);
    for (size_t i = 0; i < ni; i++) img[i] = (float)rng_normal(rng_key(x->seed, 1000, i));
    for (size_t i = 0; i < nl; i++) lab[i] = (int32_t)((i / W % H) * m.K / H); /* bands: every class present */
    Replica rc, rg;
    replica_init(&rc, x->cpu, &m, cfg.lr, params, img, lab, B, H, W);
    replica_init(&rg, x->gpu, &m, cfg.lr, params, img, lab, B, H, W);
    printf("%-6s %14s %14s %11s %11s %11s %9s\n", "step", "loss cpu", "loss cuda", "rel diff", "norm cpu", "norm cuda",
           "cuda ms");
    double worst = 0, first = 0, tc = 0, tg = 0;
    int bad = 0;
    for (int s = 0; s < steps; s++) {
        double nc, ng, t0 = monotonic_seconds();
        float lc = replica_step(&rc, &m, s, &nc);
        double t1 = monotonic_seconds();
        float lg = replica_step(&rg, &m, s, &ng);
        double t2 = monotonic_seconds();
        tc += t1 - t0, tg += t2 - t1;
        double rel = fabs((double)lg - lc) / fmax(fabs((double)lc), 1e-12);
        if (!isfinite(lg)) bad = 1, rel = INFINITY;
        if (s == 0) first = rel;
        if (rel > worst) worst = rel;
        printf("%-6d %14.8f %14.8f %11.3e %11.4f %11.4f %9.1f\n", s + 1, lc, lg, rel, nc, ng, (t2 - t1) * 1e3);
    }
    double tol1 = TOL_STEP1_FP32, tols = TOL_STEPS_FP32;
    if (!strcmp(x->precision, "bf16")) tol1 = TOL_STEP1_BF16, tols = TOL_STEPS_BF16;
    else if (!strcmp(x->precision, "tf32")) tol1 = TOL_STEP1_TF32, tols = TOL_STEPS_TF32;
    int ok = !bad && first <= tol1 && worst <= tols;
    printf("steps: %s: %s %d steps batch %d, step-1 rel %.3e (tol %.0e), worst rel %.3e (tol %.0e): %s; "
           "cpu %.1f ms/step, cuda %.1f ms/step\n",
           x->precision, cfg.name, steps, B, first, tol1, worst, tols, ok ? "ok" : "FAIL", tc / steps * 1e3,
           tg / steps * 1e3);
    replica_free(&rc);
    replica_free(&rg);
    free(params);
    free(img);
    free(lab);
    model_free(&m);
    return ok ? 0 : 3;
}

int cmd_gpu_check_ops(int argc, char **argv) {
    const char *cfg_path = NULL, *precision = "fp32", *kernels = NULL;
    int steps = 0, nccl = 0, device = 0, batch = 2;
    uint64_t seed = 20221;
    for (int i = 0; i < argc; i++) {
        int has = i + 1 < argc;
        if (!strcmp(argv[i], "--steps") && has) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--config") && has) cfg_path = argv[++i];
        else if (!strcmp(argv[i], "--batch") && has) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && has) device = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--precision") && has) precision = argv[++i];
        else if (!strcmp(argv[i], "--seed") && has) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--kernels") && has) kernels = argv[++i];
        else if (!strcmp(argv[i], "--nccl")) nccl = 1;
        else {
            fprintf(stderr, "usage: unet2022-check gpu-check-ops [--precision fp32|tf32|bf16] [--steps S [--config C.yaml]\n"
                            "                                    [--batch B]] [--kernels OP=IMPL,...] [--nccl] [--device D]\n"
                            "                                    [--seed N]\n");
            return 1;
        }
    }
    if (strcmp(precision, "fp32") && strcmp(precision, "tf32") && strcmp(precision, "bf16")) {
        fprintf(stderr, "unet2022: error: --precision must be fp32, tf32 or bf16, got '%s'\n", precision);
        return 1;
    }
    if (steps < 0 || steps > 10000 || batch < 1) {
        fprintf(stderr, "unet2022: error: --steps must be in [0, 10000] and --batch >= 1\n");
        return 1;
    }
    if (cuda_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    if (nccl) {
#ifdef UNET_HAVE_MPI
        return gpu_check_nccl(&argc, &argv, cfg_path ? cfg_path : "configs/demo.yaml");
#else
        printf("nccl: built without MPI (the NCCL transport bootstraps over MPI): skipped\n");
        return 77;
#endif
    }
    Ctx x = {.cpu = backend_cpu_create(0), .gpu = backend_cuda_create(device, precision), .seed = seed, .stream = 1};
    set_tolerances(&x, backend_cuda_precision(x.gpu));
    int rc;
    char err[256];
    /* as train.kernels: --steps with chosen implementations (the op table forces each anyway) */
    if (kernels && backend_cuda_set_tuning(x.gpu, NULL, kernels, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        rc = 1;
    } else if (steps > 0) rc = check_steps(&x, cfg_path ? cfg_path : "configs/demo.yaml", steps, batch);
    else rc = check_ops(&x);
    x.gpu->destroy(x.gpu);
    x.cpu->destroy(x.cpu);
    return rc;
}
#else
/* Built without CUDA: main.c answers gpu-check-ops with "skipped" (ISO C wants a declaration). */
typedef int cmd_gpu_check_unavailable;
#endif
