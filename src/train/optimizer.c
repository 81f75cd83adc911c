/* optimizer.c — see optimizer.h. */
#include "optimizer.h"

#include <math.h>

void adam_create(Adam *opt, Backend *be, size_t n, double lr) {
    opt->n = n;
    opt->m = be->alloc(be, n * sizeof(float));
    opt->v = be->alloc(be, n * sizeof(float));
    opt->step = 0;
    opt->lr = lr;
    opt->beta1 = 0.9;
    opt->beta2 = 0.999;
    opt->eps = 1e-8;
    opt->clip_norm = 12.0;
}

void adam_destroy(Adam *opt, Backend *be) {
    be->release(be, opt->m);
    be->release(be, opt->v);
    opt->m = opt->v = NULL;
}

double adam_clip_and_step(Adam *opt, Backend *be, float *params, float *grads) {
    double sq = 0.0;
    be->sum_squares(be, &sq, grads, opt->n);
    double norm = sqrt(sq);
    /* PyTorch: coef = max_norm / (norm + 1e-6), applied when below 1 */
    double coef = opt->clip_norm / (norm + 1e-6);
    if (coef < 1.0) be->scale(be, grads, (float)coef, opt->n);
    opt->step++;
    be->adam_update(be, params, opt->m, opt->v, grads, opt->n, opt->lr, opt->beta1, opt->beta2, opt->eps, opt->step);
    return norm;
}
