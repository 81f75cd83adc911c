// dwconv7.cu — depthwise 7x7 convolution, zero pad 3, stride 1, bias (NHWC; weight (C,1,7,7)).
// Straightforward first version: one thread per output element for the forward and for din
// (the 180°-flipped correlation of dout); dw/db as fixed-chunk partials over image rows in
// double, summed in a fixed order (deterministic) by the partials' own kernel: the two-level
// last-block finish of last_block.cuh (groups of ~sqrt(rows) rows summed by their last block,
// then the group rows by the last group finisher), one reduction per channel group (per (tap
// group, channel group) in "direct"), so the 50·C columns do not serialise on one SM.
// The backward of "direct" and "tiled" is one launch: din and the parameter partials are
// independent jobs, so the first blocks of one grid take din and the rest the partials
// (horizontal fusion), and the partials' blocks finish dw/db.
// Consecutive threads take consecutive channels, so every load is coalesced. Activations and
// their gradients are Acts (templates on the storage type T, act.cuh); w, b, dw, db float.
//
// Implementations (tune.h, TuneOp "dwconv7"; forward and backward choose together):
//   "direct" the kernels above: simple, the reference;
//   "tiled"  a tile of 8x16 pixels plus its 3-pixel halo for 32 channels staged once in shared
//            memory (2-channel vector loads), the block's 32x49 weights (a contiguous slice of
//            w[C][49], so read coalesced, no transpose) in registers, 8 output rows per thread;
//            din is the same tile code with the flipped taps; dw and db in ONE pass over (in,
//            dout) per tile, per-tile partials summed in fixed groups of consecutive tiles, tiles
//            and then groups in order (deterministic, no atomics on values).
//            Needs C even (the 2-channel loads); odd C runs "direct";
//   "cudnn"  cuDNN grouped convolution (groups = C, NHWC, pad 3) on fp32 data with FMA math in
//            every mode (bf16 Acts through fp32 copies: dwconv7 stays fp32-exact), deterministic
//            backward algorithms only (conv_cudnn.cu); a shape cuDNN cannot run so runs "direct".
//
// dwconv7_layernorm_forward (the conv, then LayerNorm over its channels; TuneOp
// "dwconv7_layernorm": "fused" in one kernel, or "split") is the last section.
#include <stdio.h>

#include "act.cuh"
#include "last_block.cuh"
#include "tune.h"

// Elements i0, i0 + stride, ... of out (+)= in ⋆ w (+ b); flip: taps 48-t.
template <typename T>
__device__ void dw_direct_elems(T *out, const T *in, const float *w, const float *b, int B, int H, int W, int C,
                                int flip, int accumulate, size_t i0, size_t stride) {
    size_t n = (size_t)B * H * W * C;
    for (size_t i = i0; i < n; i += stride) {
        int c = (int)(i % C);
        size_t p = i / C;
        int x = (int)(p % W), y = (int)(p / W % H);
        size_t bimg = p / ((size_t)W * H);
        float acc = b ? b[c] : 0.0f;
        for (int ki = 0; ki < 7; ki++) {
            int yy = y + ki - 3;
            if (yy < 0 || yy >= H) continue;
            for (int kj = 0; kj < 7; kj++) {
                int xx = x + kj - 3;
                if (xx < 0 || xx >= W) continue;
                int t = ki * 7 + kj;
                acc += act_load(in + ((bimg * H + yy) * W + xx) * C + c) * w[(size_t)c * 49 + (flip ? 48 - t : t)];
            }
        }
        if (accumulate) act_store(out + i, act_load(out + i) + acc);
        else act_store(out + i, acc);
    }
}

template <typename T>
__global__ void k_dw_fwd(T *out, const T *in, const float *w, const float *b, int B, int H, int W, int C, int flip,
                         int accumulate) {
    dw_direct_elems(out, in, w, b, B, H, W, C, flip, accumulate, blockIdx.x * (size_t)blockDim.x + threadIdx.x,
                    (size_t)gridDim.x * blockDim.x);
}

// part[k][t][c] (t < 49: dw taps, t = 49: db) over image rows [k*rows, ...) of the B*H rows.
template <typename T>
__device__ void dw_direct_partial(double *part, const T *dout, const T *in, int B, int H, int W, int C, long rows,
                                  int k, int t, int c) {
    long R = (long)B * H, r0 = k * rows, r1 = r0 + rows < R ? r0 + rows : R;
    int ki = t / 7, kj = t % 7;
    double s = 0;
    for (long r = r0; r < r1; r++) {
        int bi = (int)(r / H), y = (int)(r % H);
        const T *g = dout + (size_t)r * W * C;
        if (t == 49) {
            for (int x = 0; x < W; x++) s += act_load(g + (size_t)x * C + c);
            continue;
        }
        int yy = y + ki - 3;
        if (yy < 0 || yy >= H) continue;
        const T *src = in + (((size_t)bi * H + yy) * W) * C;
        float acc = 0; // one image row in float, then into the double sum
        for (int x = 0; x < W; x++) {
            int xx = x + kj - 3;
            if (xx < 0 || xx >= W) continue;
            acc += act_load(g + (size_t)x * C + c) * act_load(src + (size_t)xx * C + c);
        }
        s += acc;
    }
    part[((size_t)k * 50 + t) * C + c] = s;
}

