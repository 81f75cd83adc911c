/* tune.h — several verified implementations of a hot op, the fastest one chosen on the card.
 *
 * Speed has to be built without a GPU at hand, so no single kernel is trusted to be the fast
 * one: each hot op (window attention, the depthwise 7×7 convolution, LayerNorm, the 3×3
 * convolutions, the depthwise 7×7 + LayerNorm pair) keeps a table of implementations, every one
 * of which passes the same checks against the CPU backend on the emulator (`unet2022-check
 * gpu-check-ops` runs each one, forced), and the backend decides per shape which one runs:
 *
 *   1. a forced choice (backend_cuda_set_tuning's `force`, from the config key train.kernels,
 *      e.g. "window_attention=flash,dwconv7=tiled"), always;
 *   2. else a choice already made for (op, shape): in memory, or read from the run directory's
 *      cache file, so that a resumed run makes the same choices as the uninterrupted one and
 *      stays bit-identical to it;
 *   3. else, on a real GPU, every implementation is timed on the actual shapes (the op's TuneRun
 *      runs implementation i on scratch outputs, so accumulating backward ops are timed without
 *      touching the real gradients), the fastest is kept, printed and appended to the cache; on
 *      the CPU emulator, whose timings mean nothing, implementation 0.
 *
 * Data-parallel ranks run the same implementations: in a run of several ranks the candidates are
 * timed on every rank during the first training step (Backend.lockstep), and rank 0's fastest
 * is broadcast to all (backend_cuda_tuning_agree); rank 0 alone writes the cache file. A shape
 * first met outside a training step there is not timed (implementation 0, said once).
 *
 * A forward op and its backward choose together (one table entry, one name): the saved state
 * they share (e.g. the attention's softmax or its row log-sum-exp) is the implementation's.
 * Everything runs on the backend's one stream; choices are per backend (per process). */
#ifndef UNET_CUDA_TUNE_H
#define UNET_CUDA_TUNE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "backend.h"
#ifdef __cplusplus
}
#endif

/* One hot op's implementations. names[0] is the emulator's choice when nothing is forced: the
 * reference implementation (dwconv7_layernorm's is its fused kernel, the one the launch counts
 * assume). Defined by the op's .cu file, listed in tune.cu's table. */
typedef struct {
    const char *op;            /* "window_attention", "dwconv7", "layernorm", "conv3x3", "dwconv7_layernorm" */
    int n;                     /* implementations */
    const char *const *names;  /* (n) */
    /* NULL: every implementation runs in every precision mode; else 0 for one that cannot run
     * on this backend (e.g. native bf16 in fp32 mode): never timed, and forcing it dies. */
    int (*available)(Backend *be, int impl);
} TuneOp;

/* Queue implementation `impl` of the op on scratch outputs (timing only: the results are
 * discarded, the real outputs must stay untouched). */
typedef void (*TuneRun)(void *ctx, int impl);

#ifdef __cplusplus
extern "C" {
#endif

/* Which implementation of `op` runs at `shape` (a short key of the op's sizes, e.g.
 * "B8 H80 W80 C64 w10 s5"). `run` may be NULL when the caller cannot time (then an undecided
 * shape gets implementation 0). Dies naming the op when a forced name is not in its table. */
int cuda_tune_pick(Backend *be, const TuneOp *op, const char *shape, TuneRun run, void *ctx);

/* cuda_tune_pick among the implementations whose bit is set in `avail` (bit i: implementation i
 * can run this shape in this precision mode; bit 0 must be set). An unavailable implementation
 * is never timed or chosen; where a forced one is unavailable, the shape gets implementation 0
 * and a line saying so with `why` (what it cannot do, e.g. "flash: bf16 mode only, head dim
 * <= 64"); a cache file naming an unavailable one dies with `why`. */
int cuda_tune_pick_avail(Backend *be, const TuneOp *op, const char *shape, unsigned avail, const char *why,
                         TuneRun run, void *ctx);

/* The name of the implementation chosen last time for (op, shape), or NULL (for reports). */
const char *cuda_tune_chosen(Backend *be, const char *op, const char *shape);

/* Every choice made so far, one "op shape -> impl" line each (bench --profile, the GPU check). */
void cuda_tune_print(Backend *be, void *file /* FILE* */);

/* Frees the tuning state (backend destroy). */
void cuda_tune_free(Backend *be);

#ifdef __cplusplus
}
#endif

#endif
