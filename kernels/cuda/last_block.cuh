/* last_block.cuh — one-launch deterministic reductions: the block that finishes last sums the
 * partials every block wrote, in block order.
 *
 * A deterministic cross-block reduction used to be two launches: a kernel whose blocks each write
 * one partial row (fixed chunks of the input), then a small "finish" kernel adding the rows in
 * order. Here the same kernel finishes: every block writes its partial, fences it, and counts
 * itself in with one atomic increment of the backend's arrival counter (arrivals[0]); the block that sees the
 * count reach gridDim is the last one, and it alone adds the rows — in block order, so the sum is
 * the same bits whichever block arrives last (no atomics touch the values). It then resets the
 * counter for the next kernel: everything runs on one stream, so two kernels never share it at
 * once (CudaState.arrivals: CUDA_ARRIVALS counters, zeroed at backend creation).
 *
 *     ... each block writes part[blockIdx.x * C + c] ...
 *     if (!cuda_last_block(arrivals)) return;
 *     for (int c = threadIdx.x; c < C; c += blockDim.x) {
 *         double s = 0;
 *         for (int k = 0; k < (int)gridDim.x; k++) s += cuda_load_cg(part + (size_t)k * C + c);
 *         out[c] += (float)s;
 *     }
 *
 * The price: the finish runs on ONE block. That costs nothing where the finish has no more
 * columns than the block has threads (a separate finish kernel would be one block too), and a few
 * times the old finish where it has a few blocks' worth (bias and LayerNorm gradients of C > 256
 * channels: ceil(C/256)). A WIDE finish (many columns × many rows: the depthwise conv's 50·C
 * taps, an attention bias table) would serialise on one SM: that is what the two-level finish
 * below is for.
 *
 * Every thread of the block must call it (it has barriers), and threads must not return before.
 * Partials are read back with cuda_load_cg (through L2, past this SM's L1, where another block's
 * write may not be visible). The pattern is CUDA's threadFenceReduction sample.
 *
 * Two-level finish (CudaTree, cuda_tree_plan, cuda_tree_group_last, cuda_tree_top_last): a kernel
 * computes `sets` independent reductions (e.g. one per channel group), each over K partial rows
 * (row k written by one block). The rows of a set are split into fixed groups of g consecutive
 * rows (the last group may be shorter). A block that wrote row k counts itself into its group's
 * counter; the last block of the group sums the group's rows, in row order, into the group's row
 * of a second partial array, and counts itself into the set's top counter; the last group
 * finisher sums the group rows, in group order, into the output. With g ≈ sqrt(K) one block
 * does ~2·sqrt(K) rows of serial work instead of K, and the group finishers of different groups
 * and sets run on different SMs. The grouping depends on K only, so the sum is the same bits
 * whichever blocks arrive first. Every finisher resets the counter it consumed.
 *
 *     ... block of set s writes part[s][k][c] ...
 *     if (!cuda_tree_group_last(arrivals, t, s, k)) return;
 *     const int grp = k / t.group, r0 = grp * t.group, r1 = min(r0 + t.group, t.rows);
 *     for (c = threadIdx.x; c < cols; c += blockDim.x) {
 *         double v = 0;
 *         for (int r = r0; r < r1; r++) v += cuda_load_cg(&part[s][r][c]);
 *         grow[s][grp][c] = v;
 *     }
 *     if (!cuda_tree_top_last(arrivals, t, s)) return;
 *     for (c = threadIdx.x; c < cols; c += blockDim.x) {
 *         double v = 0;
 *         for (int q = 0; q < t.groups; q++) v += cuda_load_cg(&grow[s][q][c]);
 *         out[c] += (float)v;
 *     }
 *
 * Counters: set s owns arrivals[s·(1 + groups)] (its top) and the next `groups` (its groups'),
 * all within CudaState.arrivals' CUDA_ARRIVALS (cuda_tree_plan widens g until they fit). The
 * same rules as cuda_last_block: every thread of a block calls each step it reaches, nobody
 * returns before; blocks that write no row (a fused kernel's other job) call neither.
 * Against a finish kernel of its own (one thread per column): fewer serial loads per SM where a
 * set has many rows, more where a set is wide and has few rows (a set's columns are one block's
 * work); it saves the launch either way. */
