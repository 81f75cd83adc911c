/* cuda_runtime_api.h — the CUDA runtime API as the CPU emulator provides it (tests/cuda_emu/README.md).
 *
 * Only what kernels/cuda/, comm/comm_nccl.c and src/ call. Device memory is host memory, streams
 * and events exist but every operation completes before its call returns (the emulator is
 * synchronous), and there is exactly one device. C-compatible: comm/comm_nccl.c is C. */
#ifndef UNET_EMU_CUDA_RUNTIME_API_H
#define UNET_EMU_CUDA_RUNTIME_API_H

#include <stddef.h>

#define UNET_CUDA_EMULATOR 1
#define CUDART_VERSION 13000

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoDevice = 100,
    cudaErrorIllegalState = 401,
    cudaErrorLaunchFailure = 719,
    /* stream capture (the real values, driver_types.h) */
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureMerge = 902,
    cudaErrorStreamCaptureUnmatched = 903,
    cudaErrorStreamCaptureUnjoined = 904,
    cudaErrorStreamCaptureIsolation = 905,
    cudaErrorStreamCaptureImplicit = 906,
    cudaErrorCapturedEvent = 907,
    cudaErrorStreamCaptureWrongThread = 908,
} cudaError_t;

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;

enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2,
};

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02

enum cudaDeviceAttr {
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};

/* The subset of the real struct the backend reads. */
struct cudaFuncAttributes {
    int maxDynamicSharedSizeBytes;
};

typedef struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
    int major, minor;
    int multiProcessorCount;
    int warpSize;
    int maxThreadsPerBlock;
} cudaDeviceProp;

const char *cudaGetErrorString(cudaError_t error);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize(void);
/* The kernel's dynamic shared memory limit (launches above it fail as on a GPU). */
cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value);
/* maxDynamicSharedSizeBytes: the limit cudaFuncSetAttribute last set, else the default 48 KiB. */
cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *attr, const void *func);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);

cudaError_t cudaMalloc(void **ptr, size_t size);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMallocHost(void **ptr, size_t size);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemset(void *dst, int value, size_t count);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t count, cudaStream_t stream);

cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags);
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
/* cudaSuccess: the work before the event is done (always, here: every call completes at once). */
cudaError_t cudaEventQuery(cudaEvent_t event);

/* Stream capture and graphs. While a stream captures (and every stream joined into the capture by
 * waiting on an event recorded in it), work queued on it is recorded, not run; cudaGraphLaunch runs
 * the recording in order. What the real runtime refuses inside a capture fails here too, with a
 * message on stderr (emu_runtime.cpp): host syncs, synchronous copies and memsets, cudaMalloc and
 * cudaFree, the legacy default stream, copies from or to pageable host memory, waits on events
 * recorded outside the capture, and queries of events recorded inside one. One capture at a time. */
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *pGraph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *pCaptureStatus);
cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *pGraphExec, cudaGraph_t graph, unsigned long long flags);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *pGraphExec, cudaGraph_t graph, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t graphExec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaEventSynchronize(cudaEvent_t event);

/* Emulator bookkeeping (not CUDA): kernels launched and blocks run since start. */
void emu_counters(unsigned long long *launches, unsigned long long *blocks);
/* Work queued (kernel launches, Async memsets and copies, GEMMs, convolutions, collectives: the
 * library shims call emu_count_work) and host syncs (stream/device synchronisation, synchronous
 * copies and memsets) since start: what the project's own count (src/base/work_count.h) must
 * equal; bench --backend cuda compares the two. */
void emu_count_work(void);
void emu_work_counters(unsigned long long *work, unsigned long long *syncs);
/* cudaGraphLaunch calls since start (the work they replay is in emu_work_counters' work). */
void emu_graph_counters(unsigned long long *graph_launches);

#ifdef __cplusplus
}
#endif

#endif
