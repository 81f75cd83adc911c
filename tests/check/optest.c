/* optest.c — `unet2022-check optest OP IN.safetensors OUT.safetensors`: see optest.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "check_modes.h"
#include "optest.h"

const float *ot_f32(const StFile *in, const char *name, size_t expect_numel) {
    const StTensor *t = st_find(in, name);
    if (!t) die("%s: no tensor '%s'", in->path, name);
    if (t->dtype != ST_F32) die("%s: tensor '%s' is %s, expected F32", in->path, name, st_dtype_name(t->dtype));
    size_t numel = t->nbytes / sizeof(float);
    if (expect_numel && numel != expect_numel)
        die("%s: tensor '%s' has %zu elements, expected %zu", in->path, name, numel, expect_numel);
    return t->data;
}

const int32_t *ot_i32(const StFile *in, const char *name, size_t expect_numel) {
    const StTensor *t = st_find(in, name);
    if (!t) die("%s: no tensor '%s'", in->path, name);
    if (t->dtype != ST_I32) die("%s: tensor '%s' is %s, expected I32", in->path, name, st_dtype_name(t->dtype));
    size_t numel = t->nbytes / sizeof(int32_t);
    if (expect_numel && numel != expect_numel)
        die("%s: tensor '%s' has %zu elements, expected %zu", in->path, name, numel, expect_numel);
    return t->data;
}

long ot_int(const StFile *in, const char *key) {
    const char *v = st_meta_get(in, key);
    if (!v) die("%s: no attribute '%s'", in->path, key);
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0') die("%s: attribute '%s' = '%s' is not an integer", in->path, key, v);
    return x;
}

double ot_float(const StFile *in, const char *key) {
    const char *v = st_meta_get(in, key);
    if (!v) die("%s: no attribute '%s'", in->path, key);
    char *end;
    double x = strtod(v, &end);
    if (*v == '\0' || *end != '\0') die("%s: attribute '%s' = '%s' is not a number", in->path, key, v);
    return x;
}

float *ot_scratch(size_t numel) { return xcalloc(numel ? numel : 1, sizeof(float)); }

float *ot_out(StFile *out, const char *name, int ndim, const int64_t *shape) {
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= (size_t)shape[i];
    float *p = ot_scratch(numel);
    st_add(out, name, ST_F32, ndim, shape, p);
    return p;
}

static const OpTest *find_op(const char *name) {
    const OpTest *tables[] = {optest_conv_ops, optest_norm_ops, optest_loss_ops};
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const OpTest *op = tables[t]; op->name; op++)
            if (strcmp(op->name, name) == 0) return op;
    return NULL;
}

int cmd_optest(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: unet2022-check optest OP IN.safetensors OUT.safetensors\n");
        return 1;
    }
    const OpTest *op = find_op(argv[0]);
    if (!op) die("unknown op '%s'", argv[0]);
    char err[512];
    StFile in, out;
    if (st_read(&in, argv[1], err, sizeof err) != 0) die("%s", err);
    st_init(&out);
    Backend *be = backend_cpu_create(0);
    op->run(be, &in, &out);
    if (st_write_file(&out, argv[2], err, sizeof err) != 0) die("%s", err);
    be->destroy(be);
    return 0;
}
