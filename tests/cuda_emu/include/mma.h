/* mma.h — the emulator's nvcuda::wmma: only what the kernels use (bf16 m16n16k16 with fp32
 * accumulation; a kernel that needs another shape or type fails to compile, and it is added then).
 *
 * The element layout of a real fragment is opaque (the kernels never index `x`), so any layout is
 * legal: here every lane holds the whole 16×16 tile, in row-major order, and computes it from the
 * same memory (the kernels place __syncwarp between writing a tile elementwise and loading it, as
 * on the GPU). One thing the whole-tile copy changes: on the GPU a lane stores exactly the
 * accumulator elements it loaded, so `load acc from M; mma; store acc to M` is race-free there,
 * while here lanes run one after another and lane 1 would load what lane 0 already stored (the
 * update applied 32 times). So store_matrix_sync begins with a warp barrier: every lane has done
 * its loads before any lane stores, as in the GPU's lockstep. (It also means the emulator cannot
 * show a missing __syncwarp between a store_matrix_sync and reads of that tile by other lanes.)
 *
 * mma_sync is exact in the sense the GPU guarantees: a bf16×bf16 product is exact in fp32 (8 + 8
 * significant bits), and the products are accumulated in fp32, d = c + Σ_k a[i][k]·b[k][j], k in
 * order, each addition rounded to nearest even (the build turns FP contraction off). */
#ifndef UNET_EMU_MMA_H
#define UNET_EMU_MMA_H

#include <cuda_bf16.h>
#include <cuda_runtime.h>

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
    T x[256]; /* the whole tile, row-major (logical element (r, c) at x[16 r + c]) */
};

namespace detail {
inline float widen(float v) { return v; }
inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
} // namespace detail

template <class Use, class T, class L>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, L> &f, T v) {
    for (int i = 0; i < 256; i++) f.x[i] = v;
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
/* accumulator: the memory layout is an argument. */
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p, unsigned ldm, layout_t l) {
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) f.x[16 * r + c] = l == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r];
}
inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm, layout_t l) {
    __syncwarp(); // see the top: every lane's loads before any lane's store
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) (l == mem_row_major ? p[(size_t)r * ldm + c] : p[(size_t)c * ldm + r]) = f.x[16 * r + c];
}

/* d = a·b + c; d may be c. */
template <class LA, class LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                     const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
                     const fragment<accumulator, 16, 16, 16, float> &c) {
    float out[256];
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) {
            float s = c.x[16 * i + j];
            for (int k = 0; k < 16; k++) s += detail::widen(a.x[16 * i + k]) * detail::widen(b.x[16 * k + j]);
            out[16 * i + j] = s;
        }
    for (int i = 0; i < 256; i++) d.x[i] = out[i];
}

} // namespace wmma
} // namespace nvcuda

#endif
