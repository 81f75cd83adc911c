/* backend.h — the one interface through which the model calls every op.
 *
 * The CPU backend (kernels/cpu/) is the fp32 reference; the CUDA backend
 * (kernels/cuda/) fills the same table. Model code never calls an op directly,
 * only through a Backend, so both run the same model. This file holds the
 * conventions and the memory functions; the ops themselves, with the shapes of
 * their tensors, are listed once in backend_ops.h.
 *
 * Conventions (all ops):
 *  - Activations are channels-last (NHWC) and contiguous. "N" in a shape
 *    comment means a flattened count of tokens (B*H*W).
 *  - Two element types. Every tensor with a token dimension (activations, their
 *    gradients, the attention's saved softmax, the logits) is an array of Act, whose
 *    storage the backend chooses: fp32 on the CPU and in the CUDA fp32/tf32 modes, bf16
 *    in the CUDA bf16 mode (Backend.act_bytes says which). Parameters, parameter
 *    gradients, optimiser state and statistics (LayerNorm mean/rstd, loss softmax and
 *    counts) are always float. Ops compute in fp32 whatever the storage: an Act is
 *    widened on load and rounded (to nearest even) once on store.
 *  - Parameters use the released PyTorch network's layouts so the flat
 *    parameter buffer is the state_dict byte for byte:
 *      conv            [Co][Ci][kh][kw]
 *      depthwise conv  [C][1][7][7]
 *      transposed conv [Ci][Co][k][k]
 *      linear          [Co][Ci]
 *  - Forward ops OVERWRITE their outputs.
 *  - Backward ops ACCUMULATE (+=) into every gradient they produce, input
 *    gradients and parameter gradients alike; the caller zeroes buffers. This
 *    makes residual connections and shared inputs free of extra adds. The
 *    exceptions say so in backend_ops.h: the *_first variants and the fused
 *    residual ops OVERWRITE the input gradient they name, for a buffer they are
 *    the first to write (no memset before them on a GPU), and the linears
 *    OVERWRITE their bias gradient (its one writer); on the CPU they are the
 *    zero + accumulate sequence, so CPU results do not change.
 *  - A NULL input-gradient pointer means "not needed" (e.g. the network input).
 *  - Pointers are backend memory (host memory for the CPU backend, device
 *    memory for CUDA) unless the name ends in _host.
 *  - Outputs come first, then inputs, then sizes.
 */
#ifndef UNET_BACKEND_H
#define UNET_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "backend_ops.h"

typedef struct Backend Backend;

/* One activation element. Deliberately incomplete: model code cannot do arithmetic on an
 * Act * (every tensor is its own buffer) nor mistake one for a float * parameter. */
typedef struct Act Act;

struct Backend {
    const char *name; /* "cpu" or "cuda" */
    void *impl;       /* backend-private state (workspace, handles) */
    /* The native queue every op is ordered on: the cudaStream_t for CUDA, NULL for the CPU
     * (ops have finished when they return). Transports order their work against it. */
    void *queue;
    /* Bytes of one Act element: 4 (fp32 storage) or 2 (bf16 storage). Fixed at creation. */
    size_t act_bytes;
    /* 1 while the trainer queues a training step, which every rank runs with the same ops and
     * shapes in the same order: the only time a backend may take a decision together with the
     * other ranks (the CUDA tuner's kernel choices, kernels/cuda/tune.h). 0 otherwise
     * (validation, predict, checks, benchmarks), where ranks may run different work. */
    int lockstep;

    /* ---- memory ---- */
    void *(*alloc)(Backend *be, size_t bytes); /* zero-filled; aborts with a clear message on OOM */
    void (*release)(Backend *be, void *ptr);
    void (*upload)(Backend *be, void *dst, const void *src_host, size_t bytes);
    /* Queued copy: returns at once; src_host (pinned memory for CUDA, or the copy is staged)
     * must stay unchanged until the queue has passed this point, i.e. until a call that waits
     * for the queue (download, synchronize, or an op that returns a host value). */
    void (*upload_async)(Backend *be, void *dst, const void *src_host, size_t bytes);
    void (*download)(Backend *be, void *dst_host, const void *src, size_t bytes);
    void (*zero)(Backend *be, void *dst, size_t bytes);
    void (*copy)(Backend *be, void *dst, const void *src, size_t bytes);
    void (*synchronize)(Backend *be);
    void (*destroy)(Backend *be);
    /* Host memory that queued copies (upload_async, download) may use at a fixed address for the
     * backend's whole life: pinned (page-locked) for CUDA, plain for the CPU. The staging of every
     * per-step value a captured step reads (batch, labels, drop-path scales, Adam's terms). */
    void *(*host_alloc)(Backend *be, size_t bytes); /* zero-filled */
    void (*host_free)(Backend *be, void *ptr);

    /* ---- step capture (CUDA graphs: src/train/step_graph.h); NULL where there is none (CPU) ----
     * capture_begin: the work queued from now on is recorded, not run (0), or -1 and why.
     * capture_end: ends the recording; 0 when the recorded step is ready to replay (nothing of it
     *   has run yet), else -1 and why (nothing ran either: the caller queues the step eagerly).
     * replay: queues the recorded step once more; -1 (nothing queued) when memory it refers to
     *   was freed or moved since (a workspace grew, a buffer was released): capture again.
     * capture_drop: forgets the recorded step. */
    int (*capture_begin)(Backend *be, char *why, size_t why_len);
    int (*capture_end)(Backend *be, char *why, size_t why_len);
    int (*replay)(Backend *be);
    void (*capture_drop)(Backend *be);

    /* ---- the ops: a function pointer per entry of backend_ops.h, which documents each ---- */
#define UNET_BACKEND_OP_MEMBER(name, params, args) void (*name) params;
    UNET_BACKEND_OPS(UNET_BACKEND_OP_MEMBER)
#undef UNET_BACKEND_OP_MEMBER
};

/* Host <-> backend copies of Act arrays through a float staging buffer (backend_act.c):
 * for tests, checks and one-off transfers, not hot paths (they allocate and synchronise). */
void backend_upload_act(Backend *be, Act *dst /* (n) */, const float *src_host /* (n) */, size_t n);
void backend_download_act(Backend *be, float *dst_host /* (n) */, const Act *src /* (n) */, size_t n);

/* The CPU reference backend (kernels/cpu/backend_cpu.c). threads <= 0: OpenMP default.
 * Its Acts are floats: a float array may be passed as (Act *) and read back as (float *). */
Backend *backend_cpu_create(int threads);

#endif
