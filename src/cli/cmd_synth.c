/* cmd_synth.c — `unet2022 synth --out DIR [--seed S] [--cases N] [--size A..B] [--depth A..B]`:
 * the built-in phantom dataset in the raw BTCV layout (data/synth.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "synth.h"

/* "A..B" (the bounds themselves are synth_write's to check) */
static int range(const char *s, int *a, int *b) {
    char tail;
    return sscanf(s, "%d..%d%c", a, b, &tail) == 2 ? 0 : -1;
}

static const char *EPILOG = "Writes a Synapse-like phantom in the raw BTCV layout; then:\n"
                            "  unet2022 prepare synapse --src DIR --split DIR/split.txt --out STORE\n";

int cmd_synth(int argc, char **argv) {
    SynthOptions o = {.seed = 0, .cases = 12, .min_size = 64, .max_size = 96, .min_depth = 24, .max_depth = 40};
    const char *out = NULL, *size = NULL, *depth = NULL;
    unsigned long long seed = 0;
    const ArgOpt opts[] = {
        OPT_REQUIRED("--out", &out, "DIR", "where the phantom goes"),
        OPT_U64("--seed", &seed, "S", "generator seed (default 0)"),
        OPT_INT("--cases", &o.cases, "N", "number of cases (2..30, default 12)", 0, 0),
        OPT_STRING("--size", &size, "A..B", "in-plane size range (default 64..96)"),
        OPT_STRING("--depth", &depth, "A..B", "slices per case range (default 24..40)"),
        OPT_FLAG("--force", &o.force, "replace an existing phantom directory"),
    };
    const ArgSpec spec = {"synth", "  the built-in phantom dataset", NULL, 0, opts, ARGS_N(opts), NULL, NULL, EPILOG};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    o.seed = seed;
    if (size && range(size, &o.min_size, &o.max_size) != 0)
        return args_error(&spec, "--size: expected A..B, got '%s'", size);
    if (depth && range(depth, &o.min_depth, &o.max_depth) != 0)
        return args_error(&spec, "--depth: expected A..B, got '%s'", depth);
    char err[2048];
    if (synth_write(out, &o, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        return 2;
    }
    printf("synth: %d cases (seed %llu) -> %s\n", o.cases, (unsigned long long)o.seed, out);
    return 0;
}
