/* act.cuh — how CUDA kernels read and write Act arrays (src/backend.h: "Two element types").
 *
 * An Act is a float in the fp32 and tf32 modes and an __nv_bfloat16 in the bf16 mode. Kernels
 * that touch activations are templates on the storage type T; they widen every element to
 * float on load, compute in fp32, and round once on store:
 *
 *     template <typename T> __global__ void k_x(T *out, const T *in, size_t n) {
 *         ... act_store(out + i, f(act_load(in + i))); ...
 *     }
 *     CUDA_ACT_DISPATCH(be, T, k_x<T><<<g, 256, 0, st->stream>>>((T *)out, (const T *)in, n));
 *
 * Parameters, gradients and statistics stay float* and need no template. */
#ifndef UNET_CUDA_ACT_CUH
#define UNET_CUDA_ACT_CUH

#include <cuda_bf16.h>

#include "cuda_internal.h"

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float act_load(const float *p) { return *p; }
__device__ __forceinline__ float act_load(const bf16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void act_store(float *p, float v) { *p = v; }
__device__ __forceinline__ void act_store(bf16 *p, float v) { *p = __float2bfloat16(v); } /* nearest even */

/* 1 when this backend stores Acts as bf16 (the bf16 mode), 0 when as float. */
static inline int cuda_act_is_bf16(Backend *be) { return cuda_state(be)->precision == CUDA_PREC_BF16; }

/* Runs the statements with T bound to this backend's Act storage type. */
#define CUDA_ACT_DISPATCH(be, T, ...)                                                              \
    do {                                                                                           \
        if (cuda_act_is_bf16(be)) {                                                                \
            typedef bf16 T;                                                                        \
            __VA_ARGS__;                                                                           \
        } else {                                                                                   \
            typedef float T;                                                                       \
            __VA_ARGS__;                                                                           \
        }                                                                                          \
    } while (0)

#endif
