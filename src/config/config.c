/* config.c — strict YAML configuration (see config.h).
 *
 * The whole schema is the FIELDS table: one row per key with its type, range and
 * default. Parsing walks the libyaml document tree, so every error can name the exact
 * line and column; overrides from the command line reuse the same per-type parsers. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "check.h"

typedef enum { F_INT, F_LONG, F_FLOAT, F_BOOL, F_STRING, F_INT_LIST } FieldType;

typedef struct {
    const char *section; /* "" for top level */
    const char *key;
    FieldType type;
    size_t offset;       /* into Config */
    int count;           /* list length (F_INT_LIST), string capacity (F_STRING) */
    double min, max;     /* inclusive range for numbers / list items */
    const char *choices; /* F_STRING: "|"-separated allowed values, or NULL */
    const char *deflt;   /* default as text, or NULL if required */
} Field;

#define OFF(f) offsetof(Config, f)
static const Field FIELDS[] = {
    {"", "name", F_STRING, OFF(name), sizeof(((Config *)0)->name), 0, 0, NULL, NULL},
    {"network", "preset", F_STRING, OFF(net.preset), sizeof(((Config *)0)->net.preset), 0, 0, "tiny|base|large|custom", NULL},
    {"network", "embed_dim", F_INT, OFF(net.embed_dim), 0, 0, 4096, NULL, "0"},
    {"network", "heads", F_INT_LIST, OFF(net.heads), 4, 0, 1024, NULL, "[0, 0, 0, 0]"},
    {"network", "patch_size", F_INT, OFF(net.patch_size), 0, 4, 8, NULL, NULL},
    {"network", "windows", F_INT_LIST, OFF(net.windows), 4, 1, 64, NULL, NULL},
    {"network", "in_channels", F_INT, OFF(net.in_channels), 0, 1, 64, NULL, NULL},
    {"network", "classes", F_INT, OFF(net.classes), 0, 2, 1024, NULL, NULL},
    {"network", "deep_supervision", F_BOOL, OFF(net.deep_supervision), 0, 0, 1, NULL, NULL},
    {"network", "crop", F_INT_LIST, OFF(net.crop), 2, 32, 8192, NULL, NULL},
    {"network", "drop_path_rate", F_FLOAT, OFF(net.drop_path_rate), 0, 0.0, 0.99, NULL, "0.2"},
    {"train", "batch_size", F_INT, OFF(batch_size), 0, 1, 4096, NULL, "8"},
    {"train", "lr", F_FLOAT, OFF(lr), 0, 0.0, 10.0, NULL, "1e-4"},
    {"train", "epochs", F_INT, OFF(epochs), 0, 1, 1000000, NULL, "1"},
    {"train", "max_steps", F_LONG, OFF(max_steps), 0, 0, 1e15, NULL, "0"},
    {"train", "seed", F_LONG, OFF(seed), 0, 0, 1e15, NULL, "1"},
    {"train", "store", F_STRING, OFF(store), sizeof(((Config *)0)->store), 0, 0, NULL, ""},
    {"train", "train_split", F_STRING, OFF(train_split), sizeof(((Config *)0)->train_split), 0, 0, NULL, "train"},
    {"train", "val_split", F_STRING, OFF(val_split), sizeof(((Config *)0)->val_split), 0, 0, NULL, "val"},
    {"train", "run_dir", F_STRING, OFF(run_dir), sizeof(((Config *)0)->run_dir), 0, 0, NULL, ""},
    {"train", "keep_last", F_INT, OFF(keep_last), 0, 1, 1000, NULL, "3"},
    {"train", "checkpoint_every", F_LONG, OFF(checkpoint_every), 0, 0, 1e15, NULL, "0"},
    {"train", "val_every", F_INT, OFF(val_every), 0, 0, 1000000, NULL, "1"},
    {"train", "val_max_slices", F_INT, OFF(val_max_slices), 0, 0, 100000000, NULL, "0"},
    {"train", "val_at_start", F_BOOL, OFF(val_at_start), 0, 0, 1, NULL, "false"},
    {"train", "log_every", F_INT, OFF(log_every), 0, 0, 100000000, NULL, "0"},
    {"train", "ema_alpha", F_FLOAT, OFF(ema_alpha), 0, 0.0, 1.0, NULL, "0.9"},
    {"train", "backend", F_STRING, OFF(backend), sizeof(((Config *)0)->backend), 0, 0, "cpu|cuda", "cpu"},
    {"train", "precision", F_STRING, OFF(precision), sizeof(((Config *)0)->precision), 0, 0, "auto|fp32|tf32|bf16", "auto"},
    {"train", "threads", F_INT, OFF(threads), 0, 0, 1024, NULL, "0"},
    {"train", "grad_bucket_mb", F_FLOAT, OFF(grad_bucket_mb), 0, 0, 4096, NULL, "25"},
    {"augment", "enlarged", F_INT_LIST, OFF(aug_enlarged), 2, 0, 16384, NULL, "[0, 0]"},
    {"augment", "p_rotation", F_FLOAT, OFF(aug_p_rotation), 0, 0, 1, NULL, "0.2"},
    {"augment", "rotation_min", F_FLOAT, OFF(aug_rotation_min), 0, -180, 180, NULL, "0"},
    {"augment", "rotation_max", F_FLOAT, OFF(aug_rotation_max), 0, -180, 180, NULL, "15"},
    {"augment", "p_scale", F_FLOAT, OFF(aug_p_scale), 0, 0, 1, NULL, "0.2"},
    {"augment", "scale_min", F_FLOAT, OFF(aug_scale_min), 0, 0.05, 20, NULL, "0.7"},
    {"augment", "scale_max", F_FLOAT, OFF(aug_scale_max), 0, 0.05, 20, NULL, "1.4"},
    {"augment", "p_noise", F_FLOAT, OFF(aug_p_noise), 0, 0, 1, NULL, "0.1"},
    {"augment", "noise_std_min", F_FLOAT, OFF(aug_noise_std_min), 0, 0, 100, NULL, "0"},
    {"augment", "noise_std_max", F_FLOAT, OFF(aug_noise_std_max), 0, 0, 100, NULL, "0.1"},
    {"augment", "p_blur", F_FLOAT, OFF(aug_p_blur), 0, 0, 1, NULL, "0.2"},
    {"augment", "p_blur_channel", F_FLOAT, OFF(aug_p_blur_channel), 0, 0, 1, NULL, "0.5"},
    {"augment", "blur_sigma_min", F_FLOAT, OFF(aug_blur_sigma_min), 0, 0.01, 15, NULL, "0.5"},
    {"augment", "blur_sigma_max", F_FLOAT, OFF(aug_blur_sigma_max), 0, 0.01, 15, NULL, "1"},
    {"augment", "p_brightness", F_FLOAT, OFF(aug_p_brightness), 0, 0, 1, NULL, "0.15"},
    {"augment", "brightness_min", F_FLOAT, OFF(aug_brightness_min), 0, 0, 100, NULL, "0.75"},
    {"augment", "brightness_max", F_FLOAT, OFF(aug_brightness_max), 0, 0, 100, NULL, "1.25"},
    {"augment", "p_contrast", F_FLOAT, OFF(aug_p_contrast), 0, 0, 1, NULL, "0.15"},
    {"augment", "contrast_min", F_FLOAT, OFF(aug_contrast_min), 0, 0, 100, NULL, "0.75"},
    {"augment", "contrast_max", F_FLOAT, OFF(aug_contrast_max), 0, 0, 100, NULL, "1.25"},
    {"augment", "p_lowres", F_FLOAT, OFF(aug_p_lowres), 0, 0, 1, NULL, "0.25"},
    {"augment", "p_lowres_channel", F_FLOAT, OFF(aug_p_lowres_channel), 0, 0, 1, NULL, "0.5"},
    {"augment", "lowres_zoom_min", F_FLOAT, OFF(aug_lowres_zoom_min), 0, 0.05, 1, NULL, "0.5"},
    {"augment", "lowres_zoom_max", F_FLOAT, OFF(aug_lowres_zoom_max), 0, 0.05, 1, NULL, "1"},
    {"augment", "p_gamma_inverted", F_FLOAT, OFF(aug_p_gamma_inverted), 0, 0, 1, NULL, "0.1"},
    {"augment", "p_gamma", F_FLOAT, OFF(aug_p_gamma), 0, 0, 1, NULL, "0.3"},
    {"augment", "gamma_min", F_FLOAT, OFF(aug_gamma_min), 0, 0.01, 100, NULL, "0.7"},
    {"augment", "gamma_max", F_FLOAT, OFF(aug_gamma_max), 0, 0.01, 100, NULL, "1.5"},
    {"augment", "p_mirror_y", F_FLOAT, OFF(aug_p_mirror_y), 0, 0, 1, NULL, "0.5"},
    {"augment", "p_mirror_x", F_FLOAT, OFF(aug_p_mirror_x), 0, 0, 1, NULL, "0.5"},
    {"loader", "workers", F_INT, OFF(loader_workers), 0, 1, 1024, NULL, "4"},
    {"loader", "prefetch", F_INT, OFF(loader_prefetch), 0, 1, 1024, NULL, "4"},
    {"predict", "step", F_FLOAT, OFF(predict_step), 0, 0.01, 1, NULL, "0.5"},
};
#define N_FIELDS (int)(sizeof FIELDS / sizeof FIELDS[0])
static const char *SECTIONS[] = {"network", "train", "augment", "loader", "predict"};
#define N_SECTIONS (int)(sizeof SECTIONS / sizeof SECTIONS[0])

