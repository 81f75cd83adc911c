// dwconv7.cu — depthwise 7x7 convolution, zero pad 3, stride 1, bias (NHWC; weight (C,1,7,7)).
// Straightforward first version: one thread per output element for the forward and for din
// (the 180°-flipped correlation of dout); dw/db as fixed-chunk partials over image rows in
// double, summed in order (deterministic). Consecutive threads take consecutive channels, so
// every load is coalesced. Activations and their gradients are Acts (templates on the storage type
// T, act.cuh); w, b, dw, db float.
#include "act.cuh"

template <typename T>
__global__ void k_dw_fwd(T *out, const T *in, const float *w, const float *b, int B, int H, int W, int C, int flip,
                         int accumulate) {
    size_t n = (size_t)B * H * W * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(i % C);
        size_t p = i / C;
        int x = (int)(p % W), y = (int)(p / W % H);
        size_t bimg = p / ((size_t)W * H);
        float acc = b ? b[c] : 0.0f;
        for (int ki = 0; ki < 7; ki++) {
            int yy = y + ki - 3;
            if (yy < 0 || yy >= H) continue;
            for (int kj = 0; kj < 7; kj++) {
                int xx = x + kj - 3;
                if (xx < 0 || xx >= W) continue;
                int t = ki * 7 + kj;
                acc += act_load(in + ((bimg * H + yy) * W + xx) * C + c) * w[(size_t)c * 49 + (flip ? 48 - t : t)];
            }
        }
        if (accumulate) act_store(out + i, act_load(out + i) + acc);
        else act_store(out + i, acc);
    }
}

// part[k][t][c] (t < 49: dw taps, t = 49: db) over image rows [k*rows, ...) of the B*H rows.
template <typename T>
__global__ void k_dw_param_partial(double *part, const T *dout, const T *in, int B, int H, int W, int C, long rows) {
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    int t = blockIdx.z; // 0..49
    if (c >= C) return;
    long R = (long)B * H, r0 = blockIdx.x * rows, r1 = r0 + rows < R ? r0 + rows : R;
    int ki = t / 7, kj = t % 7;
    double s = 0;
    for (long r = r0; r < r1; r++) {
        int bi = (int)(r / H), y = (int)(r % H);
        const T *g = dout + (size_t)r * W * C;
        if (t == 49) {
            for (int x = 0; x < W; x++) s += act_load(g + (size_t)x * C + c);
            continue;
        }
        int yy = y + ki - 3;
        if (yy < 0 || yy >= H) continue;
        const T *src = in + (((size_t)bi * H + yy) * W) * C;
        float acc = 0; // one image row in float, then into the double sum
        for (int x = 0; x < W; x++) {
            int xx = x + kj - 3;
            if (xx < 0 || xx >= W) continue;
            acc += act_load(g + (size_t)x * C + c) * act_load(src + (size_t)xx * C + c);
        }
        s += acc;
    }
    part[((size_t)blockIdx.x * 50 + t) * C + c] = s;
}

__global__ void k_dw_param_finish(float *dw, float *db, const double *part, int nchunk, int C) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)50 * C) return;
    int t = (int)(i / C), c = (int)(i % C);
    double s = 0;
    for (int k = 0; k < nchunk; k++) s += part[((size_t)k * 50 + t) * C + c];
    if (t < 49) dw[(size_t)c * 49 + t] += (float)s;
    else if (db) db[c] += (float)s;
}

extern "C" void cu_dwconv7_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H,
                                   int W, int C) {
    size_t n = (size_t)B * H * W * C;
    if (!n) return;
    cudaStream_t s = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T, k_dw_fwd<T><<<cuda_grid(n), 256, 0, s>>>((T *)out, (const T *)in, w, b, B, H, W, C, 0, 0));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_dwconv7_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in,
                                    const float *w, int B, int H, int W, int C) {
    size_t n = (size_t)B * H * W * C;
    if (!n) return;
    cudaStream_t s = cuda_state(be)->stream;
    if (din) {
        CUDA_ACT_DISPATCH(be, T,
                          k_dw_fwd<T><<<cuda_grid(n), 256, 0, s>>>((T *)din, (const T *)dout, w, NULL, B, H, W, C, 1, 1));
        CUDA_CHECK_LAUNCH();
    }
    long R = (long)B * H;
    int nchunk = (int)(R < 64 ? R : 64);
    long rows = (R + nchunk - 1) / nchunk;
    nchunk = (int)((R + rows - 1) / rows);
    double *part = (double *)cuda_workspace(be, (size_t)nchunk * 50 * C * sizeof(double));
    const dim3 grid(nchunk, (C + 127) / 128, 50);
    CUDA_ACT_DISPATCH(be, T,
                      k_dw_param_partial<T><<<grid, 128, 0, s>>>(part, (const T *)dout, (const T *)in, B, H, W, C, rows));
    CUDA_CHECK_LAUNCH();
    k_dw_param_finish<<<(unsigned)((50 * (size_t)C + 255) / 256), 256, 0, s>>>(dw, db, part, nchunk, C);
    CUDA_CHECK_LAUNCH();
}
