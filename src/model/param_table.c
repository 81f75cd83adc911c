/* param_table.c — see param_table.h. */
#include "param_table.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

size_t param_add(ParamTable *t, const char *name, int ndim, const int64_t *shape, ParamInit init, int fan_in) {
    CHECK(ndim >= 1 && ndim <= PARAM_MAX_DIMS, "parameter %s: %d dims", name, ndim);
    CHECK(strlen(name) < PARAM_NAME_MAX, "parameter name too long: %s", name);
    if (t->count == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->items = realloc(t->items, (size_t)t->cap * sizeof(ParamInfo));
        CHECK(t->items, "out of memory growing the parameter table");
    }
    ParamInfo *p = &t->items[t->count++];
    memset(p, 0, sizeof *p);
    strcpy(p->name, name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->offset = t->total;
    p->init = init;
    p->fan_in = fan_in;
    t->total += p->numel;
    return p->offset;
}

const ParamInfo *param_find(const ParamTable *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->items[i].name, name) == 0) return &t->items[i];
    return NULL;
}

const ParamInfo *param_at_offset(const ParamTable *t, size_t offset) {
    int lo = 0, hi = t->count - 1; /* items are in offset order: binary search */
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (t->items[mid].offset == offset) return &t->items[mid];
        if (t->items[mid].offset < offset) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

void param_table_free(ParamTable *t) {
    free(t->items);
    memset(t, 0, sizeof *t);
}
