/* grad_sync.h — the gradient all-reduce in fixed-order buckets, overlapped with the backward pass.
 *
 * Each parameter of UNet-2022 gets its gradient from one backward op (dw/db/dg/dtable/dgamma of
 * a conv, linear, LayerNorm, attention or layer-scale op). model_backward reports, right after
 * queuing each such op, which parameters it finished (its GradsReady hook, model.h; GradSync's is
 * grad_sync_ready); a bucket whose parameters are all final is all-reduced at once
 * (Comm.allreduce_start) while the backward pass goes on with the layers below.
 *
 * The plan: the first backward pass after creation only watches (every gradient is reduced when
 * it ends). It records the order in which the parameters became final; rank 0's record is
 * broadcast, and buckets of about `bucket_bytes` are cut along that order. From then on, on
 * every rank, bucket k is started only after buckets 0..k-1, so all ranks issue the same
 * collectives in the same order (what NCCL and MPI require), and the reduction order of every
 * float — hence the result — does not depend on timing.
 *
 * A bucket is a list of contiguous runs of the flat gradient buffer (parameters that became final
 * together but do not touch in memory); the runs of one bucket go out as one NCCL group. */
#ifndef UNET_GRAD_SYNC_H
#define UNET_GRAD_SYNC_H

#include <stddef.h>

#include "backend.h"
#include "comm.h"
#include "param_table.h"

typedef struct GradSync GradSync;

/* be: the backend model_backward runs on (the reductions are ordered on its queue); grads: the
 * flat gradient buffer (params->total floats, backend memory) that model_backward accumulates into. bucket_bytes == 0: one bucket, started when the backward pass ends (no
 * overlap: the reference behaviour). The tables must outlive the GradSync. */
GradSync *grad_sync_create(Comm *comm, Backend *be, const ParamTable *params, float *grads /* (total) */,
                           size_t bucket_bytes);
/* Before model_backward: no parameter is final yet. */
void grad_sync_begin(GradSync *g);
/* The hook to give model_backward, with the GradSync as ctx:
 *   model_backward(m, be, acts, params, grads, &(GradsReady){grad_sync_ready, g});
 * [offset, offset + count) are floats of `grads` whose gradients the op just queued on `be`
 * finished (whole tensors); a bucket they complete is started, ordered after that op. */
void grad_sync_ready(void *g, size_t offset, size_t count);
/* After model_backward: starts whatever is left, in order, and makes `be`'s queue wait for every
 * reduction (on the CPU: returns once the sums are in `grads`). */
void grad_sync_end(GradSync *g);
/* Buckets in the plan (0 before the first grad_sync_end), and how many of them the last
 * backward pass started before it ended (the overlapped ones). */
int grad_sync_bucket_count(const GradSync *g);
int grad_sync_overlapped(const GradSync *g);
void grad_sync_destroy(GradSync *g);

#endif
