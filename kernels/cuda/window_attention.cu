// window_attention.cu — Swin windowed multi-head self-attention with relative position bias and
// shift mask, fused with the window partition (contract: src/base/backend_ops.h; arithmetic order as
// kernels/cpu/window_attention.c).
//
// First version, correctness first: one block per (window, head), 8 warps, one warp per query
// row. The window's K and V (n = w² ≤ 400 tokens × hd channels) sit in shared memory with rows
// padded to hd + 1 floats (lanes read different rows of the same column: no bank conflicts);
// each warp keeps its current score row and query in shared memory too. Shared memory is
// 2·n·(hd+1) + 8·(n+hd) floats (≈ 116 KiB at n = 400, hd = 32: needs the opt-in limit).
//
// Backward, same blocks: pass 1 (warp per query row i) forms dP = dO·Vᵀ, dS = P∘(dP − rowsum),
// dQ = scale·dS·K, and stores the dS row in a scratch copy of probs; then each thread of the
// block sums dS over the (i, j) pairs of its relative offsets, in a fixed order, into the block's
// row of a partial table; pass 2 (warp per key row j) reloads Q·scale and dO into the same shared
// memory and forms dK = dSᵀ·(Q·scale), dV = Pᵀ·dO. Every (token, channel) of dqkv belongs to one
// block, so dqkv needs no atomics (and window_attention_backward_first can store instead of add);
// the blocks' partial tables are added into dtable by the same kernel, in a fixed order: the
// two-level last-block finish of last_block.cuh, one reduction per head over the windows (the
// last block of each group of ~sqrt(G) consecutive windows sums the group's tables, the last
// group finisher the group sums, in order), so a wide table (heads·(2w−1)² entries) does not
// serialise on one block and the backward is one launch. No atomics on values anywhere: the
// backward pass is bit-for-bit reproducible, which is what makes a resumed GPU run identical to
// an uninterrupted one.
//
// qkv, out, the saved softmax probs, dout and dqkv are Acts (kernels templated on the storage type
// T, act.cuh): widened to float on load, every shared-memory tile and every sum in fp32, rounded
// once on store. The forward forms out from the fp32 softmax row, not from its stored (possibly
// rounded) copy. The dS scratch, the partial tables and dtable stay float.
#include <math.h>

#include <mma.h>
#include <stdio.h>

#include "act.cuh"
#include "last_block.cuh"
#include "tune.h"

#define WA_WARPS 8

struct WaGeom {
    int Hp, Wp, C, heads, w, shift, n, hd, nWx, nWin;
    float scale;
};

__device__ __forceinline__ size_t wa_pix(const WaGeom &g, int b, int wy, int wx, int t) {
    return ((size_t)b * g.Hp + (size_t)wy * g.w + t / g.w) * g.Wp + (size_t)wx * g.w + t % g.w;
}

__device__ __forceinline__ int wa_axis_region(int v, int L, int w, int s) {
    return v < L - w ? 0 : (v < L - s ? 1 : 2);
}

__device__ __forceinline__ int wa_region(const WaGeom &g, int wy, int wx, int t) {
    return 3 * wa_axis_region(wy * g.w + t / g.w, g.Hp, g.w, g.shift) +
           wa_axis_region(wx * g.w + t % g.w, g.Wp, g.w, g.shift);
}

