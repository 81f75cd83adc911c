// layernorm.cu — LayerNorm over the channel dim (biased variance, as torch.nn.LayerNorm). One
// warp per row; statistics in double with two passes, as the CPU reference. The parameter
// gradients are column reductions over fixed row chunks (partials in double, summed in order by
// the block that finishes last, last_block.cuh): the backward is one launch in both implementations.
// The "warp" backward's pieces are layernorm_bwd.cuh's, which residual.cu's LayerNorm backwards share.
// in/out/dout/din are Acts (templates on the storage type T, act.cuh); mean/rstd, g/b, dg/db float.
// At the end: GELU → LayerNorm fused (gelu_layernorm_forward, layernorm_backward_gelu), "warp" only.
//
// Implementations (tune.h, TuneOp "layernorm"; forward and backward choose together):
//   "warp" the kernels above: scalar loads, three passes over the row in memory, the reference;
//   "vec"  a group of G lanes per row (G = 32, or 4..16 for small C: several rows per warp),
//          16-byte vector loads, the row read ONCE into registers; statistics from the registers
//          (two-pass, lane sums in fp32, across lanes in double, in a fixed butterfly order).
//          The backward reads the row and dout once, writes din, and accumulates dg/db per lane
//          over a fixed set of rows; per-block partials (in double, warps and row groups summed in
//          order), summed in block order by the last block: deterministic, no atomics, and
//          one pass (one launch) for din, dg and db. Needs C·sizeof(Act) a multiple of 16 and at
//          most 4 vectors per lane; other shapes run "warp".
#include <stdio.h>

#include "act.cuh"
#include "gelu.cuh"
#include "last_block.cuh"
#include "layernorm_bwd.cuh"
#include "tune.h"

// One row's LayerNorm by one warp: two-pass statistics in double across the lanes (fixed
// butterfly order), y = (x − mean)·rstd·g + b; lane 0 saves mean and rstd.
template <typename T>
__device__ __forceinline__ void ln_row_forward(T *y /* (C) */, float *mean, float *rstd, const T *x /* (C) */,
                                               const float *g, const float *b, int C, float eps, int lane) {
    double s = 0;
    for (int c = lane; c < C; c += 32) s += act_load(x + c);
    double mu = ln_warp_sum(s) / C;
    double ss = 0;
    for (int c = lane; c < C; c += 32) {
        double d = act_load(x + c) - mu;
        ss += d * d;
    }
    double rs = 1.0 / sqrt(ln_warp_sum(ss) / C + (double)eps);
    float muf = (float)mu, rsf = (float)rs;
    if (lane == 0) {
        *mean = muf;
        *rstd = rsf;
    }
    for (int c = lane; c < C; c += 32) act_store(y + c, (act_load(x + c) - muf) * rsf * g[c] + b[c]);
}

template <typename T>
__global__ void k_ln_fwd(T *out, float *mean, float *rstd, const T *in, const float *g, const float *b, size_t N,
                         int C, float eps) {
    size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    if (r >= N) return;
    ln_row_forward(out + r * C, mean + r, rstd + r, in + r * C, g, b, C, eps, threadIdx.x & 31);
}

#define LN_WARP_BLOCK 256     // "warp" backward threads per block (8 warps)
#define LN_PARAM_MAX_BLOCKS 512 // "warp" backward blocks (row chunks): a function of N only

// What a row's LayerNorm input gradient term is added to (k_ln_bwd's KIND): LN_DIN_BASE: din =
// aux + term (aux = dres, din may be dres; NULL: 0 + term); LN_DIN_GELU: din += term · GELU'(aux),
// aux = the GELU's input (layernorm_backward_gelu: the LayerNorm's input is the GELU's output; the
// term stays fp32, where the unfused pair stored it in a zeroed Act buffer first).
enum { LN_DIN_BASE, LN_DIN_GELU };

