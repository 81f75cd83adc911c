/* fuzz_common.h — shared pieces of the libFuzzer targets (tests/fuzz/README.md).
 *
 * Most readers take a path (the libraries under them open by name), so each input is written
 * to a per-process file in $TMPDIR (default /tmp) with the suffix the reader expects, read,
 * and left to be overwritten by the next input. */
#ifndef UNET_FUZZ_COMMON_H
#define UNET_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes data to $TMPDIR/unet-fuzz-<pid>-<tag><suffix>; returns that path (static buffer). */
static inline const char *fuzz_temp_file(const char *tag, const char *suffix, const uint8_t *data, size_t size) {
    static char path[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/unet-fuzz-%ld-%s%s", tmp && *tmp ? tmp : "/tmp", (long)getpid(), tag, suffix);
    FILE *fp = fopen(path, "wb");
    if (!fp || (size && fwrite(data, 1, size, fp) != size)) abort(); /* the harness, not the input */
    fclose(fp);
    return path;
}

/* A consumer's view of a float array: touch every value so that a short or misplaced buffer
 * is caught by AddressSanitizer here rather than later. */
static inline float fuzz_touch(const float *x, size_t n) {
    float s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

#endif
