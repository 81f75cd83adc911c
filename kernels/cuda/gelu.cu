// gelu.cu — exact (erf) GELU, as torch.nn.functional.gelu(approximate='none'). Templates on the
// Act storage type T (act.cuh): computed in fp32, rounded once on store.
#include "act.cuh"
#include "gelu.cuh"
#include "last_block.cuh"

template <typename T>
__global__ void k_gelu(T *out, const T *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        act_store(out + i, gelu_value(act_load(in + i)));
    }
}

template <typename T>
__global__ void k_gelu_bwd(T *din, const T *dout, const T *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        act_store(din + i, act_load(din + i) + act_load(dout + i) * gelu_grad(act_load(in + i)));
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

// gelu_backward_bias_first: din = dout · GELU'(pre) overwritten, and its column sums for fc1's bias
// gradient in the same pass and the same launch. The partition is cuda_colsum_acc's (fixed chunks
// of rows, one thread per column, double partials in row order, summed in chunk order by the block
// that arrives last, last_block.cuh), over din in fp32 (before it is rounded to a bf16 Act: the
// reference's fp32 din).
template <typename T>
__global__ void k_gelu_bwd_colsum(float *db /* (C) */, double *part /* (nchunk, C) */, unsigned *arrivals, T *din,
                                  const T *dout, const T *in, size_t M, int C, size_t rows) {
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c < C) {
        size_t r0 = blockIdx.x * rows, r1 = r0 + rows < M ? r0 + rows : M;
        double acc = 0;
        for (size_t r = r0; r < r1; r++) {
            size_t i = r * C + c;
            float v = act_load(dout + i) * gelu_grad(act_load(in + i));
            act_store(din + i, v);
            acc += (double)v; // the fp32 value, before din's rounding to the Act type (as the reference sums it)
        }
        part[(size_t)blockIdx.x * C + c] = acc;
    }
    if (!cuda_last_block(arrivals)) return;
    for (c = threadIdx.x; c < C; c += blockDim.x) {
        double s = 0;
        for (int k = 0; k < (int)gridDim.x; k++) s += cuda_load_cg(part + (size_t)k * C + c);
        db[c] += (float)s;
    }
}

extern "C" void cu_gelu_backward_bias_first(Backend *be, Act *din, float *db, const Act *dout, const Act *pre, size_t N,
                                            int C) {
    if (!N || C <= 0) return;
    CHECK(din && db, "gelu_backward_bias_first: din and db are required");
    CudaState *st = cuda_state(be);
    size_t rows;
    int nchunk = cuda_colsum_chunks(N, 512, &rows);
    double *part = (double *)cuda_workspace(be, (size_t)nchunk * C * sizeof(double));
    dim3 grid(nchunk, (C + 255) / 256);
    CUDA_ACT_DISPATCH(be, T,
                      k_gelu_bwd_colsum<T><<<grid, 256, 0, st->stream>>>(db, part, st->arrivals, (T *)din,
                                                                          (const T *)dout, (const T *)pre, N, C, rows));
    CUDA_CHECK_LAUNCH();
}
