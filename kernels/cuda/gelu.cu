// gelu.cu — exact (erf) GELU, as torch.nn.functional.gelu(approximate='none').
#include "cuda_internal.h"

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

__global__ void k_gelu(float *out, const float *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = in[i];
        out[i] = 0.5f * x * (1.0f + erff(x * INV_SQRT2));
    }
}

__global__ void k_gelu_bwd(float *din, const float *dout, const float *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = in[i];
        float cdf = 0.5f * (1.0f + erff(x * INV_SQRT2));
        float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
        din[i] += dout[i] * (cdf + x * pdf);
    }
}

extern "C" void cu_gelu_forward(Backend *be, float *out, const float *in, size_t n) {
    if (!n) return;
    k_gelu<<<cuda_grid(n), 256, 0, cuda_state(be)->stream>>>(out, in, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_gelu_backward(Backend *be, float *din, const float *dout, const float *in, size_t n) {
    if (!n || !din) return;
    k_gelu_bwd<<<cuda_grid(n), 256, 0, cuda_state(be)->stream>>>(din, dout, in, n);
    CUDA_CHECK_LAUNCH();
}
