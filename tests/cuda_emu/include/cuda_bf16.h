/* cuda_bf16.h — the bf16 type as the CPU emulator provides it (tests/cuda_emu/README.md).
 *
 * Only a subset of the real header, with its names and semantics: the type __nv_bfloat16 (two
 * bytes, trivially copyable, the bits protected as in the real header) and
 * the conversions
 *   __float2bfloat16(f), __float2bfloat16_rn(f)  round to nearest even (as cvt.rn.bf16.f32): a
 *                                                NaN becomes the canonical NaN 0x7fff, a value
 *                                                past the largest bf16 becomes ±inf, subnormals
 *                                                are kept;
 *   __bfloat162float(h)                          exact (the bits shifted up 16).
 * No implicit conversions or arithmetic operators: code that compiles here uses the explicit
 * intrinsics and so compiles against the real header too. C++ only, like the kernels; in C the
 * type alone is declared (as in the real header). Fresh emulated device memory is 0xff bytes:
 * 0xffff is a bf16 NaN (exponent all ones, mantissa non-zero), as 0xffffffff is for float. */
#ifndef UNET_EMU_CUDA_BF16_H
#define UNET_EMU_CUDA_BF16_H

#ifdef __cplusplus
#include <stdint.h>
#include <string.h>

struct alignas(2) __nv_bfloat16 {
  protected: /* as in the real header */
    unsigned short __x; /* the bits; read and written here through memcpy (trivially copyable) */

  public:
    __nv_bfloat16() = default;
};
static_assert(sizeof(__nv_bfloat16) == 2 && alignof(__nv_bfloat16) == 2, "bf16 is two bytes");

inline __nv_bfloat16 __float2bfloat16(const float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    unsigned short bits;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        bits = 0x7fffu; /* NaN: the canonical one */
    } else {
        /* Nearest even: add 0x7fff plus the lowest kept bit, keep the top half. Carries into the
         * exponent as rounding up should; the largest finite floats round to ±inf, ±inf stay. */
        u += 0x7fffu + ((u >> 16) & 1u);
        bits = (unsigned short)(u >> 16);
    }
    __nv_bfloat16 h;
    memcpy((void *)&h, &bits, sizeof h);
    return h;
}
inline __nv_bfloat16 __float2bfloat16_rn(const float f) { return __float2bfloat16(f); }

inline float __bfloat162float(const __nv_bfloat16 h) {
    unsigned short bits;
    memcpy(&bits, &h, sizeof bits);
    const uint32_t u = (uint32_t)bits << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#else /* C: the type only */
typedef struct __nv_bfloat16 {
    unsigned short __x;
} __nv_bfloat16;
#endif

#endif
