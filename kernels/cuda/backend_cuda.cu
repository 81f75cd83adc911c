// backend_cuda.cu — the CUDA backend: device memory, one stream, library handles, one growable
// workspace, and the op table. The ops live in the other .cu files of kernels/cuda/, one per
// family (see cuda_internal.h). The precision mode chosen at creation (fp32 | tf32 | bf16,
// CudaPrecision) decides how cuBLAS(Lt) and cuDNN multiply and how activations are stored: fp32 and
// tf32 store Acts as float (fp32 tells the libraries not to use TF32, so the backend can be
// compared with the CPU reference at fp32 tolerances; tf32 lets them); bf16 stores Acts as bf16
// (be->act_bytes = 2, act.cuh), multiplies bf16 operands with fp32 accumulation in cuBLAS and
// convolves fp32 copies in TF32 in cuDNN. Parameters, their gradients and the optimiser state are
// float in every mode.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "act.cuh"
#include "tune.h"

void *cuda_workspace(Backend *be, size_t bytes) {
    CudaState *st = cuda_state(be);
    if (bytes > st->workspace_bytes) {
        cuda_not_capturing(st, "the workspace grows");
        // Earlier kernels may still read the old buffer: wait for them before freeing it.
        CUDA_SYNC(cudaStreamSynchronize(st->stream));
        cuda_label_report(st);
        if (st->workspace) CUDA_CHECK(cudaFree(st->workspace));
        st->mem_gen++; // a recorded step that used the old buffer may not replay (graph.cu)
        st->live_bytes -= st->workspace_bytes;
        st->workspace = NULL, st->workspace_bytes = 0;
        size_t grown = bytes + bytes / 4; // headroom: avoid regrowing by a few bytes each call
        cudaError_t e = cudaMalloc(&st->workspace, grown);
        if (e != cudaSuccess)
            die("CUDA device %d: out of memory growing the workspace to %zu bytes (%s)", st->device, grown,
                cudaGetErrorString(e));
        st->workspace_bytes = grown;
        st->live_bytes += grown;
        if (st->live_bytes > st->peak_bytes) st->peak_bytes = st->live_bytes;
    }
    return st->workspace;
}

// cudaMalloc has no size query, so the live/peak byte counter (bench's "peak memory") keeps a
// small side table of allocation sizes keyed by pointer, placed after CudaState in be->impl.
typedef struct {
    void *p;
    size_t bytes;
} AllocRec;
typedef struct {
    AllocRec *v;
    size_t n, cap;
} AllocTable;

static AllocTable *alloc_table(Backend *be) { return (AllocTable *)((char *)be->impl + sizeof(CudaState)); }

static void *cu_alloc(Backend *be, size_t bytes) {
    CudaState *st = cuda_state(be);
    cuda_not_capturing(st, "a device allocation");
    void *p = NULL;
    size_t sz = bytes ? bytes : 256;
    cudaError_t e = cudaMalloc(&p, sz);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        die("CUDA device %d: out of memory allocating %zu bytes (%zu MiB free of %zu MiB; %s)", st->device, bytes,
            free_b >> 20, total_b >> 20, cudaGetErrorString(e));
    }
    CUDA_WORK(cudaMemsetAsync(p, 0, sz, st->stream));
    AllocTable *t = alloc_table(be);
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->v = (AllocRec *)realloc(t->v, t->cap * sizeof(AllocRec));
        if (!t->v) die("out of host memory");
    }
    t->v[t->n].p = p;
    t->v[t->n].bytes = sz;
    t->n++;
    st->live_bytes += sz;
    if (st->live_bytes > st->peak_bytes) st->peak_bytes = st->live_bytes;
    return p;
}

static void cu_release(Backend *be, void *ptr) {
    if (!ptr) return;
    CudaState *st = cuda_state(be);
    cuda_not_capturing(st, "a device release");
    if (ptr == (void *)st->wsrc) st->wsrc = NULL; // its weights_prepare copy goes with it
    // Kernels queued on the stream may still use it.
    CUDA_SYNC(cudaStreamSynchronize(st->stream));
    cuda_label_report(st);
    CUDA_CHECK(cudaFree(ptr));
    st->mem_gen++; // a recorded step may refer to it (graph.cu)
    AllocTable *t = alloc_table(be);
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].p == ptr) {
            st->live_bytes -= t->v[i].bytes;
            t->v[i] = t->v[--t->n];
            break;
        }
}

