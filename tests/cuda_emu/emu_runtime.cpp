// emu_runtime.cpp — the CUDA runtime and execution model of the CPU emulator (cuda_runtime.h).
//
// A launch runs its blocks one after another on the calling thread. The first launch of each
// kernel runs every thread of a block as a fiber (ucontext stacks, switched with
// _setjmp/_longjmp): a fiber runs until it reaches
// __syncthreads, __syncwarp or a shuffle, then the next fiber runs; a barrier releases once
// every thread still running has arrived (threads that returned no longer count, as on Volta
// and later). Kernels that never synchronised on their first launch run later launches as plain
// calls, thread after thread, which is much faster; one that then synchronises stops the
// program with a message (UNET_EMU_FIBERS=1 runs every launch with fibers).
//
// What this checks, and what it cannot: index arithmetic, accumulate-vs-overwrite, reads of
// memory nobody wrote (fresh device memory and dynamic shared memory are filled with NaN
// bytes), launch limits (block size, grid size, dynamic shared memory above the kernel's
// cudaFuncSetAttribute limit), barriers not reached by every thread (a deadlock is reported).
// Not: timing, real concurrency between blocks (races between blocks are invisible), memory
// limits, or anything the real cuBLAS/cuDNN/NCCL do differently from their shims (emu_libs.cpp).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <setjmp.h>
#include <ucontext.h>

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda_runtime.h"

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace {

const size_t FIBER_STACK = (size_t)256 << 10;
const int DEFAULT_DYN_SMEM = 48 << 10;   // without cudaFuncSetAttribute, as on a GPU
const int MAX_DYN_SMEM = 232448;         // H100/H200 opt-in limit per block
const size_t DEVICE_BYTES = (size_t)64 << 30;

[[noreturn]] void fatal(const char *msg) {
    fflush(stdout);
    fprintf(stderr, "cuda emulator: %s\n", msg);
    abort();
}

struct Barrier {
    int alive = 0, arrived = 0;
    unsigned long generation = 0;
};

// Per-thread state of the block being run.
struct Fiber {
    uint3 idx;
    int warp = 0, lane = 0;
    bool done = false, waiting = false;
    Barrier *waits_on = nullptr;
    unsigned long waits_for = 0; // the generation it arrived in
};

// A pooled execution context: its stack and where it stopped. Slot t runs thread t of every
// block; it is entered with makecontext/setcontext once in its life, and from then on every
// switch is _setjmp/_longjmp (no signal-mask system call, unlike swapcontext).
struct Slot {
    ucontext_t start;
    jmp_buf where;
    char *stack = nullptr;
    bool started = false;
};

// The one launch in progress (launches never nest, and the emulator is single-threaded).
struct Run {
    void (*body)(void *) = nullptr;
    void *ctx = nullptr;
    bool fiber_mode = false, synced = false;
    std::vector<Fiber> fibers;
    std::vector<Slot *> slots_pool;
    Barrier block;
    std::vector<Barrier> warps;
    std::vector<int> warp_lanes;
    std::vector<uint64_t> slots; // (threads) shuffle values
    jmp_buf scheduler;
    int current_t = -1;
    Fiber *current = nullptr;
    std::vector<unsigned char> shared;
} R;

cudaError_t last_error = cudaSuccess;
unsigned long long launches = 0, blocks_run = 0;
// What bench prints as launches_per_step and host_syncs_per_step, counted where it happens (see
// emu_work_counters): every kernel launch, queued memset/copy and work-queuing library call
// (emu_count_work from emu_libs.cpp), and every wait of the host for the device.
unsigned long long work_launches = 0, host_syncs = 0;
std::unordered_map<const void *, int> dyn_smem_limit; // cudaFuncSetAttribute
std::unordered_map<const void *, bool> kernel_syncs;  // synchronised on its first launch
bool env_flag(const char *name) {
    const char *e = getenv(name);
    return e && *e && strcmp(e, "0") != 0;
}
bool always_fibers() { return env_flag("UNET_EMU_FIBERS"); }
// UNET_EMU_REVERSE=1: blocks and threads run last to first. A result that depends on the order
// (a missing barrier, two threads or blocks writing one element, a block reading another
// block's output) then differs between the two orders; CI runs the op check both ways.
bool reverse_order() { return env_flag("UNET_EMU_REVERSE"); }

void release_if_complete(Barrier &b) {
    if (b.arrived > 0 && b.arrived == b.alive) {
        b.arrived = 0;
        b.generation++;
    }
}

// From a fiber: back to the scheduler; returns when the scheduler resumes this slot.
void yield_to_scheduler() {
    Slot *slot = R.slots_pool[R.current_t];
    if (_setjmp(slot->where) == 0) _longjmp(R.scheduler, 1);
}

void wait_at(Barrier &b) {
    if (!R.fiber_mode)
        fatal("a kernel synchronised (barrier or shuffle) on a launch after a first launch that did not; "
              "run with UNET_EMU_FIBERS=1");
    R.synced = true;
    b.arrived++;
    if (b.arrived == b.alive) { // the last to arrive releases everyone and goes on
        b.arrived = 0;
        b.generation++;
        return;
    }
    Fiber *f = R.current;
    f->waiting = true;
    f->waits_on = &b;
    f->waits_for = b.generation;
    yield_to_scheduler();
}

// Every slot's life: run the body as whichever thread the scheduler resumed it for, report the
// thread finished, wait to be resumed for the next block's thread, forever.
void slot_main() {
    for (;;) {
        R.body(R.ctx);
        Fiber *f = R.current;
        f->done = true;
        R.block.alive--;
        R.warps[f->warp].alive--;
        release_if_complete(R.block); // exited threads no longer hold a barrier back
        release_if_complete(R.warps[f->warp]);
        yield_to_scheduler();
    }
}

void resume(int t) {
    Slot *slot = R.slots_pool[t];
    R.current_t = t;
    R.current = &R.fibers[t];
    threadIdx = R.current->idx;
    if (_setjmp(R.scheduler) != 0) return; // the fiber yielded or finished
    if (slot->started) _longjmp(slot->where, 1);
    slot->started = true;
    setcontext(&slot->start); // first entry into slot_main
    fatal("setcontext failed");
}

void run_block_fibers(dim3 block) {
    int n = (int)(block.x * block.y * block.z), nw = (n + 31) / 32;
    while ((int)R.slots_pool.size() < n) {
        Slot *sl = new Slot();
        sl->stack = (char *)malloc(FIBER_STACK);
        if (!sl->stack) fatal("out of memory for fiber stacks");
        if (getcontext(&sl->start) != 0) fatal("getcontext failed");
        sl->start.uc_stack.ss_sp = sl->stack;
        sl->start.uc_stack.ss_size = FIBER_STACK;
        sl->start.uc_link = nullptr;
        makecontext(&sl->start, slot_main, 0);
        R.slots_pool.push_back(sl);
    }
    R.fibers.assign((size_t)n, Fiber());
    R.slots.assign((size_t)n, 0);
    R.block = Barrier();
    R.block.alive = n;
    R.warps.assign((size_t)nw, Barrier());
    R.warp_lanes.assign((size_t)nw, 0);
    for (int w = 0; w < nw; w++) R.warps[w].alive = R.warp_lanes[w] = (n - 32 * w < 32 ? n - 32 * w : 32);
    for (int t = 0; t < n; t++) {
        Fiber &f = R.fibers[t];
        f.idx = uint3{(unsigned)t % block.x, (unsigned)t / block.x % block.y, (unsigned)t / (block.x * block.y)};
        f.warp = t / 32;
        f.lane = t % 32;
    }
    int remaining = n;
    while (remaining > 0) {
        bool progress = false;
        for (int i = 0; i < n; i++) {
            int t = reverse_order() ? n - 1 - i : i;
            Fiber &f = R.fibers[t];
            if (f.done) continue;
            if (f.waiting) {
                if (f.waits_on->generation == f.waits_for) continue; // not released yet
                f.waiting = false;
            }
            resume(t);
            progress = true;
            if (f.done) remaining--;
        }
        if (!progress) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "deadlock in block (%u, %u, %u): %d thread(s) wait at a barrier that the others never reach",
                     blockIdx.x, blockIdx.y, blockIdx.z, remaining);
            fatal(msg);
        }
    }
    R.current = nullptr;
    R.current_t = -1;
}

