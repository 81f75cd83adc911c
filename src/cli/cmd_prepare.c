/* cmd_prepare.c — `unet2022 prepare DATASET --src DIR --out STORE [options]`: import a dataset
 * into a slice store (docs/formats.md, "Slice store"). The store appears at STORE only when
 * complete; on any error nothing is left there and the exit status is 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "clock.h"
#include "commands.h"
#include "prepare.h"
#include "store.h"

/* The final line: what the store holds and how long it took (read back from the store itself). */
static void print_summary(const PrepareOptions *o, double seconds) {
    Store *s;
    char err[1024];
    if (store_open(&s, o->out, err, sizeof err) != 0) {
        printf("prepare: %s -> %s (%.1f s)\n", o->dataset, o->out, seconds);
        return;
    }
    long slices = 0;
    for (int i = 0; i < store_num_cases(s); i++) slices += store_case(s, i)->depth;
    printf("prepare: %s -> %s: %d cases, %ld slices, %d classes, %.1f s\n", o->dataset, o->out, store_num_cases(s),
           slices, store_num_classes(s), seconds);
    store_close(s);
}

static const char *EPILOG =
    "Converts a dataset's raw files into a slice store (docs/formats.md); the store appears at STORE\n"
    "only when complete.\n";

int cmd_prepare(int argc, char **argv) {
    PrepareOptions o = {.labels = 13, .norm = "clip", .shard_mb = 1024};
    const ArgPos pos[] = {{"DATASET", &o.dataset, 1}};
    const ArgOpt opts[] = {
        OPT_REQUIRED("--src", &o.src, "DIR", "the dataset's raw files"),
        OPT_REQUIRED("--out", &o.out, "STORE", "the slice store to write"),
        OPT_INT("--labels", &o.labels, "13|8", "synapse: all 13 BTCV organs (default, the released recipe) or the\n"
                "baselines' 8 (spleen, kidneys R/L, gallbladder, liver, stomach, aorta, pancreas)", 0, 0),
        OPT_STRING("--norm", &o.norm, "clip|zscore", "synapse: clip HU [-125, 275] -> [0, 1] (default) or nnU-Net's\n"
                   "foreground-percentile z-score (training-set statistics)"),
        OPT_STRING("--split", &o.split_file, "FILE", "synapse, acdc, em, isic, nnunet: `<train|val|test> <case number>`\n"
                   "lines instead of the default split (nnunet: the number is a case id's trailing digits)"),
        OPT_INT("--fold", &o.fold, "K", "nnunet: the fold of the dataset's splits_final.json (default 0)", 0, 1000),
        OPT_POSITIVE("--shard-mb", &o.shard_mb, "N", "start a new shard file after N MB of (uncompressed) cases\n"
                     "(default 1024)", 1e12),
        OPT_FLAG("--force", &o.force, "replace an existing store at STORE"),
        OPT_INT("--resize", &o.resize, "N", "isic, ph2: resize every image and mask to N x N (the released pipeline's\n"
                "512: image area-averaged when shrinking, bilinear when enlarging; mask nearest)", 0, 8192),
        OPT_FLAG("--quiet", &o.quiet, "no per-case progress on stderr (a bar on a terminal, counted lines\n"
                 "otherwise)"),
    };
    char summary[512];
    snprintf(summary, sizeof summary, "  DATASET               %s", prepare_datasets);
    const ArgSpec spec = {"prepare", summary, pos, ARGS_N(pos), opts, ARGS_N(opts), NULL, NULL, EPILOG};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    char cmdline[2048] = "unet2022 prepare";
    for (int i = 0; i < argc; i++) {
        size_t L = strlen(cmdline);
        snprintf(cmdline + L, sizeof cmdline - L, " %s", argv[i]);
    }
    o.command_line = cmdline;
    char err[2048];
    double t0 = monotonic_seconds();
    if (prepare_run(&o, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        return 2;
    }
    print_summary(&o, monotonic_seconds() - t0);
    return 0;
}