// A write into the weights_prepare range makes its copy stale: forget it (the next
// weights_prepare makes a new one; until then the linears round per call, as without one). A
// recorded step may rely on the copy being rewritten by Adam alone (its weights_prepare converted
// nothing at capture): it must not be replayed after such a write, so the generation moves on.
static void weights_touch(CudaState *st, const void *dst, size_t bytes) {
    const char *a = (const char *)st->wsrc, *d = (const char *)dst;
    if (a && bytes && d < a + st->wn * sizeof(float) && a < d + bytes) {
        st->wsrc = NULL;
        st->wfresh = 0;
        st->mem_gen++;
    }
}

static void cu_upload(Backend *be, void *dst, const void *src_host, size_t bytes) {
    CudaState *st = cuda_state(be);
    weights_touch(st, dst, bytes);
    if (!bytes) return;
    // Synchronous w.r.t. the host buffer (it may be reused at once); ordered on our stream.
    CUDA_WORK(cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice, st->stream));
    CUDA_SYNC(cudaStreamSynchronize(st->stream));
    cuda_label_report(st);
}

// Queued: the caller keeps src_host unchanged until the stream passes this point (backend.h).
// From pinned memory this is a DMA that overlaps with kernels already queued; from pageable
// memory the driver stages it and returns once the source is copied, which is also safe.
static void cu_upload_async(Backend *be, void *dst, const void *src_host, size_t bytes) {
    weights_touch(cuda_state(be), dst, bytes);
    if (bytes) CUDA_WORK(cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice, cuda_state(be)->stream));
}

static void cu_download(Backend *be, void *dst_host, const void *src, size_t bytes) {
    CudaState *st = cuda_state(be);
    if (!bytes) return;
    CUDA_WORK(cudaMemcpyAsync(dst_host, src, bytes, cudaMemcpyDeviceToHost, st->stream));
    CUDA_SYNC(cudaStreamSynchronize(st->stream));
    cuda_label_report(st);
}

static void cu_zero(Backend *be, void *dst, size_t bytes) {
    weights_touch(cuda_state(be), dst, bytes);
    if (bytes) CUDA_WORK(cudaMemsetAsync(dst, 0, bytes, cuda_state(be)->stream));
}

static void cu_copy(Backend *be, void *dst, const void *src, size_t bytes) {
    weights_touch(cuda_state(be), dst, bytes);
    if (bytes) CUDA_WORK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_state(be)->stream));
}

static void cu_synchronize(Backend *be) {
    CUDA_SYNC(cudaStreamSynchronize(cuda_state(be)->stream));
    cuda_label_report(cuda_state(be));
}

// Pinned: a queued copy from it is a DMA, and a recorded copy may read it at every replay.
static void *cu_host_alloc(Backend *be, size_t bytes) {
    (void)be;
    void *p = NULL;
    CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 64));
    memset(p, 0, bytes ? bytes : 64);
    return p;
}

static void cu_host_free(Backend *be, void *ptr) {
    if (!ptr) return;
    CUDA_SYNC(cudaStreamSynchronize(cuda_state(be)->stream)); // queued copies may still read it
    cuda_label_report(cuda_state(be));
    CUDA_CHECK(cudaFreeHost(ptr));
    cuda_state(be)->mem_gen++;
}

static void cu_destroy(Backend *be) {
    CudaState *st = cuda_state(be);
    CUDA_SYNC(cudaStreamSynchronize(st->stream));
    cuda_capture_drop(be);
    if (st->workspace) CUDA_CHECK(cudaFree(st->workspace));
    if (st->wshadow) CUDA_CHECK(cudaFree(st->wshadow));
    CUDA_CHECK(cudaFreeHost(st->host_scalar));
    CUDA_CHECK(cudaFreeHost(st->label_bad));
    CUDA_CHECK(cudaFree(st->arrivals));
    CUBLAS_CHECK(cublasDestroy(st->cublas));
    cuda_lt_free(st);
    if (st->cublaslt) CUBLAS_CHECK(cublasLtDestroy(st->cublaslt));
    if (st->lt_workspace) CUDA_CHECK(cudaFree(st->lt_workspace));
    CUDNN_CHECK(cudnnDestroy(st->cudnn));
    CUDA_CHECK(cudaStreamDestroy(st->stream));
    free(st->algos);
    cuda_tune_free(be);
    free(alloc_table(be)->v);
    free(be->impl);
    free(be);
}

extern "C" int cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no driver" error
        return 0;
    }
    return n;
}

extern "C" void *cuda_pinned_alloc(void *ctx, size_t bytes) {
    (void)ctx;
    void *p = NULL;
    CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 64));
    return p;
}

extern "C" void cuda_pinned_free(void *ctx, void *ptr) {
    (void)ctx;
    if (ptr) CUDA_CHECK(cudaFreeHost(ptr));
}

extern "C" size_t backend_cuda_peak_bytes(Backend *be) { return cuda_state(be)->peak_bytes; }

