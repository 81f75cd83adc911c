/* step_graph.h — a training step captured once as a CUDA graph and replayed (train.cuda_graph).
 *
 * A step is a host function that queues work on the backend (forward, loss, backward with the
 * gradient buckets, clip, Adam). Launched op by op it costs ~1,400 CPU-side launch calls; captured
 * once (Backend.capture_begin/capture_end) it is one cudaGraphLaunch per step. What makes the
 * replay compute the same as an eager step: every per-step value the step reads is in memory at a
 * fixed address: rewritten on the host before each step and uploaded by a copy the step itself
 * queues (drop-path scales: model_draw_step, Adam's terms: adam_next_step), or in device memory
 * written before the step by copies queued outside the recording (the batch and labels, straight
 * from the loader's pinned slot: trainer.c); nothing per step travels as a kernel argument. A replay is therefore
 * bit-identical to the eager step (tests: emu_train_graph_*).
 *
 * The life of one StepGraph:
 *   - the first step of the process runs eagerly: the kernel tuner times implementations, the
 *     workspace and the libraries' buffers reach their size, the gradient buckets are planned;
 *   - the next step is captured, then replayed at once (capture runs nothing by itself);
 *   - later steps replay it. When memory it refers to was freed or moved since (the backend
 *     knows: a workspace grew during validation, a buffer was released), the step is captured
 *     again; step_graph_drop forgets it explicitly (a different step shape).
 * A capture that fails (cudaStreamEndCapture or the instantiation returns an error) prints one
 * warning with the reason and the run goes on eagerly. An illegal call inside the step (a host
 * sync, an allocation) is a bug and fails loudly at that call. */
#ifndef UNET_STEP_GRAPH_H
#define UNET_STEP_GRAPH_H

#include <stddef.h>

#include "backend.h"
#include "comm.h"

typedef struct {
    Backend *be;
    Comm *comm;         /* NULL or one rank: no collectives in the step */
    int enabled;        /* capture at all (train.cuda_graph and what the backend and transport allow) */
    long eager_steps;   /* steps this process ran eagerly */
    int ready;          /* a recorded step is ready to replay */
    long captures, replays;
} StepGraph;

/* mode: "auto" (capture when the backend can and the transport is NCCL or there is one rank),
 * "on" (the same, and an error with the reason when it cannot), "off". comm may be NULL.
 * -1 with a message naming train.cuda_graph when mode is "on" and capture is impossible. */
int step_graph_init(StepGraph *g, Backend *be, Comm *comm, const char *mode, char *err, size_t err_len);

/* Runs one step: queue(ctx) queues its work, eagerly or recorded; or the recorded step is
 * replayed and queue is not called. The host-side per-step values must be in their staging
 * before this call (the replay reads them). */
void step_graph_run(StepGraph *g, void (*queue)(void *ctx), void *ctx);

/* The next step is captured anew (call when what the step queues changes). */
void step_graph_drop(StepGraph *g);
void step_graph_destroy(StepGraph *g);

#endif
