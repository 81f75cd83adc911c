/* test_config.c — a resolved config printed by config_print() loads back to the same values
 * (checkpoints store it; resume and predict read it), for every recipe in configs/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "testutil.h"

#ifndef UNET_SOURCE_DIR
#define UNET_SOURCE_DIR "."
#endif

int main(void) {
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
