/* config.c — strict YAML configuration (see config.h).
 *
 * The whole schema is the FIELDS table: one row per key with its type, range, default,
 * whether it may change on resume and how it prints. The augment rows are expanded from
 * data/augment.h (the data layer owns the recipe); the rest are written here. Parsing walks
 * the libyaml document tree, so every error can name the exact line and column; overrides
 * from the command line reuse the same per-type parsers; config_print and the resume
 * comparison walk the same rows. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "check.h"
#include "file_check.h"
#include "loader.h" /* LOADER_DEFAULT_*: the loader section's defaults live with the loader */

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

typedef enum { F_INT, F_LONG, F_FLOAT, F_BOOL, F_STRING, F_INT_LIST } FieldType;

/* On resume, a key either must equal the checkpoint's stored value (it decides the batches,
 * the weights or the update: KEEP), or may change freely (how long, where, how fast, how
 * often to log or checkpoint: FREE). */
typedef enum { KEEP, FREE } OnResume;

/* How config_print writes a value: as it is, in double quotes (paths, which may hold ': '),
 * or a float in %g (short) rather than %.17g (exact). */
typedef enum { PLAIN, QUOTED, SHORT } PrintStyle;

typedef struct {
    const char *section; /* "" for top level */
    const char *key;
    FieldType type;
    size_t offset;       /* into Config */
    int count;           /* list length (F_INT_LIST), string capacity (F_STRING) */
    double min, max;     /* inclusive range for numbers / list items */
    const char *choices; /* F_STRING: "|"-separated allowed values, or NULL */
    const char *deflt;   /* default as text, or NULL if required */
    OnResume resume;
    PrintStyle print;
} Field;

