/* slice_source_store.c — the loader's slices from a slice store (data/store.h): every slice of
 * every case of one split, in manifest order, case by case. Slice i maps to (case, z) by a
 * binary search over the cases' first slice indices. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slice_source.h"
#include "store.h"

typedef struct {
    Store *store;
    int n_cases;
    int *case_idx; /* (n_cases) store case index */
    int *first;    /* (n_cases + 1) index of each case's first slice; first[n_cases] = total */
} StoreSrc;

static int find_case(const StoreSrc *s, int i) {
    int lo = 0, hi = s->n_cases - 1;
    while (lo < hi) { /* the last case whose first slice is <= i */
        int mid = (lo + hi + 1) / 2;
        if (s->first[mid] <= i) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static void st_shape(void *ctx, int i, int *h, int *w) {
    StoreSrc *s = ctx;
    const StoreCase *c = store_case(s->store, s->case_idx[find_case(s, i)]);
    *h = c->height, *w = c->width;
}

static int st_read_slice(void *ctx, int i, float *image, int32_t *label, char *err, size_t err_len) {
    StoreSrc *s = ctx;
    if (i < 0 || i >= s->first[s->n_cases]) {
        snprintf(err, err_len, "store slice source: slice %d out of range [0, %d)", i, s->first[s->n_cases]);
        return -1;
    }
    int k = find_case(s, i);
    return store_read_slice(s->store, s->case_idx[k], i - s->first[k], image, label, err, err_len);
}

static void st_destroy(void *ctx) {
    StoreSrc *s = ctx;
    if (s->store) store_close(s->store);
    free(s->case_idx), free(s->first), free(s);
}

int slice_source_open_store(SliceSource *out, const char *dir, const char *split, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    StoreSrc *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, err_len, "%s: out of memory", dir);
        return -1;
    }
    if (store_open(&s->store, dir, err, err_len) != 0) {
        free(s);
        return -1;
    }
    int total_cases = store_num_cases(s->store);
    s->case_idx = malloc(sizeof(int) * (size_t)(total_cases > 0 ? total_cases : 1));
    s->first = malloc(sizeof(int) * (size_t)(total_cases + 1));
    if (!s->case_idx || !s->first) {
        snprintf(err, err_len, "%s: out of memory", dir);
        st_destroy(s);
        return -1;
    }
    s->n_cases = store_split(s->store, split, s->case_idx, total_cases);
    if (s->n_cases <= 0) {
        snprintf(err, err_len, "%s: no cases in split '%s'", dir, split);
        st_destroy(s);
        return -1;
    }
    int channels = -1, max_h = 0, max_w = 0;
    long long total = 0;
    for (int k = 0; k < s->n_cases; k++) {
        const StoreCase *c = store_case(s->store, s->case_idx[k]);
        if (channels >= 0 && c->channels != channels) {
            snprintf(err, err_len, "%s: case '%s' has %d channels, the split's first case has %d", dir, c->name,
                     c->channels, channels);
            st_destroy(s);
            return -1;
        }
        channels = c->channels;
        max_h = c->height > max_h ? c->height : max_h;
        max_w = c->width > max_w ? c->width : max_w;
        s->first[k] = (int)total;
        total += c->depth;
    }
    if (total > 0x7fffffff) {
        snprintf(err, err_len, "%s: split '%s' has %lld slices, more than the loader indexes", dir, split, total);
        st_destroy(s);
        return -1;
    }
    s->first[s->n_cases] = (int)total;
    *out = (SliceSource){.ctx = s, .num_slices = (int)total, .channels = channels, .max_h = max_h, .max_w = max_w,
                         .num_classes = store_num_classes(s->store), .shape = st_shape, .read = st_read_slice,
                         .destroy = st_destroy};
    return 0;
}