/* ---- scalar parsers shared by the file and the overrides ---- */

static int parse_int(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno) return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "yes") || !strcmp(s, "on")) *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "no") || !strcmp(s, "off")) *out = 0;
    else return -1;
    return 0;
}

static const char *type_words(const Field *f) {
    switch (f->type) {
    case F_INT:
    case F_LONG: return "an integer";
    case F_FLOAT: return "a number";
    case F_BOOL: return "true or false";
    case F_STRING: return "a string";
    case F_INT_LIST: return "a list of integers";
    }
    return "?";
}

/* Stores one scalar (or list item `index`) into cfg. `where` prefixes any error. */
static int store_scalar(Config *cfg, const Field *f, int index, const char *text, const char *where, char *err,
                        size_t err_len) {
    char *base = (char *)cfg + f->offset;
    if (f->type == F_INT || f->type == F_LONG || f->type == F_INT_LIST) {
        long v;
        if (parse_int(text, &v) != 0)
            return error_at(err, err_len, "%s: expected %s, got '%s'", where, f->type != F_INT_LIST ? "an integer" : "integer list items", text);
        if (v < f->min || v > f->max)
            return error_at(err, err_len, "%s: %ld is out of range [%g, %g]", where, v, f->min, f->max);
        if (f->type == F_LONG) *(long *)base = v;
        else ((int *)base)[index] = (int)v;
    } else if (f->type == F_FLOAT) {
        double v;
        if (parse_float(text, &v) != 0) return error_at(err, err_len, "%s: expected a number, got '%s'", where, text);
        if (v < f->min || v > f->max) return error_at(err, err_len, "%s: %g is out of range [%g, %g]", where, v, f->min, f->max);
        *(double *)base = v;
    } else if (f->type == F_BOOL) {
        if (parse_bool(text, (int *)base) != 0) return error_at(err, err_len, "%s: expected true or false, got '%s'", where, text);
    } else {
        if (strlen(text) >= (size_t)f->count)
            return error_at(err, err_len, "%s: '%s' is longer than %d characters", where, text, f->count - 1);
        if (f->choices) {
            int ok = 0;
            const char *c = f->choices;
            size_t n = strlen(text);
            while (*c) {
                const char *bar = strchr(c, '|');
                size_t len = bar ? (size_t)(bar - c) : strlen(c);
                if (len == n && strncmp(c, text, n) == 0) ok = 1;
                c += len + (bar ? 1 : 0);
            }
            if (!ok) return error_at(err, err_len, "%s: expected one of %s, got '%s'", where, f->choices, text);
        }
        strcpy(base, text);
    }
    return 0;
}

