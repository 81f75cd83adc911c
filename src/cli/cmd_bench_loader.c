/* cmd_bench_loader.c — `unet2022 bench-loader`: throughput of the whole augmentation loader
 * (crop of the enlarged patch, every transform at the released recipe's probabilities, NHWC batches
 * through the slot queue), in samples per second per worker thread. The consumer takes each
 * batch and releases it at once, so this is the most the loader can feed.
 *
 * The slices are an in-memory phantom (no I/O, as scripts/bench_batchgenerators.py, the
 * baseline) unless --store DIR names a slice store, whose train split is read instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "commands.h"
#include "loader.h"
#include "slice_source.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_bench_loader(int argc, char **argv) {
    int patch = 320, workers = 1, slices = 16, size = 512, channels = 1, classes = 9, batch = 8, runs = 5, prefetch = 4;
    double seconds = 3.0;
    const char *store = NULL;
    const ArgOpt opts[] = {
        OPT_INT("--patch", &patch, "N", "crop size (default 320)", 32, 1 << 16),
        OPT_INT("--workers", &workers, "N", "augmentation threads (default 1)", 1, 4096),
        OPT_INT("--runs", &runs, "N", "timed runs, the median reported (default 5)", 1, 100000),
        OPT_POSITIVE("--seconds", &seconds, "S", "length of each run (default 3)", 1e6),
        OPT_INT("--batch", &batch, "N", "samples per batch (default 8)", 1, 65536),
        OPT_INT("--prefetch", &prefetch, "N", "batch slots in the queue (default 4)", 1, 4096),
        OPT_INT("--slices", &slices, "N", "phantom slices (default 16)", 1, 1 << 20),
        OPT_INT("--size", &size, "N", "phantom slice side (default 512)", 8, 1 << 16),
        OPT_INT("--channels", &channels, "N", "phantom channels (default 1)", 1, 1024),
        OPT_INT("--classes", &classes, "N", "phantom classes (default 9)", 2, 1024),
        OPT_STRING("--store", &store, "DIR", "read the train split of this slice store instead of a phantom"),
    };
    const ArgSpec spec = {"bench-loader", "  augmentation loader throughput (samples/s per worker thread)", NULL, 0, opts,
                          ARGS_N(opts), NULL, NULL, NULL};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    char err[1024];
    SliceSource src;
    int rc = store ? slice_source_open_store(&src, store, "train", err, sizeof err)
                   : slice_source_phantom(&src, slices, channels, size, size, classes, 1);
    if (rc != 0) {
        fprintf(stderr, "unet2022: error: %s\n", store ? err : "out of memory for the phantom");
        return 2;
    }
    LoaderOptions o;
    loader_options_default(&o, patch, patch, batch);
    o.workers = workers, o.prefetch = prefetch, o.seed = 1;
    printf("bench-loader: patch %dx%d from enlarged %dx%d, %d channel(s), %s, batch %d, %d worker(s), prefetch %d\n",
           patch, patch, o.aug.enlarged[0], o.aug.enlarged[1], src.channels,
           store ? store : "in-memory phantom slices", batch, workers, prefetch);
    double *rates = calloc((size_t)runs, sizeof *rates);
    for (int r = 0; r < runs && rc == 0; r++) {
        Loader *L;
        o.start_step = (long long)r * 100000; /* fresh samples each run */
        if (loader_create(&L, &src, &o, err, sizeof err) != 0) {
            fprintf(stderr, "unet2022: error: %s\n", err);
            rc = 2;
            break;
        }
        const LoaderBatch *b;
        /* warm-up: the first batches include thread start-up and page faults */
        for (int k = 0; k < 2 && rc == 0; k++)
            if (loader_next(L, &b, err, sizeof err) != 0) rc = 2;
            else loader_release(L, b);
        LoaderStats s0, s1;
        loader_stats(L, &s0);
        long long consumed = 0;
        while (rc == 0) {
            if (loader_next(L, &b, err, sizeof err) != 0) {
                fprintf(stderr, "unet2022: error: %s\n", err);
                rc = 2;
                break;
            }
            loader_release(L, b);
            consumed += b->batch;
            loader_stats(L, &s1);
            if (s1.elapsed_s - s0.elapsed_s >= seconds) break;
        }
        if (rc == 0) {
            double dt = s1.elapsed_s - s0.elapsed_s;
            rates[r] = consumed / dt;
            printf("  run %d: %lld samples in %.2f s = %.1f samples/s (%.1f per worker); consumer waited %.0f%% of the time, "
                   "reads %.1f%% of worker time\n",
                   r + 1, consumed, dt, rates[r], rates[r] / workers, 100 * (s1.wait_s - s0.wait_s) / dt,
                   100 * (s1.read_s - s0.read_s) / (s1.work_s - s0.work_s + 1e-12));
        }
        loader_destroy(L);
    }
    if (rc == 0) {
        qsort(rates, (size_t)runs, sizeof *rates, cmp_double);
        double med = rates[runs / 2];
        printf("median: %.1f samples/s, %.1f samples/s per worker thread\n", med, med / workers);
        printf("RESULT samples_per_s=%.3f per_core=%.3f workers=%d patch=%d\n", med, med / workers, workers, patch);
    }
    free(rates);
    slice_source_close(&src);
    return rc;
}
