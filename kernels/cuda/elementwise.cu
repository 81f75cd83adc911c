// elementwise.cu — Act conversions, add, accumulate, layer scale (channel_scale), drop path
// (sample_scale) and the deterministic column sum that bias gradients use (accumulated, or
// overwritten where the op owns its bias gradient: the linears' unfused path).
//
// Every kernel that touches activations is a template on the Act storage type T (act.cuh):
// elements are widened to float on load, combined in fp32, and rounded once on store. The
// accumulating ops (accumulate, the backward din's) load the current value, add in fp32 and
// store, so in bf16 mode dst = round(dst + x) with one rounding per call.
#include "act.cuh"
#include "last_block.cuh"

#define GRID_STRIDE(i, n) for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void k_from_f32(bf16 *out, const float *in, size_t n) {
    GRID_STRIDE(i, n) act_store(out + i, in[i]);
}
__global__ void k_to_f32(float *out, const bf16 *in, size_t n) {
    GRID_STRIDE(i, n) out[i] = act_load(in + i);
}
template <typename T> __global__ void k_add(T *out, const T *a, const T *b, size_t n) {
    GRID_STRIDE(i, n) act_store(out + i, act_load(a + i) + act_load(b + i));
}
template <typename T> __global__ void k_accumulate(T *dst, const T *src, size_t n) {
    GRID_STRIDE(i, n) act_store(dst + i, act_load(dst + i) + act_load(src + i));
}
template <typename T> __global__ void k_axpy_acc(T *dst, const T *src, float s, size_t n) {
    GRID_STRIDE(i, n) act_store(dst + i, act_load(dst + i) + act_load(src + i) * s);
}
template <typename T> __global__ void k_scale_copy(T *dst, const T *src, float s, size_t n) {
    GRID_STRIDE(i, n) act_store(dst + i, act_load(src + i) * s);
}
template <typename T> __global__ void k_channel_scale(T *out, const T *in, const float *gamma, size_t N, int C) {
    GRID_STRIDE(i, N * (size_t)C) act_store(out + i, gamma[i % C] * act_load(in + i));
}
template <typename T>
__global__ void k_channel_scale_bwd_din(T *din, const T *dout, const float *gamma, size_t N, int C) {
    GRID_STRIDE(i, N * (size_t)C) act_store(din + i, act_load(din + i) + gamma[i % C] * act_load(dout + i));
}
// The product goes to fp32 scratch (the column sum's input), never rounded to T.
template <typename T> __global__ void k_mul(float *out, const T *a, const T *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = act_load(a + i) * act_load(b + i);
}

// Column sums in one launch: block (chunk, g) sums rows [chunk*rows, ...) for channels
// g*256 + threadIdx.x, in double, in row order, into its partial row; the block that arrives last
// (last_block.cuh) sums the partials in chunk order into acc (+= float, or = float when
// overwrite: acc is then never read). T: the element type of x (an Act type or float scratch);
// each element is widened exactly.
template <typename T>
__global__ void k_colsum(float *acc /* (C) */, double *part /* (nchunk, C) */, unsigned *arrivals,
                         const T *x /* (M, C) */, size_t M, int C, size_t rows, int overwrite) {
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c < C) {
        size_t r0 = blockIdx.x * rows, r1 = r0 + rows < M ? r0 + rows : M;
        double s = 0;
        for (size_t r = r0; r < r1; r++) s += (double)act_load(x + r * C + c);
        part[(size_t)blockIdx.x * C + c] = s;
    }
    if (!cuda_last_block(arrivals)) return;
    for (c = threadIdx.x; c < C; c += blockDim.x) {
        double s = 0;
        for (int k = 0; k < (int)gridDim.x; k++) s += cuda_load_cg(part + (size_t)k * C + c);
        acc[c] = overwrite ? (float)s : acc[c] + (float)s;
    }
}

int cuda_colsum_chunks(size_t M, int max_chunks, size_t *rows) {
    int nchunk = (int)(M < (size_t)max_chunks ? M : (size_t)max_chunks);
    *rows = (M + nchunk - 1) / nchunk;
    return (int)((M + *rows - 1) / *rows);
}

// db[c] += Σ_m x[m, c] (overwrite: db[c] = Σ_m x[m, c]): a fixed partition of the rows (depends
// on M only), partials summed in order, so the result is deterministic. Uses the start of the
// workspace (nchunk*C doubles). M == 0 writes nothing, also when overwriting (no caller gets there:
// the linears return before, on N == 0).
template <typename T> static void colsum(Backend *be, float *db, const T *x, size_t M, int C, int overwrite) {
    if (M == 0 || C <= 0 || !db) return;
    CudaState *st = cuda_state(be);
    size_t rows;
    int nchunk = cuda_colsum_chunks(M, 512, &rows);
    double *part = (double *)cuda_workspace(be, (size_t)nchunk * C * sizeof(double));
    dim3 grid(nchunk, (C + 255) / 256);
    k_colsum<T><<<grid, 256, 0, st->stream>>>(db, part, st->arrivals, x, M, C, rows, overwrite);
    CUDA_CHECK_LAUNCH();
}

void cuda_colsum_acc(Backend *be, float *db, const Act *x, size_t M, int C) {
    CUDA_ACT_DISPATCH(be, T, colsum<T>(be, db, (const T *)x, M, C, 0));
}