// dw[c][t] += Σ_k part[k][t][c] (t = 49: db[c]) over the taps [t0, t1) × channels [c0, c1) of
// reduction s (a block that wrote row k of it: every thread calls this, after the partials):
// the two-level finish of last_block.cuh, in double. The last block of k's group sums its rows
// in order into grow[grp][t][c] (tree.groups × 50 × C doubles), the last group finisher of s
// the group rows in order into dw and db. Columns are taken channel-fastest (coalesced).
template <typename P>
__device__ void dw_param_tree(float *dw /* (C, 49) */, float *db /* (C) or NULL */, const P *part /* (rows, 50, C) */,
                              double *grow, const CudaTree &tree, unsigned *arrivals, int s, int k, int t0, int t1,
                              int c0, int c1, int C) {
    if (!cuda_tree_group_last(arrivals, tree, s, k)) return;
    const int nc = c1 - c0, ncol = (t1 - t0) * nc, grp = k / tree.group, r0 = grp * tree.group;
    const int r1 = r0 + tree.group < tree.rows ? r0 + tree.group : tree.rows;
    for (int j = threadIdx.x; j < ncol; j += blockDim.x) {
        const size_t col = (size_t)(t0 + j / nc) * C + c0 + j % nc;
        double v = 0;
        for (int r = r0; r < r1; r++) v += cuda_load_cg(part + (size_t)r * 50 * C + col);
        grow[(size_t)grp * 50 * C + col] = v;
    }
    if (!cuda_tree_top_last(arrivals, tree, s)) return;
    for (int j = threadIdx.x; j < ncol; j += blockDim.x) {
        const int t = t0 + j / nc, c = c0 + j % nc;
        double v = 0;
        for (int q = 0; q < tree.groups; q++) v += cuda_load_cg(grow + ((size_t)q * 50 + t) * C + c);
        if (t < 49) dw[(size_t)c * 49 + t] += (float)v;
        else if (db) db[c] += (float)v;
    }
}

// The direct backward's two independent jobs in one launch (horizontal fusion). Blocks [0, nx):
// din (+)= dout ⋆ flipped w, grid-stride over its elements (nx = 0: no din); blocks [nx, nx +
// nchunk·ncg·ntg): the parameter partials of one (row chunk k, channel group of cw channels, tap
// group of tg taps) each, one thread per (tap, channel), channel fastest (cw = min(C, 256),
// tg = 256 / cw: a narrow C fills the block with taps instead of leaving threads idle), then the
// finish (dw_param_tree): one reduction per (tap group, channel group), over the nchunk rows.
template <typename T>
__global__ void __launch_bounds__(256)
    k_dw_direct_bwd(T *din, int din_acc, double *part, double *grow, CudaTree tree, unsigned *arrivals, float *dw,
                    float *db, const T *dout, const T *in, const float *w, int B, int H, int W, int C, long rows,
                    int nx, int nchunk, int ncg, int cw, int tg) {
    if ((int)blockIdx.x < nx) {
        dw_direct_elems(din, dout, w, (const float *)NULL, B, H, W, C, 1, din_acc,
                        blockIdx.x * (size_t)blockDim.x + threadIdx.x, (size_t)nx * blockDim.x);
        return;
    }
    const int q = (int)blockIdx.x - nx, k = q % nchunk, set = q / nchunk;
    const int c0 = set % ncg * cw, c1 = c0 + cw < C ? c0 + cw : C;
    const int t0 = set / ncg * tg, t1 = t0 + tg < 50 ? t0 + tg : 50;
    const int t = t0 + (int)threadIdx.x / cw, c = c0 + (int)threadIdx.x % cw;
    if (t < t1 && c < c1) dw_direct_partial(part, dout, in, B, H, W, C, rows, k, t, c);
    dw_param_tree(dw, db, part, grow, tree, arrivals, set, k, t0, t1, c0, c1, C);
}

// ---- "tiled" ------------------------------------------------------------------------------

#define DW_TH 8   // output rows per tile
#define DW_TW 16  // output columns per tile
#define DW_CG 32  // channels per block (16 channel pairs)
#define DW_SH (DW_TH + 6)
#define DW_SW (DW_TW + 6)

// Two adjacent channels in one 8-byte (float) or 4-byte (bf16) load; c even and C even, so the
// address is aligned to the pair.
template <typename T> struct alignas(2 * sizeof(T)) DwPair { T v[2]; };
template <typename T> __device__ __forceinline__ void dw_load2(const T *p, float *a, float *b) {
    DwPair<T> q = *(const DwPair<T> *)p;
    *a = act_load(&q.v[0]);
    *b = act_load(&q.v[1]);
}
template <typename T> __device__ __forceinline__ void dw_store2(T *p, float a, float b) {
    DwPair<T> q;
    act_store(&q.v[0], a);
    act_store(&q.v[1], b);
    *(DwPair<T> *)p = q;
}

// Stages in[b, y0-3 .. y0+DW_TH+3, x0-3 .. x0+DW_TW+3, c0 .. c0+32) as float (zero outside the
// image and past C) in s[DW_SH][DW_SW][DW_CG]. 256 threads: consecutive threads take consecutive
// channel pairs of one pixel (coalesced).
template <typename T>
__device__ __forceinline__ void dw_stage(float *s, const T *in, int bimg, int y0, int x0, int c0, int H, int W,
                                         int C) {
    for (int i = threadIdx.x; i < DW_SH * DW_SW * (DW_CG / 2); i += blockDim.x) {
        int p = i % (DW_CG / 2), pix = i / (DW_CG / 2);
        int yy = y0 - 3 + pix / DW_SW, xx = x0 - 3 + pix % DW_SW, c = c0 + 2 * p;
        float a = 0, b = 0;
        if (yy >= 0 && yy < H && xx >= 0 && xx < W && c < C)
            dw_load2(in + (((size_t)bimg * H + yy) * W + xx) * C + c, &a, &b);
        s[pix * DW_CG + 2 * p] = a;
        s[pix * DW_CG + 2 * p + 1] = b;
    }
}

