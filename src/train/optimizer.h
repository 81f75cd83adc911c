/* optimizer.h — Adam with global gradient-norm clipping, as the released recipe trains:
 * β 0.9/0.999, eps 1e-8, no weight decay, constant learning rate, clip at 12.
 * Moments are flat buffers in the parameter layout (backend memory). */
#ifndef UNET_OPTIMIZER_H
#define UNET_OPTIMIZER_H

#include <stddef.h>

#include "backend.h"

typedef struct {
    float *m, *v; /* (n) backend memory */
    size_t n;
    int step;     /* updates done so far */
    double lr, beta1, beta2, eps, clip_norm;
} Adam;

void adam_create(Adam *opt, Backend *be, size_t n, double lr);
void adam_destroy(Adam *opt, Backend *be);

/* Clips grads in place to the global norm clip_norm (torch.nn.utils.clip_grad_norm_),
 * then takes one Adam step. Returns the norm before clipping. */
double adam_clip_and_step(Adam *opt, Backend *be, float *params /* (n) */, float *grads /* (n) */);

#endif
