/* test_checkpoint.c — checkpoints round-trip bit for bit, damaged ones are detected (and
 * skipped by auto-resume in favour of the previous one), pruning keeps the newest K, and a
 * checkpoint loads wherever a weights file does. Hostile input (issue 16): a flipped bit in the
 * metadata is caught by its checksum, a FIFO is refused instead of blocking the reader, and a
 * weights file holding a NaN or an infinity is refused naming the tensor. */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "config.h"
#include "model.h"
#include "testutil.h"
#include "weights_io.h"

static const char *CONFIG_YAML =
    "name: ckpt_test\nnetwork:\n  preset: custom\n  embed_dim: 8\n  heads: [1, 2, 2, 4]\n  patch_size: 4\n"
    "  windows: [4, 4, 4, 4]\n  in_channels: 1\n  classes: 3\n  deep_supervision: true\n  crop: [64, 64]\n";

static void flip_byte(const char *path, long offset_from_end) {
    FILE *f = fopen(path, "r+b");
    fseek(f, -offset_from_end, SEEK_END);
    int c = fgetc(f);
    fseek(f, -offset_from_end, SEEK_END);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

/* Flips the lowest bit of the first digit after `key` in the file (the metadata is JSON text in
 * the header): "epoch_step":"5" becomes "4", still a valid number. */
static int flip_meta_digit(const char *path, const char *key) {
    FILE *f = fopen(path, "r+b");
    if (!f) return -1;
    char head[65536];
    size_t n = fread(head, 1, sizeof head, f);
    char *at = memmem(head, n, key, strlen(key));
    if (!at) return fclose(f), -1;
    while (at < head + n && (*at < '0' || *at > '9')) at++;
    if (at == head + n) return fclose(f), -1;
    fseek(f, (long)(at - head), SEEK_SET);
    fputc(*at ^ 1, f);
    fclose(f);
    return 0;
}

/* Hostile inputs to the readers: a FIFO, non-finite weights, damaged metadata. */
static void hostile(const char *dir, const Model *m, const float *p, const float *mm, const float *vv) {
    char err[1024], path[512];
    size_t n = m->params.total;
    float *in = calloc(n, 4), *bad = malloc(n * 4);

    /* one flipped bit in the data position: before meta_crc32 it verified and the resume spun */
    TrainState st = {.step = 17, .epoch = 3, .epoch_step = 5, .seed = 99, .world_size = 1, .best_metric = -1,
                     .ema_metric = -1};
    snprintf(path, sizeof path, "%s/meta.safetensors", dir);
    TEST_CHECK(checkpoint_save(path, m, p, mm, vv, &st, CONFIG_YAML, err, sizeof err) == 0, "save (%s)", err);
    TEST_CHECK(checkpoint_verify(path, err, sizeof err) == 0, "an intact checkpoint verifies (%s)", err);
    TEST_CHECK(flip_meta_digit(path, "\"epoch_step\"") == 0, "flip a bit of epoch_step");
    TEST_CHECK(checkpoint_verify(path, err, sizeof err) != 0 && strstr(err, "metadata checksum mismatch") &&
                   strstr(err, path),
               "a flipped metadata bit is detected, naming the file: %s", err);
    TrainState got;
    TEST_CHECK(checkpoint_load(path, m, in, in, in, &got, NULL, err, sizeof err) != 0, "and never loads");
    unlink(path);

    /* a FIFO blocks open() until a writer comes: it must be refused before it is opened */
    snprintf(path, sizeof path, "%s/fifo.safetensors", dir);
    TEST_CHECK(mkfifo(path, 0600) == 0, "mkfifo");
    TEST_CHECK(checkpoint_verify(path, err, sizeof err) != 0 && strstr(err, "not a regular file") && strstr(err, path),
               "a FIFO as checkpoint is refused without blocking: %s", err);
    TEST_CHECK(weights_load(m, in, path, err, sizeof err) != 0 && strstr(err, "not a regular file") && strstr(err, path),
               "a FIFO as weights file is refused without blocking: %s", err);
    TEST_CHECK(weights_load(m, in, dir, err, sizeof err) != 0 && strstr(err, "not a regular file"),
               "a directory as weights file is refused: %s", err);
    unlink(path);

    /* one NaN (or inf) in the weights: predict used to exit 0 with all-background labels */
    const ParamInfo *victim = &m->params.items[m->params.count / 2];
    const float poison[2] = {NAN, -INFINITY};
    for (int i = 0; i < 2; i++) {
        memcpy(bad, p, n * 4);
        bad[victim->offset + victim->numel / 2] = poison[i];
        snprintf(path, sizeof path, "%s/w%d.safetensors", dir, i);
        TEST_CHECK(weights_save(m, bad, "t", path, err, sizeof err) == 0, "save poisoned weights (%s)", err);
        TEST_CHECK(weights_load(m, in, path, err, sizeof err) != 0 && strstr(err, path) && strstr(err, victim->name) &&
                       strstr(err, i ? "-inf" : "nan"),
                   "a %s weight is refused naming the file and the tensor: %s", i ? "-inf" : "NaN", err);
        unlink(path);
    }
    free(in), free(bad);
}

int main(void) {
    char dir[] = "/tmp/unet-ckpt-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char cfg_path[256], err[1024];
    snprintf(cfg_path, sizeof cfg_path, "%s/c.yaml", dir);
    FILE *f = fopen(cfg_path, "w");
    fputs(CONFIG_YAML, f);
    fclose(f);
    Config cfg;
    TEST_CHECK(config_load(&cfg, cfg_path, err, sizeof err) == 0, "config loads (%s)", err);
    Model m;
    model_build(&m, &cfg.net);
    size_t n = m.params.total;
    float *p = malloc(n * 4), *mm = malloc(n * 4), *vv = malloc(n * 4);
    TestRng rng = {42};
    test_fill(p, n, &rng, -1, 1);
    test_fill(mm, n, &rng, -1, 1);
    test_fill(vv, n, &rng, 0, 1);
    TrainState st = {.step = 17, .epoch = 3, .epoch_step = 5, .seed = 99, .world_size = 2, .best_metric = 0.5,
                     .ema_metric = 0.25};
    char p1[512], p2[512], found[512];
    checkpoint_path(p1, sizeof p1, dir, 17);
    checkpoint_path(p2, sizeof p2, dir, 18);
    TEST_CHECK(checkpoint_save(p1, &m, p, mm, vv, &st, CONFIG_YAML, err, sizeof err) == 0, "save step 17 (%s)", err);
    st.step = 18;
    TEST_CHECK(checkpoint_save(p2, &m, p, mm, vv, &st, CONFIG_YAML, err, sizeof err) == 0, "save step 18 (%s)", err);

    float *p_in = calloc(n, 4), *m_in = calloc(n, 4), *v_in = calloc(n, 4);
    TrainState got;
    char *yaml = NULL;
    TEST_CHECK(checkpoint_load(p2, &m, p_in, m_in, v_in, &got, &yaml, err, sizeof err) == 0, "load (%s)", err);
    TEST_CHECK(!memcmp(p, p_in, n * 4) && !memcmp(mm, m_in, n * 4) && !memcmp(vv, v_in, n * 4),
               "weights and Adam moments round-trip bit for bit");
    TEST_CHECK(got.step == 18 && got.epoch == 3 && got.epoch_step == 5 && got.seed == 99 && got.world_size == 2 &&
                   got.best_metric == 0.5 && got.ema_metric == 0.25,
               "training state round-trips");
    TEST_CHECK(yaml && strcmp(yaml, CONFIG_YAML) == 0, "config text round-trips");
    free(yaml);

    memset(p_in, 0, n * 4);
    TEST_CHECK(weights_load(&m, p_in, p2, err, sizeof err) == 0 && !memcmp(p, p_in, n * 4),
               "a checkpoint loads as a weights file (%s)", err);

    TEST_CHECK(checkpoint_find_latest(dir, found, sizeof found) == 0 && strcmp(found, p2) == 0,
               "auto-resume takes the newest (%s)", found);
    flip_byte(p2, 1000);
    TEST_CHECK(checkpoint_verify(p2, err, sizeof err) != 0 && strstr(err, "checksum mismatch"),
               "a flipped data byte is detected: %s", err);
    TEST_CHECK(checkpoint_find_latest(dir, found, sizeof found) == 0 && strcmp(found, p1) == 0,
               "auto-resume falls back to the previous checkpoint (%s)", found);
    TEST_CHECK(truncate(p1, 4096) == 0, "truncate");
    TEST_CHECK(checkpoint_load(p1, &m, p_in, m_in, v_in, &got, NULL, err, sizeof err) != 0 && strstr(err, p1),
               "a truncated checkpoint is rejected naming the file: %s", err);
    TEST_CHECK(checkpoint_find_latest(dir, found, sizeof found) != 0, "no intact checkpoint left: none is taken");

    hostile(dir, &m, p, mm, vv);

    for (uint64_t s = 20; s < 25; s++) {
        char ps[512];
        checkpoint_path(ps, sizeof ps, dir, s);
        st.step = s;
        checkpoint_save(ps, &m, p, mm, vv, &st, CONFIG_YAML, err, sizeof err);
    }
    checkpoint_prune(dir, 2);
    char keep[512], gone[512];
    checkpoint_path(keep, sizeof keep, dir, 23);
    checkpoint_path(gone, sizeof gone, dir, 22);
    TEST_CHECK(access(keep, F_OK) == 0 && access(gone, F_OK) != 0, "prune keeps the newest 2");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)system(cmd);
    free(p), free(mm), free(vv), free(p_in), free(m_in), free(v_in);
    model_free(&m);
    return test_summary("checkpoint");
}