/* Parses a value given as text: "[1, 2, 3]" or "1,2,3" for lists, plain scalars otherwise. */
static int store_text(Config *cfg, const Field *f, const char *text, const char *where, char *err, size_t err_len) {
    if (f->type != F_INT_LIST) return store_scalar(cfg, f, 0, text, where, err, err_len);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    char *s = buf;
    while (*s == ' ' || *s == '[') s++;
    char *close = strrchr(s, ']');
    if (close) *close = '\0';
    int n = 0;
    for (char *tok = strtok(s, ", "); tok; tok = strtok(NULL, ", ")) {
        if (n >= f->count) break;
        if (store_scalar(cfg, f, n, tok, where, err, err_len) != 0) return -1;
        n++;
    }
    if (n != f->count || strtok(NULL, ", "))
        return error_at(err, err_len, "%s: expected a list of %d integers, got '%s'", where, f->count, text);
    return 0;
}

static const Field *find_field(const char *section, const char *key) {
    for (int i = 0; i < N_FIELDS; i++)
        if (!strcmp(FIELDS[i].section, section) && !strcmp(FIELDS[i].key, key)) return &FIELDS[i];
    return NULL;
}

static int is_section(const char *name) {
    for (int i = 0; i < N_SECTIONS; i++)
        if (!strcmp(SECTIONS[i], name)) return 1;
    return 0;
}