// out (B,H,W,C) (+)= in ⋆ w (+ b). Block: 256 threads = 16 channel pairs × 16 columns, each
// thread 8 output rows of one column and pair; grid (tiles, channel groups). flip: taps 48-t
// (din = dout correlated with the rotated kernel).
// (One tile and channel group of it, all 256 threads of the block: s and sw its shared memory.)
template <typename T>
__device__ __forceinline__ void dw_tiled_fwd_tile(T *out, const T *in, const float *w, const float *b, int B, int H,
                                                  int W, int C, int flip, int accumulate, float *s, float *sw,
                                                  int tile, int cg) {
    const int tx = (W + DW_TW - 1) / DW_TW, ty = (H + DW_TH - 1) / DW_TH;
    int bimg = tile / (tx * ty), x0 = tile % tx * DW_TW, y0 = tile / tx % ty * DW_TH;
    int c0 = cg * DW_CG, nc = C - c0 < DW_CG ? C - c0 : DW_CG;
    for (int i = threadIdx.x; i < DW_CG * 49; i += blockDim.x) sw[i] = i < nc * 49 ? w[(size_t)c0 * 49 + i] : 0.0f;
    dw_stage(s, in, bimg, y0, x0, c0, H, W, C);
    __syncthreads();
    const int p = threadIdx.x % (DW_CG / 2), col = threadIdx.x / (DW_CG / 2), c = c0 + 2 * p;
    float wa[49], wb[49];
#pragma unroll
    for (int t = 0; t < 49; t++) {
        wa[t] = sw[(2 * p) * 49 + (flip ? 48 - t : t)];
        wb[t] = sw[(2 * p + 1) * 49 + (flip ? 48 - t : t)];
    }
    float aa[DW_TH], ab[DW_TH];
#pragma unroll
    for (int y = 0; y < DW_TH; y++) aa[y] = ab[y] = 0;
    // every staged row r feeds output rows r-ki: each value is read from shared memory once
#pragma unroll
    for (int r = 0; r < DW_SH; r++) {
#pragma unroll
        for (int kj = 0; kj < 7; kj++) {
            const float va = s[(r * DW_SW + col + kj) * DW_CG + 2 * p], vb = s[(r * DW_SW + col + kj) * DW_CG + 2 * p + 1];
#pragma unroll
            for (int ki = 0; ki < 7; ki++) {
                const int y = r - ki;
                if (y >= 0 && y < DW_TH) {
                    aa[y] += va * wa[ki * 7 + kj];
                    ab[y] += vb * wb[ki * 7 + kj];
                }
            }
        }
    }
    const int x = x0 + col;
    if (c >= C || x >= W) return;
    const float ba = b ? b[c] : 0.0f, bb = b ? b[c + 1] : 0.0f;
#pragma unroll
    for (int y = 0; y < DW_TH; y++) {
        if (y0 + y >= H) break;
        T *o = out + (((size_t)bimg * H + y0 + y) * W + x) * C + c;
        float ra = ba + aa[y], rb = bb + ab[y];
        if (accumulate) {
            float oa, ob;
            dw_load2(o, &oa, &ob);
            ra += oa, rb += ob;
        }
        dw_store2(o, ra, rb);
    }
}

template <typename T>
__global__ void __launch_bounds__(256) k_dw_tiled_fwd(T *out, const T *in, const float *w, const float *b, int B,
                                                     int H, int W, int C, int flip, int accumulate) {
    __shared__ float s[DW_SH * DW_SW * DW_CG]; // 39,424 bytes
    __shared__ float sw[DW_CG * 49];
    dw_tiled_fwd_tile(out, in, w, b, B, H, W, C, flip, accumulate, s, sw, blockIdx.x, blockIdx.y);
}

// part[tile][t][c] (t < 49: dw taps, t = 49: db) over one tile of dout, in one pass: the tile's
// input plus halo staged once (by every thread of the block). Then 16 channel pairs × 7 tap rows
// ki (the first 112 threads; the rest idle); each thread 7 taps × 2 channels, sliding along each
// dout row (one input and one dout load per pixel).
template <typename T>
__device__ __forceinline__ void dw_tiled_param_tile(float *part, const T *dout, const T *in, int B, int H, int W,
                                                    int C, float *s, int tile, int cg) {
    const int tx = (W + DW_TW - 1) / DW_TW, ty = (H + DW_TH - 1) / DW_TH;
    int bimg = tile / (tx * ty), x0 = tile % tx * DW_TW, y0 = tile / tx % ty * DW_TH;
    int c0 = cg * DW_CG;
    dw_stage(s, in, bimg, y0, x0, c0, H, W, C);
    __syncthreads();
    const int p = threadIdx.x % (DW_CG / 2), ki = threadIdx.x / (DW_CG / 2), c = c0 + 2 * p;
    if (ki >= 7 || c >= C) return;
    float ga[7] = {0, 0, 0, 0, 0, 0, 0}, gb[7] = {0, 0, 0, 0, 0, 0, 0}, sa = 0, sb = 0;
    const int nh = H - y0 < DW_TH ? H - y0 : DW_TH, nw = W - x0 < DW_TW ? W - x0 : DW_TW;
    for (int y = 0; y < nh; y++) {
        const float *srow = s + (size_t)(y + ki) * DW_SW * DW_CG + 2 * p;
        const T *g = dout + (((size_t)bimg * H + y0 + y) * W + x0) * C + c;
        // window of the 7 staged inputs under the taps of output column x: srow[x .. x+6]
        float wa[7], wb[7];
#pragma unroll
        for (int j = 0; j < 6; j++) wa[j + 1] = srow[j * DW_CG], wb[j + 1] = srow[j * DW_CG + 1];
        for (int x = 0; x < nw; x++) {
#pragma unroll
            for (int j = 0; j < 6; j++) wa[j] = wa[j + 1], wb[j] = wb[j + 1];
            wa[6] = srow[(x + 6) * DW_CG], wb[6] = srow[(x + 6) * DW_CG + 1];
            float da, db;
            dw_load2(g + (size_t)x * C, &da, &db);
#pragma unroll
            for (int kj = 0; kj < 7; kj++) ga[kj] += da * wa[kj], gb[kj] += db * wb[kj];
            sa += da, sb += db;
        }
    }
    float *pt = part + (size_t)tile * 50 * C;
#pragma unroll
    for (int kj = 0; kj < 7; kj++) {
        pt[(size_t)(ki * 7 + kj) * C + c] = ga[kj];
        pt[(size_t)(ki * 7 + kj) * C + c + 1] = gb[kj];
    }
    if (ki == 0) {
        pt[(size_t)49 * C + c] = sa;
        pt[(size_t)49 * C + c + 1] = sb;
    }
}

