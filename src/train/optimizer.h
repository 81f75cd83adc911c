/* optimizer.h — Adam with global gradient-norm clipping, as the released recipe trains:
 * β 0.9/0.999, eps 1e-8, no weight decay, constant learning rate, clip at 12.
 * Moments are flat buffers in the parameter layout (backend memory). */
#ifndef UNET_OPTIMIZER_H
#define UNET_OPTIMIZER_H

#include <stddef.h>

#include "backend.h"

typedef struct {
    float *m, *v; /* (n) backend memory */
    double *norm2; /* (4) backend memory: [0] the gradients' sum of squares, [1] their norm, [2..3] the
                    * step's loss scalars (adam_loss_slot): read back with the norm in one copy */
    float *coef;      /* (2) backend memory: this step's -(lr/bc1), sqrt(bc2) (adam_coefs.h) */
    float *coef_host; /* (2) their staging (Backend.host_alloc), uploaded by a queued copy */
    size_t n;
    int step;     /* updates done so far */
    double lr, beta1, beta2, eps, clip_norm;
} Adam;

void adam_create(Adam *opt, Backend *be, size_t n, double lr);
void adam_destroy(Adam *opt, Backend *be);

/* Clips grads in place to the global norm clip_norm (torch.nn.utils.clip_grad_norm_),
 * then takes one Adam step. Only queues work: the norm stays in backend memory, so the step
 * never waits for the device here (adam_last_norm reads it). */
void adam_clip_and_step(Adam *opt, Backend *be, float *params /* (n) */, float *grads /* (n) */);

/* adam_clip_and_step in its two halves, for a captured step (src/train/step_graph.h):
 * adam_next_step counts the step and writes its terms into the staging (host only, nothing
 * queued); adam_queue_step queues the upload of the staging, the clip and the update. A replay
 * runs the recorded adam_queue_step, so before it only adam_next_step is called. */
void adam_next_step(Adam *opt);
void adam_queue_step(Adam *opt, Backend *be, float *params /* (n) */, float *grads /* (n) */);

/* The norm before clipping of the last adam_clip_and_step: waits for it (a host sync on an
 * asynchronous backend; read it once per step, at the step's end). */
double adam_last_norm(const Adam *opt, Backend *be);

/* 3 floats of backend memory next to the norm, for model_loss_queue's (total, dice, CE) */
float *adam_loss_slot(const Adam *opt);

/* The step's scalars in ONE read (the step's only host sync): the norm of adam_last_norm and the
 * 3 floats of adam_loss_slot (loss may be NULL). */
double adam_step_scalars(const Adam *opt, Backend *be, float *loss /* (3) or NULL */);

#endif