// Block k takes the rows [k·rows, (k+1)·rows) of a fixed chunking. din from each row's LayerNorm
// backward as KIND says (one warp per row, layernorm_bwd.cuh); with part (dg or db wanted): then
// the chunk's column partials (ln_chunk_partials), and the last block to arrive adds the chunks
// into dg/db in order. One launch for din, dg and db.
template <typename T, int KIND>
__global__ void __launch_bounds__(LN_WARP_BLOCK) k_ln_bwd(T *din, float *dg, float *db, double *part,
                                                          unsigned *arrivals, const T *aux, const T *dout,
                                                          const T *in, const float *mean, const float *rstd,
                                                          const float *g, size_t N, int C, size_t rows) {
    const int lane = threadIdx.x & 31;
    const size_t r0 = blockIdx.x * rows, r1 = r0 + rows < N ? r0 + rows : N;
    // the warp's rows: no thread returns early (the last-block barriers need them all)
    for (size_t r = r0 + threadIdx.x / 32; din && r < r1; r += LN_WARP_BLOCK / 32) {
        const T *x = in + r * C, *dy = dout + r * C, *a = aux ? aux + r * C : NULL;
        const float mu = mean[r], rs = rstd[r];
        float ma, mb;
        ln_row_means(&ma, &mb, x, dy, g, mu, rs, C, lane);
        T *dx = din + r * C;
        for (int c = lane; c < C; c += 32) { // each lane reads its element of aux before writing din's
            const float xh = (act_load(x + c) - mu) * rs;
            const float term = ln_din_term(act_load(dy + c), g[c], xh, rs, ma, mb);
            if (KIND == LN_DIN_GELU) act_store(dx + c, act_load(dx + c) + term * gelu_grad(act_load(a + c)));
            else act_store(dx + c, (a ? act_load(a + c) : 0.0f) + term);
        }
    }
    if (!part) return;
    ln_chunk_partials(part + (size_t)blockIdx.x * 2 * C, LnNoTail(), dout, in, mean, rstd, r0, r1, C);
    if (!cuda_last_block(arrivals)) return;
    ln_param_finish(dg, db, NULL, part, 2, (int)gridDim.x, C);
}

template <int KIND>
static void ln_bwd_launch(Backend *be, Act *din, float *dg, float *db, const Act *aux, const Act *dout, const Act *in,
                          const float *mean, const float *rstd, const float *g, size_t N, int C) {
    if (!din && !dg && !db) return;
    cudaStream_t s = cuda_state(be)->stream;
    size_t rows;
    const int nblk = cuda_colsum_chunks(N, LN_PARAM_MAX_BLOCKS, &rows);
    double *part = dg || db ? (double *)cuda_workspace(be, (size_t)nblk * 2 * C * sizeof(double)) : NULL;
    CUDA_ACT_DISPATCH(be, T,
                      k_ln_bwd<T, KIND><<<nblk, LN_WARP_BLOCK, 0, s>>>((T *)din, dg, db, part,
                                                                       cuda_state(be)->arrivals, (const T *)aux,
                                                                       (const T *)dout, (const T *)in, mean, rstd,
                                                                       g, N, C, rows));
    CUDA_CHECK_LAUNCH();
}

void ln_bwd_chunked(Backend *be, Act *din, float *dg, float *db, const Act *dres, const Act *dout, const Act *in,
                    const float *mean, const float *rstd, const float *g, size_t N, int C) {
    ln_bwd_launch<LN_DIN_BASE>(be, din, dg, db, dres, dout, in, mean, rstd, g, N, C);
}

// ---- "vec" --------------------------------------------------------------------------------

#define LN_VEC_BLOCK 256    // threads per block (8 warps)
#define LN_VEC_MAX_BLOCKS 512 // backward blocks: a function of N only, so the sum order is fixed

template <typename T> struct alignas(16) LnVec { T v[16 / sizeof(T)]; };

// Sum over the G lanes of a row group, butterfly in a fixed order: every lane gets the same value.
template <int G> __device__ __forceinline__ double ln_group_sum(double v) {
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o, G);
    return v;
}