__device__ __forceinline__ int wa_rel(const WaGeom &g, int i, int j) {
    int dy = i / g.w - j / g.w, dx = i % g.w - j % g.w;
    return (dy + g.w - 1) * (2 * g.w - 1) + (dx + g.w - 1);
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_sumf(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// part[e] = Σ dS[i, j] over the (query i, key j) pairs of relative offset e, for one (window,
// head) block's dS (n, n): relative offset e = (dy + w-1)(2w-1) + (dx + w-1) pairs query
// i = (y, x) with key j = (y - dy, x - dx); rows then columns, one thread per entry (fixed order).
__device__ void wa_dtable_part_block(float *part /* (T) */, const float *dS /* (n, n) */, const WaGeom &g) {
    const int span = 2 * g.w - 1, T = span * span, n = g.n;
    for (int e = threadIdx.x; e < T; e += blockDim.x) {
        const int dy = e / span - (g.w - 1), dx = e % span - (g.w - 1);
        float s = 0;
        for (int y = dy > 0 ? dy : 0; y < (dy < 0 ? g.w + dy : g.w); y++)
            for (int x = dx > 0 ? dx : 0; x < (dx < 0 ? g.w + dx : g.w); x++)
                s += dS[(size_t)(y * g.w + x) * n + (size_t)((y - dy) * g.w + (x - dx))];
        part[e] = s;
    }
}

// dtable[e, h] += Σ_gw part[gw, h, e] for this (window gw = blockIdx.x, head h = blockIdx.y)
// block, its partial table written: the two-level finish of last_block.cuh, one reduction per
// head (tree: wa_dtable_plan) over the windows, in double. The last block of gw's group sums the
// group's tables in window order into grow[h][grp] (grow: (heads, groups, T) doubles), the last
// group finisher of head h the group rows in group order into dtable. Every thread calls it.
__device__ void wa_dtable_tree(float *dtable /* (T, heads) */, const float *part /* (G, heads, T) */, double *grow,
                               const CudaTree &tree, unsigned *arrivals, int heads, int T) {
    const int gw = (int)blockIdx.x, h = (int)blockIdx.y;
    if (!cuda_tree_group_last(arrivals, tree, h, gw)) return;
    const int grp = gw / tree.group, r0 = grp * tree.group;
    const int r1 = r0 + tree.group < tree.rows ? r0 + tree.group : tree.rows;
    double *gh = grow + (size_t)h * tree.groups * T;
    for (int e = threadIdx.x; e < T; e += blockDim.x) {
        double s = 0;
        for (int r = r0; r < r1; r++) s += cuda_load_cg(part + ((size_t)r * heads + h) * T + e);
        gh[(size_t)grp * T + e] = s;
    }
    if (!cuda_tree_top_last(arrivals, tree, h)) return;
    for (int e = threadIdx.x; e < T; e += blockDim.x) {
        double s = 0;
        for (int q = 0; q < tree.groups; q++) s += cuda_load_cg(gh + (size_t)q * T + e);
        dtable[(size_t)e * heads + h] += (float)s;
    }
}

// The bias-table finish's plan: one reduction per head over the G windows, and the bytes of its
// group rows (grow of wa_dtable_tree).
static CudaTree wa_dtable_plan(const WaGeom &g, size_t G) {
    CHECK(G <= 0x7fffffff, "window_attention: %zu windows", G);
    return cuda_tree_plan((int)G, g.heads);
}
static size_t wa_grow_bytes(const WaGeom &g, const CudaTree &t) {
    return (size_t)t.sets * t.groups * (2 * g.w - 1) * (2 * g.w - 1) * sizeof(double);
}

// The next `bytes` of a workspace, 256-byte aligned.
static void *wa_carve(char **p, size_t bytes) {
    void *r = *p;
    *p += (bytes + 255) / 256 * 256;
    return r;
}
static size_t wa_al(size_t bytes) { return (bytes + 255) / 256 * 256; }

template <typename T>
__global__ void k_wa_fwd(T *out, T *probs, const T *qkv, const float *table, WaGeom g) {
    extern __shared__ float sm[];
    const int n = g.n, hd = g.hd, ld = hd + 1, C3 = 3 * g.C, h = blockIdx.y;
    const size_t gw = blockIdx.x;
    const int b = (int)(gw / g.nWin), win = (int)(gw % g.nWin), wy = win / g.nWx, wx = win % g.nWx;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float *Ks = sm, *Vs = sm + (size_t)n * ld;
    float *row = sm + 2 * (size_t)n * ld + (size_t)warp * (n + hd), *q = row + n;
    for (int e = threadIdx.x; e < n * hd; e += blockDim.x) {
        int t = e / hd, j = e % hd;
        const T *src = qkv + wa_pix(g, b, wy, wx, t) * C3 + h * hd + j;
        Ks[t * ld + j] = act_load(src + g.C);
        Vs[t * ld + j] = act_load(src + 2 * g.C);
    }
    __syncthreads();
    T *P = probs + (gw * g.heads + h) * (size_t)n * n;
    for (int i = warp; i < n; i += WA_WARPS) {
        const size_t pi = wa_pix(g, b, wy, wx, i);
        for (int c = lane; c < hd; c += 32) q[c] = act_load(qkv + pi * C3 + h * hd + c) * g.scale;
        __syncwarp();
        const int ri = g.shift > 0 ? wa_region(g, wy, wx, i) : 0;
        float mx = -INFINITY;
        for (int j = lane; j < n; j += 32) {
            float s = 0;
            for (int c = 0; c < hd; c++) s = fmaf(q[c], Ks[j * ld + c], s);
            s += table[(size_t)wa_rel(g, i, j) * g.heads + h];
            if (g.shift > 0 && wa_region(g, wy, wx, j) != ri) s += -100.0f;
            row[j] = s;
            mx = fmaxf(mx, s);
        }
        mx = warp_max(mx);
        float sum = 0;
        for (int j = lane; j < n; j += 32) {
            float e = expf(row[j] - mx);
            row[j] = e;
            sum += e;
        }
        const float inv = 1.0f / warp_sumf(sum);
        for (int j = lane; j < n; j += 32) {
            row[j] *= inv;
            act_store(P + (size_t)i * n + j, row[j]);
        }
        __syncwarp();
        for (int c = lane; c < hd; c += 32) {
            float o = 0;
            for (int j = 0; j < n; j++) o = fmaf(row[j], Vs[j * ld + c], o);
            act_store(out + pi * g.C + h * hd + c, o);
        }
        __syncwarp(); // row and q are rewritten by the next i
    }
}

// part: (G, heads, T) the per-block bias-table gradients, NULL when dtable is not wanted (else
// the blocks add them into dtable, wa_dtable_tree with grow and tree). TS: the Act storage type
// (T is the table size here). acc: dqkv += (else overwritten).
template <typename TS>
__global__ void k_wa_bwd(TS *dqkv, float *part, double *grow, CudaTree tree, float *dtable, float *dS_all,
                         const TS *dout, const TS *qkv, const TS *probs, WaGeom g, int acc, unsigned *arrivals) {
    extern __shared__ float sm[];
    const int n = g.n, hd = g.hd, ld = hd + 1, C3 = 3 * g.C, h = blockIdx.y;
    const int T = (2 * g.w - 1) * (2 * g.w - 1);
    const size_t gw = blockIdx.x;
    const int b = (int)(gw / g.nWin), win = (int)(gw % g.nWin), wy = win / g.nWx, wx = win % g.nWx;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float *A = sm, *Bm = sm + (size_t)n * ld; // pass 1: K, V; pass 2: Q·scale, dO
    float *row = sm + 2 * (size_t)n * ld + (size_t)warp * (n + hd), *vec = row + n;
    const TS *P = probs + (gw * g.heads + h) * (size_t)n * n;
    float *dS = dS_all + (gw * g.heads + h) * (size_t)n * n;

    for (int e = threadIdx.x; e < n * hd; e += blockDim.x) {
        int t = e / hd, j = e % hd;
        const TS *src = qkv + wa_pix(g, b, wy, wx, t) * C3 + h * hd + j;
        A[t * ld + j] = act_load(src + g.C);
        Bm[t * ld + j] = act_load(src + 2 * g.C);
    }
    __syncthreads();
    // pass 1: query rows
    for (int i = warp; i < n; i += WA_WARPS) {
        const size_t pi = wa_pix(g, b, wy, wx, i);
        for (int c = lane; c < hd; c += 32) vec[c] = act_load(dout + pi * g.C + h * hd + c);
        __syncwarp();
        float dot = 0;
        for (int j = lane; j < n; j += 32) {
            float dp = 0;
            for (int c = 0; c < hd; c++) dp = fmaf(vec[c], Bm[j * ld + c], dp);
            row[j] = dp;
            dot += act_load(P + (size_t)i * n + j) * dp;
        }
        dot = warp_sumf(dot);
        for (int j = lane; j < n; j += 32) {
            float ds = act_load(P + (size_t)i * n + j) * (row[j] - dot);
            row[j] = ds;
            dS[(size_t)i * n + j] = ds;
        }
        __syncwarp();
        if (dqkv)
            for (int c = lane; c < hd; c += 32) {
                float s = 0;
                for (int j = 0; j < n; j++) s = fmaf(row[j], A[j * ld + c], s);
                TS *d = dqkv + pi * C3 + h * hd + c;
                act_store(d, acc ? act_load(d) + g.scale * s : g.scale * s);
            }
        __syncwarp();
    }
    __syncthreads(); // dS of the whole block is written (global writes are visible after the barrier)
    if (part) wa_dtable_part_block(part + (gw * g.heads + h) * (size_t)T, dS, g);
    // pass 2: key rows (dqkv NULL: only dtable wanted)
    if (dqkv) {
        for (int e = threadIdx.x; e < n * hd; e += blockDim.x) {
            int t = e / hd, j = e % hd;
            size_t pt = wa_pix(g, b, wy, wx, t);
            A[t * ld + j] = act_load(qkv + pt * C3 + h * hd + j) * g.scale;
            Bm[t * ld + j] = act_load(dout + pt * g.C + h * hd + j);
        }
        __syncthreads();
    }
    for (int j = warp; dqkv && j < n; j += WA_WARPS) {
        const size_t pj = wa_pix(g, b, wy, wx, j);
        for (int c = lane; c < hd; c += 32) {
            float dk = 0, dv = 0;
            for (int i = 0; i < n; i++) {
                dk = fmaf(dS[(size_t)i * n + j], A[i * ld + c], dk);
                dv = fmaf(act_load(P + (size_t)i * n + j), Bm[i * ld + c], dv);
            }
            TS *dk_p = dqkv + pj * C3 + g.C + h * hd + c, *dv_p = dqkv + pj * C3 + 2 * g.C + h * hd + c;
            act_store(dk_p, acc ? act_load(dk_p) + dk : dk);
            act_store(dv_p, acc ? act_load(dv_p) + dv : dv);
        }
    }
    // part: the same for every block
    if (part) wa_dtable_tree(dtable, part, grow, tree, arrivals, g.heads, T);
}

static WaGeom wa_geom(int Hp, int Wp, int C, int heads, int w, int shift) {
    CHECK(w > 0 && Hp % w == 0 && Wp % w == 0, "window_attention: map %dx%d is not a multiple of window %d", Hp, Wp,
          w);
    CHECK(heads > 0 && C % heads == 0, "window_attention: C=%d not divisible by heads=%d", C, heads);
    CHECK(shift >= 0 && shift < w, "window_attention: shift %d outside [0, %d)", shift, w);
    WaGeom g;
    g.Hp = Hp, g.Wp = Wp, g.C = C, g.heads = heads, g.w = w, g.shift = shift;
    g.n = w * w, g.hd = C / heads, g.nWx = Wp / w, g.nWin = (Hp / w) * (Wp / w);
    g.scale = 1.0f / sqrtf((float)g.hd);
    return g;
}

// Dynamic shared memory of one block, checked against the device's opt-in limit. The tiles are
// float whatever the Act storage type, so the size is in floats for every instantiation.
static size_t wa_smem(Backend *be, const WaGeom &g, const void *kernel) {
    size_t floats = 2 * (size_t)g.n * (g.hd + 1) + (size_t)WA_WARPS * (g.n + g.hd);
    size_t bytes = floats * sizeof(float);
    int limit = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, cuda_state(be)->device));
    CHECK(bytes <= (size_t)limit,
          "window_attention: window %d (%d tokens) with head dim %d needs %zu bytes of shared memory per block; "
          "this device allows %d",
          g.w, g.n, g.hd, bytes, limit);
    cuda_dyn_smem_optin(kernel, bytes);
    return bytes;
}

template <typename T>
static void wa_forward(Backend *be, const WaGeom &g, size_t G, T *out, T *probs, const T *qkv, const float *table) {
    size_t smem = wa_smem(be, g, (const void *)k_wa_fwd<T>);
    const dim3 grid((unsigned)G, g.heads);
    k_wa_fwd<T><<<grid, 32 * WA_WARPS, smem, cuda_state(be)->stream>>>(out, probs, qkv, table, g);
    CUDA_CHECK_LAUNCH();
}

template <typename T>
static void wa_backward(Backend *be, const WaGeom &g, size_t G, T *dqkv, float *part, double *grow,
                        const CudaTree &tree, float *dtable, float *dS, const T *dout, const T *qkv, const T *probs,
                        int acc) {
    size_t smem = wa_smem(be, g, (const void *)k_wa_bwd<T>);
    const dim3 grid((unsigned)G, g.heads);
    CudaState *st = cuda_state(be);
    k_wa_bwd<T><<<grid, 32 * WA_WARPS, smem, st->stream>>>(dqkv, part, grow, tree, dtable, dS, dout, qkv, probs, g,
                                                           acc, st->arrivals);
    CUDA_CHECK_LAUNCH();
}


