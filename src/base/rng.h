/* rng.h — counter-based random numbers: every draw is a pure function of
 * (seed, stream, counter), so results never depend on thread count, rank count or call
 * order, and a resumed run redraws exactly what an uninterrupted one would have. */
#ifndef UNET_RNG_H
#define UNET_RNG_H

#include <math.h>
#include <stdint.h>

/* splitmix64's finaliser: a bijective 64-bit mixer with full avalanche. */
static inline uint64_t rng_mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The key of draw `counter` in stream `stream` of generator `seed`. */
static inline uint64_t rng_key(uint64_t seed, uint64_t stream, uint64_t counter) {
    return rng_mix(rng_mix(seed ^ rng_mix(stream)) ^ (counter * 0xD1B54A32D192ED03ull));
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double rng_uniform(uint64_t key) {
    return (double)(rng_mix(key) >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal (Box–Muller from two uniforms derived from the key). */
static inline double rng_normal(uint64_t key) {
    double u1 = rng_uniform(key ^ 0x5851F42D4C957F2Dull), u2 = rng_uniform(key ^ 0x14057B7EF767814Full);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
