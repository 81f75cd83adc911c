/* isolate.h — a third-party parser run on an untrusted file in a child process.
 *
 * Debian's libhdf5 1.10 crashes inside H5Fopen/H5Dopen2 on some corrupt files (a NULL read in
 * H5F__accum_read on a corrupt local heap; inputs in tests/fuzz/known/), before any check of ours
 * can run. Whatever parses such a file with the library runs as an IsolatedStep in a forked
 * child: the child sends back what it found through a pipe, and a child that dies becomes an
 * error naming the file and the library instead of a crash of the whole program (and of every
 * rank of a training job). Cost: one fork and one copy of the results per file. */
#ifndef UNET_ISOLATE_H
#define UNET_ISOLATE_H

#include <stddef.h>

typedef struct IsolateOut IsolateOut;

/* The step, run in the child: sends its results with isolate_put (they arrive concatenated, in
 * order); returns 0, or -1 with the message in err. It must not write to files the parent owns. */
typedef int (*IsolatedStep)(void *ctx, IsolateOut *out, char *err, size_t err_len);

/* Appends n bytes to the step's results; 0, or -1 when the parent stopped listening. */
int isolate_put(IsolateOut *out, const void *data, size_t n);

/* Runs step(ctx) in a child process and returns its rc, with its message in err or, when it died,
 * "PATH: the LIBRARY library crashed reading this file ...". On success *result (malloc'd; free
 * it) holds the bytes it put, *result_len of them; results over max_bytes are an error. */
int isolate_run(IsolatedStep step, void *ctx, const char *path, const char *library, size_t max_bytes,
                void **result, size_t *result_len, char *err, size_t err_len);

/* 1: isolate_run runs the step in this process instead (same results, same checks). The fuzz
 * targets set it: libFuzzer needs the coverage of this process. Default 0. */
extern int isolate_in_process;

#endif
