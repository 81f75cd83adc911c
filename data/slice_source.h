/* slice_source.h — where the loader's slices come from: an abstract, thread-safe source of
 * 2D training slices (image (C, h, w) float, label (h, w) int32), numbered 0..num_slices-1.
 *
 * Two implementations: over a slice store (all slices of the cases of one split, case by case
 * in manifest order, slice by slice), and over arrays in memory (tests, benchmarks), which can
 * also be told to fail on one slice to test error paths. */
#ifndef UNET_SLICE_SOURCE_H
#define UNET_SLICE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

typedef struct SliceSource {
    void *ctx;
    int num_slices;
    int channels;
    int max_h, max_w;  /* the largest slice, to size buffers */
    int num_classes;   /* labels are in [0, num_classes) */
    /* Size of slice i. */
    void (*shape)(void *ctx, int i, int *h, int *w);
    /* Reads slice i; safe to call from several threads at once. Returns 0, or -1 with a message
     * naming the slice (and, for a store, the store, case and z). */
    int (*read)(void *ctx, int i, float *image /* (C, h, w) */, int32_t *label /* (h, w) */, char *err, size_t err_len);
    void (*destroy)(void *ctx);
} SliceSource;

void slice_source_close(SliceSource *s);

/* Over a store directory: the slices of `split` ("train"). -1 with a message on error. */
int slice_source_open_store(SliceSource *out, const char *store_dir, const char *split, char *err, size_t err_len);

/* Over memory: n slices of the same (C, h, w), copied. fail_at >= 0 makes read(fail_at) fail. */
int slice_source_memory(SliceSource *out, int n, int C, int h, int w, int num_classes,
                        const float *images /* (n, C, h, w) */, const int32_t *labels /* (n, h, w) */);
void slice_source_memory_fail_at(SliceSource *s, int slice_index);

/* A phantom for tests and benchmarks: n slices of (C, h, w) with smooth intensities and
 * nested elliptical organs labelled 1..num_classes-1, determined by seed. */
int slice_source_phantom(SliceSource *out, int n, int C, int h, int w, int num_classes, uint64_t seed);

#endif