// The tiled backward's two jobs in one launch (horizontal fusion), grid (nx + ntile, channel
// groups): blocks x < nx take din's tile x (din (+)= dout ⋆ flipped w; nx = 0: no din), the others
// the parameter partials of tile x - nx, then the finish (dw_param_tree): one reduction per
// channel group (its 50 × 32 columns) over the ntile tiles, in tile order, in double.
template <typename T>
__global__ void __launch_bounds__(256)
    k_dw_tiled_bwd(T *din, int din_acc, float *part, double *grow, CudaTree tree, unsigned *arrivals, float *dw,
                   float *db, const T *dout, const T *in, const float *w, int B, int H, int W, int C, int nx,
                   int ntile) {
    __shared__ float s[DW_SH * DW_SW * DW_CG];
    __shared__ float sw[DW_CG * 49];
    if ((int)blockIdx.x < nx) {
        dw_tiled_fwd_tile(din, dout, w, (const float *)NULL, B, H, W, C, 1, din_acc, s, sw, blockIdx.x, blockIdx.y);
        return;
    }
    const int k = (int)blockIdx.x - nx, cg = (int)blockIdx.y, c0 = cg * DW_CG;
    dw_tiled_param_tile(part, dout, in, B, H, W, C, s, k, cg);
    dw_param_tree(dw, db, part, grow, tree, arrivals, cg, k, 0, 50, c0, C - c0 < DW_CG ? C : c0 + DW_CG, C);
}

static dim3 dw_tiled_grid(int B, int H, int W, int C) {
    return dim3((unsigned)((size_t)B * ((H + DW_TH - 1) / DW_TH) * ((W + DW_TW - 1) / DW_TW)),
                (unsigned)((C + DW_CG - 1) / DW_CG));
}

static void dw_tiled_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H,
                             int W, int C, int flip, int accumulate) {
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_dw_tiled_fwd<T><<<dw_tiled_grid(B, H, W, C), 256, 0, s>>>((T *)out, (const T *)in, w, b, B, H,
                                                                                   W, C, flip, accumulate));
    CUDA_CHECK_LAUNCH();
}

// The tiled backward: one launch; in the workspace the per-tile partials (ntile × 50×C floats),
// then the group rows (groups × 50×C doubles).
static void dw_tiled_backward(Backend *be, Act *din, int din_acc, float *dw, float *db, const Act *dout,
                              const Act *in, const float *w, int B, int H, int W, int C) {
    CudaState *st = cuda_state(be);
    const dim3 tiles = dw_tiled_grid(B, H, W, C);
    const int ntile = (int)tiles.x, nx = din ? ntile : 0;
    const CudaTree tree = cuda_tree_plan(ntile, (int)tiles.y);
    const size_t part_bytes = ((size_t)ntile * 50 * C * sizeof(float) + 255) / 256 * 256;
    char *ws = (char *)cuda_workspace(be, part_bytes + (size_t)tree.groups * 50 * C * sizeof(double));
    float *part = (float *)ws;
    double *grow = (double *)(ws + part_bytes);
    const dim3 grid((unsigned)(nx + ntile), tiles.y);
    CUDA_ACT_DISPATCH(be, T,
                      k_dw_tiled_bwd<T><<<grid, 256, 0, st->stream>>>((T *)din, din_acc, part, grow, tree, st->arrivals,
                                                                      dw, db, (const T *)dout, (const T *)in, w, B, H,
                                                                      W, C, nx, ntile));
    CUDA_CHECK_LAUNCH();
}

// ---- the choice ------------------------------------------------------------------------------

enum { DW_DIRECT, DW_TILED, DW_CUDNN };
static const char *const DW_NAMES[] = {"direct", "tiled", "cudnn"};
extern "C" const TuneOp TUNE_DWCONV7 = {"dwconv7", 3, DW_NAMES};

static void dw_direct_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H,
                              int W, int C, int accumulate) {
    size_t n = (size_t)B * H * W * C;
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_dw_fwd<T><<<cuda_grid(n), 256, 0, s>>>((T *)out, (const T *)in, w, b, B, H, W, C, 0,
                                                               accumulate));
    CUDA_CHECK_LAUNCH();
}

