/* param_table.h — the name/offset/shape table of the flat parameter buffer.
 *
 * Every trainable tensor of the network lives in one contiguous float buffer, in the
 * released network's state_dict order, under its state_dict key. Gradients and the Adam
 * moments use the same layout, so one all-reduce covers every gradient and one Adam
 * call updates every parameter. */
#ifndef UNET_PARAM_TABLE_H
#define UNET_PARAM_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define PARAM_NAME_MAX 96
#define PARAM_MAX_DIMS 4

/* How a fresh (untrained) network initialises a tensor: PyTorch's defaults, as the
 * released code leaves them (no He init). */
typedef enum {
    INIT_KAIMING_UNIFORM, /* conv / linear / transposed-conv weight: U(±1/sqrt(fan_in)) (kaiming_uniform a=√5) */
    INIT_FAN_IN_BIAS,     /* bias of the above: U(±1/sqrt(fan_in)) */
    INIT_ONES,            /* LayerNorm weight */
    INIT_ZEROS,           /* LayerNorm bias */
    INIT_LAYER_SCALE,     /* ConvNeXt gamma: 1e-6 */
    INIT_TRUNC_NORMAL,    /* relative position bias table: trunc_normal(std 0.02) */
} ParamInit;

typedef struct {
    char name[PARAM_NAME_MAX];
    size_t offset; /* in floats, into the flat buffer */
    size_t numel;
    int ndim;
    int64_t shape[PARAM_MAX_DIMS];
    ParamInit init;
    int fan_in; /* for the fan-in based inits */
} ParamInfo;

typedef struct {
    ParamInfo *items;
    int count, cap;
    size_t total; /* floats */
} ParamTable;

/* Appends a tensor; returns its offset. shape has ndim entries. */
size_t param_add(ParamTable *t, const char *name, int ndim, const int64_t *shape, ParamInit init, int fan_in);
const ParamInfo *param_find(const ParamTable *t, const char *name);
/* The tensor that starts at float `offset` of the flat buffer; NULL when none starts there. */
const ParamInfo *param_at_offset(const ParamTable *t, size_t offset);
void param_table_free(ParamTable *t);

#endif
