/* make_store_seed.c — writes valid seed inputs for fuzz_store: a small store built with
 * store_write.c (1 and 2 channels), packed as fuzz_store.c expects (4-byte manifest length,
 * manifest, shard). Usage: make_store_seed OUTDIR. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_write.h"

static uint8_t *slurp(const char *p, size_t *n) {
    FILE *fp = fopen(p, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc(*n ? *n : 1);
    if (fread(b, 1, *n, fp) != *n) *n = 0;
    fclose(fp);
    return b;
}

int main(int argc, char **argv) {
    if (argc != 2) return fprintf(stderr, "usage: make_store_seed OUTDIR\n"), 1;
    static const char *classes[3] = {"background", "a", "b"};
    for (int ch = 1; ch <= 2; ch++) {
        char st[600], err[1024];
        snprintf(st, sizeof st, "%s/.store-%ld-%d", argv[1], (long)getpid(), ch);
        StoreWriterOptions o = {.dataset = "fuzz-seed", .description = "seed", .num_classes = 3,
                                .class_names = classes, .channels = ch, .shard_mb = 1024};
        StoreWriter *w;
        if (store_writer_create(&w, st, &o, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
        int D = 3, H = 6, W = 5;
        float *img = malloc(sizeof(float) * D * ch * H * W);
        uint8_t *lab = malloc((size_t)D * H * W);
        for (int i = 0; i < D * ch * H * W; i++) img[i] = (float)(i % 17) / 17.0f;
        for (int i = 0; i < D * H * W; i++) lab[i] = (uint8_t)(i % 3);
        StoreCaseInput in = {.name = "case0001", .split = "train", .depth = D, .channels = ch, .height = H,
                             .width = W, .image = img, .label = lab, .spacing = {0.8, 0.8, 2.5},
                             .affine = {0.8, 0, 0, 10, 0, 0.8, 0, -5, 0, 0, 2.5, 3, 0, 0, 0, 1}, .original_ndim = 3,
                             .original_shape = {D, H, W}, .normalisation = "none", .num_sources = 0};
        if (store_writer_add_case(w, &in, err, sizeof err) || store_writer_commit(w, err, sizeof err))
            return fprintf(stderr, "%s\n", err), 1;
        char mp[700], sp[700], out[700];
        snprintf(mp, sizeof mp, "%s/manifest.json", st);
        snprintf(sp, sizeof sp, "%s/shard-00000.h5", st);
        size_t mn, sn;
        uint8_t *m = slurp(mp, &mn), *s = slurp(sp, &sn);
        if (!m || !s || !mn || !sn) return fprintf(stderr, "cannot read back %s\n", st), 1;
        snprintf(out, sizeof out, "%s/store-%dch.bin", argv[1], ch);
        FILE *fp = fopen(out, "wb");
        uint8_t len[4] = {(uint8_t)mn, (uint8_t)(mn >> 8), (uint8_t)(mn >> 16), (uint8_t)(mn >> 24)};
        fwrite(len, 1, 4, fp);
        fwrite(m, 1, mn, fp);
        fwrite(s, 1, sn, fp);
        fclose(fp);
        unlink(mp);
        unlink(sp);
        rmdir(st);
        free(m), free(s), free(img), free(lab);
    }
    return 0;
}
