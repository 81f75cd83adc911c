/* cmd_synth.c — `unet2022 synth --out DIR [--seed S] [--cases N] [--size A..B] [--depth A..B]`:
 * the built-in phantom dataset in the raw BTCV layout (data/synth.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "synth.h"

static int range(const char *s, int *a, int *b) { return sscanf(s, "%d..%d", a, b) == 2 ? 0 : -1; }

int cmd_synth(int argc, char **argv) {
    SynthOptions o = {.seed = 0, .cases = 12, .min_size = 64, .max_size = 96, .min_depth = 24, .max_depth = 40};
    const char *out = NULL;
    int bad = 0;
    for (int i = 0; i < argc && !bad; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--out") && has) out = argv[++i];
        else if (!strcmp(a, "--seed") && has) o.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--cases") && has) o.cases = atoi(argv[++i]);
        else if (!strcmp(a, "--size") && has) bad = range(argv[++i], &o.min_size, &o.max_size);
        else if (!strcmp(a, "--depth") && has) bad = range(argv[++i], &o.min_depth, &o.max_depth);
        else if (!strcmp(a, "--force")) o.force = 1;
        else bad = 1;
    }
    if (bad || !out) {
        fprintf(stderr,
                "usage: unet2022 synth --out DIR [--seed S] [--cases N (2..30, default 12)]\n"
                "                      [--size A..B (default 64..96)] [--depth A..B (default 24..40)] [--force]\n"
                "Writes a Synapse-like phantom in the raw BTCV layout; then:\n"
                "  unet2022 prepare synapse --src DIR --split DIR/split.txt --out STORE\n");
        return 1;
    }
    char err[2048];
    if (synth_write(out, &o, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        return 2;
    }
    printf("synth: %d cases (seed %llu) -> %s\n", o.cases, (unsigned long long)o.seed, out);
    return 0;
}
