/* fuzz_config.c — the YAML config parser and the command-line overrides (src/config/config.c).
 *
 * Input: YAML text, then optionally a NUL byte and override lines ("section.key=value", one per
 * line). The text goes through config_load (as a file) and config_load_text; when it loads, each
 * override is applied with config_override (stopping at the first refused), then
 * config_validate, config_check_backend and config_precision. A config that passes is printed
 * (config_print, what a checkpoint stores) and must load back to the same values: the printed
 * text is what a resume reads (config_resume_diff must find no key changed, and printed again it
 * must be the same text). */
#include "config.h"
#include "fuzz_common.h"

static void roundtrip(const Config *cfg) {
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) abort();
    config_print(cfg, mem);
    fclose(mem);
    Config back;
    char err[1024], diff[2048];
    if (config_load_text(&back, text, "printed", err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_config: the printed config does not load back: %s\n--- printed:\n%s", err, text);
        abort();
    }
    if (config_resume_diff(cfg, &back, diff, sizeof diff) != 0) {
        fprintf(stderr, "fuzz_config: the printed config loads back different: %s\n--- printed:\n%s", diff, text);
        abort();
    }
    /* every key, the ones free to change on resume included: printed again, the same text */
    char *again = NULL;
    size_t again_len = 0;
    mem = open_memstream(&again, &again_len);
    if (!mem) abort();
    config_print(&back, mem);
    fclose(mem);
    if (again_len != len || memcmp(again, text, len) != 0) {
        fprintf(stderr, "fuzz_config: the printed config loads back different:\n--- printed:\n%s--- reprinted:\n%s", text, again);
        abort();
    }
    free(again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 20)) return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    size_t ylen = strlen(text); /* the YAML ends at the first NUL; overrides follow it */
    char err[1024];
    Config cfg, cfg2;
    /* the file reader (regular-file check, size limit, read loop) and the text entry point */
    const char *p = fuzz_temp_file("cfg", ".yaml", data, ylen);
    int rc_file = config_load(&cfg2, p, err, sizeof err);
    int rc = config_load_text(&cfg, text, "fuzz.yaml", err, sizeof err);
    if (rc != rc_file) {
        fprintf(stderr, "fuzz_config: config_load and config_load_text disagree (%d, %d)\n", rc_file, rc);
        abort();
    }
    if (rc == 0) {
        char *ov = ylen < size ? text + ylen + 1 : NULL;
        int ok = 1;
        while (ov && *ov && ok) {
            char *nl = strchr(ov, '\n');
            if (nl) *nl = '\0';
            if (*ov && config_override(&cfg, ov, err, sizeof err) != 0) ok = 0;
            ov = nl ? nl + 1 : NULL;
        }
        if (ok && config_validate(&cfg, err, sizeof err) == 0 && config_check_backend(&cfg, err, sizeof err) == 0) {
            (void)config_precision(&cfg);
            roundtrip(&cfg);
        }
    }
    free(text);
    return 0;
}
