/* last_block.cuh — one-launch deterministic reductions: the block that finishes last sums the
 * partials every block wrote, in block order.
 *
 * A deterministic cross-block reduction used to be two launches: a kernel whose blocks each write
 * one partial row (fixed chunks of the input), then a small "finish" kernel adding the rows in
 * order. Here the same kernel finishes: every block writes its partial, fences it, and counts
 * itself in with one atomic increment of the backend's arrival counter; the block that sees the
 * count reach gridDim is the last one, and it alone adds the rows — in block order, so the sum is
 * the same bits whichever block arrives last (no atomics touch the values). It then resets the
 * counter for the next kernel: everything runs on one stream, so two kernels never share it at
 * once (CudaState.arrivals, zeroed at backend creation).
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
 * columns than the block has threads (a separate finish kernel would be one block too), a few
 * times the old finish where it has a few blocks' worth (bias and LayerNorm gradients of C > 256
 * channels: ceil(C/256)), and far too much where it is wide: the depthwise conv's 50·C taps and a
 * wide attention bias table keep a finish kernel of their own (dwconv7.cu, window_attention.cu).
 *
 * Every thread of the block must call it (it has barriers), and threads must not return before.
 * Partials are read back with cuda_load_cg (through L2, past this SM's L1, where another block's
 * write may not be visible). The pattern is CUDA's threadFenceReduction sample. */
#ifndef UNET_CUDA_LAST_BLOCK_CUH
#define UNET_CUDA_LAST_BLOCK_CUH

#include "cuda_internal.h"

/* 1 in every thread of the one block that arrived last (all blocks' partials visible), else 0. */
__device__ __forceinline__ int cuda_last_block(unsigned *arrivals) {
    __shared__ int last;
    __threadfence(); /* this thread's partial writes are visible device-wide before it is counted */
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) {
        unsigned blocks = gridDim.x * gridDim.y * gridDim.z;
        last = atomicAdd(arrivals, 1u) == blocks - 1;
        if (last) *arrivals = 0; /* every block has counted itself: ready for the next kernel */
    }
    __syncthreads();
    return last;
}

__device__ __forceinline__ double cuda_load_cg(const double *p) { return __ldcg(p); }
__device__ __forceinline__ float cuda_load_cg(const float *p) { return __ldcg(p); }

#endif
