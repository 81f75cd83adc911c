/* config.h — run configuration read from YAML (libyaml) against a strict schema.
 *
 * An unknown key, a wrong type or an out-of-range value is an error reported as
 * FILE:LINE:COLUMN: section.key: what was expected. The schema (fields, types, ranges,
 * defaults) is the table in config.c; docs/configs.md describes it for users. */
#ifndef UNET_CONFIG_H
#define UNET_CONFIG_H

#include <stddef.h>

typedef struct {
    char path[512];
    char name[64];

    /* network: */
    char preset[16];     /* tiny | base | large | custom */
    int embed_dim;       /* C; from the preset unless custom */
    int heads[4];        /* per encoder stage; from the preset unless custom */
    int patch_size;      /* P: 4 or 8 */
    int windows[4];      /* window per encoder stage (clamped to the stage size at build) */
    int in_channels;
    int classes;         /* including background */
    int deep_supervision;
    int crop[2];         /* H, W of the training patch; fixes the window clamping */
    double drop_path_rate;

    /* train: (the training driver extends this section) */
    int batch_size;
    double lr;
    int epochs;
} Config;

/* Loads and validates; on error returns -1 with "file:line:col: message" in err. */
int config_load(Config *cfg, const char *path, char *err, size_t err_len);

/* Applies one "section.key=value" override (as given on a command line) with the same
 * validation as the file; returns -1 with a message naming the override on error. */
int config_override(Config *cfg, const char *assignment, char *err, size_t err_len);

/* Checks cross-field rules (crop divisible by P·8, heads divide dims, ...). */
int config_validate(const Config *cfg, char *err, size_t err_len);

/* Prints the resolved configuration as YAML (what the run will actually use). */
void config_print(const Config *cfg, void *file /* FILE* */);

#endif