// Lane l of a row's group holds vectors l, l+G, ..., l+(NV-1)G of the row (VW = 16/sizeof(T)
// elements each); nvec = C / VW vectors per row.
template <typename T, int G, int NV>
__global__ void __launch_bounds__(LN_VEC_BLOCK) k_ln_vec_fwd(T *out, float *mean, float *rstd, const T *in,
                                                             const float *g, const float *b, size_t N, int C,
                                                             float eps) {
    constexpr int VW = 16 / sizeof(T);
    const int lane = threadIdx.x % G, nvec = C / VW;
    const size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / G;
    const bool live = r < N; // dead groups still take part in the shuffles of their warp
    float x[NV][VW];
    float s = 0;
#pragma unroll
    for (int k = 0; k < NV; k++) {
        const int v = lane + k * G;
        if (live && v < nvec) {
            LnVec<T> q = *(const LnVec<T> *)(in + r * C + (size_t)v * VW);
#pragma unroll
            for (int e = 0; e < VW; e++) x[k][e] = act_load(&q.v[e]), s += x[k][e];
        } else {
#pragma unroll
            for (int e = 0; e < VW; e++) x[k][e] = 0;
        }
    }
    const double mu = ln_group_sum<G>(s) / C;
    const float muf = (float)mu;
    float ss = 0;
#pragma unroll
    for (int k = 0; k < NV; k++)
        if (lane + k * G < nvec)
#pragma unroll
            for (int e = 0; e < VW; e++) {
                const float d = x[k][e] - muf;
                ss += d * d;
            }
    const double rs = 1.0 / sqrt(ln_group_sum<G>(ss) / C + (double)eps);
    const float rsf = (float)rs;
    if (!live) return;
    if (lane == 0) mean[r] = muf, rstd[r] = rsf;
#pragma unroll
    for (int k = 0; k < NV; k++) {
        const int v = lane + k * G;
        if (v >= nvec) continue;
        LnVec<T> q;
#pragma unroll
        for (int e = 0; e < VW; e++) act_store(&q.v[e], (x[k][e] - muf) * rsf * g[v * VW + e] + b[v * VW + e]);
        *(LnVec<T> *)(out + r * C + (size_t)v * VW) = q;
    }
}