// The direct backward: one launch; in the workspace the dw/db partials (nchunk row chunks × 50×C
// doubles), then the group rows (groups × 50×C doubles).
static void dw_direct_backward(Backend *be, Act *din, int din_acc, float *dw, float *db, const Act *dout,
                               const Act *in, const float *w, int B, int H, int W, int C) {
    CudaState *st = cuda_state(be);
    long R = (long)B * H;
    int nchunk = (int)(R < 64 ? R : 64);
    long rows = (R + nchunk - 1) / nchunk;
    nchunk = (int)((R + rows - 1) / rows);
    const int nx = din ? (int)cuda_grid((size_t)B * H * W * C) : 0;
    const int cw = C < 256 ? C : 256, ncg = (C + cw - 1) / cw, tg = 256 / cw < 50 ? 256 / cw : 50;
    const int ntg = (50 + tg - 1) / tg;
    const CudaTree tree = cuda_tree_plan(nchunk, ncg * ntg);
    double *part = (double *)cuda_workspace(be, ((size_t)nchunk + tree.groups) * 50 * C * sizeof(double));
    double *grow = part + (size_t)nchunk * 50 * C;
    const unsigned grid = (unsigned)(nx + (size_t)nchunk * ncg * ntg);
    CUDA_ACT_DISPATCH(be, T,
                      k_dw_direct_bwd<T><<<grid, 256, 0, st->stream>>>((T *)din, din_acc, part, grow, tree,
                                                                       st->arrivals, dw, db, (const T *)dout,
                                                                       (const T *)in, w, B, H, W, C, rows, nx, nchunk,
                                                                       ncg, cw, tg));
    CUDA_CHECK_LAUNCH();
}

// Timing: implementation i's forward and its whole backward on scratch outputs (the forward into
// din's scratch: the real output stays untouched, which dwconv7_forward_add needs; din, dw, db
// allocated on the first, untimed warm-up run and freed after the choice; in stands in for
// dout), so the choice weighs the weight-gradient pass, the costliest part.
typedef struct {
    Backend *be;
    const Act *in;
    const float *w, *b;
    int B, H, W, C;
    Act *din;  // scratch (B,H,W,C)
    float *dw; // scratch (C*49 + C): dw then db
} DwTune;

static void dw_backward_impl(Backend *be, int impl, Act *din, int din_acc, float *dw, float *db, const Act *dout,
                             const Act *in, const float *w, int B, int H, int W, int C);

static void dw_tune_run(void *ctx, int impl) {
    DwTune *t = (DwTune *)ctx;
    if (!t->dw) {
        CUDA_CHECK(cudaMalloc((void **)&t->din, (size_t)t->B * t->H * t->W * t->C * t->be->act_bytes));
        CUDA_CHECK(cudaMalloc((void **)&t->dw, (size_t)t->C * 50 * sizeof(float)));
    }
    if (impl == DW_TILED && t->C % 2) impl = DW_DIRECT;
    if (impl == DW_TILED) dw_tiled_forward(t->be, t->din, t->in, t->w, t->b, t->B, t->H, t->W, t->C, 0, 0);
    else if (impl != DW_CUDNN || !cuda_dwconv7_cudnn_forward(t->be, t->din, t->in, t->w, t->b, t->B, t->H, t->W, t->C))
        dw_direct_forward(t->be, t->din, t->in, t->w, t->b, t->B, t->H, t->W, t->C, 0);
    dw_backward_impl(t->be, impl, t->din, 1, t->dw, t->dw + (size_t)t->C * 49, t->in, t->in, t->w, t->B, t->H, t->W, t->C);
}

// The implementation for this shape (the backward asks with in = NULL: by then a forward has
// chosen, so it is never timed from there). "tiled" at odd C runs "direct".
static int dw_pick(Backend *be, const Act *in, const float *w, const float *b, int B, int H, int W, int C) {
    char key[64];
    snprintf(key, sizeof key, "B%d H%d W%d C%d", B, H, W, C);
    DwTune t = {be, in, w, b, B, H, W, C, NULL, NULL};
    int impl = cuda_tune_pick(be, &TUNE_DWCONV7, key, in ? dw_tune_run : NULL, &t);
    if (t.dw) { // timed: the scratch gradients go (cudaFree waits for the timing runs)
        CUDA_CHECK(cudaFree(t.din));
        CUDA_CHECK(cudaFree(t.dw));
    }
    return impl == DW_TILED && C % 2 ? DW_DIRECT : impl;
}

extern "C" void cu_dwconv7_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H,
                                   int W, int C) {
    size_t n = (size_t)B * H * W * C;
    if (!n) return;
    const int impl = dw_pick(be, in, w, b, B, H, W, C);
    if (impl == DW_TILED) dw_tiled_forward(be, out, in, w, b, B, H, W, C, 0, 0);
    else if (impl != DW_CUDNN || !cuda_dwconv7_cudnn_forward(be, out, in, w, b, B, H, W, C))
        dw_direct_forward(be, out, in, w, b, B, H, W, C, 0);
}

// out += conv(in) + b: the kernels' accumulate mode, (b + Σ taps) + out in fp32, one rounding.
// cuDNN's forward overwrites (and uses the workspace for its copies, so there is no room for a
// temporary here): where "cudnn" was chosen, "tiled" (or "direct" at odd C) runs this one.
extern "C" void cu_dwconv7_forward_add(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B,
                                       int H, int W, int C) {
    size_t n = (size_t)B * H * W * C;
    if (!n) return;
    int impl = dw_pick(be, in, w, b, B, H, W, C);
    if (impl == DW_CUDNN) impl = C % 2 ? DW_DIRECT : DW_TILED;
    if (impl == DW_TILED) dw_tiled_forward(be, out, in, w, b, B, H, W, C, 0, 1);
    else dw_direct_forward(be, out, in, w, b, B, H, W, C, 1);
}

