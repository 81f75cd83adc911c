// capture_check.cpp — the emulator's stream capture (emu_runtime.cpp) against the rules of the
// real runtime that the captured training step relies on (the ctest emu_capture_rules):
//   - inside a capture work is recorded, not run; cudaGraphLaunch runs it in order, each time;
//   - kernel arguments are recorded by value, memory (a pinned staging buffer) is read at replay;
//   - the emulator's counts: recorded work counts when replayed, the graph launch apart;
//   - a host sync, cudaMalloc, a copy from pageable memory, work on the legacy stream, a wait on
//     an event recorded outside the capture fail, and the capture is invalidated;
//   - a stream joined through an event must be joined back before cudaStreamEndCapture;
//   - an event recorded inside a capture cannot be queried.
// Prints one line per check; exits 1 when any fails.
#include <cstdio>
#include <cstring>

#include "cuda_runtime.h"

static int fails = 0;

static void expect(bool ok, const char *what) {
    std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) fails++;
}

__global__ void k_add(float *x, float v, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += v;
}

__global__ void k_scale_by(float *x, const float *s, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= *s;
}

static bool all_equal(const float *x, int n, float v) {
    for (int i = 0; i < n; i++)
        if (x[i] != v) return false;
    return true;
}

int main() {
    const int n = 100;
    float *x = nullptr, *s_dev = nullptr, *stage = nullptr;
    cudaStream_t s, s2;
    cudaMalloc((void **)&x, n * sizeof(float));
    cudaMalloc((void **)&s_dev, sizeof(float));
    cudaMallocHost((void **)&stage, sizeof(float));
    cudaStreamCreate(&s);
    cudaStreamCreate(&s2);

    // 1. record, then replay twice: zero, +v (by value at capture), scale by the staged factor
    unsigned long long w0, y0, g0, w1, y1, g1;
    emu_work_counters(&w0, &y0);
    emu_graph_counters(&g0);
    float v = 2.0f;
    *stage = 3.0f;
    expect(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "begin capture");
    enum cudaStreamCaptureStatus cs;
    expect(cudaStreamIsCapturing(s, &cs) == cudaSuccess && cs == cudaStreamCaptureStatusActive, "the stream captures");
    cudaMemsetAsync(x, 0, n * sizeof(float), s);
    EMU_LAUNCH(k_add, 1, 128, 0, s)(x, v, n);
    cudaMemcpyAsync(s_dev, stage, sizeof(float), cudaMemcpyHostToDevice, s);
    EMU_LAUNCH(k_scale_by, 1, 128, 0, s)(x, s_dev, n);
    expect(cudaGetLastError() == cudaSuccess, "recorded launches report no error");
    v = 100.0f; // not what the recorded launch holds
    unsigned char raw[4];
    std::memcpy(raw, x, 4);
    expect(raw[0] == 0xff && raw[3] == 0xff, "nothing ran during the capture (fresh memory is still 0xff)");
    emu_work_counters(&w1, &y1);
    expect(w1 == w0 && y1 == y0, "recorded work is not counted as executed");
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    expect(cudaStreamEndCapture(s, &graph) == cudaSuccess && graph, "end capture gives a graph");
    expect(cudaGraphInstantiateWithFlags(&exec, graph, 0) == cudaSuccess, "instantiate");
    expect(cudaGraphLaunch(exec, s) == cudaSuccess, "launch");
    expect(all_equal(x, n, 6.0f), "replay: (0 + 2) * 3, the argument as recorded");
    *stage = 5.0f; // a replay reads the staging as it is then
    expect(cudaGraphLaunch(exec, s) == cudaSuccess && all_equal(x, n, 10.0f), "second replay: (0 + 2) * 5");
    emu_work_counters(&w1, &y1);
    emu_graph_counters(&g1);
    expect(w1 - w0 == 8 && y1 == y0 && g1 - g0 == 2, "each replay counts its 4 items, and 1 graph launch");
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    expect(cudaStreamIsCapturing(s, &cs) == cudaSuccess && cs == cudaStreamCaptureStatusNone, "capture over");

    // 2. a host sync inside the capture fails and invalidates it
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    EMU_LAUNCH(k_add, 1, 128, 0, s)(x, 1.0f, n);
    expect(cudaStreamSynchronize(s) == cudaErrorStreamCaptureUnsupported, "cudaStreamSynchronize in a capture fails");
    expect(cudaStreamIsCapturing(s, &cs) == cudaSuccess && cs == cudaStreamCaptureStatusInvalidated,
           "... and invalidates the capture");
    graph = nullptr;
    expect(cudaStreamEndCapture(s, &graph) == cudaErrorStreamCaptureInvalidated && !graph,
           "end capture then fails, no graph");
    expect(all_equal(x, n, 10.0f), "nothing of the failed capture ran");
    cudaGetLastError();

    // 3. other calls a capture forbids
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    void *p = nullptr;
    expect(cudaMalloc(&p, 64) == cudaErrorStreamCaptureUnsupported, "cudaMalloc in a capture fails");
    cudaStreamEndCapture(s, &graph);
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    float pageable = 1.0f;
    expect(cudaMemcpyAsync(s_dev, &pageable, sizeof(float), cudaMemcpyHostToDevice, s) ==
               cudaErrorStreamCaptureUnsupported,
           "a captured copy from pageable host memory fails");
    cudaStreamEndCapture(s, &graph);
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    expect(cudaDeviceSynchronize() == cudaErrorStreamCaptureUnsupported, "cudaDeviceSynchronize in a capture fails");
    cudaStreamEndCapture(s, &graph);
    cudaGetLastError();
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    EMU_LAUNCH(k_add, 1, 128, 0, nullptr)(x, 1.0f, n);
    expect(cudaGetLastError() == cudaErrorStreamCaptureImplicit, "work on the legacy stream during a capture fails");
    expect(cudaStreamEndCapture(s, &graph) == cudaErrorStreamCaptureInvalidated, "... and invalidates it");
    cudaGetLastError();

    // 4. a second stream joins through an event and must be joined back
    cudaEvent_t fork, join, outside;
    cudaEventCreate(&fork);
    cudaEventCreate(&join);
    cudaEventCreate(&outside);
    cudaEventRecord(outside, s2); // recorded outside any capture
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    expect(cudaStreamWaitEvent(s, outside, 0) == cudaErrorStreamCaptureIsolation,
           "a capturing stream waiting on an uncaptured event fails");
    cudaStreamEndCapture(s, &graph);
    cudaGetLastError();
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    cudaMemsetAsync(x, 0, n * sizeof(float), s);
    cudaEventRecord(fork, s);
    cudaStreamWaitEvent(s2, fork, 0);
    expect(cudaStreamIsCapturing(s2, &cs) == cudaSuccess && cs == cudaStreamCaptureStatusActive,
           "waiting on a captured event joins the capture");
    EMU_LAUNCH(k_add, 1, 128, 0, s2)(x, 4.0f, n);
    expect(cudaEventQuery(fork) == cudaErrorCapturedEvent, "an event recorded in a capture cannot be queried");
    expect(cudaStreamEndCapture(s, &graph) == cudaErrorStreamCaptureUnjoined && !graph,
           "end capture with the joined stream not joined back fails");
    cudaGetLastError();
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    cudaMemsetAsync(x, 0, n * sizeof(float), s);
    cudaEventRecord(fork, s);
    cudaStreamWaitEvent(s2, fork, 0);
    EMU_LAUNCH(k_add, 1, 128, 0, s2)(x, 4.0f, n);
    cudaEventRecord(join, s2);
    cudaStreamWaitEvent(s, join, 0);
    EMU_LAUNCH(k_add, 1, 128, 0, s)(x, 1.0f, n);
    expect(cudaStreamEndCapture(s, &graph) == cudaSuccess && graph, "joined back: end capture succeeds");
    expect(cudaGraphInstantiateWithFlags(&exec, graph, 0) == cudaSuccess && cudaGraphLaunch(exec, s) == cudaSuccess &&
               all_equal(x, n, 5.0f),
           "the replay runs both streams' work in order: 0 + 4 + 1");
    expect(cudaStreamIsCapturing(s2, &cs) == cudaSuccess && cs == cudaStreamCaptureStatusNone,
           "the joined stream left the capture with it");
    expect(cudaStreamWaitEvent(s2, fork, 0) == cudaErrorCapturedEvent,
           "waiting on an event recorded in a finished capture fails");
    cudaGetLastError();
    cudaEventRecord(fork, s); // recorded again outside: queryable again
    expect(cudaEventQuery(fork) == cudaSuccess, "re-recorded outside the capture, the event can be queried");
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);

    std::printf("%s\n", fails ? "capture_check: FAIL" : "capture_check: ok");
    return fails ? 1 : 0;
}
