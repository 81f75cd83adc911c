/* testutil.h — small helpers for the C unit tests: assertions that count, a seeded RNG,
 * relative errors, and a central finite-difference gradient checker.
 * A test's main() ends with `return test_summary("name");`, which prints the plain
 * closing line "N passed, N failed" and returns the exit status. */
#ifndef UNET_TESTUTIL_H
#define UNET_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

void test_check(int ok, const char *file, int line, const char *fmt, ...);
#define TEST_CHECK(cond, ...) test_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
int test_summary(const char *suite);

/* splitmix64-based uniform floats in [lo, hi). */
typedef struct { uint64_t state; } TestRng;
float test_uniform(TestRng *r, float lo, float hi);
void test_fill(float *x, size_t n, TestRng *r, float lo, float hi);

/* ||a - b|| / ||b|| (b the reference); 0 when both are zero. */
double test_rel_err(const float *a, const float *b, size_t n);

/* Finite-difference check of d(loss)/d(x) against `analytic` for up to `probes` entries of x
 * (spread evenly). loss(ctx) must recompute the scalar loss from the current x, in double.
 * Central differences with step eps. Reports max relative error over probes, where the error
 * of one probe is |fd - an| / max(|fd|, |an|, floor). Returns that max. */
typedef double (*TestLossFn)(void *ctx);
double test_gradcheck(float *x, const float *analytic, size_t n, TestLossFn loss, void *ctx,
                      float eps, int probes, double floor);

#endif
