// window_attention.cu — Swin windowed multi-head self-attention with relative position bias and
// shift mask, fused with the window partition (contract: src/backend.h; arithmetic order as
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
// block, so dqkv needs no atomics; k_wa_dtable_finish adds the blocks' partial tables into
// dtable in window order. No atomics anywhere: the backward pass is bit-for-bit reproducible,
// which is what makes a resumed GPU run identical to an uninterrupted one.
//
// qkv, out, the saved softmax probs, dout and dqkv are Acts (kernels templated on the storage type
// T, act.cuh): widened to float on load, every shared-memory tile and every sum in fp32, rounded
// once on store. The forward forms out from the fp32 softmax row, not from its stored (possibly
// rounded) copy. The dS scratch, the partial tables and dtable stay float.
#include <math.h>

#include "act.cuh"

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

// part: (G, heads, T) the per-block bias-table gradients, NULL when dtable is not wanted.
// TS: the Act storage type (T is the table size here).
template <typename TS>
__global__ void k_wa_bwd(TS *dqkv, float *part, float *dS_all, const TS *dout, const TS *qkv, const TS *probs,
                         WaGeom g) {
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
                act_store(d, act_load(d) + g.scale * s);
            }
        __syncwarp();
    }
    __syncthreads(); // dS of the whole block is written (global writes are visible after the barrier)
    if (part) {
        // relative offset e = (dy + w-1)(2w-1) + (dx + w-1) pairs query i = (y, x) with key
        // j = (y - dy, x - dx): sum dS[i, j] over the pairs, rows then columns
        const int span = 2 * g.w - 1;
        for (int e = threadIdx.x; e < T; e += blockDim.x) {
            const int dy = e / span - (g.w - 1), dx = e % span - (g.w - 1);
            float s = 0;
            for (int y = dy > 0 ? dy : 0; y < (dy < 0 ? g.w + dy : g.w); y++)
                for (int x = dx > 0 ? dx : 0; x < (dx < 0 ? g.w + dx : g.w); x++)
                    s += dS[(size_t)(y * g.w + x) * n + (size_t)((y - dy) * g.w + (x - dx))];
            part[(gw * g.heads + h) * (size_t)T + e] = s;
        }
    }
    if (!dqkv) return;
    // pass 2: key rows
    for (int e = threadIdx.x; e < n * hd; e += blockDim.x) {
        int t = e / hd, j = e % hd;
        size_t pt = wa_pix(g, b, wy, wx, t);
        A[t * ld + j] = act_load(qkv + pt * C3 + h * hd + j) * g.scale;
        Bm[t * ld + j] = act_load(dout + pt * g.C + h * hd + j);
    }
    __syncthreads();
    for (int j = warp; j < n; j += WA_WARPS) {
        const size_t pj = wa_pix(g, b, wy, wx, j);
        for (int c = lane; c < hd; c += 32) {
            float dk = 0, dv = 0;
            for (int i = 0; i < n; i++) {
                dk = fmaf(dS[(size_t)i * n + j], A[i * ld + c], dk);
                dv = fmaf(act_load(P + (size_t)i * n + j), Bm[i * ld + c], dv);
            }
            TS *dk_p = dqkv + pj * C3 + g.C + h * hd + c, *dv_p = dqkv + pj * C3 + 2 * g.C + h * hd + c;
            act_store(dk_p, act_load(dk_p) + dk);
            act_store(dv_p, act_load(dv_p) + dv);
        }
    }
}

// dtable[e, h] += Σ_gw part[gw, h, e], windows in order (one thread per table entry).
__global__ void k_wa_dtable_finish(float *dtable, const float *part, size_t G, int heads, int T) {
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < (size_t)heads * T;
         k += (size_t)gridDim.x * blockDim.x) {
        const int h = (int)(k / T), e = (int)(k % T);
        double s = 0;
        for (size_t gw = 0; gw < G; gw++) s += part[(gw * heads + h) * (size_t)T + e];
        dtable[(size_t)e * heads + h] += (float)s;
    }
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
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
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
static void wa_backward(Backend *be, const WaGeom &g, size_t G, T *dqkv, float *part, float *dS, const T *dout,
                        const T *qkv, const T *probs) {
    size_t smem = wa_smem(be, g, (const void *)k_wa_bwd<T>);
    const dim3 grid((unsigned)G, g.heads);
    k_wa_bwd<T><<<grid, 32 * WA_WARPS, smem, cuda_state(be)->stream>>>(dqkv, part, dS, dout, qkv, probs, g);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_window_attention_forward(Backend *be, Act *out, Act *probs, const Act *qkv, const float *table,
                                            int B, int Hp, int Wp, int C, int heads, int window, int shift) {
    WaGeom g = wa_geom(Hp, Wp, C, heads, window, shift);
    size_t G = (size_t)B * g.nWin;
    if (!G) return;
    CUDA_ACT_DISPATCH(be, T, wa_forward<T>(be, g, G, (T *)out, (T *)probs, (const T *)qkv, table));
}

extern "C" void cu_window_attention_backward(Backend *be, Act *dqkv, float *dtable, const Act *dout, const Act *qkv,
                                             const Act *probs, int B, int Hp, int Wp, int C, int heads, int window,
                                             int shift) {
    WaGeom g = wa_geom(Hp, Wp, C, heads, window, shift);
    size_t G = (size_t)B * g.nWin;
    if (!G || (!dqkv && !dtable)) return;
    const int T = (2 * g.w - 1) * (2 * g.w - 1);
    size_t dS_n = (G * heads * (size_t)g.n * g.n + 63) / 64 * 64, part_n = dtable ? G * heads * (size_t)T : 0;
    /* dS (fp32, shaped like probs), then the partial tables */
    float *dS = (float *)cuda_workspace(be, (dS_n + part_n) * sizeof(float));
    float *part = dtable ? dS + dS_n : NULL;
    CUDA_ACT_DISPATCH(be, T, wa_backward<T>(be, g, G, (T *)dqkv, part, dS, (const T *)dout, (const T *)qkv,
                                            (const T *)probs));
    cudaStream_t s = cuda_state(be)->stream;
    if (dtable) {
        k_wa_dtable_finish<<<cuda_grid((size_t)heads * T), 256, 0, s>>>(dtable, part, G, heads, T);
        CUDA_CHECK_LAUNCH();
    }
}
