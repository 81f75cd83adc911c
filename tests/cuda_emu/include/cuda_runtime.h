/* cuda_runtime.h — the CUDA C++ language as the CPU emulator provides it (tests/cuda_emu/README.md).
 *
 * The kernels (kernels/cuda, .cu files) compile as C++ against this header after tests/cuda_emu/rewrite.cmake has
 * turned `k<<<grid, block, smem, stream>>>(args)` into `EMU_LAUNCH(k, grid, block, smem,
 * stream)(args)` and `extern __shared__ T a[];` into a pointer to the block's dynamic shared
 * memory. Execution model (emu_runtime.cpp): the blocks of a grid run one after another; the
 * threads of a block are fibers on one OS thread, switched only at __syncthreads, __syncwarp and
 * warp shuffles. So a `static` variable is the block's shared memory, and atomics need nothing. */
#ifndef UNET_EMU_CUDA_RUNTIME_H
#define UNET_EMU_CUDA_RUNTIME_H

#include "cuda_runtime_api.h"

#ifdef __cplusplus
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <tuple>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static /* blocks run one at a time: a static is the block's shared memory */

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* The running thread's coordinates (one OS thread runs every fiber: plain globals). */
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
static const int warpSize = 32;

namespace emu {
void syncthreads();
void syncwarp();
void *dynamic_shared();
/* Every lane of the warp offers `value`; returns the value lane `src` offered. */
uint64_t shuffle(uint64_t value, int src);
int lane();
/* Runs body(ctx) as every thread of every block; returns the launch status. */
cudaError_t run_kernel(const void *kernel, dim3 grid, dim3 block, size_t smem, void (*body)(void *), void *ctx);

template <class... P>
struct Launcher {
    void (*kernel)(P...);
    dim3 grid, block;
    size_t smem;
    template <class... A>
    void operator()(A... args) const {
        static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
        std::tuple<P...> params((P)(args)...); /* converted as the launch would (NULL included) */
        auto k = kernel;
        auto call = [&]() { std::apply(k, params); }; /* k takes its own copies, per thread */
        run_kernel((const void *)kernel, grid, block, smem, [](void *c) { (*static_cast<decltype(call) *>(c))(); },
                   &call);
    }
};
template <class... P>
Launcher<P...> launcher(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = nullptr) {
    (void)stream;
    return Launcher<P...>{kernel, grid, block, smem};
}
} // namespace emu

#define EMU_LAUNCH(kernel, ...) emu::launcher(kernel, __VA_ARGS__)

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    (void)mask;
    emu::syncwarp();
}

template <class T>
inline T emu_shuffle_as(T v, int src) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a type wider than 64 bits");
    uint64_t in = 0, out;
    memcpy(&in, &v, sizeof v);
    out = emu::shuffle(in, src);
    T r;
    memcpy(&r, &out, sizeof r);
    return r;
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    (void)mask;
    int l = emu::lane();
    return emu_shuffle_as(v, (l & ~(width - 1)) | ((l ^ lane_mask) & (width - 1)));
}

/* IEEE round-to-nearest intrinsics: the build turns off FP contraction, so these are exact. */
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }

/* One OS thread runs every fiber, so read-modify-write is already atomic. (Only the intrinsics the
 * kernels use are here: a kernel that needs another fails to compile, and it is added then.) */
inline int atomicMax(int *p, int v) {
    int old = *p;
    if (v > old) *p = v;
    return old;
}
#endif /* __cplusplus */

#endif
