/* cmd_prepare.c — `unet2022 prepare DATASET --src DIR --out STORE [options]`: import a dataset
 * into a slice store (docs/formats.md, "Slice store"). The store appears at STORE only when
 * complete; on any error nothing is left there and the exit status is 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "prepare.h"

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
        OPT_STRING("--split", &o.split_file, "FILE", "synapse, acdc: `<train|val|test> <case number>` lines instead of\n"
                   "the official split"),
        OPT_POSITIVE("--shard-mb", &o.shard_mb, "N", "start a new shard file after N MB of (uncompressed) cases\n"
                     "(default 1024)", 1e12),
        OPT_FLAG("--force", &o.force, "replace an existing store at STORE"),
        OPT_FLAG("--quiet", &o.quiet, "no per-case progress on stderr"),
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
    if (prepare_run(&o, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        return 2;
    }
    printf("prepare: %s -> %s\n", o.dataset, o.out);
    return 0;
}
