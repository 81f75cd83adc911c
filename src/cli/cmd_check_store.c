/* cmd_check_store.c — `unet2022 check-store STORE`: open a store and read every slice of every
 * case, verifying each chunk's checksum and size; prints a summary, exits 2 at the first bad
 * slice with a message naming the case and slice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "args.h"
#include "commands.h"
#include "store.h"

int cmd_check_store(int argc, char **argv) {
    const char *dir = NULL;
    const ArgPos pos[] = {{"STORE", &dir, 1}};
    const ArgSpec spec = {"check-store", "  reads every slice of every case, verifying each chunk's checksum and size",
                          pos, ARGS_N(pos), NULL, 0, NULL, NULL, NULL};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    char err[1024];
    Store *s;
    if (store_open(&s, dir, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        return 2;
    }
    long slices = 0;
    long counts[256] = {0};
    int nk = store_num_classes(s);
    for (int i = 0; i < store_num_cases(s); i++) {
        const StoreCase *c = store_case(s, i);
        size_t hw = (size_t)c->height * c->width;
        float *img = xmalloc(hw * c->channels * sizeof(float));
        int32_t *lab = xmalloc(hw * sizeof(int32_t));
        for (int z = 0; z < c->depth; z++) {
            if (store_read_slice(s, i, z, img, lab, err, sizeof err) != 0) {
                fprintf(stderr, "unet2022: error: %s\n", err);
                free(img);
                free(lab);
                store_close(s);
                return 2;
            }
            for (size_t k = 0; k < hw; k++) counts[lab[k] & 255]++;
            slices++;
        }
        free(img);
        free(lab);
    }
    printf("check-store: %s: %d cases, %ld slices, %d classes: all checksums good\n", dir, store_num_cases(s),
           slices, nk);
    for (int k = 0; k < nk; k++) printf("  class %d %-24s %ld voxels\n", k, store_class_name(s, k), counts[k]);
    store_close(s);
    return 0;
}
