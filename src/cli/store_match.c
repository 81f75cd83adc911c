/* store_match.c — see store_match.h. */
#include "store_match.h"

#include <stdio.h>
#include <string.h>

#include "store.h"

int store_match_check(const Config *cfg, char *msg, size_t msg_len) {
    if (!cfg->store[0]) return 0;
    Store *s;
    char err[1024];
    if (store_open(&s, cfg->store, err, sizeof err) != 0) return 0;
    int classes = store_num_classes(s), channels = store_num_cases(s) > 0 ? store_case(s, 0)->channels : 0;
    store_close(s);
    int bad_c = classes != cfg->net.classes, bad_ch = channels > 0 && channels != cfg->net.in_channels;
    if (!bad_c && !bad_ch) return 0;
    char fix[256] = "";
    if (bad_c) snprintf(fix, sizeof fix, "network.classes=%d", classes);
    if (bad_ch) snprintf(fix + strlen(fix), sizeof fix - strlen(fix), "%snetwork.in_channels=%d", bad_c ? " " : "", channels);
    snprintf(msg, msg_len, "the store %s has %d classes and %d input channels but the config says network.classes %d, "
             "network.in_channels %d: set them in the config or add the overrides `%s`", cfg->store, classes,
             channels, cfg->net.classes, cfg->net.in_channels, fix);
    return 1;
}
