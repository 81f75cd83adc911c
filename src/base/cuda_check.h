/* cuda_check.h — error checks for every CUDA-family call, reporting file:line through die_at()
 * (check.h) so a GPU failure reads like every other error of the program. One set for every
 * layer that calls the CUDA libraries: the CUDA backend (kernels/cuda) and the NCCL transport
 * (comm/comm_nccl.c).
 *
 * base itself is built without the CUDA toolkit: the including file includes the libraries'
 * headers first — cuda_runtime.h or cuda_runtime_api.h always, and nccl.h / cudnn.h for
 * NCCL_CHECK / CUDNN_CHECK, which exist only when those headers came before this one. */
#ifndef UNET_CUDA_CHECK_H
#define UNET_CUDA_CHECK_H

#ifndef CUDART_VERSION
#error "cuda_check.h: include cuda_runtime.h (or cuda_runtime_api.h) before it"
#endif

#ifdef __cplusplus
extern "C" {
#endif
#include "check.h" /* die_at, xcalloc: C functions of unet_base */
#include "work_count.h" /* unet_work_count: launches and host syncs (bench) */
#ifdef __cplusplus
}
#endif

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) die_at(__FILE__, __LINE__, "%s failed: %s", #call, cudaGetErrorString(e_)); \
    } while (0)

/* After a kernel launch: launch-configuration errors surface here, not at the next sync. Every
 * <<<...>>> in kernels/cuda is followed by it, so it also counts the launch (work_count.h). */
#define CUDA_CHECK_LAUNCH()                                                                        \
    do {                                                                                           \
        unet_work_count.launches++;                                                                \
        CUDA_CHECK(cudaGetLastError());                                                            \
    } while (0)

/* A runtime call that queues work on a stream (cudaMemsetAsync, cudaMemcpyAsync): checked and
 * counted as one launch. */
#define CUDA_WORK(call)                                                                            \
    do {                                                                                           \
        unet_work_count.launches++;                                                                \
        CUDA_CHECK(call);                                                                          \
    } while (0)

/* A call that makes the host wait for the device (cudaStreamSynchronize, cudaEventSynchronize,
 * cudaDeviceSynchronize, a synchronous cudaMemcpy): checked and counted as one host sync. */
#define CUDA_SYNC(call)                                                                            \
    do {                                                                                           \
        unet_work_count.syncs++;                                                                   \
        CUDA_CHECK(call);                                                                          \
    } while (0)

/* A replay of a captured step (cudaGraphLaunch) that runs `items` work items (each counted by
 * one of the macros here when it was captured): one graph launch, `items` launches executed. */
#define CUDA_GRAPH_LAUNCH(exec, stream, items)                                                     \
    do {                                                                                           \
        unet_work_count.graph_launches++;                                                          \
        unet_work_count.launches += (items);                                                       \
        unet_work_count.replayed += (items);                                                       \
        CUDA_CHECK(cudaGraphLaunch((exec), (stream)));                                             \
    } while (0)

#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        int s_ = (int)(call);                                                                      \
        if (s_ != 0) die_at(__FILE__, __LINE__, "%s failed: cuBLAS status %d", #call, s_);         \
    } while (0)
/* A cuBLAS call that queues work (a GEMM): checked and counted as one launch. */
#define CUBLAS_WORK(call)                                                                          \
    do {                                                                                           \
        unet_work_count.launches++;                                                                \
        CUBLAS_CHECK(call);                                                                        \
    } while (0)

#ifdef CUDNN_MAJOR
#define CUDNN_CHECK(call)                                                                          \
    do {                                                                                           \
        cudnnStatus_t s_ = (call);                                                                 \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                            \
            die_at(__FILE__, __LINE__, "%s failed: %s", #call, cudnnGetErrorString(s_));           \
    } while (0)
/* A cuDNN call that queues work (a convolution): checked and counted as one launch. */
#define CUDNN_WORK(call)                                                                           \
    do {                                                                                           \
        unet_work_count.launches++;                                                                \
        CUDNN_CHECK(call);                                                                         \
    } while (0)
#endif

#ifdef NCCL_MAJOR
#define NCCL_CHECK(call)                                                                           \
    do {                                                                                           \
        ncclResult_t r_ = (call);                                                                  \
        if (r_ != ncclSuccess) die_at(__FILE__, __LINE__, "%s failed: %s", #call, ncclGetErrorString(r_)); \
    } while (0)
/* An NCCL collective: checked and counted as one launch. */
#define NCCL_WORK(call)                                                                            \
    do {                                                                                           \
        unet_work_count.launches++;                                                                \
        NCCL_CHECK(call);                                                                          \
    } while (0)
#endif

#endif