// The "smem" backward, one launch: its dS scratch, partial tables and group rows, the ordered
// dtable sum by the kernel's blocks (wa_dtable_tree).
template <typename T>
static void wa_backward_smem(Backend *be, const WaGeom &g, size_t G, T *dqkv, float *dtable, const T *dout,
                             const T *qkv, const T *probs, int acc) {
    const int Tn = (2 * g.w - 1) * (2 * g.w - 1);
    const CudaTree tree = wa_dtable_plan(g, G);
    const size_t np = G * g.heads * (size_t)g.n * g.n, part_n = G * g.heads * (size_t)Tn;
    char *w = (char *)cuda_workspace(be, wa_al(np * 4) + (dtable ? wa_al(part_n * 4) + wa_grow_bytes(g, tree) : 0));
    /* dS (fp32, shaped like probs), then the partial tables and their group rows */
    float *dS = (float *)wa_carve(&w, np * 4);
    float *part = dtable ? (float *)wa_carve(&w, part_n * 4) : NULL;
    double *grow = dtable ? (double *)wa_carve(&w, wa_grow_bytes(g, tree)) : NULL;
    wa_backward<T>(be, g, G, dqkv, part, grow, tree, dtable, dS, dout, qkv, probs, acc);
}

// =============================================================================================
// "gemm": the library path. The window partition is gathered into (G, heads, n, hd) copies in
// scratch, the four products per (window, head) are strided-batched cuBLAS GEMMs, and one fused
// kernel each does scale + bias + mask + softmax (forward) and the softmax backward.
//   fp32/tf32 modes: fp32 operands under CUBLAS_COMPUTE_32F_PEDANTIC (plain fp32 FMA, as
//     linear_cublas.cu in fp32 mode; attention is not one of the ops tf32 mode changes, see
//     cuda_internal.h, so it stays fp32 there too).
//   bf16 mode: bf16 operands, fp32 accumulation and fp32 C (as linear_cublas.cu in bf16 mode).
//     Q, K, V, dO and the stored P are bf16 already, so their products are exact; the fp32
//     softmax P (forward) and dS (backward) are not bf16 numbers, and rounding them to bf16 would
//     add up to 2^-9 relative per element — far above the fp32 tolerance the attention checks
//     keep in every mode. So each is split into two bf16 terms, X = hi + lo with hi = bf16(X),
//     lo = bf16(X − hi) (|X − hi − lo| ≤ 2^-17 |X|), and multiplied as two GEMMs accumulating into
//     the same fp32 C: the result is the fp32-product's up to ~2^-16 relative, for twice the
//     tensor-core work on those products. In the forward, hi is exactly the bf16 probs the op
//     stores, so only lo needs scratch.
// =============================================================================================

// dst (m, G, heads, n, hd) = channel groups k·C.. (k < m) of src (B, Hp, Wp, ld), window-partitioned.
template <typename T>
__global__ void k_wa_gather(T *dst, const T *src, int ld, int m, WaGeom g, size_t G) {
    const size_t total = (size_t)m * G * g.heads * g.n * g.hd;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        size_t r = e / g.hd;
        const int c = (int)(e % g.hd), t = (int)(r % g.n);
        r /= g.n;
        const int h = (int)(r % g.heads);
        r /= g.heads;
        const size_t gw = r % G;
        const int k = (int)(r / G), b = (int)(gw / g.nWin), win = (int)(gw % g.nWin);
        dst[e] = src[wa_pix(g, b, win / g.nWx, win % g.nWx, t) * ld + (size_t)k * g.C + h * g.hd + c];
    }
}

// Channel groups k·C.. of dst (B, Hp, Wp, ld) = src (m, G, heads, n, hd), or dst + src when
// accumulate; one rounding to the Act type per element.
template <typename T>
__global__ void k_wa_scatter(T *dst, const float *src, int ld, int m, int accumulate, WaGeom g, size_t G) {
    const size_t total = (size_t)m * G * g.heads * g.n * g.hd;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        size_t r = e / g.hd;
        const int c = (int)(e % g.hd), t = (int)(r % g.n);
        r /= g.n;
        const int h = (int)(r % g.heads);
        r /= g.heads;
        const size_t gw = r % G;
        const int k = (int)(r / G), b = (int)(gw / g.nWin), win = (int)(gw % g.nWin);
        T *d = dst + wa_pix(g, b, win / g.nWx, win % g.nWx, t) * ld + (size_t)k * g.C + h * g.hd + c;
        act_store(d, accumulate ? act_load(d) + src[e] : src[e]);
    }
}

