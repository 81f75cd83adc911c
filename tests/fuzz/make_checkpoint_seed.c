/* make_checkpoint_seed.c — writes valid seed inputs for fuzz_checkpoint with the project's own
 * writers (checkpoint_save, weights_save) for the tiny network of fuzz_checkpoint.h, packed as
 * fuzz_checkpoint.c expects (one mode byte, then the file). Usage: make_checkpoint_seed OUTDIR. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "config.h"
#include "fuzz_checkpoint.h"
#include "weights_io.h"

/* The file with one mode byte in front; header_only: its length and JSON header, no tensor data
 * (fuzz_checkpoint's mode bit 1 fills the data region back in). */
static int pack(const char *dir, const char *name, int mode, const char *tmp, int header_only) {
    FILE *in = fopen(tmp, "rb");
    if (!in) return -1;
    char out[1200];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    FILE *fp = fopen(out, "wb");
    if (!fp) return fclose(in), -1;
    fputc(mode, fp);
    unsigned char len[8];
    size_t n = fread(len, 1, 8, in);
    fwrite(len, 1, n, fp);
    uint64_t left = UINT64_MAX;
    if (header_only) {
        left = 0;
        for (int i = 0; i < 8; i++) left |= (uint64_t)len[i] << (8 * i);
    }
    char buf[65536];
    while (left && (n = fread(buf, 1, left < sizeof buf ? (size_t)left : sizeof buf, in)) > 0) {
        fwrite(buf, 1, n, fp);
        left -= n;
    }
    fclose(in);
    fclose(fp);
    unlink(tmp);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) return fprintf(stderr, "usage: make_checkpoint_seed OUTDIR\n"), 1;
    Config cfg;
    char err[1024];
    if (config_load_text(&cfg, FUZZ_CKPT_CONFIG, "fuzz-tiny", err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    Model m;
    model_build(&m, &cfg.net);
    size_t n = m.params.total;
    float *p = malloc(n * sizeof(float)), *am = malloc(n * sizeof(float)), *av = malloc(n * sizeof(float));
    model_init_params(&m, p, 7);
    for (size_t i = 0; i < n; i++) am[i] = p[i] * 0.01f, av[i] = p[i] * p[i];
    char *yaml = NULL;
    size_t ylen = 0;
    FILE *mem = open_memstream(&yaml, &ylen);
    config_print(&cfg, mem); /* the resolved config, as the trainer stores it */
    fclose(mem);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s/.seed-%ld.safetensors", argv[1], (long)getpid());
    TrainState st[2] = {{.step = 12, .epoch = 3, .epoch_step = 2, .seed = 7, .world_size = 1, .best_metric = 0.25,
                         .ema_metric = 0.125},
                        {.step = 0, .epoch = 0, .epoch_step = 0, .seed = 7, .world_size = 2, .best_metric = -1,
                         .ema_metric = -1}};
    for (int i = 0; i < 2; i++) {
        char name[64];
        /* header only (mode bit 1), with and without the checksums re-computed (bit 0) */
        for (int mode = 2; mode < 4; mode++) {
            snprintf(name, sizeof name, "ckpt%d-mode%d.bin", i, mode);
            if (checkpoint_save(tmp, &m, p, am, av, &st[i], yaml, err, sizeof err))
                return fprintf(stderr, "%s\n", err), 1;
            if (pack(argv[1], name, mode, tmp, 1)) return fprintf(stderr, "cannot pack %s\n", name), 1;
        }
    }
    if (weights_save(&m, p, "fuzz-tiny", tmp, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    if (pack(argv[1], "weights-mode2.bin", 2, tmp, 1)) return 1;
    fprintf(stderr, "make_checkpoint_seed: %zu parameters\n", n);
    free(yaml), free(p), free(am), free(av);
    model_free(&m);
    return 0;
}
