/* linear.c — fully connected layer over the last dim: out(N, Co) = in(N, Ci) · wᵀ + b,
 * weight (Co, Ci) as PyTorch's nn.Linear. All three products are single cblas_sgemm calls
 * on the row-major matrices as they are (no transposed copies); backward uses beta = 1
 * because din and dw accumulate (backend.h); db is overwritten (backend_ops.h): zero + the
 * column sum. */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"

/* db[c] += Σ_n x[n, c]; each channel summed serially in n order in double (deterministic,
 * independent of the thread count); threads split the channels. */
static void colsum_acc(float *db,      /* (C) */
                       const float *x, /* (N, C) */
                       size_t N, int C) {
    enum { CB = 32 };
    int nblk = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
        double acc[CB] = {0};
        for (size_t n = 0; n < N; n++) {
            const float *row = x + n * (size_t)C;
            for (int c = c0; c < c1; c++) acc[c - c0] += row[c];
        }
        for (int c = c0; c < c1; c++) db[c] += (float)acc[c - c0];
    }
}

void cpu_linear_forward(Backend *be,
                        Act *out_act,      /* (N, Co) */
                        const Act *in_act, /* (N, Ci) */
                        const float *w,    /* (Co, Ci) */
                        const float *b,    /* (Co) or NULL */
                        size_t N, int Ci, int Co) {
    float *out = (float *)out_act;           /* (N, Co) */
    const float *in = (const float *)in_act; /* (N, Ci) */
    if (N == 0) return;
    CHECK(N <= (size_t)INT_MAX, "linear: N = %zu exceeds the BLAS int range", N);
    if (b) {
        /* Prefill with the bias and let the GEMM add onto it (beta = 1): saves a pass. */
#pragma omp parallel for schedule(static)
        for (size_t n = 0; n < N; n++) memcpy(out + n * Co, b, (size_t)Co * sizeof(float));
    }
    cpu_sgemm(0, 1, (int)N, Co, Ci, 1.0f, in, Ci, w, Ci,
                b ? 1.0f : 0.0f, out, Co);
}

void cpu_linear_backward(Backend *be,
                         Act *din_act,        /* (N, Ci) or NULL */
                         float *dw,           /* (Co, Ci) */
                         float *db,           /* (Co) or NULL */
                         const Act *dout_act, /* (N, Co) */
                         const Act *in_act,   /* (N, Ci) */
                         const float *w,      /* (Co, Ci) */
                         size_t N, int Ci, int Co) {
    float *din = (float *)din_act;               /* (N, Ci) or NULL */
    const float *dout = (const float *)dout_act; /* (N, Co) */
    const float *in = (const float *)in_act;     /* (N, Ci) */
    /* db overwritten (its one writer in a backward pass, backend_ops.h) as zero + the accumulating
     * sum: where db held 0, as the model's zeroed gradients do, the bits are the accumulating op's */
    if (db) memset(db, 0, (size_t)Co * sizeof(float));
    if (N == 0) return;
    CHECK(N <= (size_t)INT_MAX, "linear: N = %zu exceeds the BLAS int range", N);
    /* din(N, Ci) += dout(N, Co) · w(Co, Ci) */
    if (din)
        cpu_sgemm(0, 0, (int)N, Ci, Co, 1.0f, dout, Co, w,
                    Ci, 1.0f, din, Ci);
    /* dw(Co, Ci) += doutᵀ(Co, N) · in(N, Ci) */
    cpu_sgemm(1, 0, Co, Ci, (int)N, 1.0f, dout, Co, in, Ci,
                1.0f, dw, Ci);
    if (db) colsum_acc(db, dout, N, Co);
}

/* The CPU's GEMMs take the fp32 weights themselves: nothing to prepare. */
void cpu_weights_prepare(Backend *be, const float *params /* (n) */, size_t n) {
    (void)be;
    (void)params;
    (void)n;
}

/* din overwritten: zero, then the accumulating op (0 + x, as the caller's zero + op did). */
void cpu_linear_backward_first(Backend *be, Act *din /* (N, Ci) */, float *dw /* (Co, Ci) */,
                               float *db /* (Co) or NULL */, const Act *dout /* (N, Co) */,
                               const Act *in /* (N, Ci) */, const float *w /* (Co, Ci) */, size_t N, int Ci, int Co) {
    if (din) memset(din, 0, N * (size_t)Ci * sizeof(float));
    cpu_linear_backward(be, din, dw, db, dout, in, w, N, Ci, Co);
}

/* The fused MLP ops (backend_ops.h): exactly the unfused sequences, so the CPU results are theirs
 * bit for bit. */
void cpu_linear_gelu_forward(Backend *be, Act *out /* (N, Co) */, Act *pre /* (N, Co) */, const Act *in /* (N, Ci) */,
                             const float *w /* (Co, Ci) */, const float *b /* (Co) */, size_t N, int Ci, int Co) {
    cpu_linear_forward(be, pre, in, w, b, N, Ci, Co);
    cpu_gelu_forward(be, out, pre, N * (size_t)Co);
}

void cpu_gelu_backward_bias_first(Backend *be, Act *din /* (N, C) */, float *db /* (C) */, const Act *dout /* (N, C) */,
                                  const Act *pre /* (N, C) */, size_t N, int C) {
    memset(din, 0, N * (size_t)C * sizeof(float)); /* din overwritten: the zero + accumulate sequence */
    cpu_gelu_backward(be, din, dout, pre, N * (size_t)C);
    if (N && db) colsum_acc(db, (const float *)din, N, C);
}
