/* test_config.c — a resolved config printed by config_print() loads back to the same values
 * (checkpoints store it; resume and predict read it), for every recipe in configs/; and the
 * train.precision field: its values, its default, its resolution, and its cross-field rule. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(void) {
    test_precision();
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