// din (+)= LayerNorm backward of each row; part[block][0..C) = Σ dout·xh, [C..2C) = Σ dout over
// the block's rows, and with dg or db the last block to arrive adds the blocks' partials in order.
// Group j of the grid (row group = blockIdx.x·(BLOCK/G) + threadIdx.x/G) takes rows j,
// j + ngroups, ... (ngroups = gridDim.x·BLOCK/G).
template <typename T, int G, int NV>
__global__ void __launch_bounds__(LN_VEC_BLOCK) k_ln_vec_bwd(T *din, float *dg, float *db, double *part,
                                                             unsigned *arrivals, const T *dout, const T *in,
                                                             const float *mean, const float *rstd, const float *g,
                                                             size_t N, int C) {
    constexpr int VW = 16 / sizeof(T);
    const int lane = threadIdx.x % G, nvec = C / VW;
    const size_t ngroups = (size_t)gridDim.x * (LN_VEC_BLOCK / G);
    const size_t g0 = blockIdx.x * (size_t)(LN_VEC_BLOCK / G) + threadIdx.x / G;
    // g is re-read per row (from L1) rather than held: registers go to the row and the partials
    float pg[NV][VW], pb[NV][VW];
#pragma unroll
    for (int k = 0; k < NV; k++)
#pragma unroll
        for (int e = 0; e < VW; e++) pg[k][e] = pb[k][e] = 0;
    // every group runs the same number of iterations (the shuffles need the whole warp)
    const size_t iters = (N + ngroups - 1) / ngroups;
    for (size_t it = 0; it < iters; it++) {
        const size_t r = g0 + it * ngroups;
        const bool live = r < N;
        const float mu = live ? mean[r] : 0.0f, rs = live ? rstd[r] : 0.0f;
        float xh[NV][VW], dy[NV][VW];
        float a = 0, bs = 0;
#pragma unroll
        for (int k = 0; k < NV; k++) {
            const int v = lane + k * G;
            if (live && v < nvec) {
                LnVec<T> qx = *(const LnVec<T> *)(in + r * C + (size_t)v * VW);
                LnVec<T> qd = *(const LnVec<T> *)(dout + r * C + (size_t)v * VW);
#pragma unroll
                for (int e = 0; e < VW; e++) {
                    xh[k][e] = (act_load(&qx.v[e]) - mu) * rs;
                    dy[k][e] = act_load(&qd.v[e]);
                    const float dxh = dy[k][e] * g[v * VW + e];
                    a += dxh;
                    bs += dxh * xh[k][e];
                    pg[k][e] += dy[k][e] * xh[k][e];
                    pb[k][e] += dy[k][e];
                }
            } else {
#pragma unroll
                for (int e = 0; e < VW; e++) xh[k][e] = dy[k][e] = 0;
            }
        }
        const float ma = (float)(ln_group_sum<G>(a) / C), mb = (float)(ln_group_sum<G>(bs) / C);
        if (!live || !din) continue;
#pragma unroll
        for (int k = 0; k < NV; k++) {
            const int v = lane + k * G;
            if (v >= nvec) continue;
            T *dx = din + r * C + (size_t)v * VW;
            LnVec<T> q = *(const LnVec<T> *)dx;
#pragma unroll
            for (int e = 0; e < VW; e++)
                act_store(&q.v[e], act_load(&q.v[e]) + rs * (dy[k][e] * g[v * VW + e] - ma - xh[k][e] * mb));
            *(LnVec<T> *)dx = q;
        }
    }
    // the block's column partials: the groups of the block hold the same columns; summed in
    // group order, one column element at a time, through shared memory (double).
    __shared__ double sg[LN_VEC_BLOCK], sb[LN_VEC_BLOCK];
    double *pt = part + (size_t)blockIdx.x * 2 * C;
#pragma unroll
    for (int k = 0; k < NV; k++)
#pragma unroll
        for (int e = 0; e < VW; e++) {
            __syncthreads();
            sg[threadIdx.x] = pg[k][e];
            sb[threadIdx.x] = pb[k][e];
            __syncthreads();
            const int v = threadIdx.x + k * G;
            if (threadIdx.x < G && v < nvec) {
                double tg = 0, tb = 0;
                for (int j = 0; j < LN_VEC_BLOCK / G; j++) tg += sg[j * G + threadIdx.x], tb += sb[j * G + threadIdx.x];
                pt[v * VW + e] = tg;
                pt[C + v * VW + e] = tb;
            }
        }
    if (!dg && !db) return;
    if (!cuda_last_block(arrivals)) return;
    ln_param_finish(dg, db, NULL, part, 2, (int)gridDim.x, C);
}

enum { LN_WARP, LN_VEC };
static const char *const LN_NAMES[] = {"warp", "vec"};
extern "C" const TuneOp TUNE_LAYERNORM = {"layernorm", 2, LN_NAMES};

// G and NV for C (0 when "vec" cannot run it): G = the smallest power of two ≥ nvec up to 32,
// then NV = ceil(nvec / 32) up to 4 (fp32 C ≤ 512, bf16 C ≤ 1024): the backward holds 4·NV·VW
// floats per lane (row, dout and the dg/db partials), which beyond that spills.
static int ln_vec_shape(Backend *be, int C, int *G, int *NV) {
    const int VW = cuda_act_is_bf16(be) ? 8 : 4;
    if (C % VW) return 0;
    const int nvec = C / VW;
    if (nvec <= 32) {
        *NV = 1;
        for (*G = 4; *G < nvec; *G *= 2) {}
        return 1;
    }
    *G = 32;
    static const int nvs[] = {2, 3, 4};
    for (int i = 0; i < 3; i++)
        if (nvs[i] * 32 >= nvec) return *NV = nvs[i], 1;
    return 0;
}

