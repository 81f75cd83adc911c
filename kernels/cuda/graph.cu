// graph.cu — the training step captured once as a CUDA graph and replayed (Backend.capture_begin,
// capture_end, replay, capture_drop; the driver is src/train/step_graph.c).
//
// Between capture_begin and capture_end every op, queued copy and library call on the backend's
// stream (and on a stream joined to it through an event: NCCL's, for the gradient buckets) is
// recorded instead of run; replay queues the whole recording with one cudaGraphLaunch. What a
// recorded step reads must therefore be at fixed addresses and change only through memory: the
// per-step values (batch, drop-path scales, Adam's terms) are uploaded by recorded copies from
// pinned staging buffers that the host rewrites before each replay.
//
// The capture is thread-local: only this thread is barred from syncs and allocations meanwhile
// (the loader's threads and the NCCL watchdog go on). Any illegal call inside the capture fails
// its check macro at once; an error from cudaStreamEndCapture or the instantiation is returned
// with its reason, nothing of the step having run, for the caller to run it eagerly.
#include <stdio.h>

#include "cuda_internal.h"

static void graph_free(CudaState *st) {
    if (st->graph) CUDA_CHECK(cudaGraphExecDestroy(st->graph));
    st->graph = NULL;
}

int cuda_capture_begin(Backend *be, char *why, size_t why_len) {
    CudaState *st = cuda_state(be);
    graph_free(st);
    // Label checks pending from eager work would be reported by the sync the capture may not make.
    if (st->n_label_checks) {
        CUDA_SYNC(cudaStreamSynchronize(st->stream));
        cuda_label_report(st);
    }
    cudaError_t e = cudaStreamBeginCapture(st->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        cudaGetLastError(); // not sticky: the eager step goes on
        snprintf(why, why_len, "cudaStreamBeginCapture failed: %s", cudaGetErrorString(e));
        return -1;
    }
    st->capturing = 1;
    st->capture_from = unet_work_count.launches;
    return 0;
}

int cuda_capture_end(Backend *be, char *why, size_t why_len) {
    CudaState *st = cuda_state(be);
    CHECK(st->capturing, "capture_end without capture_begin");
    st->capturing = 0;
    // What the macros counted since capture_begin was recorded, not run: it counts at each replay.
    const unsigned long long items = unet_work_count.launches - st->capture_from;
    unet_work_count.launches = st->capture_from;
    const int n_labels = st->n_label_checks;
    st->n_label_checks = 0; // the recorded checks have not run: nothing to report until a replay
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(st->stream, &g);
    if (e == cudaSuccess) {
        e = cudaGraphInstantiateWithFlags(&st->graph, g, 0);
        if (e != cudaSuccess) st->graph = NULL;
        CUDA_CHECK(cudaGraphDestroy(g)); // the executable graph keeps what it needs
        if (e != cudaSuccess) snprintf(why, why_len, "cudaGraphInstantiateWithFlags failed: %s", cudaGetErrorString(e));
    } else {
        snprintf(why, why_len, "cudaStreamEndCapture failed: %s", cudaGetErrorString(e));
    }
    if (e != cudaSuccess) {
        cudaGetLastError(); // not sticky: the caller runs the step eagerly
        return -1;
    }
    st->graph_launches = items;
    st->graph_gen = st->mem_gen;
    st->graph_n_labels = n_labels;
    for (int i = 0; i < n_labels; i++) {
        st->graph_label_ptr[i] = st->label_ptr[i];
        st->graph_label_K[i] = st->label_K[i];
    }
    return 0;
}

int cuda_replay(Backend *be) {
    CudaState *st = cuda_state(be);
    if (!st->graph) return -1;
    if (st->graph_gen != st->mem_gen) { // memory it refers to was freed or moved
        graph_free(st);
        return -1;
    }
    // The slots the recorded checks write must be free: report what eager work left pending.
    if (st->n_label_checks) {
        CUDA_SYNC(cudaStreamSynchronize(st->stream));
        cuda_label_report(st);
    }
    CUDA_GRAPH_LAUNCH(st->graph, st->stream, st->graph_launches);
    st->n_label_checks = st->graph_n_labels;
    for (int i = 0; i < st->graph_n_labels; i++) {
        st->label_ptr[i] = st->graph_label_ptr[i];
        st->label_K[i] = st->graph_label_K[i];
    }
    return 0;
}

void cuda_capture_drop(Backend *be) { graph_free(cuda_state(be)); }