// One warp per row (window, head, query i) of S (G, heads, n, n), already q·kᵀ·scale: adds the
// bias and the mask, stores softmax into probs; plo (bf16 mode, else NULL) gets P − bf16(P).
// S is scratch: overwritten with the scores, then the exponentials.
template <typename T>
__global__ void k_wa_softmax(T *probs, bf16 *plo, float *S, const float *table, WaGeom g, size_t rows) {
    const size_t r = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return; // the whole warp: every lane has the same r
    const int n = g.n, i = (int)(r % n), h = (int)(r / n % g.heads);
    const size_t gw = r / n / g.heads;
    const int win = (int)(gw % g.nWin), wy = win / g.nWx, wx = win % g.nWx;
    float *row = S + r * n;
    T *P = probs + r * n;
    const int ri = g.shift > 0 ? wa_region(g, wy, wx, i) : 0;
    float mx = -INFINITY;
    for (int j = lane; j < n; j += 32) {
        float s = row[j] + table[(size_t)wa_rel(g, i, j) * g.heads + h];
        if (g.shift > 0 && wa_region(g, wy, wx, j) != ri) s += -100.0f;
        row[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = warp_max(mx);
    float sum = 0;
    for (int j = lane; j < n; j += 32) {
        float e = expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    const float inv = 1.0f / warp_sumf(sum);
    for (int j = lane; j < n; j += 32) {
        const float p = row[j] * inv;
        act_store(P + j, p);
        if (plo) plo[r * n + j] = __float2bfloat16(p - act_load(P + j));
    }
}

// One warp per row of dS (G, heads, n, n), which holds dP on entry: dS = P∘(dP − Σ_j P∘dP), in
// place (fp32, the bias-table gradient reads it); hi/lo (bf16 mode, else NULL): its bf16 split.
template <typename T>
__global__ void k_wa_softmax_bwd(float *dS, bf16 *hi, bf16 *lo, const T *probs, size_t rows, int n) {
    const size_t r = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;
    float *row = dS + r * n;
    const T *P = probs + r * n;
    float dot = 0;
    for (int j = lane; j < n; j += 32) dot += act_load(P + j) * row[j];
    dot = warp_sumf(dot);
    for (int j = lane; j < n; j += 32) {
        const float ds = act_load(P + j) * (row[j] - dot);
        row[j] = ds;
        if (hi) {
            const bf16 h = __float2bfloat16(ds);
            hi[r * n + j] = h;
            lo[r * n + j] = __float2bfloat16(ds - __bfloat162float(h));
        }
    }
}

// dtable += the bias-table gradient of dS (G, heads, n, n), one launch: one block per (window,
// head) writes its partial table into part (G, heads, T), then the blocks sum them in a fixed
// order (wa_dtable_tree: grow and tree).
__global__ void k_wa_dtable(float *dtable, float *part, double *grow, CudaTree tree, const float *dS, WaGeom g,
                            unsigned *arrivals) {
    const size_t gw = blockIdx.x;
    const int h = blockIdx.y, T = (2 * g.w - 1) * (2 * g.w - 1);
    wa_dtable_part_block(part + (gw * g.heads + h) * (size_t)T, dS + (gw * g.heads + h) * (size_t)g.n * g.n, g);
    wa_dtable_tree(dtable, part, grow, tree, arrivals, g.heads, T);
}

// Row-major, batched: C (M×N, ldc, fp32) = alpha·op(A)·op(B) + beta·C with op(A) (M×K), op(B) (K×N);
// ta: A is stored (K×M), tb: B is stored (N×K); bf: A and B bf16, else fp32. cuBLAS is column-major,
// so it computes Cᵀ = op(B)ᵀ·op(A)ᵀ (as linear_cublas.cu).
static void wa_gemm(Backend *be, int bf, int ta, int tb, int M, int N, int K, float alpha, const void *A, int lda,
                    long long sA, const void *B, int ldb, long long sB, float beta, float *C, int ldc, long long sC,
                    int batch) {
    const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cudaDataType dt = bf ? CUDA_R_16BF : CUDA_R_32F;
    CUBLAS_WORK(cublasGemmStridedBatchedEx(cuda_state(be)->cublas, opb, opa, N, M, K, &alpha, B, dt, ldb, sB, A, dt,
                                            lda, sA, &beta, C, CUDA_R_32F, ldc, sC, batch,
                                            bf ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_PEDANTIC,
                                            CUBLAS_GEMM_DEFAULT));
}

static int wa_batch(const WaGeom &g, size_t G) {
    CHECK(G * g.heads <= 0x7fffffff, "window_attention: %zu (window, head) pairs exceed cuBLAS's batch count", G * g.heads);
    return (int)(G * g.heads);
}

template <typename T>
static void wa_forward_gemm(Backend *be, const WaGeom &g, size_t G, T *out, T *probs, const T *qkv, const float *table) {
    const int bf = sizeof(T) == 2, n = g.n, hd = g.hd, batch = wa_batch(g, G);
    const size_t nt = G * g.heads * (size_t)n * hd, np = G * g.heads * (size_t)n * n, rows = G * g.heads * (size_t)n;
    const long long sq = (long long)n * hd, sp = (long long)n * n;
    cudaStream_t s = cuda_state(be)->stream;
    char *w = (char *)cuda_workspace(be, wa_al(np * 4) + (bf ? wa_al(np * 2) : 0) + wa_al(3 * nt * sizeof(T)) +
                                             wa_al(nt * 4));
    float *S = (float *)wa_carve(&w, np * 4);                       /* (G, heads, n, n) scores */
    bf16 *plo = bf ? (bf16 *)wa_carve(&w, np * 2) : NULL;          /* (G, heads, n, n) P − bf16(P) */
    T *qg = (T *)wa_carve(&w, 3 * nt * sizeof(T));                 /* (3, G, heads, n, hd) Q, K, V */
    float *og = (float *)wa_carve(&w, nt * 4);                     /* (G, heads, n, hd) */
    const T *kg = qg + nt, *vg = qg + 2 * nt;
    k_wa_gather<T><<<cuda_grid(3 * nt), 256, 0, s>>>(qg, qkv, 3 * g.C, 3, g, G);
    CUDA_CHECK_LAUNCH();
    wa_gemm(be, bf, 0, 1, n, n, hd, g.scale, qg, hd, sq, kg, hd, sq, 0.0f, S, n, sp, batch);
    k_wa_softmax<T><<<(unsigned)((rows + 7) / 8), 256, 0, s>>>(probs, plo, S, table, g, rows);
    CUDA_CHECK_LAUNCH();
    wa_gemm(be, bf, 0, 0, n, hd, n, 1.0f, probs, n, sp, vg, hd, sq, 0.0f, og, hd, sq, batch);
    if (bf) wa_gemm(be, bf, 0, 0, n, hd, n, 1.0f, plo, n, sp, vg, hd, sq, 1.0f, og, hd, sq, batch);
    k_wa_scatter<T><<<cuda_grid(nt), 256, 0, s>>>(out, og, g.C, 1, 0, g, G);
    CUDA_CHECK_LAUNCH();
}

template <typename T>
static void wa_backward_gemm(Backend *be, const WaGeom &g, size_t G, T *dqkv, float *dtable, const T *dout,
                             const T *qkv, const T *probs, int acc) {
    const int bf = sizeof(T) == 2, n = g.n, hd = g.hd, batch = wa_batch(g, G), Tn = (2 * g.w - 1) * (2 * g.w - 1);
    const size_t nt = G * g.heads * (size_t)n * hd, np = G * g.heads * (size_t)n * n, rows = G * g.heads * (size_t)n;
    const long long sq = (long long)n * hd, sp = (long long)n * n;
    cudaStream_t s = cuda_state(be)->stream;
    const CudaTree tree = wa_dtable_plan(g, G);
    char *w = (char *)cuda_workspace(be, wa_al(np * 4) + (bf ? 2 * wa_al(np * 2) : 0) + wa_al(4 * nt * sizeof(T)) +
                                             wa_al(3 * nt * 4) + wa_al(G * g.heads * (size_t)Tn * 4) +
                                             wa_grow_bytes(g, tree));
    float *dS = (float *)wa_carve(&w, np * 4);               /* (G, heads, n, n): dP, then dS */
    bf16 *hi = bf ? (bf16 *)wa_carve(&w, np * 2) : NULL;     /* (G, heads, n, n) bf16(dS) */
    bf16 *lo = bf ? (bf16 *)wa_carve(&w, np * 2) : NULL;     /* (G, heads, n, n) dS − hi */
    T *qg = (T *)wa_carve(&w, 4 * nt * sizeof(T));           /* (4, G, heads, n, hd) Q, K, V, dO */
    float *dg = (float *)wa_carve(&w, 3 * nt * 4);           /* (3, G, heads, n, hd) dQ, dK, dV */
    float *part = (float *)wa_carve(&w, G * g.heads * (size_t)Tn * 4); /* (G, heads, T) */
    double *grow = (double *)wa_carve(&w, wa_grow_bytes(g, tree));    /* (heads, groups, T) */
    const T *kg = qg + nt, *vg = qg + 2 * nt, *dog = qg + 3 * nt;
    k_wa_gather<T><<<cuda_grid(3 * nt), 256, 0, s>>>(qg, qkv, 3 * g.C, 3, g, G);
    CUDA_CHECK_LAUNCH();
    k_wa_gather<T><<<cuda_grid(nt), 256, 0, s>>>(qg + 3 * nt, dout, g.C, 1, g, G);
    CUDA_CHECK_LAUNCH();
    wa_gemm(be, bf, 0, 1, n, n, hd, 1.0f, dog, hd, sq, vg, hd, sq, 0.0f, dS, n, sp, batch); /* dP = dO·Vᵀ */
    k_wa_softmax_bwd<T><<<(unsigned)((rows + 7) / 8), 256, 0, s>>>(dS, hi, lo, probs, rows, n);
    CUDA_CHECK_LAUNCH();
    if (dtable) {
        k_wa_dtable<<<dim3((unsigned)G, g.heads), 256, 0, s>>>(dtable, part, grow, tree, dS, g,
                                                               cuda_state(be)->arrivals);
        CUDA_CHECK_LAUNCH();
    }
    if (!dqkv) return;
    const void *ds_a = bf ? (const void *)hi : (const void *)dS;
    /* dQ = scale·dS·K, dK = scale·dSᵀ·Q, dV = Pᵀ·dO */
    wa_gemm(be, bf, 0, 0, n, hd, n, g.scale, ds_a, n, sp, kg, hd, sq, 0.0f, dg, hd, sq, batch);
    if (bf) wa_gemm(be, bf, 0, 0, n, hd, n, g.scale, lo, n, sp, kg, hd, sq, 1.0f, dg, hd, sq, batch);
    wa_gemm(be, bf, 1, 0, n, hd, n, g.scale, ds_a, n, sp, qg, hd, sq, 0.0f, dg + nt, hd, sq, batch);
    if (bf) wa_gemm(be, bf, 1, 0, n, hd, n, g.scale, lo, n, sp, qg, hd, sq, 1.0f, dg + nt, hd, sq, batch);
    wa_gemm(be, bf, 1, 0, n, hd, n, 1.0f, probs, n, sp, dog, hd, sq, 0.0f, dg + 2 * nt, hd, sq, batch);
    k_wa_scatter<T><<<cuda_grid(3 * nt), 256, 0, s>>>(dqkv, dg, 3 * g.C, 3, acc, g, G);
    CUDA_CHECK_LAUNCH();
}

// =============================================================================================
// "flash": fused tensor-core kernels in the FlashAttention-2 style, bf16 mode only (Q, K, V are
// bf16 there, so their products on the tensor cores are exact with fp32 accumulation; in the fp32
// modes they would have to be rounded to bf16, 2^-9 relative, far above the fp32 tolerance: the
// implementation is unavailable there and the tuner skips it). One block of FL_WARPS warps per
// (window, head); K and V of the window sit in shared memory as bf16, rows padded to a multiple
// of 16 with zeros (n = w² is rarely one: w = 7 gives 49 → 64); the bias column of head h is
// staged in shared memory and the shift mask is formed from the token coordinates.
//
// Forward: warp per 16-query tile; over key chunks of FL_KC, S = Q·Kᵀ with WMMA bf16 m16n16k16
// into fp32, then scale + bias + mask, the online softmax (running max m and sum l per row, the
// output rescaled by exp(m_old − m_new)), and O += P·V with P split into two bf16 terms (hi + lo,
// as in "gemm": P to ~2^-16 relative, so the result stays within the fp32 tolerance). Saves only
// the row log-sum-exp L = m + log l (fp32, in the probs buffer, which has n² Act slots per
// (window, head) for n floats). Padded keys get probability 0, padded queries are not stored.
//
// Backward, same blocks, P = exp(S − L) recomputed (no n² state between the passes): phase 1,
// warp per query tile: D_i = Σ_j P_ij dP_ij (dP = dO·Vᵀ), then dQ = scale·dS·K with
// dS = P∘(dP − D); phase 2, warp per key tile, every query tile in order: dV = Pᵀ·dO,
// dK = scale·dSᵀ·Q, and dS in fp32 to scratch for the bias-table gradient (the same ordered
// per-block partials as "smem", summed by k_wa_dtable's blocks, wa_dtable_tree). Every (token, channel) of dqkv is
// owned by one warp of one block, and every sum runs in a fixed order: no atomics, bit-for-bit
// reproducible. Padded query/key rows are zero in Q, K, V, dO and get P = 0, so they add nothing.
// =============================================================================================
#define FL_WARPS 8
#define FL_KC 64 /* forward key chunk (4 WMMA tiles) */

__host__ __device__ inline size_t fl_al(size_t b) { return (b + 127) / 128 * 128; }

// Byte offsets into the dynamic shared memory (the same function on host and device).
struct FlLayout {
    size_t tab, ks, vs, qs, dos, lse, dd; // block-wide (qs, dos, lse, dd: backward only)
    size_t warp0, per_warp, total;
    size_t wq, sb, dp, ph, pl, dh, dl, ob; // inside each warp's region
};
__host__ __device__ inline FlLayout fl_layout(int n, int w, int hd, int backward) {
    FlLayout L = {};
    const size_t np16 = (size_t)(n + 15) / 16 * 16, ldh = hd + 8, Tn = (size_t)(2 * w - 1) * (2 * w - 1);
    size_t o = 0, q = 0;
    L.tab = o, o += fl_al(Tn * 4);
    L.ks = o, o += fl_al(np16 * ldh * 2);
    L.vs = o, o += fl_al(np16 * ldh * 2);
    if (backward) {
        L.qs = o, o += fl_al(np16 * ldh * 2);
        L.dos = o, o += fl_al(np16 * ldh * 2);
        L.lse = o, o += fl_al(np16 * 4);
        L.dd = o, o += fl_al(np16 * 4);
        L.sb = q, q += fl_al(16 * 20 * 4); /* S tile (16×16, ld 20) */
        L.dp = q, q += fl_al(16 * 20 * 4); /* dP tile */
        L.ph = q, q += fl_al(16 * 24 * 2); /* P hi, lo; dS hi, lo (16×16, ld 24) */
        L.pl = q, q += fl_al(16 * 24 * 2);
        L.dh = q, q += fl_al(16 * 24 * 2);
        L.dl = q, q += fl_al(16 * 24 * 2);
    } else {
        L.wq = q, q += fl_al(16 * ldh * 2);                 /* the warp's Q tile */
        L.sb = q, q += fl_al(16 * (size_t)(FL_KC + 4) * 4); /* S chunk (16×FL_KC, ld FL_KC+4) */
        L.ph = q, q += fl_al(16 * (size_t)(FL_KC + 8) * 2); /* P hi, lo (ld FL_KC+8) */
        L.pl = q, q += fl_al(16 * (size_t)(FL_KC + 8) * 2);
    }
    L.ob = q, q += fl_al(16 * (size_t)(hd + 4) * 4); /* fp32 output / gradient tile (ld hd+4) */
    L.warp0 = o, L.per_warp = q, L.total = o + FL_WARPS * q;
    return L;
}

// Score of query i against key j before the softmax, from the fp32 product qk = q·k (the warp's
// S tile): ·scale + bias + mask; -inf for padded keys, 0 for padded queries (never stored).
__device__ __forceinline__ float fl_score(const WaGeom &g, const float *tab, int wy, int wx, int i, int j, float qk) {
    if (j >= g.n) return -INFINITY;
    if (i >= g.n) return 0.0f;
    float s = qk * g.scale + tab[wa_rel(g, i, j)];
    if (g.shift > 0 && wa_region(g, wy, wx, j) != wa_region(g, wy, wx, i)) s += -100.0f;
    return s;
}

__device__ __forceinline__ void fl_split(bf16 *hi, bf16 *lo, float v) {
    const bf16 h = __float2bfloat16(v);
    *hi = h;
    *lo = __float2bfloat16(v - __bfloat162float(h));
}

// Block-wide: the bias column of head h, then K and V of the window (and Q and dO: backward)
// as bf16 with zero rows up to the next multiple of 16 and zero channels from g.hd up to HD.
// Bias entry (e, h) is table[e·ts + h·hs].
__device__ void fl_stage(char *sm, const FlLayout &L, const bf16 *qkv, const bf16 *dout, const float *table, int ts,
                         int hs, const WaGeom &g, int HD, int b, int wy, int wx, int h) {
    const int n = g.n, np16 = (n + 15) / 16 * 16, ldh = HD + 8, Tn = (2 * g.w - 1) * (2 * g.w - 1), C3 = 3 * g.C;
    float *tab = (float *)(sm + L.tab);
    for (int e = threadIdx.x; e < Tn; e += blockDim.x) tab[e] = table[(size_t)e * ts + (size_t)h * hs];
    bf16 *Ks = (bf16 *)(sm + L.ks), *Vs = (bf16 *)(sm + L.vs);
    bf16 *Qs = dout ? (bf16 *)(sm + L.qs) : NULL, *dOs = dout ? (bf16 *)(sm + L.dos) : NULL;
    const bf16 zero = __float2bfloat16(0.0f);
    for (int e = threadIdx.x; e < np16 * HD; e += blockDim.x) {
        const int t = e / HD, c = e % HD;
        bf16 k = zero, v = zero, q = zero, d = zero;
        if (t < n && c < g.hd) {
            const size_t p = wa_pix(g, b, wy, wx, t);
            const bf16 *src = qkv + p * C3 + h * g.hd + c;
            q = src[0], k = src[g.C], v = src[2 * g.C];
            if (dout) d = dout[p * g.C + h * g.hd + c];
        }
        Ks[t * ldh + c] = k, Vs[t * ldh + c] = v;
        if (dout) Qs[t * ldh + c] = q, dOs[t * ldh + c] = d;
    }
}

template <int HD>
__global__ void __launch_bounds__(32 * FL_WARPS)
    k_wa_flash_fwd(bf16 *out, float *lse_all, const bf16 *qkv, const float *table, WaGeom g) {
    using namespace nvcuda;
    extern __shared__ double fl_sm[]; // no static shared memory: the dynamic block starts the (aligned) window
    char *sm = (char *)fl_sm;
    const FlLayout L = fl_layout(g.n, g.w, HD, 0);
    const int n = g.n, np16 = (n + 15) / 16 * 16, ldh = HD + 8, lds = FL_KC + 4, ldp = FL_KC + 8, ldo = HD + 4;
    const int h = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const size_t gw = blockIdx.x;
    const int b = (int)(gw / g.nWin), win = (int)(gw % g.nWin), wy = win / g.nWx, wx = win % g.nWx;
    fl_stage(sm, L, qkv, NULL, table, g.heads, 1, g, HD, b, wy, wx, h);
    __syncthreads();
    // The backward's op has no table argument: the blocks of the first window save the bias
    // column of their head after the row log-sum-exps, (heads, T) at lse_all + G·heads·n.
    if (gw == 0) {
        const int Tn = (2 * g.w - 1) * (2 * g.w - 1);
        float *saved = lse_all + (size_t)gridDim.x * g.heads * n + (size_t)h * Tn;
        for (int e = threadIdx.x; e < Tn; e += blockDim.x) saved[e] = ((const float *)(sm + L.tab))[e];
    }
    const float *tab = (const float *)(sm + L.tab);
    const bf16 *Ks = (const bf16 *)(sm + L.ks), *Vs = (const bf16 *)(sm + L.vs);
    char *ws = sm + L.warp0 + (size_t)warp * L.per_warp;
    bf16 *Qw = (bf16 *)(ws + L.wq), *Ph = (bf16 *)(ws + L.ph), *Pl = (bf16 *)(ws + L.pl);
    float *Sb = (float *)(ws + L.sb), *Ob = (float *)(ws + L.ob);
    const int r = lane >> 1, half = lane & 1; // elementwise work: lanes 2r, 2r+1 share row r
    float *lse = lse_all + (gw * g.heads + h) * (size_t)n;
    for (int q0 = warp * 16; q0 < np16; q0 += 16 * FL_WARPS) {
        for (int e = lane; e < 16 * HD; e += 32) {
            const int rr = e / HD, c = e % HD, i = q0 + rr;
            Qw[rr * ldh + c] = i < n && c < g.hd ? qkv[wa_pix(g, b, wy, wx, i) * 3 * g.C + h * g.hd + c] : __float2bfloat16(0.0f);
        }
        for (int e = lane; e < 16 * HD; e += 32) Ob[(e / HD) * ldo + e % HD] = 0.0f;
        __syncwarp();
        const int i = q0 + r;
        float m = -INFINITY, l = 0.0f;
        for (int kc = 0; kc < np16; kc += FL_KC) {
            const int nkt = (np16 - kc < FL_KC ? np16 - kc : FL_KC) / 16;
            for (int jt = 0; jt < nkt; jt++) {
                wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
                wmma::fill_fragment(acc, 0.0f);
                for (int kk = 0; kk < HD / 16; kk++) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> bk; // Kᵀ
                    wmma::load_matrix_sync(a, Qw + kk * 16, ldh);
                    wmma::load_matrix_sync(bk, Ks + (size_t)(kc + jt * 16) * ldh + kk * 16, ldh);
                    wmma::mma_sync(acc, a, bk, acc);
                }
                wmma::store_matrix_sync(Sb + jt * 16, acc, lds, wmma::mem_row_major);
            }
            __syncwarp();
            float cmax = -INFINITY;
            for (int c = half; c < nkt * 16; c += 2) {
                const float s = fl_score(g, tab, wy, wx, i, kc + c, Sb[r * lds + c]);
                Sb[r * lds + c] = s;
                cmax = fmaxf(cmax, s);
            }
            cmax = fmaxf(cmax, __shfl_xor_sync(0xffffffffu, cmax, 1));
            const float mnew = fmaxf(m, cmax), alpha = expf(m - mnew); // chunk kc always has key kc < n
            float psum = 0.0f;
            for (int c = half; c < nkt * 16; c += 2) {
                const float p = expf(Sb[r * lds + c] - mnew);
                psum += p;
                fl_split(Ph + r * ldp + c, Pl + r * ldp + c, p);
            }
            psum += __shfl_xor_sync(0xffffffffu, psum, 1);
            l = l * alpha + psum, m = mnew;
            for (int c = half; c < HD; c += 2) Ob[r * ldo + c] *= alpha;
            __syncwarp();
            for (int ct = 0; ct < HD / 16; ct++) {
                wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
                wmma::load_matrix_sync(acc, Ob + ct * 16, ldo, wmma::mem_row_major);
                for (int jt = 0; jt < nkt; jt++) {
                    wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> ah, al;
                    wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> bv;
                    wmma::load_matrix_sync(ah, Ph + jt * 16, ldp);
                    wmma::load_matrix_sync(al, Pl + jt * 16, ldp);
                    wmma::load_matrix_sync(bv, Vs + (size_t)(kc + jt * 16) * ldh + ct * 16, ldh);
                    wmma::mma_sync(acc, ah, bv, acc);
                    wmma::mma_sync(acc, al, bv, acc);
                }
                wmma::store_matrix_sync(Ob + ct * 16, acc, ldo, wmma::mem_row_major);
            }
            __syncwarp();
        }
        if (i < n) {
            const float inv = 1.0f / l;
            bf16 *o = out + wa_pix(g, b, wy, wx, i) * g.C + h * g.hd;
            for (int c = half; c < g.hd; c += 2) o[c] = __float2bfloat16(Ob[r * ldo + c] * inv);
            if (!half) lse[i] = m + logf(l);
        }
        __syncwarp(); // Qw, Ob are rewritten for the next tile
    }
}

// dS_all: (G, heads, n, n) fp32 scratch for the bias-table gradient, NULL when not wanted.
// lse_all: the forward's saved state, (G, heads, n) row log-sum-exps then the (heads, T) bias.
template <int HD>
__global__ void __launch_bounds__(32 * FL_WARPS)
    k_wa_flash_bwd(bf16 *dqkv, float *dS_all, const bf16 *dout, const bf16 *qkv, const float *lse_all, WaGeom g,
                   int acc) {
    using namespace nvcuda;
    typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> Acc;
    extern __shared__ double fl_sm[]; // no static shared memory: the dynamic block starts the (aligned) window
    char *sm = (char *)fl_sm;
    const FlLayout L = fl_layout(g.n, g.w, HD, 1);
    const int n = g.n, np16 = (n + 15) / 16 * 16, ldh = HD + 8, ldo = HD + 4, C3 = 3 * g.C;
    const int h = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const size_t gw = blockIdx.x;
    const int b = (int)(gw / g.nWin), win = (int)(gw % g.nWin), wy = win / g.nWx, wx = win % g.nWx;
    fl_stage(sm, L, qkv, dout, lse_all + (size_t)gridDim.x * g.heads * n, 1, (2 * g.w - 1) * (2 * g.w - 1), g, HD,
             b, wy, wx, h);
    float *Ls = (float *)(sm + L.lse), *Ds = (float *)(sm + L.dd);
    const float *lse = lse_all + (gw * g.heads + h) * (size_t)n;
    for (int i = threadIdx.x; i < np16; i += blockDim.x) Ls[i] = i < n ? lse[i] : 0.0f;
    __syncthreads();
    const float *tab = (const float *)(sm + L.tab);
    const bf16 *Ks = (const bf16 *)(sm + L.ks), *Vs = (const bf16 *)(sm + L.vs);
    const bf16 *Qs = (const bf16 *)(sm + L.qs), *dOs = (const bf16 *)(sm + L.dos);
    char *ws = sm + L.warp0 + (size_t)warp * L.per_warp;
    float *Sb = (float *)(ws + L.sb), *dPb = (float *)(ws + L.dp), *Ob = (float *)(ws + L.ob);
    bf16 *Ph = (bf16 *)(ws + L.ph), *Pl = (bf16 *)(ws + L.pl), *Dh = (bf16 *)(ws + L.dh), *Dl = (bf16 *)(ws + L.dl);
    const int r = lane >> 1, half = lane & 1;
    float *dS = dS_all ? dS_all + (gw * g.heads + h) * (size_t)n * n : NULL;

    // S tile (query tile q0, key tile k0) → Sb, dP tile → dPb, then P (fp32) of element (r, c).
    auto tiles = [&](int q0, int k0) {
        Acc s, d;
        wmma::fill_fragment(s, 0.0f);
        wmma::fill_fragment(d, 0.0f);
        for (int kk = 0; kk < HD / 16; kk++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> bt;
            wmma::load_matrix_sync(a, Qs + (size_t)q0 * ldh + kk * 16, ldh);
            wmma::load_matrix_sync(bt, Ks + (size_t)k0 * ldh + kk * 16, ldh);
            wmma::mma_sync(s, a, bt, s);
            wmma::load_matrix_sync(a, dOs + (size_t)q0 * ldh + kk * 16, ldh);
            wmma::load_matrix_sync(bt, Vs + (size_t)k0 * ldh + kk * 16, ldh);
            wmma::mma_sync(d, a, bt, d);
        }
        wmma::store_matrix_sync(Sb, s, 20, wmma::mem_row_major);
        wmma::store_matrix_sync(dPb, d, 20, wmma::mem_row_major);
        __syncwarp();
    };
    auto prob = [&](int i, int j, float qk) -> float {
        return i < n && j < n ? expf(fl_score(g, tab, wy, wx, i, j, qk) - Ls[i]) : 0.0f;
    };

    // phase 1: warp per query tile: D, then dQ
    for (int q0 = warp * 16; q0 < np16; q0 += 16 * FL_WARPS) {
        const int i = q0 + r;
        float dsum = 0.0f;
        for (int k0 = 0; k0 < np16; k0 += 16) {
            tiles(q0, k0);
            for (int c = half; c < 16; c += 2) dsum += prob(i, k0 + c, Sb[r * 20 + c]) * dPb[r * 20 + c];
            __syncwarp();
        }
        dsum += __shfl_xor_sync(0xffffffffu, dsum, 1);
        if (!half) Ds[i] = dsum;
        Acc dq[HD / 16];
        for (int ct = 0; ct < HD / 16; ct++) wmma::fill_fragment(dq[ct], 0.0f);
        for (int k0 = 0; k0 < np16; k0 += 16) {
            tiles(q0, k0);
            for (int c = half; c < 16; c += 2) {
                const float p = prob(i, k0 + c, Sb[r * 20 + c]);
                fl_split(Dh + r * 24 + c, Dl + r * 24 + c, p * (dPb[r * 20 + c] - dsum));
            }
            __syncwarp();
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> ah, al;
            wmma::load_matrix_sync(ah, Dh, 24);
            wmma::load_matrix_sync(al, Dl, 24);
            for (int ct = 0; ct < HD / 16; ct++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> bk;
                wmma::load_matrix_sync(bk, Ks + (size_t)k0 * ldh + ct * 16, ldh);
                wmma::mma_sync(dq[ct], ah, bk, dq[ct]);
                wmma::mma_sync(dq[ct], al, bk, dq[ct]);
            }
            __syncwarp();
        }
        for (int ct = 0; ct < HD / 16; ct++) wmma::store_matrix_sync(Ob + ct * 16, dq[ct], ldo, wmma::mem_row_major);
        __syncwarp();
        if (dqkv && i < n) { // dqkv NULL: only dtable wanted
            bf16 *d = dqkv + wa_pix(g, b, wy, wx, i) * C3 + h * g.hd;
            for (int c = half; c < g.hd; c += 2)
                act_store(d + c, (acc ? act_load(d + c) : 0.0f) + g.scale * Ob[r * ldo + c]);
        }
        __syncwarp();
    }
    __syncthreads(); // D of every query row

    // phase 2: warp per key tile: dV = Pᵀ·dO, dK = scale·dSᵀ·Q over every query tile in order
    for (int k0 = warp * 16; k0 < np16; k0 += 16 * FL_WARPS) {
        Acc dk[HD / 16], dv[HD / 16];
        for (int ct = 0; ct < HD / 16; ct++) wmma::fill_fragment(dk[ct], 0.0f), wmma::fill_fragment(dv[ct], 0.0f);
        for (int q0 = 0; q0 < np16; q0 += 16) {
            tiles(q0, k0);
            for (int c = half; c < 16; c += 2) {
                const int i = q0 + r, j = k0 + c;
                const float p = prob(i, j, Sb[r * 20 + c]), ds = p * (dPb[r * 20 + c] - Ds[i]);
                fl_split(Ph + r * 24 + c, Pl + r * 24 + c, p);
                fl_split(Dh + r * 24 + c, Dl + r * 24 + c, ds);
                if (dS && i < n && j < n) dS[(size_t)i * n + j] = ds;
            }
            __syncwarp();
            // Pᵀ and dSᵀ: the row-major (query, key) tiles read as column-major (key, query)
            wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> ph, pl, dh, dl;
            wmma::load_matrix_sync(ph, Ph, 24);
            wmma::load_matrix_sync(pl, Pl, 24);
            wmma::load_matrix_sync(dh, Dh, 24);
            wmma::load_matrix_sync(dl, Dl, 24);
            for (int ct = 0; ct < HD / 16; ct++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> bo, bq;
                wmma::load_matrix_sync(bo, dOs + (size_t)q0 * ldh + ct * 16, ldh);
                wmma::load_matrix_sync(bq, Qs + (size_t)q0 * ldh + ct * 16, ldh);
                wmma::mma_sync(dv[ct], ph, bo, dv[ct]);
                wmma::mma_sync(dv[ct], pl, bo, dv[ct]);
                wmma::mma_sync(dk[ct], dh, bq, dk[ct]);
                wmma::mma_sync(dk[ct], dl, bq, dk[ct]);
            }
            __syncwarp();
        }
        const int j = k0 + r;
        for (int ct = 0; ct < HD / 16; ct++) wmma::store_matrix_sync(Ob + ct * 16, dk[ct], ldo, wmma::mem_row_major);
        __syncwarp();
        if (dqkv && j < n) {
            bf16 *d = dqkv + wa_pix(g, b, wy, wx, j) * C3 + g.C + h * g.hd;
            for (int c = half; c < g.hd; c += 2)
                act_store(d + c, (acc ? act_load(d + c) : 0.0f) + g.scale * Ob[r * ldo + c]);
        }
        __syncwarp();
        for (int ct = 0; ct < HD / 16; ct++) wmma::store_matrix_sync(Ob + ct * 16, dv[ct], ldo, wmma::mem_row_major);
        __syncwarp();
        if (dqkv && j < n) {
            bf16 *d = dqkv + wa_pix(g, b, wy, wx, j) * C3 + 2 * g.C + h * g.hd;
            for (int c = half; c < g.hd; c += 2) act_store(d + c, (acc ? act_load(d + c) : 0.0f) + Ob[r * ldo + c]);
        }
        __syncwarp();
    }
}

// The flash kernels are instantiated for HD = 16, 32, 48, 64: hd is padded up to the next of
// them with zero channels in shared memory (zeros add nothing to q·k, and the padded output
// channels are not stored), so any hd ≤ 64 runs (the demo's 24 as 32). The fragments of a
// 16-row tile of dQ, dK and dV stay in registers, so a larger hd would spill.
static int fl_hd_ok(int hd) { return hd >= 1 && hd <= 64; }
static int fl_hd_pad(int hd) { return (hd + 15) / 16 * 16; }

static int fl_smem_limit(Backend *be) {
    int limit = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, cuda_state(be)->device));
    return limit;
}