// din_acc 1: din += (dwconv7_backward); 0: din = (dwconv7_backward_first: the kernels store
// instead of load + add; cuDNN's backward accumulates, so its din is zeroed first).
static void dw_backward_impl(Backend *be, int impl, Act *din, int din_acc, float *dw, float *db, const Act *dout,
                             const Act *in, const float *w, int B, int H, int W, int C) {
    size_t n = (size_t)B * H * W * C;
    cudaStream_t s = cuda_state(be)->stream;
    if (impl == DW_CUDNN) {
        if (din && !din_acc) CUDA_WORK(cudaMemsetAsync(din, 0, n * be->act_bytes, s));
        if (cuda_dwconv7_cudnn_backward(be, din, dw, db, dout, in, w, B, H, W, C)) return;
        impl = DW_DIRECT; /* din zeroed above: accumulating onto it is overwriting */
        din_acc = 1;
    }
    if (impl == DW_TILED) dw_tiled_backward(be, din, din_acc, dw, db, dout, in, w, B, H, W, C);
    else dw_direct_backward(be, din, din_acc, dw, db, dout, in, w, B, H, W, C);
}

extern "C" void cu_dwconv7_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in,
                                    const float *w, int B, int H, int W, int C) {
    size_t n = (size_t)B * H * W * C;
    if (!n) return;
    dw_backward_impl(be, dw_pick(be, NULL, w, NULL, B, H, W, C), din, 1, dw, db, dout, in, w, B, H, W, C);
}

extern "C" void cu_dwconv7_backward_first(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in,
                                          const float *w, int B, int H, int W, int C) {
    size_t n = (size_t)B * H * W * C;
    if (!n) return;
    dw_backward_impl(be, dw_pick(be, NULL, w, NULL, B, H, W, C), din, 0, dw, db, dout, in, w, B, H, W, C);
}

// ---- dwconv7_layernorm_forward: the conv, then LayerNorm over its C channels ------------------
//
// Implementations (tune.h, TuneOp "dwconv7_layernorm"):
//   "fused" ONE kernel. A block takes strips of DWLN_PX = 8 consecutive pixels of one image row
//           with ALL their channels, so every pixel's LayerNorm statistics are complete inside the
//           block: TS threads per strip (whole warps), thread t the channels t, t + TS, ... (K of
//           them, K = ceil(C / 256) <= 4, so C <= 1024), consecutive threads consecutive channels
//           (coalesced loads and stores); several strips per block where C needs fewer than 256
//           threads. Per channel the 8 outputs accumulate in registers, the bias first and then the
//           taps in the order of "direct" (ki, then kj), each input loaded once per strip and row
//           (a sliding window: 7 rows x 14 columns for 8 pixels). The result is rounded to the Act
//           type and stored (out, as dwconv7_forward rounds it), and the STORED value is what is
//           normalised, as layernorm_forward reads out: statistics in double, two passes (mean,
//           then the centred sum of squares) as the "warp" LayerNorm and the CPU reference, each
//           pixel's sum over the block's lanes in a fixed tree (a warp reduce-scatter, then the
//           strip's warps in order): deterministic, no atomics.
//           The weights: w (C, 49) copied as it lies into shared memory (dynamic, 196·C bytes: 150 KB
//           at C = 768, so few blocks per SM there; the blocks loop over the strips, so each block
//           copies them once), not read through the cache: a thread reads its own channel's 49
//           taps, consecutive threads 49 floats apart, which from global memory touches a separate
//           sector per lane per tap, while in shared memory 49 is odd, so the 32 lanes hit 32 banks
//           (conflict-free; a tap-major [49][C] copy would be too, but needs a transposing copy).
//           Shapes beyond it (C > 1024, or weights over the shared-memory limit) run "split";
//   "split" dwconv7_forward then layernorm_forward, each with its own tuned implementation
//           (2 launches): where the fused kernel is slower on a card, the tuner picks this.
// Both make the choices of dwconv7 and layernorm for the shape first (timed on a GPU): their
// backward ops run what those choices say, whichever implementation ran the forward.

#define DWLN_PX 8           // pixels per strip (dwln_warp_sum_scatter is written for 8)
#define DWLN_THREADS 256    // at most per block
#define DWLN_MAX_K 4        // channels per thread: C <= DWLN_MAX_K * DWLN_THREADS
#define DWLN_MAX_BLOCKS 1024 // blocks loop over the strips beyond this (the weight copy is per block)

// Lane l of the warp gets Σ over the warp's 32 lanes of v[(l >> 2) & 7]: a reduce-scatter in a
// fixed tree (9 shuffles instead of 8 × 5 for eight butterflies), every lane of a group of 4 the
// same bits. v is clobbered.
__device__ __forceinline__ double dwln_warp_sum_scatter(double v[DWLN_PX]) {
    const int lane = threadIdx.x & 31;
    const bool h16 = lane & 16, h8 = lane & 8, h4 = lane & 4;
#pragma unroll
    for (int i = 0; i < 4; i++) { // lanes with bit 4 keep pixels 4..7, the others 0..3
        const double send = h16 ? v[i] : v[i + 4], keep = h16 ? v[i + 4] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, 16);
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const double send = h8 ? v[i] : v[i + 2], keep = h8 ? v[i + 2] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, 8);
    }
    {
        const double send = h4 ? v[0] : v[1], keep = h4 ? v[1] : v[0];
        v[0] = keep + __shfl_xor_sync(0xffffffffu, send, 4);
    }
    v[0] += __shfl_xor_sync(0xffffffffu, v[0], 2);
    v[0] += __shfl_xor_sync(0xffffffffu, v[0], 1);
    return v[0];
}

// red[warp][p] = the warp's sum of v[p] (lanes l with l % 4 == 0 write pixel l / 4); after the
// barrier, every thread of the strip adds its nw warps' rows in warp order.
__device__ __forceinline__ void dwln_strip_sum(double sum[DWLN_PX], double v[DWLN_PX],
                                               double (*red)[DWLN_PX] /* (DWLN_THREADS / 32, DWLN_PX) */, int w0,
                                               int nw) {
    const double r = dwln_warp_sum_scatter(v);
    if ((threadIdx.x & 3) == 0) red[threadIdx.x / 32][(threadIdx.x >> 2) & 7] = r;
    __syncthreads();
#pragma unroll
    for (int p = 0; p < DWLN_PX; p++) {
        double a = 0;
        for (int i = 0; i < nw; i++) a += red[w0 + i][p];
        sum[p] = a;
    }
}

