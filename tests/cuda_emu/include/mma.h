/* mma.h — the emulator's nvcuda::wmma: only what the kernels use (bf16 m16n16k16 with fp32
 * accumulation; a kernel that needs another shape or type fails to compile, and it is added then).
 *
 * The element layout of a real fragment is opaque (the kernels never index `x`), so any layout is
 * legal. Here a matrix_a/matrix_b fragment holds the whole 16×16 tile in every lane (row-major),
 * and an accumulator is distributed as on the GPU: lane L holds the 8 elements whose row-major
 * index is L + 32k (k < 8). So a lane loads and stores only its own accumulator elements (as on
 * the GPU: `load acc from M; mma; store acc to M` is race-free, and a tile stored by other lanes
 * and read elementwise without a __syncwarp shows, since lanes run one after another), and
 * mma_sync computes only those 8 elements from the replicated A and B. The kernels place a
 * __syncwarp between writing a tile elementwise and loading it, as on the GPU.
 *
 * mma_sync is exact in the sense the GPU guarantees: a bf16×bf16 product is exact in fp32 (8 + 8
 * significant bits), and the products are accumulated in fp32, d = c + Σ_k a[i][k]·b[k][j], k in
 * order, each addition rounded to nearest even (the build turns FP contraction off). */
#ifndef UNET_EMU_MMA_H
#define UNET_EMU_MMA_H

#include <cuda_bf16.h>
#include <cuda_runtime.h> /* threadIdx */

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "emulated wmma: m16n16k16 only");
    static constexpr int num_elements = 256;
    T x[256]; /* A or B: the whole tile, row-major (logical element (r, c) at x[16 r + c]) */
};
template <int M, int N, int K>
struct fragment<accumulator, M, N, K, float, void> {
    static_assert(M == 16 && N == 16 && K == 16, "emulated wmma: m16n16k16 only");
    static constexpr int num_elements = 8;
    float x[8]; /* this lane's elements: row-major index lane + 32 k */
};
typedef fragment<accumulator, 16, 16, 16, float, void> emu_acc;

namespace detail {
inline float widen(float v) { return v; }
inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
inline int lane() { return (int)(threadIdx.x % 32); }
} // namespace detail

template <class Use, class T, class L>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, L> &f, T v) {
    for (int i = 0; i < fragment<Use, 16, 16, 16, T, L>::num_elements; i++) f.x[i] = v;
}

/* matrix_a / matrix_b: the layout is the fragment's. Element (r, c) of the tile is at p[r·ldm + c]
 * (row_major) or p[c·ldm + r] (col_major). */
template <class Use, class T>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, row_major> &f, const T *p, unsigned ldm) {
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) f.x[16 * r + c] = p[(size_t)r * ldm + c];
}
template <class Use, class T>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, col_major> &f, const T *p, unsigned ldm) {
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) f.x[16 * r + c] = p[(size_t)c * ldm + r];
}
/* accumulator: the memory layout is an argument; this lane's elements only. */
inline void load_matrix_sync(emu_acc &f, const float *p, unsigned ldm, layout_t l) {
    for (int k = 0; k < 8; k++) {
        const int e = detail::lane() + 32 * k, r = e / 16, c = e % 16;
        f.x[k] = l == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
    }
}
inline void store_matrix_sync(float *p, const emu_acc &f, unsigned ldm, layout_t l) {
    for (int k = 0; k < 8; k++) {
        const int e = detail::lane() + 32 * k, r = e / 16, c = e % 16;
        (l == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r]) = f.x[k];
    }
}

/* d = a·b + c (this lane's elements); d may be c. */
template <class LA, class LB>
inline void mma_sync(emu_acc &d, const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b, const emu_acc &c) {
    for (int k = 0; k < 8; k++) {
        const int e = detail::lane() + 32 * k, i = e / 16, j = e % 16;
        float s = c.x[k];
        for (int t = 0; t < 16; t++) s += detail::widen(a.x[16 * i + t]) * detail::widen(b.x[16 * t + j]);
        d.x[k] = s;
    }
}

} // namespace wmma
} // namespace nvcuda

#endif
