/* test_config.c — a resolved config printed by config_print() loads back to the same values
 * (checkpoints store it; resume and predict read it), for every recipe in configs/; and the
 * train.precision field: its values, its default, its resolution, and its cross-field rule; the
 * augment rows (data/augment.h's defaults and bounds); and the resume comparison (which keys
 * may change, how a refusal names the others, old stored configs missing newer keys). Hostile
 * input (issue 16): a 100,000-deep document is refused by the nesting limit in well under a
 * second, naming the file, the line and the limit; a FIFO is refused instead of blocking.
 * Strings that are not plain words print so that they load back; overrides of the preset's
 * widths follow the preset rule; override strings must be UTF-8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "testutil.h"

#ifndef UNET_SOURCE_DIR
#define UNET_SOURCE_DIR "."
#endif

/* A small valid config with the given train: lines appended. */
static int load_train(Config *c, const char *train_lines, char *err, size_t err_len) {
    char text[1024];
    snprintf(text, sizeof text,
             "name: t\nnetwork:\n  preset: tiny\n  patch_size: 4\n  windows: [7, 7, 7, 7]\n  in_channels: 1\n"
             "  classes: 2\n  deep_supervision: true\n  crop: [64, 64]\ntrain:\n%s",
             train_lines);
    return config_load_text(c, text, "t.yaml", err, err_len);
}

static void test_precision(void) {
    Config c;
    char err[1024], lines[256];
    /* every value loads with the cuda backend; auto resolves to the product mode */
    const char *vals[] = {"auto", "fp32", "tf32", "bf16"}, *resolved[] = {"bf16", "fp32", "tf32", "bf16"};
    for (int i = 0; i < 4; i++) {
        snprintf(lines, sizeof lines, "  backend: cuda\n  precision: %s\n", vals[i]);
        int ok = load_train(&c, lines, err, sizeof err) == 0;
        TEST_CHECK(ok, "precision %s with backend cuda loads (%s)", vals[i], ok ? "" : err);
        if (ok)
            TEST_CHECK(!strcmp(c.precision, vals[i]) && !strcmp(config_precision(&c), resolved[i]),
                       "precision %s (cuda): stored '%s', resolved '%s', expected %s", vals[i], c.precision,
                       config_precision(&c), resolved[i]);
    }
    /* default auto; on the CPU auto and fp32 mean fp32 */
    int ok = load_train(&c, "  backend: cpu\n", err, sizeof err) == 0;
    TEST_CHECK(ok && !strcmp(c.precision, "auto") && !strcmp(config_precision(&c), "fp32"),
               "default precision is auto, fp32 on cpu (%s)", ok ? c.precision : err);
    ok = load_train(&c, "  backend: cpu\n  precision: fp32\n", err, sizeof err) == 0;
    TEST_CHECK(ok && !strcmp(config_precision(&c), "fp32"), "precision fp32 with backend cpu loads (%s)",
               ok ? "" : err);
    /* a value outside the set: an error at the value's line and column, naming the field */
    ok = load_train(&c, "  backend: cuda\n  precision: fp16\n", err, sizeof err) == 0;
    TEST_CHECK(!ok && strstr(err, "t.yaml:12:14: train.precision") && strstr(err, "auto|fp32|tf32|bf16") &&
                   strstr(err, "fp16"),
               "precision fp16 is rejected naming the field and its line (got: %s)", ok ? "accepted" : err);
    /* tf32 and bf16 need the cuda backend: loading accepts the pair (a job script may still
     * override the backend), config_check_backend rejects it naming the field */
    for (int i = 2; i < 4; i++) {
        snprintf(lines, sizeof lines, "  backend: cpu\n  precision: %s\n", vals[i]);
        ok = load_train(&c, lines, err, sizeof err) == 0;
        TEST_CHECK(ok, "precision %s with backend cpu loads (%s)", vals[i], ok ? "" : err);
        ok = ok && config_check_backend(&c, err, sizeof err) == 0;
        TEST_CHECK(!ok && strstr(err, "train.precision") && strstr(err, vals[i]) && strstr(err, "fp32 only"),
                   "precision %s with backend cpu is rejected by the final check, naming the field (got: %s)",
                   vals[i], ok ? "accepted" : err);
    }
    /* overrides in either order: only the final pair counts */
    ok = load_train(&c, "  backend: cpu\n", err, sizeof err) == 0 &&
         config_override(&c, "train.precision=bf16", err, sizeof err) == 0 &&
         config_override(&c, "train.backend=cuda", err, sizeof err) == 0 && config_check_backend(&c, err, sizeof err) == 0;
    TEST_CHECK(ok && !strcmp(config_precision(&c), "bf16"), "overrides precision=bf16 then backend=cuda (%s)",
               ok ? "" : err);
    ok = load_train(&c, "  backend: cpu\n", err, sizeof err) == 0 &&
         config_override(&c, "train.backend=cuda", err, sizeof err) == 0 &&
         config_override(&c, "train.precision=tf32", err, sizeof err) == 0 && config_check_backend(&c, err, sizeof err) == 0;
    TEST_CHECK(ok && !strcmp(config_precision(&c), "tf32"), "overrides backend=cuda then precision=tf32 (%s)",
               ok ? "" : err);
    ok = load_train(&c, "  backend: cuda\n  precision: bf16\n", err, sizeof err) == 0 &&
         config_override(&c, "train.backend=cpu", err, sizeof err) == 0;
    ok = ok && config_check_backend(&c, err, sizeof err) == 0;
    TEST_CHECK(!ok && strstr(err, "train.precision"), "a bf16 config overridden to backend=cpu fails the final check (got: %s)",
               ok ? "accepted" : err);
    ok = config_override(&c, "train.precision=fp8", err, sizeof err) == 0;
    TEST_CHECK(!ok && strstr(err, "train.precision=fp8") && strstr(err, "auto|fp32|tf32|bf16"),
               "override train.precision=fp8 is rejected (got: %s)", ok ? "accepted" : err);
    /* a printed bf16 config loads back identical (checkpoints store the printed text) */
    ok = load_train(&c, "  backend: cuda\n  precision: bf16\n", err, sizeof err) == 0;
    if (ok) {
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        config_print(&c, mem);
        fclose(mem);
        Config b;
        ok = config_load_text(&b, text, "printed", err, sizeof err) == 0;
        TEST_CHECK(ok && !strcmp(b.precision, "bf16") && !strcmp(b.backend, "cuda"),
                   "printed bf16 config loads back with precision bf16 (%s)", ok ? b.precision : err);
        free(text);
    }
}

