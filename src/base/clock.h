/* clock.h — monotonic wall-clock seconds, for timings, waits and benchmarks. */
#ifndef UNET_CLOCK_H
#define UNET_CLOCK_H

#include <time.h>

static inline double monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