#ifndef UNET_CUDA_LAST_BLOCK_CUH
#define UNET_CUDA_LAST_BLOCK_CUH

#include <math.h>

#include "cuda_internal.h"

/* 1 in every thread of the block that made *counter reach n (the n-th to count itself in; all
 * their writes before the call visible to it), else 0; that block resets the counter to 0. */
__device__ __forceinline__ int cuda_arrive_last(unsigned *counter, unsigned n) {
    __shared__ int last;
    __threadfence(); /* this thread's partial writes are visible device-wide before it is counted */
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) {
        last = atomicAdd(counter, 1u) == n - 1;
        if (last) *counter = 0; /* all n have counted themselves: ready for the next kernel */
    }
    __syncthreads();
    return last;
}

/* 1 in every thread of the one block that arrived last (all blocks' partials visible), else 0. */
__device__ __forceinline__ int cuda_last_block(unsigned *arrivals) {
    return cuda_arrive_last(arrivals, gridDim.x * gridDim.y * gridDim.z);
}

__device__ __forceinline__ double cuda_load_cg(const double *p) { return __ldcg(p); }
__device__ __forceinline__ float cuda_load_cg(const float *p) { return __ldcg(p); }

/* The two-level finish's shape (passed by value to the kernel): `sets` reductions of `rows`
 * partial rows each, in `groups` groups of `group` consecutive rows (the last one shorter when
 * group does not divide rows). */
struct CudaTree {
    int rows, group, groups, sets;
};

/* Host: g = ceil(sqrt(rows)), widened until sets·(1 + groups) counters fit CUDA_ARRIVALS (one
 * group, g = rows, is a one-level finish per set with a copy in between). */
static inline CudaTree cuda_tree_plan(int rows, int sets) {
    CHECK(rows >= 1 && sets >= 1, "cuda_tree_plan: %d rows, %d sets", rows, sets);
    CHECK(2 * (long)sets <= CUDA_ARRIVALS, "cuda_tree_plan: %d reductions need more than the %d arrival counters",
          sets, CUDA_ARRIVALS);
    CudaTree t;
    t.rows = rows, t.sets = sets;
    t.group = (int)ceil(sqrt((double)rows));
    while (t.group < rows && (long)sets * (1 + (rows + t.group - 1) / t.group) > CUDA_ARRIVALS) t.group++;
    t.groups = (rows + t.group - 1) / t.group;
    CHECK((long)sets * (1 + t.groups) <= CUDA_ARRIVALS, "cuda_tree_plan: %d x %d counters", sets, 1 + t.groups);
    return t;
}

/* First level: the block that wrote row k of set s counts itself into its group; 1 in every
 * thread of the group's last block (then it sums rows [grp·group, min(grp·group + group, rows))
 * of set s, grp = k / group). */
__device__ __forceinline__ int cuda_tree_group_last(unsigned *arrivals, const CudaTree &t, int s, int k) {
    const int grp = k / t.group, n = t.rows - grp * t.group < t.group ? t.rows - grp * t.group : t.group;
    return cuda_arrive_last(arrivals + (size_t)s * (1 + t.groups) + 1 + grp, (unsigned)n);
}

/* Second level: a group finisher of set s, its group row written, counts itself into the set's
 * top counter; 1 in every thread of the last one (then it sums the groups' rows in order). */
__device__ __forceinline__ int cuda_tree_top_last(unsigned *arrivals, const CudaTree &t, int s) {
    return cuda_arrive_last(arrivals + (size_t)s * (1 + t.groups), (unsigned)t.groups);
}

#endif
