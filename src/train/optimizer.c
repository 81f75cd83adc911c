/* optimizer.c — see optimizer.h. */
#include "optimizer.h"

#include <string.h>

#include "adam_coefs.h"

void adam_create(Adam *opt, Backend *be, size_t n, double lr) {
    opt->n = n;
    opt->m = be->alloc(be, n * sizeof(float));
    opt->v = be->alloc(be, n * sizeof(float));
    opt->norm2 = be->alloc(be, 4 * sizeof(double));
    opt->coef = be->alloc(be, 2 * sizeof(float));
    opt->coef_host = be->host_alloc(be, 2 * sizeof(float));
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
    be->release(be, opt->norm2);
    be->release(be, opt->coef);
    be->host_free(be, opt->coef_host);
    opt->m = opt->v = NULL;
    opt->norm2 = NULL;
    opt->coef = opt->coef_host = NULL;
}

void adam_next_step(Adam *opt) {
    opt->step++;
    adam_coefs(opt->lr, opt->beta1, opt->beta2, opt->step, opt->coef_host);
}

void adam_queue_step(Adam *opt, Backend *be, float *params, float *grads) {
    be->upload_async(be, opt->coef, opt->coef_host, 2 * sizeof(float));
    /* PyTorch: coef = max_norm / (norm + 1e-6), applied when below 1 (clip_by_norm) */
    be->sum_squares(be, &opt->norm2[0], grads, opt->n);
    be->clip_by_norm(be, grads, &opt->norm2[1], &opt->norm2[0], opt->clip_norm, opt->n);
    be->adam_update(be, params, opt->m, opt->v, grads, opt->n, opt->beta1, opt->beta2, opt->eps, opt->coef);
}

void adam_clip_and_step(Adam *opt, Backend *be, float *params, float *grads) {
    adam_next_step(opt);
    adam_queue_step(opt, be, params, grads);
}

double adam_last_norm(const Adam *opt, Backend *be) {
    double norm = 0;
    be->download(be, &norm, &opt->norm2[1], sizeof norm);
    return norm;
}

float *adam_loss_slot(const Adam *opt) { return (float *)&opt->norm2[2]; }

double adam_step_scalars(const Adam *opt, Backend *be, float *loss) {
    double back[3]; /* norm2[1..3]: the norm, then the loss floats */
    be->download(be, back, &opt->norm2[1], sizeof back);
    if (loss) memcpy(loss, &back[1], 3 * sizeof(float));
    return back[0];
}