// Block: SB strips of TS threads; unit u = strips [u·SB, (u+1)·SB), units blockIdx.x, + gridDim.x, ...
// (every thread runs every unit: the barriers and shuffles need them all).
template <typename T, int K>
__global__ void __launch_bounds__(DWLN_THREADS)
    k_dwln_fused(T *out, T *ln, float *mean, float *rstd, const T *in, const float *w, const float *b,
                 const float *g, const float *beta, int H, int W, int C, float eps, int TS, int SB, size_t nstrips,
                 size_t nunits) {
    extern __shared__ float dwln_w[]; // (C, 49): w as it lies in memory
    __shared__ double red_s[DWLN_THREADS / 32][DWLN_PX], red_q[DWLN_THREADS / 32][DWLN_PX];
    for (int i = threadIdx.x; i < C * 49; i += blockDim.x) dwln_w[i] = w[i];
    __syncthreads();
    const int t = threadIdx.x % TS, s = threadIdx.x / TS;
    const int w0 = s * TS / 32, nw = TS / 32; // the strip's warps
    const int sx = (W + DWLN_PX - 1) / DWLN_PX; // strips per image row
    for (size_t u = blockIdx.x; u < nunits; u += gridDim.x) {
        const size_t strip = u * SB + s;
        const int live = strip < nstrips;
        const size_t row = live ? strip / sx : 0; // b·H + y
        const int y = (int)(row % H), x0 = live ? (int)(strip % sx) * DWLN_PX : 0;
        const int npx = !live ? 0 : W - x0 < DWLN_PX ? W - x0 : DWLN_PX; // pixels of the strip in the image
        const size_t pix0 = row * W + x0;
        const T *img = in + (row - y) * W * C; // the image's first pixel
        float v[K][DWLN_PX];                   // the stored conv (0 where no channel or pixel)
        double part[DWLN_PX], sum[DWLN_PX];
#pragma unroll
        for (int p = 0; p < DWLN_PX; p++) part[p] = 0;
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int c = t + k * TS;
            const bool on = npx > 0 && c < C;
            float acc[DWLN_PX];
            const float bc = on ? b[c] : 0.0f;
#pragma unroll
            for (int p = 0; p < DWLN_PX; p++) acc[p] = bc;
            for (int ki = 0; on && ki < 7; ki++) {
                const int yy = y + ki - 3;
                if (yy < 0 || yy >= H) continue;
                float wr[7];
#pragma unroll
                for (int kj = 0; kj < 7; kj++) wr[kj] = dwln_w[c * 49 + ki * 7 + kj];
                const T *src = img + (size_t)yy * W * C + c;
                // input column x0 - 3 + j feeds output p = j - kj: taps in kj order per output
#pragma unroll
                for (int j = 0; j < DWLN_PX + 6; j++) {
                    const int xx = x0 - 3 + j;
                    if (xx < 0 || xx >= W) continue;
                    const float val = act_load(src + (size_t)xx * C);
#pragma unroll
                    for (int kj = 0; kj < 7; kj++)
                        if (j - kj >= 0 && j - kj < DWLN_PX) acc[j - kj] += val * wr[kj];
                }
            }
#pragma unroll
            for (int p = 0; p < DWLN_PX; p++) {
                v[k][p] = 0;
                if (!on || p >= npx) continue;
                T q;
                act_store(&q, acc[p]);
                out[(pix0 + p) * C + c] = q;
                v[k][p] = act_load(&q);
                part[p] += v[k][p];
            }
        }
        dwln_strip_sum(sum, part, red_s, w0, nw);
        double mu[DWLN_PX];
#pragma unroll
        for (int p = 0; p < DWLN_PX; p++) mu[p] = sum[p] / C, part[p] = 0;
#pragma unroll
        for (int k = 0; k < K; k++) {
            const bool on = npx > 0 && t + k * TS < C;
#pragma unroll
            for (int p = 0; p < DWLN_PX; p++)
                if (on && p < npx) {
                    const double d = v[k][p] - mu[p];
                    part[p] += d * d;
                }
        }
        dwln_strip_sum(sum, part, red_q, w0, nw);
        float muf[DWLN_PX], rsf[DWLN_PX];
#pragma unroll
        for (int p = 0; p < DWLN_PX; p++) {
            muf[p] = (float)mu[p];
            rsf[p] = (float)(1.0 / sqrt(sum[p] / C + (double)eps));
            if (t == 0 && p < npx) mean[pix0 + p] = muf[p], rstd[pix0 + p] = rsf[p];
        }
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int c = t + k * TS;
            if (npx == 0 || c >= C) continue;
            const float gc = g[c], bc = beta[c];
#pragma unroll
            for (int p = 0; p < DWLN_PX; p++)
                if (p < npx) act_store(ln + (pix0 + p) * C + c, (v[k][p] - muf[p]) * rsf[p] * gc + bc);
        }
        // red_s is next written after this unit's second barrier, red_q after the next unit's first:
        // every thread has read them by then
    }
}

typedef struct {
    int K, TS, SB;          // channels per thread, threads per strip, strips per block
    size_t nstrips, nunits; // units: SB strips, one block's work per iteration
    unsigned grid;
    size_t smem; // dynamic shared memory: the weights
} DwlnGeom;