void cuda_colsum_set(Backend *be, float *db, const Act *x, size_t M, int C) {
    CUDA_ACT_DISPATCH(be, T, colsum<T>(be, db, (const T *)x, M, C, 1));
}

void cuda_colsum_acc_f32(Backend *be, float *db, const float *x, size_t M, int C) {
    colsum<float>(be, db, x, M, C, 0);
}

// fp32 storage: the conversions are copies.
extern "C" void cu_act_from_f32(Backend *be, Act *out, const float *in, size_t n) {
    if (!n) return;
    cudaStream_t s = cuda_state(be)->stream;
    if (!cuda_act_is_bf16(be)) {
        CUDA_WORK(cudaMemcpyAsync(out, in, n * sizeof(float), cudaMemcpyDeviceToDevice, s));
        return;
    }
    k_from_f32<<<cuda_grid(n), 256, 0, s>>>((bf16 *)out, in, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_act_to_f32(Backend *be, float *out, const Act *in, size_t n) {
    if (!n) return;
    cudaStream_t s = cuda_state(be)->stream;
    if (!cuda_act_is_bf16(be)) {
        CUDA_WORK(cudaMemcpyAsync(out, in, n * sizeof(float), cudaMemcpyDeviceToDevice, s));
        return;
    }
    k_to_f32<<<cuda_grid(n), 256, 0, s>>>(out, (const bf16 *)in, n);
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_add(Backend *be, Act *out, const Act *a, const Act *b, size_t n) {
    if (!n) return;
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T, k_add<T><<<cuda_grid(n), 256, 0, s>>>((T *)out, (const T *)a, (const T *)b, n));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_accumulate(Backend *be, Act *dst, const Act *src, size_t n) {
    if (!n) return;
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T, k_accumulate<T><<<cuda_grid(n), 256, 0, s>>>((T *)dst, (const T *)src, n));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_channel_scale_forward(Backend *be, Act *out, const Act *in, const float *gamma, size_t N, int C) {
    if (!N) return;
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T, k_channel_scale<T><<<cuda_grid(N * C), 256, 0, s>>>((T *)out, (const T *)in, gamma, N, C));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_channel_scale_backward(Backend *be, Act *din, float *dgamma, const Act *dout, const Act *in,
                                          const float *gamma, size_t N, int C) {
    if (!N || C <= 0) return;
    cudaStream_t s = cuda_state(be)->stream;
    if (din) {
        CUDA_ACT_DISPATCH(be, T,
                          k_channel_scale_bwd_din<T><<<cuda_grid(N * C), 256, 0, s>>>((T *)din, (const T *)dout, gamma, N, C));
        CUDA_CHECK_LAUNCH();
    }
    if (dgamma) {
        // dgamma[c] += Σ_n dout·in: form the fp32 product in a scratch buffer placed after the
        // column-sum partials (the workspace is one buffer, so grow it for both first).
        int nchunk = (int)(N < 512 ? N : 512);
        size_t part_bytes = ((size_t)nchunk * C * sizeof(double) + 255) / 256 * 256;
        char *ws = (char *)cuda_workspace(be, part_bytes + N * C * sizeof(float));
        float *prod = (float *)(ws + part_bytes); /* (N, C) */
        CUDA_ACT_DISPATCH(be, T, k_mul<T><<<cuda_grid(N * C), 256, 0, s>>>(prod, (const T *)dout, (const T *)in, N * C));
        CUDA_CHECK_LAUNCH();
        cuda_colsum_acc_f32(be, dgamma, prod, N, C); // uses the first part_bytes only
    }
}

// Drop path over the whole batch in one launch: the per-sample scale is read from device memory
// (a step's draw, uploaded by the caller), so neither the launch count nor a captured graph
// depends on it. The arithmetic per element is k_scale_copy's / k_axpy_acc's.
template <typename T>
__global__ void k_sample_scale(T *out /* (B, per) */, const T *in /* (B, per) */, const float *scale /* (B) */,
                               size_t per, size_t n) {
    GRID_STRIDE(i, n) act_store(out + i, act_load(in + i) * scale[i / per]);
}
// din += dout * scale[b]; a dropped sample (scale 0) is left untouched, as the CPU backend does.
template <typename T>
__global__ void k_sample_scale_acc(T *din /* (B, per) */, const T *dout /* (B, per) */, const float *scale /* (B) */,
                                   size_t per, size_t n) {
    GRID_STRIDE(i, n) {
        const float s = scale[i / per];
        if (s != 0.0f) act_store(din + i, act_load(din + i) + act_load(dout + i) * s);
    }
}

extern "C" void cu_sample_scale_forward(Backend *be, Act *out, const Act *in, const float *scale, int B, size_t per) {
    const size_t n = (size_t)B * per;
    if (!n) return;
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_sample_scale<T><<<cuda_grid(n), 256, 0, s>>>((T *)out, (const T *)in, scale, per, n));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_sample_scale_backward(Backend *be, Act *din, const Act *dout, const float *scale, int B,
                                         size_t per) {
    const size_t n = (size_t)B * per;
    if (!din || !n) return;
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_sample_scale_acc<T><<<cuda_grid(n), 256, 0, s>>>((T *)din, (const T *)dout, scale, per, n));
    CUDA_CHECK_LAUNCH();
}