/* ---- the YAML walk ---- */

typedef struct {
    const char *path;
    yaml_document_t *doc;
    Config *cfg;
    unsigned char seen[N_FIELDS];
    char *err;
    size_t err_len;
} Walk;

static int node_fail(Walk *w, const yaml_node_t *n, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return error_at(w->err, w->err_len, "%s:%zu:%zu: %s", w->path, n->start_mark.line + 1, n->start_mark.column + 1, msg);
}

static int store_node(Walk *w, const Field *f, const yaml_node_t *v, const char *dotted) {
    char where[512];
    snprintf(where, sizeof where, "%s:%zu:%zu: %s", w->path, v->start_mark.line + 1, v->start_mark.column + 1, dotted);
    if (f->type == F_INT_LIST) {
        if (v->type != YAML_SEQUENCE_NODE)
            return node_fail(w, v, "%s: expected a list of %d integers", dotted, f->count);
        int n = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (n != f->count) return node_fail(w, v, "%s: expected a list of %d integers, got %d items", dotted, f->count, n);
        for (int i = 0; i < n; i++) {
            yaml_node_t *item = yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
            if (item->type != YAML_SCALAR_NODE) return node_fail(w, item, "%s: list items must be integers", dotted);
            char iw[560];
            snprintf(iw, sizeof iw, "%s:%zu:%zu: %s[%d]", w->path, item->start_mark.line + 1, item->start_mark.column + 1, dotted, i);
            if (store_scalar(w->cfg, f, i, (const char *)item->data.scalar.value, iw, w->err, w->err_len) != 0) return -1;
        }
        return 0;
    }
    if (v->type != YAML_SCALAR_NODE) return node_fail(w, v, "%s: expected %s", dotted, type_words(f));
    return store_scalar(w->cfg, f, 0, (const char *)v->data.scalar.value, where, w->err, w->err_len);
}

static int walk_mapping(Walk *w, const yaml_node_t *map, const char *section) {
    if (map->type != YAML_MAPPING_NODE)
        return node_fail(w, map, "%s: expected a mapping of keys", section[0] ? section : "top level");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
        if (k->type != YAML_SCALAR_NODE) return node_fail(w, k, "keys must be plain words");
        const char *key = (const char *)k->data.scalar.value;
        char dotted[160];
        snprintf(dotted, sizeof dotted, "%s%s%s", section, section[0] ? "." : "", key);
        if (!section[0] && is_section(key)) {
            if (walk_mapping(w, v, key) != 0) return -1;
            continue;
        }
        const Field *f = find_field(section, key);
        if (!f) return node_fail(w, k, "unknown key '%s'", dotted);
        int idx = (int)(f - FIELDS);
        if (w->seen[idx]) return node_fail(w, k, "key '%s' appears twice", dotted);
        w->seen[idx] = 1;
        if (store_node(w, f, v, dotted) != 0) return -1;
    }
    return 0;
}

static const struct {
    const char *name;
    int dim;
    int heads[4];
} PRESETS[] = {{"tiny", 96, {3, 6, 12, 24}}, {"base", 128, {4, 8, 16, 32}}, {"large", 192, {6, 12, 24, 48}}};

