/* slice_source_mem.c — slices held in memory (tests, benchmarks) and a phantom generator. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "slice_source.h"

typedef struct {
    int n, C, h, w;
    float *images;   /* (n, C, h, w) */
    int32_t *labels; /* (n, h, w) */
    atomic_int fail_at;
} Mem;

static void mem_shape(void *ctx, int i, int *h, int *w) {
    Mem *m = ctx;
    (void)i;
    *h = m->h, *w = m->w;
}

static int mem_read(void *ctx, int i, float *image, int32_t *label, char *err, size_t err_len) {
    Mem *m = ctx;
    if (i < 0 || i >= m->n) {
        snprintf(err, err_len, "memory slice source: slice %d out of range [0, %d)", i, m->n);
        return -1;
    }
    if (i == atomic_load(&m->fail_at)) {
        snprintf(err, err_len, "memory slice source: slice %d: injected read failure", i);
        return -1;
    }
    size_t hw = (size_t)m->h * m->w;
    memcpy(image, m->images + (size_t)i * m->C * hw, (size_t)m->C * hw * sizeof *image);
    memcpy(label, m->labels + (size_t)i * hw, hw * sizeof *label);
    return 0;
}

static void mem_destroy(void *ctx) {
    Mem *m = ctx;
    free(m->images), free(m->labels), free(m);
}

static int mem_new(SliceSource *out, int n, int C, int h, int w, int num_classes, Mem **mp) {
    memset(out, 0, sizeof *out);
    Mem *m = calloc(1, sizeof *m);
    if (!m) return -1;
    size_t hw = (size_t)h * w;
    m->n = n, m->C = C, m->h = h, m->w = w;
    atomic_init(&m->fail_at, -1);
    m->images = malloc((size_t)n * C * hw * sizeof(float));
    m->labels = malloc((size_t)n * hw * sizeof(int32_t));
    if (!m->images || !m->labels) {
        mem_destroy(m);
        return -1;
    }
    *out = (SliceSource){.ctx = m, .num_slices = n, .channels = C, .max_h = h, .max_w = w, .num_classes = num_classes,
                         .shape = mem_shape, .read = mem_read, .destroy = mem_destroy};
    *mp = m;
    return 0;
}

int slice_source_memory(SliceSource *out, int n, int C, int h, int w, int num_classes, const float *images,
                        const int32_t *labels) {
    Mem *m;
    if (mem_new(out, n, C, h, w, num_classes, &m) != 0) return -1;
    memcpy(m->images, images, (size_t)n * C * h * w * sizeof(float));
    memcpy(m->labels, labels, (size_t)n * h * w * sizeof(int32_t));
    return 0;
}

void slice_source_memory_fail_at(SliceSource *s, int slice_index) {
    Mem *m = s->ctx;
    atomic_store(&m->fail_at, slice_index);
}

int slice_source_phantom(SliceSource *out, int n, int C, int h, int w, int num_classes, uint64_t seed) {
    Mem *m;
    if (mem_new(out, n, C, h, w, num_classes, &m) != 0) return -1;
    for (int i = 0; i < n; i++) {
        /* a body ellipse (label 0, bright) holding num_classes-1 organ ellipses */
        double u[64];
        for (int k = 0; k < 64; k++) u[k] = rng_uniform(rng_key(seed, (uint64_t)i, (uint64_t)k));
        int32_t *lab = m->labels + (size_t)i * h * w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double fy = (y + 0.5) / h - 0.5, fx = (x + 0.5) / w - 0.5;
                int32_t l = 0;
                for (int k = 1; k < num_classes && k < 12; k++) {
                    double cy = (u[5 * k] - 0.5) * 0.6, cx = (u[5 * k + 1] - 0.5) * 0.6;
                    double ry = 0.04 + 0.12 * u[5 * k + 2], rx = 0.04 + 0.12 * u[5 * k + 3];
                    double dy = (fy - cy) / ry, dx = (fx - cx) / rx;
                    if (dy * dy + dx * dx < 1) l = k;
                }
                lab[(size_t)y * w + x] = l;
                for (int c = 0; c < C; c++) {
                    double body = (fy * fy / 0.16 + fx * fx / 0.2 < 1) ? 1.0 : -1.5;
                    double v = body + 0.3 * l + 0.2 * sin(13.0 * fy + 7.0 * fx + c + u[63] * 6) +
                               0.1 * rng_normal(rng_key(seed ^ 0x51, (uint64_t)i * C + c, (uint64_t)y * w + x));
                    m->images[(((size_t)i * C + c) * h + y) * w + x] = (float)v;
                }
            }
    }
    return 0;
}

void slice_source_close(SliceSource *s) {
    if (s->destroy) s->destroy(s->ctx);
    memset(s, 0, sizeof *s);
}
