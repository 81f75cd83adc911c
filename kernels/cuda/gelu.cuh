/* gelu.cuh — exact (erf) GELU and its derivative for one fp32 value, as
 * torch.nn.functional.gelu(approximate='none'): y = x Φ(x), dy/dx = Φ(x) + x φ(x). Shared by
 * gelu.cu and the fused GELU → LayerNorm kernels of layernorm.cu, so both compute the same bits. */
#ifndef UNET_CUDA_GELU_CUH
#define UNET_CUDA_GELU_CUH

#define GELU_INV_SQRT2 0.70710678118654752440f
#define GELU_INV_SQRT_2PI 0.39894228040143267794f

__device__ __forceinline__ float gelu_value(float x) { return 0.5f * x * (1.0f + erff(x * GELU_INV_SQRT2)); }

__device__ __forceinline__ float gelu_grad(float x) {
    float cdf = 0.5f * (1.0f + erff(x * GELU_INV_SQRT2));
    float pdf = GELU_INV_SQRT_2PI * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

#endif