cudaError_t set_error(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

} // namespace

namespace emu {

void syncthreads() { wait_at(R.block); }

void syncwarp() {
    if (!R.fiber_mode) wait_at(R.block); // reports the misclassified kernel
    wait_at(R.warps[R.current->warp]);
}

int lane() {
    if (R.current) return R.current->lane;
    return (int)((threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32);
}

uint64_t shuffle(uint64_t value, int src) {
    if (!R.fiber_mode) wait_at(R.block); // reports the misclassified kernel
    Fiber *f = R.current;
    int base = f->warp * 32, lanes = R.warp_lanes[f->warp];
    R.slots[base + f->lane] = value;
    wait_at(R.warps[f->warp]);
    uint64_t got = src >= 0 && src < lanes ? R.slots[base + src] : value; // out of range: own value
    wait_at(R.warps[f->warp]); // nobody overwrites a slot before everyone has read
    return got;
}

void *dynamic_shared() { return R.shared.data(); }

cudaError_t check_launch(const void *kernel, dim3 grid, dim3 block, size_t smem) {
    size_t threads = (size_t)block.x * block.y * block.z;
    if (!grid.x || !grid.y || !grid.z || !threads || block.x > 1024 || block.y > 1024 || block.z > 64 ||
        threads > 1024 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        return cudaErrorInvalidConfiguration;
    auto lim = dyn_smem_limit.find(kernel);
    if (smem > (size_t)(lim == dyn_smem_limit.end() ? DEFAULT_DYN_SMEM : lim->second))
        return cudaErrorInvalidConfiguration;
    return cudaSuccess;
}

void launch_error(cudaError_t e) { set_error(e); }

cudaError_t run_kernel(const void *kernel, dim3 grid, dim3 block, size_t smem, void (*body)(void *), void *ctx) {
    launches++;
    work_launches++;
    size_t threads = (size_t)block.x * block.y * block.z;
    if (cudaError_t e = check_launch(kernel, grid, block, smem); e != cudaSuccess) return set_error(e);
    R.body = body;
    R.ctx = ctx;
    R.synced = false;
    auto known = kernel_syncs.find(kernel);
    R.fiber_mode = always_fibers() || known == kernel_syncs.end() || known->second;
    R.shared.assign(smem ? smem : 1, 0xff); // NaN bytes: a read before any write shows
    blockDim = block;
    gridDim = grid;
    bool rev = reverse_order();
    size_t nblocks = (size_t)grid.x * grid.y * grid.z;
    for (size_t i = 0; i < nblocks; i++) {
        size_t b = rev ? nblocks - 1 - i : i;
        blockIdx = uint3{(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / ((size_t)grid.x * grid.y))};
        blocks_run++;
        if (R.fiber_mode) {
            run_block_fibers(block);
        } else {
            for (size_t j = 0; j < threads; j++) {
                size_t t = rev ? threads - 1 - j : j;
                threadIdx = uint3{(unsigned)(t % block.x), (unsigned)(t / block.x % block.y),
                                  (unsigned)(t / ((size_t)block.x * block.y))};
                body(ctx);
            }
        }
    }
    if (known == kernel_syncs.end()) kernel_syncs[kernel] = R.synced;
    return cudaSuccess;
}

} // namespace emu

// ---- stream capture -----------------------------------------------------------------------
//
// One capture at a time (the project captures one training step). A stream belongs to it from
// cudaStreamBeginCapture (the origin) or from waiting on an event recorded in it (a joined stream:
// NCCL's stream in the gradient buckets); work queued on its streams is appended to one list in
// call order, which is the order eager emulation would have run it in, and a graph replays that
// list. A joined stream must be joined back (the origin waits on an event recorded on it after its
// last work) before cudaStreamEndCapture, as on a GPU.

using Work = std::function<cudaError_t()>;

struct CUstream_st {
    bool in_capture = false; // a stream of the active capture
    bool rejoined = true;    // joined stream: no work since the origin last waited on it
    cudaEvent_t last_event = nullptr;
};
struct CUevent_st {
    unsigned long captured_in = 0; // id of the capture the event was last recorded in (0: none)
    cudaStream_t stream = nullptr; // where it was last recorded
};
struct CUgraph_st {
    std::vector<Work> items;
};
struct CUgraphExec_st {
    std::vector<Work> items;
};

namespace {

struct Capture {
    unsigned long id = 0; // 0: no capture active
    cudaStream_t origin = nullptr;
    cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
    pthread_t thread;
    cudaError_t error = cudaSuccess; // set once invalidated
    std::vector<Work> items;
    std::set<cudaStream_t> streams;
} cap;
unsigned long next_capture_id = 1;
unsigned long long graph_launches = 0;
bool replaying = false; // inside cudaGraphLaunch
std::mutex pinned_mu; // cudaMallocHost may run on the loader's threads
std::map<const char *, size_t> pinned;

// Is this thread barred from unsafe calls (syncs, cudaMalloc, ...) by the active capture?
bool restricted_here() {
    if (!cap.id || cap.mode == cudaStreamCaptureModeRelaxed) return false;
    return cap.mode == cudaStreamCaptureModeGlobal || pthread_equal(cap.thread, pthread_self());
}

// An illegal call inside a capture: said loudly (the caller's check macro then dies with the
// error), and the capture is invalidated as the real runtime does.
cudaError_t capture_violation(cudaError_t e, const char *what) {
    fflush(stdout);
    fprintf(stderr, "cuda emulator: %s during a stream capture (%s): the capture is invalidated\n", what,
            cudaGetErrorString(e));
    if (cap.id && cap.error == cudaSuccess) cap.error = cudaErrorStreamCaptureInvalidated;
    return set_error(e);
}

// A host sync, synchronous copy, allocation or free: refused while this thread captures.
cudaError_t unsafe_call(const char *what) {
    if (restricted_here()) return capture_violation(cudaErrorStreamCaptureUnsupported, what);
    return cudaSuccess;
}

bool is_pinned(const void *p, size_t n) {
    std::lock_guard<std::mutex> lock(pinned_mu);
    auto it = pinned.upper_bound((const char *)p);
    if (it == pinned.begin()) return false;
    --it;
    return (const char *)p + n <= it->first + it->second;
}

void leave_capture() {
    for (cudaStream_t s : cap.streams) {
        s->in_capture = false;
        s->rejoined = true;
        s->last_event = nullptr;
    }
    cap.streams.clear();
    cap.items.clear();
    cap.id = 0;
    cap.origin = nullptr;
    cap.error = cudaSuccess;
}

} // namespace

namespace emu {

bool capturing(cudaStream_t s) {
    if (replaying) return false; // a graph's items run now, whatever their stream does since
    if (s) return s->in_capture;
    if (cap.id && restricted_here())
        capture_violation(cudaErrorStreamCaptureImplicit, "work queued on the legacy default stream (NULL)");
    return false;
}

cudaError_t record(cudaStream_t s, Work work) {
    if (!s || !s->in_capture) return cudaErrorInvalidValue;
    if (cap.error != cudaSuccess) return cap.error;
    s->rejoined = s == cap.origin;
    cap.items.push_back(std::move(work));
    return cudaSuccess;
}

} // namespace emu

// ---- the runtime API ----------------------------------------------------------------------

extern "C" {

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (emulator: launch limits)";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorIllegalState: return "operation not permitted in the current state (emulator: capture)";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulator: a recorded work item failed)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureMerge: return "operation would result in a merge of separate capture sequences";
    case cudaErrorStreamCaptureUnmatched: return "capture was not ended in the same stream as it began";
    case cudaErrorStreamCaptureUnjoined: return "capturing stream has unjoined work";
    case cudaErrorStreamCaptureIsolation: return "dependency created on uncaptured work in another stream";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorCapturedEvent: return "operation not permitted on an event last recorded in a capturing stream";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
    default: break;
    }
    return "unknown error";
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return set_error(device == 0 ? cudaSuccess : cudaErrorInvalidDevice); }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
    if (device != 0) return set_error(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "CPU emulator (tests/cuda_emu), not a GPU");
    prop->totalGlobalMem = DEVICE_BYTES;
    prop->sharedMemPerBlock = DEFAULT_DYN_SMEM;
    prop->sharedMemPerBlockOptin = MAX_DYN_SMEM;
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
    if (device != 0) return set_error(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = MAX_DYN_SMEM; return cudaSuccess;
    }
    return set_error(cudaErrorInvalidValue);
}

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value > MAX_DYN_SMEM)
        return set_error(cudaErrorInvalidValue);
    dyn_smem_limit[func] = value;
    return cudaSuccess;
}

cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *attr, const void *func) {
    if (!attr || !func) return set_error(cudaErrorInvalidValue);
    auto lim = dyn_smem_limit.find(func);
    attr->maxDynamicSharedSizeBytes = lim == dyn_smem_limit.end() ? DEFAULT_DYN_SMEM : lim->second;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    if (cudaError_t e = unsafe_call("cudaDeviceSynchronize (a host sync)")) return e;
    host_syncs++;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = DEVICE_BYTES;
    *total_bytes = DEVICE_BYTES;
    return cudaSuccess;
}

// Fresh device memory is NaN bytes, not zeros: code that reads what it never wrote fails.
cudaError_t cudaMalloc(void **ptr, size_t size) {
    if (cudaError_t e = unsafe_call("cudaMalloc")) return e;
    size_t bytes = (size ? size : 1) + 255;
    bytes -= bytes % 256;
    void *p = aligned_alloc(256, bytes);
    if (!p) return set_error(cudaErrorMemoryAllocation);
    memset(p, 0xff, bytes);
    *ptr = p;
    return cudaSuccess;
}
cudaError_t cudaFree(void *ptr) {
    if (cudaError_t e = unsafe_call("cudaFree")) return e;
    free(ptr);
    return cudaSuccess;
}
// Pinned allocations are remembered: a captured copy from or to pageable host memory is refused.
cudaError_t cudaMallocHost(void **ptr, size_t size) {
    cudaError_t e = cudaMalloc(ptr, size);
    if (e == cudaSuccess) {
        std::lock_guard<std::mutex> lock(pinned_mu);
        pinned[(const char *)*ptr] = size ? size : 1;
    }
    return e;
}
cudaError_t cudaFreeHost(void *ptr) {
    if (cudaError_t e = unsafe_call("cudaFreeHost")) return e;
    {
        std::lock_guard<std::mutex> lock(pinned_mu);
        pinned.erase((const char *)ptr);
    }
    return cudaFree(ptr);
}

