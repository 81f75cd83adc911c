/* backend_cuda.h — the CUDA backend (kernels/cuda/): the same op table as the CPU reference
 * (src/base/backend.h), on one device and one stream; activations stored as fp32 or bf16 by the
 * precision mode. Include only when UNET_HAVE_CUDA. */
#ifndef UNET_BACKEND_CUDA_H
#define UNET_BACKEND_CUDA_H

#include <stddef.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The backend on CUDA device `device` (e.g. the local rank), computing in `precision`:
 *   "fp32"  plain fp32 everywhere (no TF32): the mode that compares with the CPU reference;
 *   "tf32"  cuBLAS GEMMs and cuDNN convolutions on tensor cores with TF32 inputs, fp32 accumulation;
 *   "bf16"  activations (Acts) stored as bf16, cuBLAS GEMMs on bf16 operands with fp32
 *           accumulation (the mixed-precision product mode), convolutions as tf32.
 * In every mode weights, gradients and Adam moments are fp32, and all other ops (LayerNorm,
 * softmax, attention, loss, Adam) compute in fp32. Dies with a clear
 * message when the device does not exist or the precision is none of these. All ops are queued
 * on one stream; only the memory functions that return or take host data synchronously (upload,
 * download, synchronize, release) wait for it, and no op does (bench counts launches and waits:
 * src/base/work_count.h). A bad label seen by dice_ce_forward is reported at the next wait. */
Backend *backend_cuda_create(int device, const char *precision);

/* The precision the backend was created with: "fp32", "tf32" or "bf16". */
const char *backend_cuda_precision(Backend *be);

/* Number of usable CUDA devices; 0 without driver or GPU (never dies). */
int cuda_device_count(void);

/* Page-locked host memory (cudaMallocHost) for batches copied to the device asynchronously:
 * the signature of LoaderOptions.alloc / release hooks (ctx unused). */
void *cuda_pinned_alloc(void *ctx, size_t bytes);
void cuda_pinned_free(void *ctx, void *ptr);

/* Which implementation runs for each hot op (kernels/cuda/tune.h): `force` is train.kernels
 * ("auto", or "op=impl,op=impl"); `cache_path` (e.g. RUN_DIR/kernels.tsv, or NULL) keeps the
 * choices made on the card, so a resumed run makes the same ones. -1 with a message naming
 * train.kernels when it names an unknown op or implementation, or the cache file is damaged. */
int backend_cuda_set_tuning(Backend *be, const char *cache_path, const char *force, char *err, size_t err_len);
/* The cache file is only read by this process, never written: every rank but 0 (one writer). */
void backend_cuda_tuning_read_only(Backend *be);
/* Data-parallel ranks must run the same implementations (else a resumed run, which reads rank 0's
 * cache, would not repeat what rank 1 computed). With ranks > 1 the tuner times the candidates on
 * every rank during a training step (Backend.lockstep) and then calls `agree(ctx, &impl)`, which
 * must make every rank's impl rank 0's (a broadcast from rank 0; every rank calls it at the same
 * point, since a training step runs the same ops and shapes in the same order everywhere). A shape
 * first met outside a training step in a run of several ranks is not timed: it runs implementation
 * 0 (said once), so that no rank waits in a collective the others never reach. */
void backend_cuda_tuning_agree(Backend *be, int rank, int ranks, void (*agree)(void *ctx, int *impl), void *ctx);

/* The name of implementation i of the tuned op `op` (tune.h), or NULL past the last one or for an
 * op without a table: gpu-check-ops forces each in turn. */
const char *backend_cuda_kernel_impl(const char *op, int i);
/* 1 when implementation i of `op` can run on this backend (its precision mode), else 0. */
int backend_cuda_kernel_available(Backend *be, const char *op, int i);

/* Peak device memory this process has held since start (bytes), from the backend's counter. */
size_t backend_cuda_peak_bytes(Backend *be);

/* Work executed (eagerly or by graph replays), host syncs and cudaGraphLaunch calls since start as
 * the CUDA runtime itself counted them: the emulator's exact count (tests/cuda_emu), for bench to
 * compare with the project's own count (src/base/work_count.h). Returns 0 on a real GPU, where the
 * runtime keeps no such count. */
int backend_cuda_runtime_counts(unsigned long long *launches, unsigned long long *syncs,
                                unsigned long long *graph_launches);

#ifdef __cplusplus
}
#endif

#endif
