/* adam_coefs.h — the per-step terms of PyTorch's Adam update (backend_ops.h: adam_update), computed
 * on the host in double as PyTorch computes them from Python floats, then rounded to float once:
 *   coef[0] = -(lr / (1 - beta1^step)),  coef[1] = sqrt(1 - beta2^step).
 * They change every step, so they travel in backend memory (uploaded by a queued copy before the
 * update), never as kernel arguments: a captured CUDA step then reads each replay's own values.
 * One definition for both backends, so the CPU and CUDA updates use the same two floats. */
#ifndef UNET_ADAM_COEFS_H
#define UNET_ADAM_COEFS_H

#include <math.h>

#include "check.h"

static inline void adam_coefs(double lr, double beta1, double beta2, int step, float coef[2]) {
    CHECK(step >= 1, "adam_update: step %d, steps count from 1", step);
    const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    coef[0] = (float)(-(lr / bc1));
    coef[1] = (float)sqrt(bc2);
}

#endif
