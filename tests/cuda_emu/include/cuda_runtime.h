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

#include <functional>
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
/* The launch limits run_kernel checks, without running anything (a captured launch is checked
 * when it is recorded, as the real runtime does). */
cudaError_t check_launch(const void *kernel, dim3 grid, dim3 block, size_t smem);

/* Stream capture (emu_runtime.cpp). capturing(s): work queued on s now must be recorded (s is in
 * the active capture); it also reports, and fails the capture for, work on the legacy default
 * stream (NULL) while this thread captures. record(s, work): appends work to the capture's graph
 * (it runs, in order, at each cudaGraphLaunch; a status other than cudaSuccess fails the launch)
 * and returns cudaSuccess, or the capture's error once it is invalidated. The library shims
 * (emu_libs.cpp) record a call to themselves with every argument copied. */
bool capturing(cudaStream_t s);
cudaError_t record(cudaStream_t s, std::function<cudaError_t()> work);
/* Records (or reports) a launch error the way the launch path does: sets the sticky error. */
void launch_error(cudaError_t e);

template <class... P>
struct Launcher {
    void (*kernel)(P...);
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    template <class... A>
    void operator()(A... args) const {
        static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
        std::tuple<P...> params((P)(args)...); /* converted as the launch would (NULL included) */
        auto k = kernel;
        const dim3 g = grid, b = block;
        const size_t sm = smem;
        /* k takes its own copies of ps, per thread */
        auto go = [k, g, b, sm](std::tuple<P...> &ps) {
            auto call = [&]() { std::apply(k, ps); };
            return run_kernel((const void *)k, g, b, sm, [](void *c) { (*static_cast<decltype(call) *>(c))(); },
                              &call);
        };
        if (capturing(stream)) { /* the arguments are recorded by value, as a graph's kernel node holds them */
            cudaError_t e = check_launch((const void *)k, g, b, sm);
            if (e == cudaSuccess) e = record(stream, [go, params]() mutable { return go(params); });
            launch_error(e);
            return;
        }
        go(params);
    }
};
template <class... P>
Launcher<P...> launcher(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = nullptr) {
    return Launcher<P...>{kernel, grid, block, smem, stream};
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
inline unsigned atomicAdd(unsigned *p, unsigned v) {
    unsigned old = *p;
    *p = old + v;
    return old;
}
/* Blocks run one after another and memory is host memory: a fence orders nothing further, and a
 * load through L2 is a load. */
inline void __threadfence() {}
template <typename T> inline T __ldcg(const T *p) { return *p; }
#endif /* __cplusplus */

#endif