extern "C" int backend_cuda_runtime_counts(unsigned long long *launches, unsigned long long *syncs,
                                           unsigned long long *graph_launches) {
#ifdef UNET_CUDA_EMULATOR
    emu_work_counters(launches, syncs);
    emu_graph_counters(graph_launches);
    return 1;
#else
    *launches = *syncs = *graph_launches = 0;
    return 0;
#endif
}

extern "C" const char *backend_cuda_precision(Backend *be) { return cuda_precision_name(cuda_state(be)->precision); }

extern "C" Backend *backend_cuda_create(int device, const char *precision) {
    CudaPrecision prec = CUDA_PREC_FP32;
    if (precision && !strcmp(precision, "fp32")) prec = CUDA_PREC_FP32;
    else if (precision && !strcmp(precision, "tf32")) prec = CUDA_PREC_TF32;
    else if (precision && !strcmp(precision, "bf16")) prec = CUDA_PREC_BF16;
    else die("CUDA backend: precision '%s' is not one of fp32, tf32, bf16", precision ? precision : "(null)");
    int n = cuda_device_count();
    if (device < 0 || device >= n)
        die("CUDA device %d requested, but this process sees %d device(s) (CUDA_VISIBLE_DEVICES=%s)", device, n,
            getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "unset");
    CUDA_CHECK(cudaSetDevice(device));
    Backend *be = (Backend *)xcalloc(1, sizeof(Backend));
    be->impl = xcalloc(1, sizeof(CudaState) + sizeof(AllocTable));
    CudaState *st = cuda_state(be);
    st->device = device;
    st->precision = prec;
    CUDA_CHECK(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&st->cublas));
    CUBLAS_CHECK(cublasSetStream(st->cublas, st->stream));
    // fp32: plain fp32 FMA (cublasSgemm), no TF32 tensor-core rounding in the exact-comparison
    // mode. tf32/bf16: the default math mode, so that nothing at the handle level second-guesses
    // the compute type each cublasGemmEx call names (linear_cublas.cu).
    CUBLAS_CHECK(cublasSetMathMode(st->cublas, prec == CUDA_PREC_FP32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH));
    // tf32/bf16: the linears run as cuBLASLt matmuls with the bias in their epilogue
    // (linear_cublas.cu); its workspace is allocated here, once, so that no step allocates for it.
    // fp32 keeps cublasSgemm under the pedantic math mode above (the exact-comparison path).
    if (prec != CUDA_PREC_FP32) {
        CUBLAS_CHECK(cublasLtCreate(&st->cublaslt));
        CUDA_CHECK(cudaMalloc(&st->lt_workspace, CUDA_LT_WORKSPACE));
        st->live_bytes = st->peak_bytes = CUDA_LT_WORKSPACE;
    }
    CUDNN_CHECK(cudnnCreate(&st->cudnn));
    CUDNN_CHECK(cudnnSetStream(st->cudnn, st->stream));
    CUDA_CHECK(cudaMallocHost((void **)&st->host_scalar, 4 * sizeof(double)));
    CUDA_CHECK(cudaMallocHost((void **)&st->label_bad, CUDA_LABEL_CHECKS * sizeof(int)));
    CUDA_CHECK(cudaMalloc((void **)&st->arrivals, CUDA_ARRIVALS * sizeof(unsigned)));
    // once, before any step: not a step's work (every finisher resets the counters it consumed)
    CUDA_CHECK(cudaMemset(st->arrivals, 0, CUDA_ARRIVALS * sizeof(unsigned)));

    be->name = "cuda";
    be->queue = st->stream; // transports order their work against it (comm/comm_nccl.c)
    be->act_bytes = prec == CUDA_PREC_BF16 ? sizeof(bf16) : sizeof(float); // 2 or 4 (act.cuh)
    be->alloc = cu_alloc;
    be->release = cu_release;
    be->upload = cu_upload;
    be->upload_async = cu_upload_async;
    be->download = cu_download;
    be->zero = cu_zero;
    be->copy = cu_copy;
    be->synchronize = cu_synchronize;
    be->destroy = cu_destroy;
    be->host_alloc = cu_host_alloc;
    be->host_free = cu_host_free;
    be->capture_begin = cuda_capture_begin;
    be->capture_end = cuda_capture_end;
    be->replay = cuda_replay;
    be->capture_drop = cuda_capture_drop;

    // every op of backend_ops.h: be->op = cu_op
#define CUDA_OP_ENTRY(name, params, args) be->name = cu_##name;
    UNET_BACKEND_OPS(CUDA_OP_ENTRY)
#undef CUDA_OP_ENTRY
    return be;
}