#define LN_VEC_SWITCH(G, NV, CALL)                                                                \
    do {                                                                                          \
        if (NV == 1) {                                                                            \
            if (G == 4) { constexpr int g_ = 4, nv_ = 1; CALL; }                                  \
            else if (G == 8) { constexpr int g_ = 8, nv_ = 1; CALL; }                             \
            else if (G == 16) { constexpr int g_ = 16, nv_ = 1; CALL; }                           \
            else { constexpr int g_ = 32, nv_ = 1; CALL; }                                        \
        } else if (NV == 2) { constexpr int g_ = 32, nv_ = 2; CALL; }                             \
        else if (NV == 3) { constexpr int g_ = 32, nv_ = 3; CALL; }                               \
        else { constexpr int g_ = 32, nv_ = 4; CALL; }                                            \
    } while (0)

static void ln_vec_forward(Backend *be, Act *out, float *mean, float *rstd, const Act *in, const float *g,
                           const float *b, size_t N, int C, float eps, int G, int NV) {
    cudaStream_t s = cuda_state(be)->stream;
    const unsigned grid = (unsigned)((N * G + LN_VEC_BLOCK - 1) / LN_VEC_BLOCK);
    CUDA_ACT_DISPATCH(be, T,
                      LN_VEC_SWITCH(G, NV,
                                    (k_ln_vec_fwd<T, g_, nv_><<<grid, LN_VEC_BLOCK, 0, s>>>(
                                        (T *)out, mean, rstd, (const T *)in, g, b, N, C, eps))));
    CUDA_CHECK_LAUNCH();
}

static void ln_vec_backward(Backend *be, Act *din, float *dg, float *db, const Act *dout, const Act *in,
                            const float *mean, const float *rstd, const float *g, size_t N, int C, int G, int NV) {
    cudaStream_t s = cuda_state(be)->stream;
    const size_t per_block = LN_VEC_BLOCK / G; // rows per block per iteration
    size_t nblk = (N + per_block - 1) / per_block;
    if (nblk > LN_VEC_MAX_BLOCKS) nblk = LN_VEC_MAX_BLOCKS;
    double *part = (double *)cuda_workspace(be, nblk * 2 * C * sizeof(double));
    unsigned *arrivals = cuda_state(be)->arrivals;
    CUDA_ACT_DISPATCH(be, T,
                      LN_VEC_SWITCH(G, NV,
                                    (k_ln_vec_bwd<T, g_, nv_><<<(unsigned)nblk, LN_VEC_BLOCK, 0, s>>>(
                                        (T *)din, dg, db, part, arrivals, (const T *)dout, (const T *)in, mean, rstd,
                                        g, N, C))));
    CUDA_CHECK_LAUNCH();
}

static void ln_warp_forward(Backend *be, Act *out, float *mean, float *rstd, const Act *in, const float *g,
                            const float *b, size_t N, int C, float eps) {
    size_t threads = N * 32;
    const unsigned grid = (unsigned)((threads + 255) / 256);
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_ln_fwd<T><<<grid, 256, 0, s>>>((T *)out, mean, rstd, (const T *)in, g, b, N, C, eps));
    CUDA_CHECK_LAUNCH();
}

// Timing runs the forward of implementation i into the real outputs (the forward overwrites
// them afterwards): the backward follows the forward's memory traffic pattern.
typedef struct {
    Backend *be;
    Act *out;
    float *mean, *rstd;
    const Act *in;
    const float *g, *b;
    size_t N;
    int C, G, NV;
    float eps;
} LnTune;

static void ln_tune_run(void *ctx, int impl) {
    LnTune *t = (LnTune *)ctx;
    if (impl == LN_VEC) ln_vec_forward(t->be, t->out, t->mean, t->rstd, t->in, t->g, t->b, t->N, t->C, t->eps, t->G, t->NV);
    else ln_warp_forward(t->be, t->out, t->mean, t->rstd, t->in, t->g, t->b, t->N, t->C, t->eps);
}

// The implementation for (N, C); the backward asks with out = NULL (never timed from there).
static int ln_pick(Backend *be, LnTune *t) {
    if (!ln_vec_shape(be, t->C, &t->G, &t->NV)) return LN_WARP;
    char key[64];
    snprintf(key, sizeof key, "N%zu C%d", t->N, t->C);
    return cuda_tune_pick(be, &TUNE_LAYERNORM, key, t->out ? ln_tune_run : NULL, t);
}