#define FL_HD_DISPATCH(hd, HD, ...)                                                                \
    do {                                                                                           \
        switch (hd) {                                                                              \
        case 16: { const int HD = 16; __VA_ARGS__; } break;                                        \
        case 32: { const int HD = 32; __VA_ARGS__; } break;                                        \
        case 48: { const int HD = 48; __VA_ARGS__; } break;                                        \
        default: { const int HD = 64; __VA_ARGS__; } break;                                        \
        }                                                                                          \
    } while (0)

template <int HD>
static void wa_flash_fwd_launch(Backend *be, const WaGeom &g, size_t G, bf16 *out, float *lse, const bf16 *qkv,
                                const float *table) {
    const size_t smem = fl_layout(g.n, g.w, HD, 0).total;
    cuda_dyn_smem_optin((const void *)k_wa_flash_fwd<HD>, smem);
    k_wa_flash_fwd<HD><<<dim3((unsigned)G, g.heads), 32 * FL_WARPS, smem, cuda_state(be)->stream>>>(out, lse, qkv,
                                                                                                  table, g);
    CUDA_CHECK_LAUNCH();
}

template <int HD>
static void wa_flash_bwd_launch(Backend *be, const WaGeom &g, size_t G, bf16 *dqkv, float *dS, const bf16 *dout,
                                const bf16 *qkv, const float *lse, int acc) {
    const size_t smem = fl_layout(g.n, g.w, HD, 1).total;
    cuda_dyn_smem_optin((const void *)k_wa_flash_bwd<HD>, smem);
    k_wa_flash_bwd<HD><<<dim3((unsigned)G, g.heads), 32 * FL_WARPS, smem, cuda_state(be)->stream>>>(
        dqkv, dS, dout, qkv, lse, g, acc);
    CUDA_CHECK_LAUNCH();
}

