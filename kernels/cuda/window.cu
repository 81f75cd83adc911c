// window.cu — Swin's pad + roll and its inverse (see kernels/cpu/window.c for the maps). One
// thread per (pixel, channel) element; backward scatter-adds through the same bijection, so no
// two threads write the same element and no atomics are needed. Templates on the Act storage type T
// (act.cuh): a pure move in the forward direction, load + fp32 add + rounded store in the backward
// (the *_first variants at the end overwrite: a pure move too).
#include "act.cuh"

__device__ __forceinline__ int wrap(int v, int n) {
    v %= n;
    return v < 0 ? v + n : v;
}

// dir = 0: pad_roll (out (B,Hp,Wp,C) from in (B,H,W,C)); positions are those of the (Hp, Wp) map.
template <typename T>
__global__ void k_pad_roll(T *out, const T *in, int B, int H, int W, int C, int Hp, int Wp, int s) {
    size_t n = (size_t)B * Hp * Wp * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(i % C);
        size_t p = i / C;
        int x = (int)(p % Wp), y = (int)(p / Wp % Hp), b = (int)(p / ((size_t)Wp * Hp));
        int sy = wrap(y + s, Hp), sx = wrap(x + s, Wp);
        act_store(out + i, (sy < H && sx < W) ? act_load(in + (((size_t)b * H + sy) * W + sx) * C + c) : 0.0f);
    }
}

// din (B,H,W,C) += dout at the rolled position
template <typename T>
__global__ void k_pad_roll_bwd(T *din, const T *dout, int B, int H, int W, int C, int Hp, int Wp, int s) {
    size_t n = (size_t)B * H * W * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(i % C);
        size_t p = i / C;
        int x = (int)(p % W), y = (int)(p / W % H), b = (int)(p / ((size_t)W * H));
        int ry = wrap(y - s, Hp), rx = wrap(x - s, Wp);
        act_store(din + i, act_load(din + i) + act_load(dout + (((size_t)b * Hp + ry) * Wp + rx) * C + c));
    }
}

// roll_crop forward (acc = 0): out (B,H,W,C) = in at ((y - s) mod Hp, (x - s) mod Wp);
// roll_crop backward (acc = 1): the same map, with roles swapped and +=.
template <typename T>
__global__ void k_roll_crop(T *small_map, T *big_map, int B, int H, int W, int C, int Hp, int Wp, int s, int backward) {
    size_t n = (size_t)B * H * W * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)(i % C);
        size_t p = i / C;
        int x = (int)(p % W), y = (int)(p / W % H), b = (int)(p / ((size_t)W * H));
        int sy = wrap(y - s, Hp), sx = wrap(x - s, Wp);
        size_t j = (((size_t)b * Hp + sy) * Wp + sx) * C + c;
        if (backward) act_store(big_map + j, act_load(big_map + j) + act_load(small_map + i));
        else act_store(small_map + i, act_load(big_map + j));
    }
}

extern "C" void cu_pad_roll_forward(Backend *be, Act *out, const Act *in, int B, int H, int W, int C, int Hp, int Wp,
                                    int shift) {
    size_t n = (size_t)B * Hp * Wp * C;
    if (!n) return;
    cudaStream_t st = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_pad_roll<T><<<cuda_grid(n), 256, 0, st>>>((T *)out, (const T *)in, B, H, W, C, Hp, Wp, shift));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_pad_roll_backward(Backend *be, Act *din, const Act *dout, int B, int H, int W, int C, int Hp, int Wp,
                                     int shift) {
    size_t n = (size_t)B * H * W * C;
    if (!n || !din) return;
    cudaStream_t st = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_pad_roll_bwd<T><<<cuda_grid(n), 256, 0, st>>>((T *)din, (const T *)dout, B, H, W, C, Hp, Wp,
                                                                     shift));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_roll_crop_forward(Backend *be, Act *out, const Act *in, int B, int H, int W, int C, int Hp, int Wp,
                                     int shift) {
    size_t n = (size_t)B * H * W * C;
    if (!n) return;
    cudaStream_t st = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_roll_crop<T><<<cuda_grid(n), 256, 0, st>>>((T *)out, (T *)in, B, H, W, C, Hp, Wp, shift, 0));
    CUDA_CHECK_LAUNCH();
}

extern "C" void cu_roll_crop_backward(Backend *be, Act *din, const Act *dout, int B, int H, int W, int C, int Hp,
                                      int Wp, int shift) {
    size_t n = (size_t)B * H * W * C;
    if (!n || !din) return;
    cudaStream_t st = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_roll_crop<T><<<cuda_grid(n), 256, 0, st>>>((T *)dout, (T *)din, B, H, W, C, Hp, Wp, shift, 1));
    CUDA_CHECK_LAUNCH();
}

// The first writers (backend_ops.h): the two maps are each other's transpose and bijective on
// the valid pixels, so overwriting backward is the other direction's forward, a pure move —
// pad_roll_backward_first is roll_crop's gather, roll_crop_backward_first is pad_roll's (which
// writes the padding positions' +0). No zeroing launch before them.
extern "C" void cu_pad_roll_backward_first(Backend *be, Act *din, const Act *dout, int B, int H, int W, int C, int Hp,
                                           int Wp, int shift) {
    if (din) cu_roll_crop_forward(be, din, dout, B, H, W, C, Hp, Wp, shift);
}

extern "C" void cu_roll_crop_backward_first(Backend *be, Act *din, const Act *dout, int B, int H, int W, int C,
                                            int Hp, int Wp, int shift) {
    if (din) cu_pad_roll_forward(be, din, dout, B, H, W, C, Hp, Wp, shift);
}
