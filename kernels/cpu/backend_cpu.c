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
static void cpu_act_from_f32(Backend *be, Act *out /* (n) */, const float *in /* (n) */, size_t n) {
    (void)be;
    if (n) memcpy(out, in, n * sizeof(float));
}

static void cpu_act_to_f32(Backend *be, float *out /* (n) */, const Act *in /* (n) */, size_t n) {
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
    be->act_from_f32 = cpu_act_from_f32;
    be->act_to_f32 = cpu_act_to_f32;

    be->conv3x3_forward = cpu_conv3x3_forward;
    be->conv3x3_backward = cpu_conv3x3_backward;
    be->dwconv7_forward = cpu_dwconv7_forward;
    be->dwconv7_backward = cpu_dwconv7_backward;
    be->convT_forward = cpu_convT_forward;
    be->convT_backward = cpu_convT_backward;
    be->linear_forward = cpu_linear_forward;
    be->linear_backward = cpu_linear_backward;
    be->layernorm_forward = cpu_layernorm_forward;
    be->layernorm_backward = cpu_layernorm_backward;
    be->gelu_forward = cpu_gelu_forward;
    be->gelu_backward = cpu_gelu_backward;
    be->pad_roll_forward = cpu_pad_roll_forward;
    be->pad_roll_backward = cpu_pad_roll_backward;
    be->roll_crop_forward = cpu_roll_crop_forward;
    be->roll_crop_backward = cpu_roll_crop_backward;
    be->window_attention_forward = cpu_window_attention_forward;
    be->window_attention_backward = cpu_window_attention_backward;
    be->add = cpu_add;
    be->accumulate = cpu_accumulate;
    be->channel_scale_forward = cpu_channel_scale_forward;
    be->channel_scale_backward = cpu_channel_scale_backward;
    be->sample_scale_forward = cpu_sample_scale_forward;
    be->sample_scale_backward = cpu_sample_scale_backward;
    be->dice_ce_forward = cpu_dice_ce_forward;
    be->dice_ce_backward = cpu_dice_ce_backward;
    be->downsample_labels = cpu_downsample_labels;
    be->sum_squares = cpu_sum_squares;
    be->scale = cpu_scale;
    be->adam_update = cpu_adam_update;
    return be;
}