#define OFF(f) offsetof(Config, f)
#define CAP(f) sizeof(((Config *)0)->f)
/* The augment rows: data/augment.h's list, with its bounds and defaults (stringised). */
#define AUG_ROW(key, member, lo, hi, dflt) {"augment", #key, F_FLOAT, OFF(aug.member), 0, lo, hi, NULL, #dflt, KEEP, PLAIN},
/* The settings, in the order config_print writes them. docs/configs.md describes each. */
static const Field FIELDS[] = {
    {"", "name", F_STRING, OFF(name), CAP(name), 0, 0, NULL, NULL, KEEP, PLAIN},
    {"network", "preset", F_STRING, OFF(net.preset), CAP(net.preset), 0, 0, "tiny|base|large|custom", NULL, KEEP, PLAIN},
    {"network", "embed_dim", F_INT, OFF(net.embed_dim), 0, 0, 4096, NULL, "0", KEEP, PLAIN},
    {"network", "heads", F_INT_LIST, OFF(net.heads), 4, 0, 1024, NULL, "[0, 0, 0, 0]", KEEP, PLAIN},
    {"network", "patch_size", F_INT, OFF(net.patch_size), 0, 4, 8, NULL, NULL, KEEP, PLAIN},
    {"network", "windows", F_INT_LIST, OFF(net.windows), 4, 1, 64, NULL, NULL, KEEP, PLAIN},
    {"network", "in_channels", F_INT, OFF(net.in_channels), 0, 1, 64, NULL, NULL, KEEP, PLAIN},
    {"network", "classes", F_INT, OFF(net.classes), 0, 2, 1024, NULL, NULL, KEEP, PLAIN},
    {"network", "deep_supervision", F_BOOL, OFF(net.deep_supervision), 0, 0, 1, NULL, NULL, KEEP, PLAIN},
    {"network", "crop", F_INT_LIST, OFF(net.crop), 2, 32, 8192, NULL, NULL, KEEP, PLAIN},
    {"network", "drop_path_rate", F_FLOAT, OFF(net.drop_path_rate), 0, 0.0, 0.99, NULL, "0.2", KEEP, PLAIN},
    {"train", "batch_size", F_INT, OFF(batch_size), 0, 1, 4096, NULL, "8", KEEP, PLAIN},
    {"train", "lr", F_FLOAT, OFF(lr), 0, 0.0, 10.0, NULL, "1e-4", KEEP, PLAIN},
    {"train", "epochs", F_INT, OFF(epochs), 0, 1, 1000000, NULL, "1", FREE, PLAIN},
    {"train", "max_steps", F_LONG, OFF(max_steps), 0, 0, 1e15, NULL, "0", FREE, PLAIN},
    {"train", "seed", F_LONG, OFF(seed), 0, 0, 1e15, NULL, "1", KEEP, PLAIN},
    {"train", "store", F_STRING, OFF(store), CAP(store), 0, 0, NULL, "", KEEP, QUOTED},
    {"train", "train_split", F_STRING, OFF(train_split), CAP(train_split), 0, 0, NULL, "train", KEEP, PLAIN},
    {"train", "val_split", F_STRING, OFF(val_split), CAP(val_split), 0, 0, NULL, "val", KEEP, PLAIN},
    {"train", "run_dir", F_STRING, OFF(run_dir), CAP(run_dir), 0, 0, NULL, "", FREE, QUOTED},
    {"train", "keep_last", F_INT, OFF(keep_last), 0, 1, 1000, NULL, "3", FREE, PLAIN},
    {"train", "checkpoint_every", F_LONG, OFF(checkpoint_every), 0, 0, 1e15, NULL, "0", FREE, PLAIN},
    {"train", "val_every", F_INT, OFF(val_every), 0, 0, 1000000, NULL, "1", FREE, PLAIN},
    {"train", "val_max_slices", F_INT, OFF(val_max_slices), 0, 0, 100000000, NULL, "0", FREE, PLAIN},
    {"train", "ema_alpha", F_FLOAT, OFF(ema_alpha), 0, 0.0, 1.0, NULL, "0.9", KEEP, SHORT},
    {"train", "val_at_start", F_BOOL, OFF(val_at_start), 0, 0, 1, NULL, "false", FREE, PLAIN},
    {"train", "log_every", F_INT, OFF(log_every), 0, 0, 100000000, NULL, "0", FREE, PLAIN},
    {"train", "backend", F_STRING, OFF(backend), CAP(backend), 0, 0, "cpu|cuda", "cpu", FREE, PLAIN},
    {"train", "precision", F_STRING, OFF(precision), CAP(precision), 0, 0, "auto|fp32|tf32|bf16", "auto", FREE, PLAIN},
    {"train", "threads", F_INT, OFF(threads), 0, 0, 1024, NULL, "0", FREE, PLAIN},
    /* when the sums start, not what is summed */
    {"train", "grad_bucket_mb", F_FLOAT, OFF(grad_bucket_mb), 0, 0, 4096, NULL, "25", FREE, PLAIN},
    /* the NCCL watchdog: how long a collective may stay incomplete (0: no watchdog) */
    {"train", "comm_timeout_s", F_FLOAT, OFF(comm_timeout_s), 0, 0, 86400, NULL, "300", FREE, PLAIN},
    {"train", "kernels", F_STRING, OFF(kernels), CAP(kernels), 0, 0, NULL, "auto", FREE, PLAIN},
    /* how the step is launched, never what it computes (a replay is bit-identical to eager) */
    {"train", "cuda_graph", F_STRING, OFF(cuda_graph), CAP(cuda_graph), 0, 0, "auto|on|off", "auto", FREE, PLAIN},
    /* FREE: a resumed run starts from its checkpoint and ignores these (the trainer says so) */
    {"train", "init_weights", F_STRING, OFF(init_weights), CAP(init_weights), 0, 0, NULL, "", FREE, QUOTED},
    {"train", "init_key_map", F_STRING, OFF(init_key_map), CAP(init_key_map), 0, 0, "none|released_pretrain", "none",
     FREE, PLAIN},
    /* [0, 0]: the recipe's rule for the crop (augment_params_set_patch) */
    {"augment", "enlarged", F_INT_LIST, OFF(aug.enlarged), 2, 0, AUGMENT_ENLARGED_MAX, NULL, "[0, 0]", KEEP, PLAIN},
    AUGMENT_SETTINGS(AUG_ROW)
    /* a sample's draws depend on the seed, epoch and index only, never on the worker */
    {"loader", "workers", F_INT, OFF(loader.workers), 0, 1, 1024, NULL, STRINGIFY(LOADER_DEFAULT_WORKERS), FREE, PLAIN},
    {"loader", "prefetch", F_INT, OFF(loader.prefetch), 0, 1, 1024, NULL, STRINGIFY(LOADER_DEFAULT_PREFETCH), FREE, PLAIN},
    /* inference only */
    {"predict", "step", F_FLOAT, OFF(predict_step), 0, 0.01, 1, NULL, "0.5", FREE, PLAIN},
};
#undef AUG_ROW
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