// The synchronous forms are host syncs (the host waits for the copy); the Async forms queue work.
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
    (void)kind;
    if (cudaError_t e = unsafe_call("cudaMemcpy (synchronous: a host sync)")) return e;
    host_syncs++;
    if (count) memmove(dst, src, count);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream) {
    if (emu::capturing(stream)) {
        // A graph's copy node reads and writes the host buffer at each replay: it must be pinned.
        if ((kind == cudaMemcpyHostToDevice && !is_pinned(src, count)) ||
            (kind == cudaMemcpyDeviceToHost && !is_pinned(dst, count)))
            return capture_violation(cudaErrorStreamCaptureUnsupported,
                                     "cudaMemcpyAsync from or to pageable host memory");
        return set_error(emu::record(stream, [=]() {
            work_launches++;
            if (count) memmove(dst, src, count);
            return cudaSuccess;
        }));
    }
    work_launches++;
    if (count) memmove(dst, src, count);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *dst, int value, size_t count) {
    if (cudaError_t e = unsafe_call("cudaMemset (synchronous)")) return e;
    host_syncs++;
    if (count) memset(dst, value, count);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *dst, int value, size_t count, cudaStream_t stream) {
    if (emu::capturing(stream))
        return set_error(emu::record(stream, [=]() {
            work_launches++;
            if (count) memset(dst, value, count);
            return cudaSuccess;
        }));
    work_launches++;
    if (count) memset(dst, value, count);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) {
    *stream = new CUstream_st();
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    (void)flags;
    return cudaStreamCreate(stream);
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (stream && stream->in_capture) return capture_violation(cudaErrorStreamCaptureUnsupported, "cudaStreamDestroy of a capturing stream");
    delete stream;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (stream && stream->in_capture)
        return capture_violation(cudaErrorStreamCaptureUnsupported, "cudaStreamSynchronize of a capturing stream");
    if (cudaError_t e = unsafe_call("cudaStreamSynchronize (a host sync)")) return e;
    host_syncs++;
    return cudaSuccess;
}
// Inside a capture this is how a second stream joins it (an event recorded in the capture), and
// how the origin joins it back; a wait on an event recorded outside the capture is refused.
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
    (void)flags;
    if (!event) return set_error(cudaErrorInvalidValue);
    const bool ev_captured = cap.id && event->captured_in == cap.id;
    const bool s_captures = stream && stream->in_capture;
    if (event->captured_in && !ev_captured) { // recorded in a capture that has ended: no point of any stream
        fprintf(stderr, "cuda emulator: cudaStreamWaitEvent on an event last recorded in an earlier stream capture\n");
        return set_error(cudaErrorCapturedEvent);
    }
    if (!ev_captured && !s_captures) return cudaSuccess; // eager: the event is already complete here
    if (!ev_captured)
        return capture_violation(cudaErrorStreamCaptureIsolation,
                                 "a capturing stream waits on an event recorded outside the capture");
    if (!stream) return capture_violation(cudaErrorStreamCaptureImplicit, "the legacy stream waits on a captured event");
    if (cap.error != cudaSuccess) return set_error(cap.error);
    if (!s_captures) { // joins the capture
        stream->in_capture = true;
        stream->rejoined = false;
        stream->last_event = nullptr;
        cap.streams.insert(stream);
        return cudaSuccess;
    }
    cudaStream_t from = event->stream;
    if (from != stream && from && from->last_event == event) from->rejoined = true;
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *event) {
    *event = new CUevent_st();
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags) {
    (void)flags;
    return cudaEventCreate(event);
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
    delete event;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    if (!event) return set_error(cudaErrorInvalidValue);
    if (emu::capturing(stream)) {
        if (cap.error != cudaSuccess) return set_error(cap.error);
        event->captured_in = cap.id;
        event->stream = stream;
        stream->last_event = event;
        return cudaSuccess;
    }
    event->captured_in = 0;
    event->stream = stream;
    return cudaSuccess;
}
// An event last recorded inside a capture is no point of any stream: querying or waiting for it
// fails (cudaErrorCapturedEvent) until it is recorded again outside a capture.
cudaError_t cudaEventQuery(cudaEvent_t event) {
    if (!event) return set_error(cudaErrorInvalidValue);
    if (event->captured_in) {
        fprintf(stderr, "cuda emulator: cudaEventQuery of an event last recorded in a stream capture\n");
        return set_error(cudaErrorCapturedEvent);
    }
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (!event) return set_error(cudaErrorInvalidValue);
    if (event->captured_in) return capture_violation(cudaErrorCapturedEvent, "cudaEventSynchronize of a captured event");
    if (cudaError_t e = unsafe_call("cudaEventSynchronize (a host sync)")) return e;
    host_syncs++;
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
    if (!stream) return set_error(cudaErrorStreamCaptureUnsupported); // the legacy stream cannot capture
    if (cap.id) {
        fprintf(stderr, "cuda emulator: cudaStreamBeginCapture while a capture is active (one at a time here)\n");
        return set_error(stream->in_capture ? cudaErrorIllegalState : cudaErrorStreamCaptureUnsupported);
    }
    cap.id = next_capture_id++;
    cap.origin = stream;
    cap.mode = mode;
    cap.thread = pthread_self();
    cap.error = cudaSuccess;
    cap.items.clear();
    cap.streams = {stream};
    stream->in_capture = true;
    stream->rejoined = true;
    stream->last_event = nullptr;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *pGraph) {
    if (!pGraph) return set_error(cudaErrorInvalidValue);
    *pGraph = nullptr;
    if (!cap.id || !stream || !stream->in_capture) return set_error(cudaErrorIllegalState);
    if (stream != cap.origin) {
        fprintf(stderr, "cuda emulator: cudaStreamEndCapture on a stream that joined the capture, not its origin\n");
        leave_capture();
        return set_error(cudaErrorStreamCaptureUnmatched);
    }
    if (cap.mode != cudaStreamCaptureModeRelaxed && !pthread_equal(cap.thread, pthread_self())) {
        leave_capture();
        return set_error(cudaErrorStreamCaptureWrongThread);
    }
    cudaError_t e = cap.error;
    if (e == cudaSuccess)
        for (cudaStream_t s : cap.streams)
            if (s != cap.origin && !s->rejoined) {
                fprintf(stderr, "cuda emulator: cudaStreamEndCapture: a stream joined the capture and was not joined "
                                "back (record an event on it after its last work and make the origin wait on it)\n");
                e = cudaErrorStreamCaptureUnjoined;
            }
    if (e == cudaSuccess) {
        *pGraph = new CUgraph_st();
        (*pGraph)->items = std::move(cap.items);
    }
    leave_capture();
    return set_error(e);
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *pCaptureStatus) {
    if (!pCaptureStatus) return set_error(cudaErrorInvalidValue);
    if (!stream) { // the legacy stream: asking it while another stream captures is an implicit sync
        *pCaptureStatus = cudaStreamCaptureStatusNone;
        return cap.id && restricted_here() ? set_error(cudaErrorStreamCaptureImplicit) : cudaSuccess;
    }
    *pCaptureStatus = !stream->in_capture ? cudaStreamCaptureStatusNone
                      : cap.error != cudaSuccess ? cudaStreamCaptureStatusInvalidated
                                                 : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *pGraphExec, cudaGraph_t graph, unsigned long long flags) {
    if (!pGraphExec || !graph || flags) return set_error(cudaErrorInvalidValue);
    *pGraphExec = new CUgraphExec_st();
    (*pGraphExec)->items = graph->items;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *pGraphExec, cudaGraph_t graph, unsigned long long flags) {
    return cudaGraphInstantiateWithFlags(pGraphExec, graph, flags);
}