/* The config as config_print writes it, into buf. */
static void print_to(const Config *c, char *buf, size_t n) {
    memset(buf, 0, n);
    FILE *mem = fmemopen(buf, n - 1, "w");
    config_print(c, mem);
    fclose(mem);
}

static void test_augment_rows(void) {
    Config c;
    char err[1024];
    int ok = load_train(&c, "  backend: cpu\n", err, sizeof err) == 0;
    TEST_CHECK(ok, "small config loads (%s)", ok ? "" : err);
    /* defaults: the data layer's recipe, the enlarged crop left to the rule */
    AugmentParams d;
    augment_params_default(&d, 0, 0);
    d.enlarged[0] = d.enlarged[1] = 0;
    TEST_CHECK(ok && memcmp(&c.aug, &d, sizeof d) == 0, "augment defaults are augment_params_default's");
    /* a value outside data/augment.h's bounds: named at its line and column */
    char text[1024];
    snprintf(text, sizeof text,
             "name: t\nnetwork:\n  preset: tiny\n  patch_size: 4\n  windows: [7, 7, 7, 7]\n  in_channels: 1\n"
             "  classes: 2\n  deep_supervision: true\n  crop: [64, 64]\naugment:\n  p_rotation: 1.5\n");
    ok = config_load_text(&c, text, "a.yaml", err, sizeof err) == 0;
    TEST_CHECK(!ok && strstr(err, "a.yaml:11:15: augment.p_rotation") && strstr(err, "out of range [0, 1]"),
               "augment.p_rotation 1.5 is rejected at its line (got: %s)", ok ? "accepted" : err);
    ok = load_train(&c, "  seed: 1\n", err, sizeof err) == 0 && config_override(&c, "augment.scale_min=0.01", err, sizeof err) == 0;
    TEST_CHECK(!ok && strstr(err, "augment.scale_min=0.01") && strstr(err, "[0.05, 20]"),
               "override augment.scale_min=0.01 is rejected with data's bounds (got: %s)", ok ? "accepted" : err);
}

