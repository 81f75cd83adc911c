// gelu.cu — exact (erf) GELU, as torch.nn.functional.gelu(approximate='none'). Templates on the
// Act storage type T (act.cuh): computed in fp32, rounded once on store.
#include "act.cuh"

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

template <typename T>
__global__ void k_gelu(T *out, const T *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = act_load(in + i);
        act_store(out + i, 0.5f * x * (1.0f + erff(x * INV_SQRT2)));
    }
}

template <typename T>
__global__ void k_gelu_bwd(T *din, const T *dout, const T *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = act_load(in + i);
        float cdf = 0.5f * (1.0f + erff(x * INV_SQRT2));
        float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
        act_store(din + i, act_load(din + i) + act_load(dout + i) * (cdf + x * pdf));
    }
}

// gelu_backward_first: din = dout · GELU'(in), overwritten (no read of din, no memset before).
template <typename T>
__global__ void k_gelu_bwd_first(T *din, const T *dout, const T *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float x = act_load(in + i);
        float cdf = 0.5f * (1.0f + erff(x * INV_SQRT2));
        float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
        act_store(din + i, act_load(dout + i) * (cdf + x * pdf));
    }
}

extern "C" void cu_gelu_forward(Backend *be, Act *out, const Act *in, size_t n) {
    if (!n) return;
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T, k_gelu<T><<<cuda_grid(n), 256, 0, s>>>((T *)out, (const T *)in, n));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_gelu_backward(Backend *be, Act *din, const Act *dout, const Act *in, size_t n) {
    if (!n || !din) return;
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T, k_gelu_bwd<T><<<cuda_grid(n), 256, 0, s>>>((T *)din, (const T *)dout, (const T *)in, n));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_gelu_backward_first(Backend *be, Act *din, const Act *dout, const Act *in, size_t n) {
    if (!n || !din) return;
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_gelu_bwd_first<T><<<cuda_grid(n), 256, 0, s>>>((T *)din, (const T *)dout, (const T *)in, n));
    CUDA_CHECK_LAUNCH();
}