// lse: the forward's saved state in probs (k_wa_flash_bwd).
static void wa_backward_flash(Backend *be, const WaGeom &g, size_t G, bf16 *dqkv, float *dtable, const bf16 *dout,
                              const bf16 *qkv, const float *lse, int acc) {
    const int Tn = (2 * g.w - 1) * (2 * g.w - 1);
    float *dS = NULL, *part = NULL;
    double *grow = NULL;
    const CudaTree tree = wa_dtable_plan(g, G);
    if (dtable) {
        const size_t np = G * g.heads * (size_t)g.n * g.n;
        char *w = (char *)cuda_workspace(be, wa_al(np * 4) + wa_al(G * g.heads * (size_t)Tn * 4) +
                                                 wa_grow_bytes(g, tree));
        dS = (float *)wa_carve(&w, np * 4);                                 /* (G, heads, n, n) */
        part = (float *)wa_carve(&w, G * g.heads * (size_t)Tn * 4);         /* (G, heads, T) */
        grow = (double *)wa_carve(&w, wa_grow_bytes(g, tree));              /* (heads, groups, T) */
    }
    FL_HD_DISPATCH(fl_hd_pad(g.hd), HD, wa_flash_bwd_launch<HD>(be, g, G, dqkv, dS, dout, qkv, lse, acc));
    if (dtable) {
        CudaState *st = cuda_state(be);
        k_wa_dtable<<<dim3((unsigned)G, g.heads), 256, 0, st->stream>>>(dtable, part, grow, tree, dS, g,
                                                                        st->arrivals);
        CUDA_CHECK_LAUNCH();
    }
}

