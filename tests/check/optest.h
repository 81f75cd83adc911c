/* optest.h — `unet2022-check optest OP IN.safetensors OUT.safetensors`: runs one backend op's
 * forward and backward on tensors written by a PyTorch test (tests/reference/test_ops_*.py)
 * and writes the results back for the test to compare against torch.
 *
 * Input file: tensors by name (inputs, parameters, and the upstream gradient "dout"), and
 * integer/float attributes in the metadata (stored as decimal strings).
 * Output file: forward outputs and every gradient, by name (the test decides names).
 * Each op family registers a table of handlers in its own optest_<family>.c. The optest runs
 * the CPU backend, whose Acts are floats (backend.h): handlers pass host float arrays to the
 * ops' Act parameters as (Act *). */
#ifndef UNET_OPTEST_H
#define UNET_OPTEST_H

#include <stdint.h>

#include "backend.h"
#include "safetensors.h"

typedef struct {
    const char *name;                                   /* e.g. "conv3x3" */
    void (*run)(Backend *be, const StFile *in, StFile *out);
} OpTest;

/* Fetch an F32 tensor by name, checking its element count (0 = any); dies if absent. */
const float *ot_f32(const StFile *in, const char *name, size_t expect_numel);
/* Same for I32 tensors (labels). */
const int32_t *ot_i32(const StFile *in, const char *name, size_t expect_numel);
/* Integer / float attribute from the metadata; dies if absent or malformed. */
long ot_int(const StFile *in, const char *key);
double ot_float(const StFile *in, const char *key);
/* Allocate a zero-filled F32 output of the given shape and register it under `name`. */
float *ot_out(StFile *out, const char *name, int ndim, const int64_t *shape);
/* Allocate a zero-filled F32 buffer that is not written out (scratch, saved stats). */
float *ot_scratch(size_t numel);

extern const OpTest optest_conv_ops[];   /* optest_conv.c: conv3x3, dwconv7, dwconv7_layernorm, convT,
                                            convT_add, linear */
extern const OpTest optest_norm_ops[];   /* optest_norm.c: layernorm, layernorm_residual_branch,
                                            gelu, gelu_layernorm, pad_roll, roll_crop,
                                            window_attention, channel_scale, sample_scale, add */
extern const OpTest optest_loss_ops[];   /* optest_loss.c: dice_ce, downsample_labels, adam,
                                            sum_squares */

#endif