extern "C" void cu_layernorm_forward(Backend *be, Act *out, float *mean, float *rstd, const Act *in, const float *g,
                                     const float *b, size_t N, int C, float eps) {
    if (!N || C <= 0) return;
    LnTune t = {be, out, mean, rstd, in, g, b, N, C, 0, 0, eps};
    if (ln_pick(be, &t) == LN_VEC) ln_vec_forward(be, out, mean, rstd, in, g, b, N, C, eps, t.G, t.NV);
    else ln_warp_forward(be, out, mean, rstd, in, g, b, N, C, eps);
}

// The choice layernorm_backward reads for (N, C), made without running the forward (timed on a
// GPU: the timing runs write out, mean and rstd, which the caller overwrites next). For
// dwconv7_layernorm_forward (dwconv7.cu), whose "fused" kernel normalises in place of this
// op's forward: the backward still runs this op's chosen implementation, timed, not just "warp".
extern "C" void cuda_layernorm_choose(Backend *be, Act *out, float *mean, float *rstd, const Act *in, const float *g,
                                      const float *b, size_t N, int C, float eps) {
    if (!N || C <= 0) return;
    LnTune t = {be, out, mean, rstd, in, g, b, N, C, 0, 0, eps};
    ln_pick(be, &t);
}

extern "C" void cu_layernorm_backward(Backend *be, Act *din, float *dg, float *db, const Act *dout, const Act *in,
                                      const float *mean, const float *rstd, const float *g, size_t N, int C) {
    if (!N || C <= 0) return;
    LnTune t = {be, NULL, NULL, NULL, in, g, NULL, N, C, 0, 0, 0.0f};
    if (ln_pick(be, &t) == LN_VEC) {
        ln_vec_backward(be, din, dg, db, dout, in, mean, rstd, g, N, C, t.G, t.NV);
        return;
    }
    ln_bwd_chunked(be, din, dg, db, din, dout, in, mean, rstd, g, N, C); /* din += */
}

// ---- GELU → LayerNorm (gelu_layernorm_forward, layernorm_backward_gelu) --------------------
// The "warp" kernels above with the GELU folded in: one warp per row, one launch each (not tuned:
// the pair runs 6 times per step, outside the PI blocks). The forward stores ge = GELU(in) and
// reads it back for the statistics and the output, so they see ge as stored (bf16: rounded where
// gelu_forward rounds it), as the unfused LayerNorm did. The backward is k_ln_bwd with din +=
// term · GELU'(in) instead of din += term; its dg/db partials and finish are k_ln_bwd's.

template <typename T>
__global__ void k_gelu_ln_fwd(T *out, T *ge, float *mean, float *rstd, const T *in, const float *g, const float *b,
                              size_t N, int C, float eps) {
    size_t r = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
    int lane = threadIdx.x & 31;
    if (r >= N) return;
    const T *x = in + r * C;
    T *e = ge + r * C;
    // each lane stores its elements of ge, then reads back its own stores: the row as stored
    for (int c = lane; c < C; c += 32) act_store(e + c, gelu_value(act_load(x + c)));
    ln_row_forward(out + r * C, mean + r, rstd + r, (const T *)e, g, b, C, eps, lane);
}

extern "C" void cu_gelu_layernorm_forward(Backend *be, Act *out, Act *ge, float *mean, float *rstd, const Act *in,
                                          const float *g, const float *b, size_t N, int C, float eps) {
    if (!N || C <= 0) return;
    const unsigned grid = (unsigned)((N * 32 + 255) / 256);
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_gelu_ln_fwd<T><<<grid, 256, 0, s>>>((T *)out, (T *)ge, mean, rstd, (const T *)in, g, b, N, C,
                                                            eps));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_layernorm_backward_gelu(Backend *be, Act *din, float *dg, float *db, const Act *dout,
                                           const Act *ge, const Act *in, const float *mean, const float *rstd,
                                           const float *g, size_t N, int C) {
    if (!N || C <= 0) return;
    ln_bwd_launch<LN_DIN_GELU>(be, din, dg, db, in, dout, ge, mean, rstd, g, N, C);
}