// =============================================================================================
// The choice (tune.h): forward and backward of one shape run the same implementation, since the
// saved state in `probs` is the implementation's: "smem" and "gemm" the softmax (Act, n² per
// (window, head)), "flash" the row log-sum-exp (fp32, n per (window, head), in the same buffer).
// =============================================================================================
enum { WA_SMEM = 0, WA_GEMM = 1, WA_FLASH = 2 };
static const char *const WA_IMPLS[] = {"smem", "gemm", "flash"};
extern "C" const TuneOp TUNE_WINDOW_ATTENTION = {"window_attention", 3, WA_IMPLS};

// Bit i: implementation i can run this geometry in this backend's precision mode. "flash" also
// needs its saved state, G·heads·n + T·heads floats, to fit probs' G·heads·n² bf16 (w ≥ 3).
static unsigned wa_avail(Backend *be, const WaGeom &g, size_t G) {
    unsigned a = 1u << WA_SMEM | 1u << WA_GEMM;
    const size_t Tn = (size_t)(2 * g.w - 1) * (2 * g.w - 1);
    if (cuda_act_is_bf16(be) && fl_hd_ok(g.hd) && (G * g.n + Tn) * 4 <= G * (size_t)g.n * g.n * 2) {
        const int limit = fl_smem_limit(be);
        const int HD = fl_hd_pad(g.hd);
        if (fl_layout(g.n, g.w, HD, 0).total <= (size_t)limit && fl_layout(g.n, g.w, HD, 1).total <= (size_t)limit)
            a |= 1u << WA_FLASH;
    }
    return a;
}