/* Fills embed_dim/heads from the preset; custom presets must give both. */
static int resolve_preset(Config *cfg, char *err, size_t err_len) {
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++) {
        if (strcmp(cfg->net.preset, PRESETS[i].name) != 0) continue;
        int given = cfg->net.embed_dim != 0 || cfg->net.heads[0] != 0;
        int same = cfg->net.embed_dim == PRESETS[i].dim && !memcmp(cfg->net.heads, PRESETS[i].heads, sizeof cfg->net.heads);
        if (given && !same) /* a resolved config (config_print) repeats the preset's own values */
            return error_at(err, err_len, "%s: network.embed_dim and network.heads are fixed by preset '%s' (use preset: custom to set them)",
                        cfg->path, cfg->net.preset);
        cfg->net.embed_dim = PRESETS[i].dim;
        memcpy(cfg->net.heads, PRESETS[i].heads, sizeof cfg->net.heads);
        return 0;
    }
    if (cfg->net.embed_dim < 8 || cfg->net.heads[0] == 0)
        return error_at(err, err_len, "%s: preset 'custom' needs network.embed_dim (>= 8) and network.heads", cfg->path);
    return 0;
}

int config_validate(const Config *cfg, char *err, size_t err_len) {
    int P = cfg->net.patch_size;
    if (P != 4 && P != 8) return error_at(err, err_len, "%s: network.patch_size: expected 4 or 8, got %d", cfg->path, P);
    for (int a = 0; a < 2; a++)
        if (cfg->net.crop[a] % (P * 8) != 0)
            return error_at(err, err_len, "%s: network.crop: %d is not a multiple of %d (patch_size x 8, the encoder's total stride)",
                        cfg->path, cfg->net.crop[a], P * 8);
    if (cfg->net.embed_dim % (P == 8 ? 4 : 2) != 0)
        return error_at(err, err_len, "%s: network.embed_dim %d must be divisible by %d for patch_size %d", cfg->path,
                    cfg->net.embed_dim, P == 8 ? 4 : 2, P);
    for (int i = 0; i < 4; i++) {
        int d = cfg->net.embed_dim << i;
        if (cfg->net.heads[i] <= 0 || d % cfg->net.heads[i] != 0)
            return error_at(err, err_len, "%s: network.heads[%d] = %d does not divide the stage width %d", cfg->path, i,
                        cfg->net.heads[i], d);
    }
    return 0;
}

/* Not part of config_validate: a job script sets train.backend by the hardware it landed on, so
 * the pair is checked once every override is in (cmd_train), whatever their order. */
int config_check_backend(const Config *cfg, char *err, size_t err_len) {
    if (!strcmp(cfg->backend, "cpu") && (!strcmp(cfg->precision, "tf32") || !strcmp(cfg->precision, "bf16")))
        return error_at(err, err_len, "%s: train.precision: '%s' needs train.backend: cuda; the CPU backend computes "
                        "fp32 only (use auto or fp32)", cfg->path, cfg->precision);
    return 0;
}

const char *config_precision(const Config *cfg) {
    if (strcmp(cfg->precision, "auto") != 0) return cfg->precision;
    return strcmp(cfg->backend, "cuda") == 0 ? "bf16" : "fp32";
}

static int apply_defaults_and_check_required(Walk *w) {
    for (int i = 0; i < N_FIELDS; i++) {
        if (w->seen[i]) continue;
        const Field *f = &FIELDS[i];
        if (!f->deflt)
            return error_at(w->err, w->err_len, "%s: missing required key '%s%s%s'", w->path, f->section,
                        f->section[0] ? "." : "", f->key);
        char where[64];
        snprintf(where, sizeof where, "default of %s", f->key);
        if (store_text(w->cfg, f, f->deflt, where, w->err, w->err_len) != 0) return -1;
    }
    return 0;
}

/* Parses a YAML document from an initialised parser into cfg; `name` labels messages. */
static int load_from_parser(Config *cfg, yaml_parser_t *parser, const char *name, char *err, size_t err_len) {
    yaml_document_t doc;
    if (!yaml_parser_load(parser, &doc))
        return error_at(err, err_len, "%s:%zu:%zu: invalid YAML: %s", name, parser->problem_mark.line + 1,
                        parser->problem_mark.column + 1, parser->problem ? parser->problem : "parse error");
    int rc = -1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    Walk w = {.path = name, .doc = &doc, .cfg = cfg, .err = err, .err_len = err_len};
    if (!root) error_at(err, err_len, "%s: the file is empty", name);
    else if (walk_mapping(&w, root, "") == 0 && apply_defaults_and_check_required(&w) == 0 &&
             resolve_preset(cfg, err, err_len) == 0 && config_validate(cfg, err, err_len) == 0)
        rc = 0;
    yaml_document_delete(&doc);
    return rc;
}

