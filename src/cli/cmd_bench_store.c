/* cmd_bench_store.c — `unet2022 bench-store STORE [--threads T] [--reads N] [--repeats R]`:
 * random slice reads (image + label, checksum verified) per second with one thread and with T
 * threads, each the median of R timed runs of N reads over the store's slices. The baseline is
 * the one-thread rate in the same run; the ratio shows how well reads scale past HDF5's global
 * lock (docs/architecture.md, "Data"). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "clock.h"
#include "args.h"
#include "commands.h"
#include "rng.h"
#include "store.h"

typedef struct {
    const Store *s;
    int thread, reads, failed;
    uint64_t seed;
    char err[512];
} Worker;

static void *work(void *arg) {
    Worker *w = arg;
    int n = store_num_cases(w->s), maxhw = 0, maxc = 1;
    for (int i = 0; i < n; i++) {
        const StoreCase *c = store_case(w->s, i);
        if (c->height * c->width > maxhw) maxhw = c->height * c->width;
        if (c->channels > maxc) maxc = c->channels;
    }
    float *img = xmalloc((size_t)maxhw * maxc * sizeof(float));
    int32_t *lab = xmalloc((size_t)maxhw * sizeof(int32_t));
    for (int r = 0; r < w->reads && !w->failed; r++) {
        uint64_t k = rng_key(w->seed, (uint64_t)w->thread, (uint64_t)r);
        int ci = (int)(rng_uniform(k) * n);
        const StoreCase *c = store_case(w->s, ci);
        int z = (int)(rng_uniform(k ^ 0xABCDEFull) * c->depth);
        if (store_read_slice(w->s, ci, z, img, lab, w->err, sizeof w->err) != 0) w->failed = 1;
    }
    free(img);
    free(lab);
    return NULL;
}


/* Slices per second with T threads sharing `reads` reads. */
static double run(const Store *s, int threads, int reads, uint64_t seed) {
    pthread_t *th = xmalloc((size_t)threads * sizeof *th);
    Worker *w = xcalloc((size_t)threads, sizeof *w);
    double t0 = monotonic_seconds();
    for (int t = 0; t < threads; t++) {
        w[t] = (Worker){.s = s, .thread = t, .reads = reads / threads, .seed = seed};
        pthread_create(&th[t], NULL, work, &w[t]);
    }
    int done = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        if (w[t].failed) {
            fprintf(stderr, "unet2022: error: %s\n", w[t].err);
            exit(2);
        }
        done += w[t].reads;
    }
    double dt = monotonic_seconds() - t0;
    free(th);
    free(w);
    return done / dt;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_bench_store(int argc, char **argv) {
    const char *dir = NULL;
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN), reads = 400, repeats = 5;
    const ArgPos pos[] = {{"STORE", &dir, 1}};
    const ArgOpt opts[] = {
        OPT_INT("--threads", &threads, "T", "threads of the second measurement (default: all cores)", 1, 65536),
        OPT_INT("--reads", &reads, "N", "slice reads per run (default 400)", 1, 1 << 30),
        OPT_INT("--repeats", &repeats, "R", "timed runs, the median reported (default 5)", 1, 100000),
    };
    const ArgSpec spec = {"bench-store", "  random slice reads per second with one thread and with T threads", pos,
                          ARGS_N(pos), opts, ARGS_N(opts), NULL, NULL, NULL};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    char err[1024];
    Store *s;
    if (store_open(&s, dir, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        return 2;
    }
    const StoreCase *c0 = store_case(s, 0);
    printf("bench-store: %s: %d cases, first %s (D %d, C %d, H %d, W %d); %d reads x %d repeats\n", dir,
           store_num_cases(s), c0->name, c0->depth, c0->channels, c0->height, c0->width, reads, repeats);
    run(s, 1, reads < 50 ? reads : 50, 999); /* warm the page cache */
    int counts[2] = {1, threads};
    double med[2];
    for (int k = 0; k < 2; k++) {
        double *r = xmalloc((size_t)repeats * sizeof *r);
        for (int i = 0; i < repeats; i++) r[i] = run(s, counts[k], reads, (uint64_t)i);
        qsort(r, (size_t)repeats, sizeof *r, cmp_d);
        med[k] = r[repeats / 2];
        printf("  %2d thread%s: %8.1f slices/s (median; min %.1f, max %.1f)\n", counts[k], counts[k] > 1 ? "s" : " ",
               med[k], r[0], r[repeats - 1]);
        free(r);
    }
    printf("  speed-up with %d threads: %.2fx\n", threads, med[1] / med[0]);
    store_close(s);
    return 0;
}