static void wa_run_forward(Backend *be, int impl, const WaGeom &g, size_t G, Act *out, Act *probs, const Act *qkv,
                           const float *table) {
    if (impl == WA_FLASH) {
        FL_HD_DISPATCH(fl_hd_pad(g.hd), HD,
                       wa_flash_fwd_launch<HD>(be, g, G, (bf16 *)out, (float *)probs, (const bf16 *)qkv, table));
        return;
    }
    CUDA_ACT_DISPATCH(be, T,
                      if (impl == WA_GEMM) wa_forward_gemm<T>(be, g, G, (T *)out, (T *)probs, (const T *)qkv, table);
                      else wa_forward<T>(be, g, G, (T *)out, (T *)probs, (const T *)qkv, table));
}

// acc 1: dqkv += (window_attention_backward); 0: dqkv = (window_attention_backward_first: every
// implementation writes each (token, channel) of dqkv exactly once, so it stores instead).
static void wa_run_backward(Backend *be, int impl, const WaGeom &g, size_t G, Act *dqkv, float *dtable,
                            const Act *dout, const Act *qkv, const Act *probs, int acc) {
    if (impl == WA_FLASH) {
        wa_backward_flash(be, g, G, (bf16 *)dqkv, dtable, (const bf16 *)dout, (const bf16 *)qkv,
                          (const float *)probs, acc);
        return;
    }
    CUDA_ACT_DISPATCH(be, T,
                      if (impl == WA_GEMM) wa_backward_gemm<T>(be, g, G, (T *)dqkv, dtable, (const T *)dout,
                                                               (const T *)qkv, (const T *)probs, acc);
                      else wa_backward_smem<T>(be, g, G, (T *)dqkv, dtable, (const T *)dout, (const T *)qkv,
                                               (const T *)probs, acc));
}

// Timing (tune.h): forward then backward of implementation i on scratch outputs of this shape
// (the scratch forward's output serves as dout). Allocated at the first run, freed after the pick.
typedef struct {
    Backend *be;
    WaGeom g;
    size_t G;
    const Act *qkv;
    const float *table;
    void *out, *probs, *dqkv; /* (B, Hp, Wp, C), (G, heads, n, n), (B, Hp, Wp, 3C) Acts */
    float *dtable;            /* ((2w-1)^2, heads) */
} WaTune;

static void wa_tune_run(void *ctx, int impl) {
    WaTune *t = (WaTune *)ctx;
    const size_t es = cuda_act_is_bf16(t->be) ? 2 : 4, tok = t->G * (size_t)t->g.n;
    if (!t->out) {
        CUDA_CHECK(cudaMalloc(&t->out, tok * t->g.C * es));
        CUDA_CHECK(cudaMalloc(&t->probs, t->G * t->g.heads * (size_t)t->g.n * t->g.n * es));
        CUDA_CHECK(cudaMalloc(&t->dqkv, tok * 3 * t->g.C * es));
        CUDA_CHECK(cudaMalloc((void **)&t->dtable, (size_t)(2 * t->g.w - 1) * (2 * t->g.w - 1) * t->g.heads * 4));
        CUDA_WORK(cudaMemsetAsync(t->dqkv, 0, tok * 3 * t->g.C * es, cuda_state(t->be)->stream));
        CUDA_WORK(cudaMemsetAsync(t->dtable, 0, (size_t)(2 * t->g.w - 1) * (2 * t->g.w - 1) * t->g.heads * 4,
                                   cuda_state(t->be)->stream));
    }
    wa_run_forward(t->be, impl, t->g, t->G, (Act *)t->out, (Act *)t->probs, t->qkv, t->table);
    wa_run_backward(t->be, impl, t->g, t->G, (Act *)t->dqkv, t->dtable, (const Act *)t->out, t->qkv,
                    (const Act *)t->probs, 1);
}

static int wa_pick(Backend *be, const WaGeom &g, int B, size_t G, const Act *qkv, const float *table) {
    char shape[96];
    snprintf(shape, sizeof shape, "B%d H%d W%d C%d h%d w%d s%d", B, g.Hp, g.Wp, g.C, g.heads, g.w, g.shift);
    WaTune t = {be, g, G, qkv, table, NULL, NULL, NULL, NULL};
    const int impl = cuda_tune_pick_avail(be, &TUNE_WINDOW_ATTENTION, shape, wa_avail(be, g, G),
                                          "flash: bf16 mode only, head dim <= 64, window >= 3, K/V/Q/dO of a window in shared memory",
                                          qkv ? wa_tune_run : NULL, &t);
    if (t.out) {
        CUDA_SYNC(cudaStreamSynchronize(cuda_state(be)->stream));
        CUDA_CHECK(cudaFree(t.out));
        CUDA_CHECK(cudaFree(t.probs));
        CUDA_CHECK(cudaFree(t.dqkv));
        CUDA_CHECK(cudaFree(t.dtable));
    }
    return impl;
}

extern "C" void cu_window_attention_forward(Backend *be, Act *out, Act *probs, const Act *qkv, const float *table,
                                            int B, int Hp, int Wp, int C, int heads, int window, int shift) {
    WaGeom g = wa_geom(Hp, Wp, C, heads, window, shift);
    size_t G = (size_t)B * g.nWin;
    if (!G) return;
    wa_run_forward(be, wa_pick(be, g, B, G, qkv, table), g, G, out, probs, qkv, table);
}

extern "C" void cu_window_attention_backward(Backend *be, Act *dqkv, float *dtable, const Act *dout, const Act *qkv,
                                             const Act *probs, int B, int Hp, int Wp, int C, int heads, int window,
                                             int shift) {
    WaGeom g = wa_geom(Hp, Wp, C, heads, window, shift);
    size_t G = (size_t)B * g.nWin;
    if (!G || (!dqkv && !dtable)) return;
    wa_run_backward(be, wa_pick(be, g, B, G, NULL, NULL), g, G, dqkv, dtable, dout, qkv, probs, 1);
}

extern "C" void cu_window_attention_backward_first(Backend *be, Act *dqkv, float *dtable, const Act *dout,
                                                   const Act *qkv, const Act *probs, int B, int Hp, int Wp, int C,
                                                   int heads, int window, int shift) {
    WaGeom g = wa_geom(Hp, Wp, C, heads, window, shift);
    size_t G = (size_t)B * g.nWin;
    if (!G || (!dqkv && !dtable)) return;
    wa_run_backward(be, wa_pick(be, g, B, G, NULL, NULL), g, G, dqkv, dtable, dout, qkv, probs, 0);
}
