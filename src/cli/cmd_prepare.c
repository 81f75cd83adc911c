/* cmd_prepare.c — `unet2022 prepare DATASET --src DIR --out STORE [options]`: import a dataset
 * into a slice store (docs/formats.md, "Slice store"). The store appears at STORE only when
 * complete; on any error nothing is left there and the exit status is 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "prepare.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: unet2022 prepare DATASET --src DIR --out STORE [options]\n"
            "  DATASET            %s\n"
            "  --labels 13|8      synapse: all 13 BTCV organs (default, the released recipe) or the\n"
            "                     baselines' 8 (spleen, kidneys R/L, gallbladder, liver, stomach, aorta, pancreas)\n"
            "  --norm clip|zscore synapse: clip HU [-125, 275] -> [0, 1] (default) or nnU-Net's\n"
            "                     foreground-percentile z-score (training-set statistics)\n"
            "  --split FILE       synapse, acdc: `<train|val|test> <case number>` lines instead of the\n"
            "                     official split\n"
            "  --shard-mb N       start a new shard file after N MB of (uncompressed) cases (default 1024)\n"
            "  --force            replace an existing store at STORE\n"
            "  --quiet            no per-case progress on stderr\n",
            prepare_datasets);
}

int cmd_prepare(int argc, char **argv) {
    PrepareOptions o = {.labels = 13, .norm = "clip", .shard_mb = 1024};
    int bad = 0;
    for (int i = 0; i < argc && !bad; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--src") && has) o.src = argv[++i];
        else if (!strcmp(a, "--out") && has) o.out = argv[++i];
        else if (!strcmp(a, "--labels") && has) o.labels = atoi(argv[++i]);
        else if (!strcmp(a, "--norm") && has) o.norm = argv[++i];
        else if (!strcmp(a, "--split") && has) o.split_file = argv[++i];
        else if (!strcmp(a, "--shard-mb") && has) o.shard_mb = atof(argv[++i]);
        else if (!strcmp(a, "--force")) o.force = 1;
        else if (!strcmp(a, "--quiet")) o.quiet = 1;
        else if (a[0] != '-' && !o.dataset) o.dataset = a;
        else bad = 1;
    }
    if (bad || !o.dataset || !o.src || !o.out || !(o.shard_mb > 0)) {
        usage(stderr);
        return 1;
    }
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