// Runs the recording in order; each item counts itself (a kernel, copy or library call), the
// launch is counted apart (emu_graph_counters).
cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream) {
    if (!graphExec) return set_error(cudaErrorInvalidValue);
    if (emu::capturing(stream))
        return capture_violation(cudaErrorStreamCaptureUnsupported, "cudaGraphLaunch into a capturing stream (not emulated)");
    graph_launches++;
    size_t i = 0;
    for (Work &w : graphExec->items) {
        replaying = true;
        cudaError_t e = w();
        replaying = false;
        if (e != cudaSuccess) {
            fprintf(stderr, "cuda emulator: cudaGraphLaunch: recorded work item %zu of %zu failed (%s)\n", i,
                    graphExec->items.size(), cudaGetErrorString(e));
            return set_error(e);
        }
        i++;
    }
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t graphExec) {
    delete graphExec;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}

void emu_counters(unsigned long long *n_launches, unsigned long long *n_blocks) {
    *n_launches = launches;
    *n_blocks = blocks_run;
}

void emu_count_work(void) { work_launches++; }

void emu_graph_counters(unsigned long long *n_graph_launches) { *n_graph_launches = graph_launches; }

void emu_work_counters(unsigned long long *n_work, unsigned long long *n_syncs) {
    *n_work = work_launches;
    *n_syncs = host_syncs;
}

} // extern "C"
