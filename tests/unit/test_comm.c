/* test_comm.c — the all-reduce gives the exact sum over ranks (run alone and under
 * `mpirun -np 2`: see tests/CMakeLists.txt). Each rank contributes values that are exact in
 * fp32, so the expected sum is exact too. */
#include <stdio.h>
#include <stdlib.h>

#include "comm.h"
#include "testutil.h"

int main(int argc, char **argv) {
    Comm *c = comm_create(&argc, &argv);
    size_t n = 1000003; /* odd size: no alignment luck */
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)((i % 97) * (c->rank + 1));
    c->allreduce_sum(c, x, n);
    int S = c->size * (c->size + 1) / 2; /* Σ (rank + 1) */
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] != (float)((i % 97) * S)) bad++;
    /* non-blocking bucket reductions: two starts, three runs, progress, one wait */
    for (size_t i = 0; i < n; i++) x[i] = (float)((i % 89) * (c->rank + 1));
    float *runs1[2] = {x, x + 600000}, *runs2[1] = {x + 300000};
    size_t counts1[2] = {300000, n - 600000}, counts2[1] = {300000};
    c->allreduce_start(c, runs1, counts1, 2, NULL);
    c->progress(c);
    c->allreduce_start(c, runs2, counts2, 1, NULL);
    c->progress(c);
    c->allreduce_wait(c, NULL);
    size_t bad_async = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] != (float)((i % 89) * S)) bad_async++;
    double d = c->rank + 1.0;
    c->allreduce_sum_f64(c, &d, 1);
    int root_value = c->rank == 0 ? 42 : -1;
    c->broadcast(c, &root_value, sizeof root_value, 0);
    c->barrier(c);
    char label[64];
    snprintf(label, sizeof label, "comm %s rank %d/%d", c->transport, c->rank, c->size);
    TEST_CHECK(bad == 0, "%s: float all-reduce is the exact sum (%zu wrong of %zu)", label, bad, n);
    TEST_CHECK(bad_async == 0, "%s: started + waited bucket reductions are the exact sum (%zu wrong of %zu)", label,
               bad_async, n);
    TEST_CHECK(d == (double)S, "%s: double all-reduce %g == %d", label, d, S);
    TEST_CHECK(root_value == 42, "%s: broadcast from rank 0", label);
    free(x);
    int rc = test_summary(label);
    c->destroy(c);
    return rc;
}