/* 1 if s is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). The
 * YAML reader only ever hands over such text; an override is whatever bytes a shell passed, and
 * config_print writes strings back as UTF-8 YAML (a checkpoint's stored config). */
static int utf8_valid(const unsigned char *s) {
    while (*s) {
        unsigned c = *s++;
        if (c < 0x80) continue;
        int n = c >= 0xF0 && c <= 0xF4 ? 3 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xC2 && c <= 0xDF ? 1 : -1;
        if (n < 0) return 0;
        unsigned cp = c & (0x3F >> n);
        for (int i = 0; i < n; i++, s++) {
            if ((*s & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (*s & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
    }
    return 1;
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
        if (!utf8_valid((const unsigned char *)text)) return error_at(err, err_len, "%s: not UTF-8 text", where);
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

/* Deepest nesting of lists and mappings a config may have. The schema needs 3 (top level,
 * section, list); libyaml's scanner re-examines every open level at each token, so a document
 * 100,000 levels deep took 48 s to reject. The limit is enforced on the event stream, which
 * stops at the first level too deep: the rejection costs a few levels' work. */
#define CONFIG_MAX_DEPTH 32
/* A config is a page of text; anything bigger is no config (and is not read whole). */
#define CONFIG_MAX_BYTES (4 << 20)

/* 0 if the first document nests at most CONFIG_MAX_DEPTH deep (or is not valid YAML: the
 * loader then reports that, as it always did); -1 with the line of the level too deep. */
static int check_nesting(const unsigned char *text, size_t len, const char *name, char *err, size_t err_len) {
    yaml_parser_t parser;
    yaml_event_t ev;
    int depth = 0, rc = 0, done = 0;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, text, len);
    while (!done && rc == 0 && yaml_parser_parse(&parser, &ev)) {
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
            if (++depth > CONFIG_MAX_DEPTH)
                rc = error_at(err, err_len, "%s:%zu:%zu: lists and mappings nested more than %d deep (the limit for "
                              "a config)", name, ev.start_mark.line + 1, ev.start_mark.column + 1, CONFIG_MAX_DEPTH);
        } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        done = ev.type == YAML_DOCUMENT_END_EVENT || ev.type == YAML_STREAM_END_EVENT; /* the loader reads one */
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* Parses the YAML document in text into cfg; `name` labels messages. */
static int load_from_text(Config *cfg, const char *text, size_t len, const char *name, char *err, size_t err_len) {
    if (check_nesting((const unsigned char *)text, len, name, err, err_len) != 0) return -1;
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        error_at(err, err_len, "%s:%zu:%zu: invalid YAML: %s", name, parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "parse error");
        yaml_parser_delete(&parser);
        return -1;
    }
    int rc = -1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    Walk w = {.path = name, .doc = &doc, .cfg = cfg, .err = err, .err_len = err_len};
    if (!root) error_at(err, err_len, "%s: the file is empty", name);
    else if (walk_mapping(&w, root, "") == 0 && apply_defaults_and_check_required(&w) == 0 &&
             resolve_preset(cfg, err, err_len) == 0 && config_validate(cfg, err, err_len) == 0)
        rc = 0;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

/* The whole file, for regular files only (src/base/file_check.h: a FIFO would block forever). */
static char *read_config_file(const char *path, size_t *len, char *err, size_t err_len) {
    int64_t size = 0;
    int fd = fc_open_regular(path, "config", &size, err, err_len);
    if (fd < 0) return NULL;
    char *text = NULL;
    if (size > CONFIG_MAX_BYTES)
        error_at(err, err_len, "%s: %lld bytes: larger than a config may be (%d)", path, (long long)size,
                 CONFIG_MAX_BYTES);
    else {
        text = xmalloc((size_t)size + 1);
        size_t got = 0;
        ssize_t n = 1;
        while (got < (size_t)size && (n = read(fd, text + got, (size_t)size - got)) > 0) got += (size_t)n;
        if (n < 0) {
            error_at(err, err_len, "%s: cannot read: %s", path, strerror(errno));
            free(text);
            text = NULL;
        } else {
            text[got] = '\0';
            *len = got;
        }
    }
    close(fd);
    return text;
}

int config_load(Config *cfg, const char *path, char *err, size_t err_len) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    size_t len = 0;
    char *text = read_config_file(path, &len, err, err_len);
    if (!text) return -1;
    int rc = load_from_text(cfg, text, len, path, err, err_len);
    free(text);
    return rc;
}

int config_load_text(Config *cfg, const char *text, const char *name, char *err, size_t err_len) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", name);
    return load_from_text(cfg, text, strlen(text), name, err, err_len);
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
    /* network.preset fixes embed_dim and heads (resolve_preset): a named preset given here
     * replaces them; a width given under a named preset must be the preset's own, as in a file.
     * Without this, preset: base with network.embed_dim=48 built a 48-wide network whose stored
     * config (printed with preset: base) no longer loaded: the run could not be resumed. */
    if (!strcmp(f->section, "network") && (!strcmp(f->key, "preset") || !strcmp(f->key, "embed_dim") || !strcmp(f->key, "heads"))) {
        if (!strcmp(f->key, "preset") && strcmp(cfg->net.preset, "custom") != 0) {
            cfg->net.embed_dim = 0;
            memset(cfg->net.heads, 0, sizeof cfg->net.heads);
        }
        char why[600];
        if (resolve_preset(cfg, why, sizeof why) != 0) return error_at(err, err_len, "%s: %s", where, why);
    }
    return config_validate(cfg, err, err_len);
}

/* The shortest %g text that reads back as v (0.001, not 0.0010000000000000000208). */
static void shortest_g(double v, char *out, size_t n) {
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, n, "%.*g", digits, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* A string as YAML that loads back as the same text: plain when it is a safe plain scalar (and
 * the row does not ask for quotes), otherwise double-quoted with \\, \" and every character YAML
 * does not allow raw escaped. Printing the text verbatim let a name such as 'a: b', a path with a
 * quote or a '#', or a newline from an override, write a stored config that no longer loaded
 * (or loaded as something else): the checkpoint could not be resumed. */
static void yaml_string(const char *s, int quoted, char *out, size_t n) {
    int plain = !quoted && (isalnum((unsigned char)s[0]) || s[0] == '_' || s[0] == '/' || s[0] == '.');
    for (const char *p = s; plain && *p; p++)
        plain = isalnum((unsigned char)*p) || strchr("_-./+=,", *p);
    if (plain) {
        snprintf(out, n, "%s", s);
        return;
    }
    size_t k = 0;
#define PUT(...) (k < n ? (k += (size_t)snprintf(out + k, n - k, __VA_ARGS__)) : k)
    PUT("\"");
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned c = *p, cp = c;
        int len = 1;
        if (c >= 0xF0) len = 4, cp = c & 0x07;
        else if (c >= 0xE0) len = 3, cp = c & 0x0F;
        else if (c >= 0xC0) len = 2, cp = c & 0x1F;
        for (int i = 1; i < len && (p[i] & 0xC0) == 0x80; i++) cp = cp << 6 | (p[i] & 0x3F);
        /* YAML's printable set (1.1, as libyaml checks it) */
        int printable = cp == 0x85 || (cp >= 0x20 && cp <= 0x7E) || (cp >= 0xA0 && cp <= 0xD7FF) ||
                        (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
        if (c == '"' || c == '\\') PUT("\\%c", c);
        else if (printable) PUT("%.*s", len, (const char *)p);
        else if (cp <= 0xFF) PUT("\\x%02X", cp);
        else PUT("\\u%04X", cp);
        for (int i = 0; i < len && *p; i++) p++;
    }
    PUT("\"");
#undef PUT
    if (k >= n && n) out[n - 1] = '\0';
}

/* How format_value writes a float: as config_print does (the row's style), or shortest (for
 * messages). Other types print one way. */
typedef enum { AS_PRINTED, READABLE } FloatText;

static void format_value(const Config *cfg, const Field *f, FloatText ft, char *out, size_t n) {
    const char *base = (const char *)cfg + f->offset;
    switch (f->type) {
    case F_INT: snprintf(out, n, "%d", *(const int *)base); break;
    case F_LONG: snprintf(out, n, "%ld", *(const long *)base); break;
    case F_FLOAT:
        if (ft == READABLE) shortest_g(*(const double *)base, out, n);
        else snprintf(out, n, f->print == SHORT ? "%g" : "%.17g", *(const double *)base);
        break;
    case F_BOOL: snprintf(out, n, "%s", *(const int *)base ? "true" : "false"); break;
    case F_STRING: yaml_string(base, f->print == QUOTED, out, n); break;
    case F_INT_LIST: {
        size_t k = (size_t)snprintf(out, n, "[");
        for (int i = 0; i < f->count && k < n; i++)
            k += (size_t)snprintf(out + k, n - k, "%s%d", i ? ", " : "", ((const int *)base)[i]);
        if (k < n) snprintf(out + k, n - k, "]");
        break;
    }
    }
}

void config_print(const Config *cfg, void *file) {
    FILE *fp = file;
    const char *section = "";
    for (int i = 0; i < N_FIELDS; i++) {
        const Field *f = &FIELDS[i];
        if (strcmp(f->section, section) != 0) fprintf(fp, "%s:\n", f->section); /* rows are grouped by section */
        section = f->section;
        char value[4096]; /* a 511-character string, every character escaped */
        format_value(cfg, f, AS_PRINTED, value, sizeof value);
        fprintf(fp, "%s%s: %s\n", section[0] ? "  " : "", f->key, value);
    }
}

int config_resume_diff(const Config *stored, const Config *now, char *out, size_t out_len) {
    int n = 0;
    size_t k = 0;
    if (out_len) out[0] = '\0';
    for (int i = 0; i < N_FIELDS; i++) {
        const Field *f = &FIELDS[i];
        if (f->resume == FREE) continue;
        char was[4096], is[4096];
        /* as printed: what a checkpoint stores, so a value it rounds (ema_alpha's %g) compares
         * at the precision it was kept; %.17g rows compare exactly */
        format_value(stored, f, AS_PRINTED, was, sizeof was);
        format_value(now, f, AS_PRINTED, is, sizeof is);
        if (!strcmp(was, is)) continue;
        format_value(stored, f, READABLE, was, sizeof was);
        format_value(now, f, READABLE, is, sizeof is);
        if (k < out_len)
            k += (size_t)snprintf(out + k, out_len - k, "%s%s%s%s: %s in the checkpoint, %s now", n ? "; " : "",
                                  f->section, f->section[0] ? "." : "", f->key, was, is);
        n++;
    }
    return n;
}