static void test_resume_diff(void) {
    Config a, b;
    char err[1024], diff[1024];
    int ok = load_train(&a, "  lr: 0.001\n", err, sizeof err) == 0 && load_train(&b, "  lr: 0.001\n", err, sizeof err) == 0;
    TEST_CHECK(ok, "configs load (%s)", ok ? "" : err);
    if (!ok) return;
    /* keys that do not change the batches or the update may change */
    const char *free_keys[] = {"train.epochs=7", "train.max_steps=9", "train.threads=3", "train.keep_last=2",
                               "train.checkpoint_every=5", "train.val_every=2", "train.val_max_slices=8",
                               "train.val_at_start=true", "train.log_every=1", "train.run_dir=elsewhere",
                               "train.backend=cuda", "train.precision=bf16", "train.grad_bucket_mb=1", "train.comm_timeout_s=9",
                               "train.cuda_graph=off",
                               "loader.workers=9", "loader.prefetch=1", "predict.step=0.3"};
    for (size_t i = 0; i < sizeof free_keys / sizeof free_keys[0]; i++)
        TEST_CHECK(config_override(&b, free_keys[i], err, sizeof err) == 0, "override %s (%s)", free_keys[i], err);
    int n = config_resume_diff(&a, &b, diff, sizeof diff);
    TEST_CHECK(n == 0, "run length, logging, threads, backend, loader and predict may change on resume (got %d: %s)", n, diff);
    /* the others are named, old value first */
    ok = config_override(&b, "train.lr=0.0001", err, sizeof err) == 0 &&
         config_override(&b, "augment.p_rotation=0.5", err, sizeof err) == 0 &&
         config_override(&b, "network.drop_path_rate=0.1", err, sizeof err) == 0;
    n = config_resume_diff(&a, &b, diff, sizeof diff);
    TEST_CHECK(ok && n == 3 && strstr(diff, "train.lr: 0.001 in the checkpoint, 0.0001 now") &&
                   strstr(diff, "augment.p_rotation: 0.2 in the checkpoint, 0.5 now") &&
                   strstr(diff, "network.drop_path_rate:"),
               "lr, p_rotation and drop_path_rate are named (got %d: %s)", n, diff);
    /* a checkpoint of an older version lacks predict.step: the default fills it, it resumes */
    static char text[8192];
    print_to(&a, text, sizeof text);
    char *predict = strstr(text, "predict:\n");
    TEST_CHECK(predict != NULL, "printed config has a predict section");
    if (predict) *predict = '\0';
    Config old;
    ok = config_load_text(&old, text, "old", err, sizeof err) == 0;
    TEST_CHECK(ok && old.predict_step == 0.5 && config_resume_diff(&old, &a, diff, sizeof diff) == 0,
               "a stored config without predict.step loads and matches (%s%s)", ok ? "" : err, ok ? diff : "");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_hostile(void) {
    enum { DEPTH = 100000 };
    char err[1024];
    Config c;
    /* flow style "[[[...]]]" and block style "- - - ..." (each item a list), 100,000 deep: the
     * rejection took 48 s and grew with the square of the depth */
    char *text = malloc(4 * DEPTH + 64);
    for (int style = 0; style < 2; style++) {
        size_t k = (size_t)sprintf(text, style ? "name: t\ntrain:\n  lr:\n    " : "name: t\ntrain:\n  lr: ");
        for (int i = 0; i < DEPTH; i++) k += (size_t)sprintf(text + k, style ? "- " : "[");
        k += (size_t)sprintf(text + k, "1");
        for (int i = 0; i < DEPTH && !style; i++) text[k++] = ']';
        text[k++] = '\n';
        text[k] = '\0';
        double t0 = now_s();
        int rc = config_load_text(&c, text, "deep.yaml", err, sizeof err);
        double dt = now_s() - t0;
        TEST_CHECK(rc != 0 && strstr(err, style ? "deep.yaml:4:" : "deep.yaml:3:") &&
                       strstr(err, "nested more than 32 deep"),
                   "a %d-deep %s document is refused naming the file, line and limit: %s", DEPTH,
                   style ? "block" : "flow", err);
        TEST_CHECK(dt < 0.5, "... in well under a second (%.3f s)", dt);
    }
    free(text);
    /* the same through a file; then the file as a FIFO, which used to block fopen forever */
    char dir[] = "/tmp/unet-cfg-XXXXXX", path[256];
    if (!mkdtemp(dir)) return;
    snprintf(path, sizeof path, "%s/deep.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("name: t\ntrain:\n  lr: ", f);
    for (int i = 0; i < DEPTH; i++) fputc('[', f);
    fclose(f);
    double t0 = now_s();
    TEST_CHECK(config_load(&c, path, err, sizeof err) != 0 && strstr(err, path) && strstr(err, ":3:") &&
                   now_s() - t0 < 0.5,
               "a deep file is refused quickly, naming it: %s", err);
    unlink(path);
    snprintf(path, sizeof path, "%s/fifo.yaml", dir);
    TEST_CHECK(mkfifo(path, 0600) == 0, "mkfifo");
    TEST_CHECK(config_load(&c, path, err, sizeof err) != 0 && strstr(err, path) && strstr(err, "not a regular file"),
               "a FIFO as config is refused without blocking: %s", err);
    TEST_CHECK(config_load(&c, dir, err, sizeof err) != 0 && strstr(err, "not a regular file"),
               "a directory as config is refused: %s", err);
    unlink(path);
    rmdir(dir);
}

/* Found with tests/fuzz/fuzz_config's print-and-reload check: strings that are not plain words,
 * override values that are not UTF-8, and width overrides under a named preset each made a
 * config whose printed form (a checkpoint's stored config) did not load back. */
static void test_printed_strings_and_preset_overrides(void) {
    Config a, b;
    char err[1024], text[8192];
    int ok = load_train(&a, "  store: \"a\\\"b #c\"\n  kernels: 'x: y'\n", err, sizeof err) == 0;
    TEST_CHECK(ok, "strings with a quote, ': ' and ' #' load (%s)", ok ? "" : err);
    ok = ok && config_override(&a, "name=tab\there\x01\\", err, sizeof err) == 0;
    TEST_CHECK(ok, "an override with control characters and a backslash is taken (%s)", ok ? "" : err);
    if (ok) {
        print_to(&a, text, sizeof text);
        ok = config_load_text(&b, text, "printed", err, sizeof err) == 0;
        TEST_CHECK(ok, "the printed config loads back (%s)\n%s", ok ? "" : err, text);
        TEST_CHECK(ok && !strcmp(b.store, "a\"b #c") && !strcmp(b.kernels, "x: y") && !strcmp(b.name, "tab\there\x01\\"),
                   "strings load back unchanged (store '%s', kernels '%s')", b.store, b.kernels);
    }
    ok = load_train(&a, "  lr: 1e-3\n", err, sizeof err) == 0 && config_override(&a, "train.run_dir=a\xff", err, sizeof err) != 0;
    TEST_CHECK(ok && strstr(err, "train.run_dir") && strstr(err, "UTF-8"), "a non-UTF-8 override is refused (%s)", err);
    ok = load_train(&a, "  lr: 1e-3\n", err, sizeof err) == 0 && config_override(&a, "network.embed_dim=48", err, sizeof err) != 0;
    TEST_CHECK(ok && strstr(err, "network.embed_dim=48") && strstr(err, "preset 'tiny'"),
               "embed_dim under preset tiny is refused (%s)", err);
    ok = load_train(&a, "  lr: 1e-3\n", err, sizeof err) == 0 && config_override(&a, "network.heads=[3, 6, 12, 24]", err, sizeof err) == 0;
    TEST_CHECK(ok, "heads repeating preset tiny's are taken (%s)", ok ? "" : err);
    ok = load_train(&a, "  lr: 1e-3\n", err, sizeof err) == 0 && config_override(&a, "network.preset=base", err, sizeof err) == 0;
    TEST_CHECK(ok && a.net.embed_dim == 128 && a.net.heads[3] == 32, "preset=base sets base's widths (%s)", ok ? "" : err);
    ok = load_train(&a, "  lr: 1e-3\n", err, sizeof err) == 0 && config_override(&a, "network.preset=custom", err, sizeof err) == 0 &&
         config_override(&a, "network.embed_dim=48", err, sizeof err) == 0 &&
         config_override(&a, "network.heads=[1, 2, 4, 8]", err, sizeof err) == 0;
    TEST_CHECK(ok && a.net.embed_dim == 48, "preset=custom, then embed_dim and heads (%s)", ok ? "" : err);
    if (ok) {
        print_to(&a, text, sizeof text);
        ok = config_load_text(&b, text, "printed", err, sizeof err) == 0;
        TEST_CHECK(ok && b.net.embed_dim == 48 && !strcmp(b.net.preset, "custom"), "it prints and loads back (%s)", ok ? "" : err);
    }
}

int main(void) {
    test_hostile();
    test_printed_strings_and_preset_overrides();
    test_precision();
    test_augment_rows();
    test_resume_diff();
    const char *names[] = {"synapse_224", "synapse_320", "acdc_224", "em_512", "isic_512", "demo"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1024], err[1024];
        snprintf(path, sizeof path, "%s/configs/%s.yaml", UNET_SOURCE_DIR, names[i]);
        Config a, b;
        int ok = config_load(&a, path, err, sizeof err) == 0;
        TEST_CHECK(ok, "%s loads (%s)", names[i], ok ? "" : err);
        if (!ok) continue;
        char *text = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&text, &len);
        config_print(&a, mem);
        fclose(mem);
        ok = config_load_text(&b, text, "printed", err, sizeof err) == 0;
        TEST_CHECK(ok, "%s: the printed config loads back (%s)", names[i], ok ? "" : err);
        if (ok) {
            memset(a.path, 0, sizeof a.path);
            memset(b.path, 0, sizeof b.path);
            TEST_CHECK(memcmp(&a, &b, sizeof a) == 0, "%s: printed and reloaded configs are identical", names[i]);
        }
        free(text);
    }
    return test_summary("config");
}
