/* backend_cpu.c — the CPU reference backend: host memory, one growable workspace,
 * and the op table. The ops themselves live in the other files of kernels/cpu/. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"

typedef struct {
    void *workspace;
    size_t workspace_bytes;
} CpuState;

static void *cpu_alloc(Backend *be, size_t bytes) {
    (void)be;
    /* 64-byte alignment keeps SIMD loads aligned; calloc semantics (zero-filled). */
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) die("out of host memory allocating %zu bytes", bytes);
    memset(p, 0, rounded);
    return p;
}

static void cpu_release(Backend *be, void *ptr) {
    (void)be;
    free(ptr);
}

static void cpu_memcpy(Backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memcpy(dst, src, bytes);
}

static void cpu_zero(Backend *be, void *dst, size_t bytes) {
    (void)be;
    if (bytes) memset(dst, 0, bytes);
}

static void cpu_synchronize(Backend *be) { (void)be; }

/* Acts are floats here, so both conversions are plain copies. */
void cpu_act_from_f32(Backend *be, Act *out /* (n) */, const float *in /* (n) */, size_t n) {
    (void)be;
    if (n) memcpy(out, in, n * sizeof(float));
}

void cpu_act_to_f32(Backend *be, float *out /* (n) */, const Act *in /* (n) */, size_t n) {
    (void)be;
    if (n) memcpy(out, in, n * sizeof(float));
}

void *cpu_workspace(Backend *be, size_t bytes) {
    CpuState *st = be->impl;
    if (bytes > st->workspace_bytes) {
        free(st->workspace);
        st->workspace = cpu_alloc(be, bytes);
        st->workspace_bytes = bytes;
    }
    return st->workspace;
}

static void cpu_destroy(Backend *be) {
    CpuState *st = be->impl;
    free(st->workspace);
    free(st);
    free(be);
}

Backend *backend_cpu_create(int threads) {
    openblas_set_num_threads(1); /* we parallelise GEMMs ourselves: see gemm.c */
    if (threads > 0) omp_set_num_threads(threads);
    Backend *be = xcalloc(1, sizeof(Backend));
    be->name = "cpu";
    be->impl = xcalloc(1, sizeof(CpuState));
    be->act_bytes = sizeof(float); /* the reference stores activations in fp32 */
    be->alloc = cpu_alloc;
    be->release = cpu_release;
    be->upload = cpu_memcpy;
    be->upload_async = cpu_memcpy; /* host to host: done on return, nothing to queue */
    be->download = cpu_memcpy;
    be->copy = cpu_memcpy;
    be->zero = cpu_zero;
    be->synchronize = cpu_synchronize;
    be->destroy = cpu_destroy;
    be->host_alloc = cpu_alloc; /* host memory is backend memory here */
    be->host_free = cpu_release;
    /* capture_*: NULL, every step runs its ops as it calls them */

    /* every op of backend_ops.h: be->op = cpu_op */
#define CPU_OP_ENTRY(name, params, args) be->name = cpu_##name;
    UNET_BACKEND_OPS(CPU_OP_ENTRY)
#undef CPU_OP_ENTRY
    return be;
}