// The fused kernel's geometry for the shape; 0 when it cannot run it ("split" runs it).
static int dwln_geom(Backend *be, int B, int H, int W, int C, DwlnGeom *g) {
    g->K = (C + DWLN_THREADS - 1) / DWLN_THREADS;
    if (g->K > DWLN_MAX_K) return 0;
    g->TS = ((C + g->K - 1) / g->K + 31) / 32 * 32;
    g->SB = DWLN_THREADS / g->TS;
    g->nstrips = (size_t)B * H * ((W + DWLN_PX - 1) / DWLN_PX);
    g->nunits = (g->nstrips + g->SB - 1) / g->SB;
    g->grid = (unsigned)(g->nunits < DWLN_MAX_BLOCKS ? g->nunits : DWLN_MAX_BLOCKS);
    g->smem = (size_t)C * 49 * sizeof(float);
    // dwln_launch allows the kernel the most its K needs (+ the static red_s, red_q): K = 4 on sm_90 fits
    int limit = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, cuda_state(be)->device));
    return (size_t)g->K * DWLN_THREADS * 49 * sizeof(float) + 2 * sizeof(double) * (DWLN_THREADS / 32) * DWLN_PX <=
           (size_t)limit;
}

template <typename T, int K>
static void dwln_launch(Backend *be, const DwlnGeom *g, Act *out, Act *ln, float *mean, float *rstd, const Act *in,
                        const float *w, const float *b, const float *gm, const float *beta, int H, int W, int C,
                        float eps) {
    cuda_dyn_smem_optin((const void *)k_dwln_fused<T, K>, g->smem); // only ever raised: see cuda_internal.h
    k_dwln_fused<T, K><<<g->grid, g->TS * g->SB, g->smem, cuda_state(be)->stream>>>(
        (T *)out, (T *)ln, mean, rstd, (const T *)in, w, b, gm, beta, H, W, C, eps, g->TS, g->SB, g->nstrips,
        g->nunits);
    CUDA_CHECK_LAUNCH();
}

static void dwln_fused(Backend *be, const DwlnGeom *g, Act *out, Act *ln, float *mean, float *rstd, const Act *in,
                       const float *w, const float *b, const float *gm, const float *beta, int H, int W, int C,
                       float eps) {
    CUDA_ACT_DISPATCH(be, T, switch (g->K) {
        case 1: dwln_launch<T, 1>(be, g, out, ln, mean, rstd, in, w, b, gm, beta, H, W, C, eps); break;
        case 2: dwln_launch<T, 2>(be, g, out, ln, mean, rstd, in, w, b, gm, beta, H, W, C, eps); break;
        case 3: dwln_launch<T, 3>(be, g, out, ln, mean, rstd, in, w, b, gm, beta, H, W, C, eps); break;
        default: dwln_launch<T, 4>(be, g, out, ln, mean, rstd, in, w, b, gm, beta, H, W, C, eps); break;
    });
}

enum { DWLN_FUSED, DWLN_SPLIT };
static const char *const DWLN_NAMES[] = {"fused", "split"};
extern "C" const TuneOp TUNE_DWCONV7_LAYERNORM = {"dwconv7_layernorm", 2, DWLN_NAMES};

// layernorm.cu: makes layernorm's choice for (N, C) without running its forward.
extern "C" void cuda_layernorm_choose(Backend *be, Act *out, float *mean, float *rstd, const Act *in, const float *g,
                                      const float *b, size_t N, int C, float eps);

// The op's arguments and the fused geometry. Timing runs implementation i into the real outputs:
// every one of them is overwritten afterwards by the chosen one (as layernorm.cu's timing does).
typedef struct {
    Backend *be;
    Act *out, *ln;
    float *mean, *rstd;
    const Act *in;
    const float *w, *b, *g, *beta;
    int B, H, W, C;
    float eps;
    DwlnGeom geom;
} DwlnArgs;

static void dwln_run(void *ctx, int impl) {
    const DwlnArgs *a = (const DwlnArgs *)ctx;
    if (impl == DWLN_FUSED) {
        dwln_fused(a->be, &a->geom, a->out, a->ln, a->mean, a->rstd, a->in, a->w, a->b, a->g, a->beta, a->H, a->W,
                   a->C, a->eps);
        return;
    }
    cu_dwconv7_forward(a->be, a->out, a->in, a->w, a->b, a->B, a->H, a->W, a->C);
    cu_layernorm_forward(a->be, a->ln, a->mean, a->rstd, a->out, a->g, a->beta, (size_t)a->B * a->H * a->W, a->C,
                         a->eps);
}

extern "C" void cu_dwconv7_layernorm_forward(Backend *be, Act *out, Act *ln, float *mean, float *rstd, const Act *in,
                                             const float *w, const float *b, const float *g, const float *beta, int B,
                                             int H, int W, int C, float eps) {
    const size_t N = (size_t)B * H * W;
    if (!N || C <= 0) return;
    // the backward ops' choices (dwconv7_backward and layernorm_backward run what their forward
    // chose, never timing from there): made here, before either implementation runs
    dw_pick(be, in, w, b, B, H, W, C);
    cuda_layernorm_choose(be, ln, mean, rstd, out, g, beta, N, C, eps);
    DwlnArgs a = {be, out, ln, mean, rstd, in, w, b, g, beta, B, H, W, C, eps, {}};
    int impl = DWLN_SPLIT;
    if (dwln_geom(be, B, H, W, C, &a.geom)) {
        char key[64];
        snprintf(key, sizeof key, "B%d H%d W%d C%d", B, H, W, C);
        impl = cuda_tune_pick(be, &TUNE_DWCONV7_LAYERNORM, key, dwln_run, &a);
    }
    dwln_run(&a, impl);
}