int config_load(Config *cfg, const char *path, char *err, size_t err_len) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    FILE *fp = fopen(path, "rb");
    if (!fp) return error_at(err, err_len, "%s: cannot open: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, fp);
    int rc = load_from_parser(cfg, &parser, path, err, err_len);
    yaml_parser_delete(&parser);
    fclose(fp);
    return rc;
}

int config_load_text(Config *cfg, const char *text, const char *name, char *err, size_t err_len) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", name);
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    int rc = load_from_parser(cfg, &parser, name, err, err_len);
    yaml_parser_delete(&parser);
    return rc;
}

int config_override(Config *cfg, const char *assignment, char *err, size_t err_len) {
    const char *eq = strchr(assignment, '=');
    if (!eq) return error_at(err, err_len, "override '%s': expected section.key=value", assignment);
    char lhs[128];
    snprintf(lhs, sizeof lhs, "%.*s", (int)(eq - assignment), assignment);
    char *dot = strrchr(lhs, '.');
    const Field *f = dot ? (*dot = '\0', find_field(lhs, dot + 1)) : find_field("", lhs);
    if (!f) return error_at(err, err_len, "override '%s': unknown key", assignment);
    char where[200];
    snprintf(where, sizeof where, "override '%s'", assignment);
    if (store_text(cfg, f, eq + 1, where, err, err_len) != 0) return -1;
    return config_validate(cfg, err, err_len);
}

void config_print(const Config *cfg, void *file) {
    FILE *fp = file;
    fprintf(fp, "name: %s\nnetwork:\n", cfg->name);
    fprintf(fp, "  preset: %s\n  embed_dim: %d\n  heads: [%d, %d, %d, %d]\n", cfg->net.preset, cfg->net.embed_dim,
            cfg->net.heads[0], cfg->net.heads[1], cfg->net.heads[2], cfg->net.heads[3]);
    fprintf(fp, "  patch_size: %d\n  windows: [%d, %d, %d, %d]\n", cfg->net.patch_size, cfg->net.windows[0], cfg->net.windows[1],
            cfg->net.windows[2], cfg->net.windows[3]);
    fprintf(fp, "  in_channels: %d\n  classes: %d\n  deep_supervision: %s\n  crop: [%d, %d]\n  drop_path_rate: %.17g\n",
            cfg->net.in_channels, cfg->net.classes, cfg->net.deep_supervision ? "true" : "false", cfg->net.crop[0], cfg->net.crop[1],
            cfg->net.drop_path_rate);
    fprintf(fp, "train:\n  batch_size: %d\n  lr: %.17g\n  epochs: %d\n  max_steps: %ld\n  seed: %ld\n", cfg->batch_size,
            cfg->lr, cfg->epochs, cfg->max_steps, cfg->seed);
    fprintf(fp, "  store: \"%s\"\n  train_split: %s\n  val_split: %s\n  run_dir: \"%s\"\n", cfg->store, cfg->train_split,
            cfg->val_split, cfg->run_dir);
    fprintf(fp, "  keep_last: %d\n  checkpoint_every: %ld\n  val_every: %d\n  val_max_slices: %d\n  ema_alpha: %g\n",
            cfg->keep_last, cfg->checkpoint_every, cfg->val_every, cfg->val_max_slices, cfg->ema_alpha);
    fprintf(fp, "  val_at_start: %s\n  log_every: %d\n", cfg->val_at_start ? "true" : "false", cfg->log_every);
    fprintf(fp, "  backend: %s\n  precision: %s\n  threads: %d\n  grad_bucket_mb: %.17g\n", cfg->backend, cfg->precision,
            cfg->threads, cfg->grad_bucket_mb);
    fprintf(fp, "augment:\n"); /* every augment row is a number but the enlarged crop */
    for (int i = 0; i < N_FIELDS; i++) {
        const Field *f = &FIELDS[i];
        const char *base = (const char *)cfg + f->offset;
        if (strcmp(f->section, "augment") != 0) continue;
        if (f->type == F_FLOAT) fprintf(fp, "  %s: %.17g\n", f->key, *(const double *)base);
        else fprintf(fp, "  %s: [%d, %d]\n", f->key, ((const int *)base)[0], ((const int *)base)[1]);
    }
    fprintf(fp, "loader:\n  workers: %d\n  prefetch: %d\n", cfg->loader_workers, cfg->loader_prefetch);
    fprintf(fp, "predict:\n  step: %.17g\n", cfg->predict_step);
}
