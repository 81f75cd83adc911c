/* args.c — see args.h. */
#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_range(const ArgOpt *o) { return o->lo != 0 || o->hi != 0; }

/* "(0, 1]" or "[1, 4096]" */
static void range_text(const ArgOpt *o, char *buf, size_t n) {
    snprintf(buf, n, "%c%.10g, %.10g%c", o->lo_open ? '(' : '[', o->lo, o->hi, o->hi_open ? ')' : ']');
}

static int in_range(const ArgOpt *o, double v) {
    if (!has_range(o)) return 1;
    return (o->lo_open ? v > o->lo : v >= o->lo) && (o->hi_open ? v < o->hi : v <= o->hi);
}

/* "a|b|c" contains v as a whole word */
static int is_choice(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n)) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

int args_error(const ArgSpec *spec, const char *fmt, ...) {
    fprintf(stderr, "unet2022 %s: ", spec->command);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun `unet2022 %s --help` for the options.\n", spec->command);
    return 1;
}

static int bad_number(const ArgSpec *spec, const ArgOpt *o, const char *what, const char *v) {
    char range[96] = "";
    if (has_range(o)) {
        char r[80];
        range_text(o, r, sizeof r);
        snprintf(range, sizeof range, " in %s", r);
    }
    return args_error(spec, "%s: expected %s%s, got '%s'", o->name, what, range, v);
}

/* Stores one option's value; returns 0 or the usage exit status. */
static int store_value(const ArgSpec *spec, const ArgOpt *o, const char *v) {
    char *end;
    errno = 0;
    switch (o->kind) {
    case ARG_STRING: *(const char **)o->dest = v; return 0;
    case ARG_CHOICE:
        if (!is_choice(o->meta, v)) return args_error(spec, "%s: expected one of %s, got '%s'", o->name, o->meta, v);
        *(const char **)o->dest = v;
        return 0;
    case ARG_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < -2147483647L || x > 2147483647L || !in_range(o, (double)x))
            return bad_number(spec, o, "an integer", v);
        *(int *)o->dest = (int)x;
        return 0;
    }
    case ARG_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (end == v || *end || errno || v[0] == '-') return bad_number(spec, o, "a non-negative integer", v);
        *(unsigned long long *)o->dest = x;
        return 0;
    }
    case ARG_DOUBLE: {
        double x = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(x) || !in_range(o, x)) return bad_number(spec, o, "a number", v);
        *(double *)o->dest = x;
        return 0;
    }
    case ARG_FLAG: break;
    }
    return 0;
}

static const ArgOpt *find_opt(const ArgSpec *spec, const char *name) {
    for (int i = 0; i < spec->n_opts; i++)
        if (!strcmp(spec->opts[i].name, name)) return &spec->opts[i];
    return NULL;
}

/* A non-option argument: an override (when the command takes them) or the next positional. */
static int take_positional(const ArgSpec *spec, const char *a, int *n_pos) {
    if (spec->overrides && strchr(a, '=')) {
        if (*spec->n_overrides == ARGS_MAX_OVERRIDES)
            return args_error(spec, "more than %d overrides", ARGS_MAX_OVERRIDES);
        spec->overrides[(*spec->n_overrides)++] = a;
        return 0;
    }
    if (*n_pos >= spec->n_pos) return args_error(spec, "unexpected argument '%s'", a);
    *spec->pos[(*n_pos)++].dest = a;
    return 0;
}

static int check_required(const ArgSpec *spec, const unsigned char *seen, int n_pos) {
    for (int i = n_pos; i < spec->n_pos; i++)
        if (spec->pos[i].required) return args_error(spec, "%s is required", spec->pos[i].name);
    for (int i = 0; i < spec->n_opts; i++)
        if (spec->opts[i].required && !seen[i]) return args_error(spec, "%s is required", spec->opts[i].name);
    return ARGS_CONTINUE;
}

int args_parse(const ArgSpec *spec, int argc, char **argv) {
    unsigned char seen[ARGS_MAX_OPTS] = {0}; /* which options were given, for the required ones */
    int n_pos = 0;
    CHECK(spec->n_opts <= ARGS_MAX_OPTS, "unet2022 %s: %d options, at most %d", spec->command, spec->n_opts,
          ARGS_MAX_OPTS);
    if (spec->n_overrides) *spec->n_overrides = 0;
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            args_usage(spec, stdout);
            return 0;
        }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == 0) {
            if (take_positional(spec, a, &n_pos) != 0) return 1;
            continue;
        }
        const ArgOpt *o = find_opt(spec, a);
        if (!o) return args_error(spec, "unknown option '%s'", a);
        seen[o - spec->opts] = 1;
        if (o->kind == ARG_FLAG) {
            *(int *)o->dest = 1;
            continue;
        }
        if (i + 1 == argc) return args_error(spec, "%s: expected a value (%s)", a, o->meta ? o->meta : "VALUE");
        if (store_value(spec, o, argv[++i]) != 0) return 1;
    }
    return check_required(spec, seen, n_pos);
}

/* ---- usage ---- */

static void synopsis_item(FILE *fp, char *line, size_t cap, const char *item) {
    if (strlen(line) + strlen(item) + 1 > 100) {
        fprintf(fp, "%s\n", line);
        snprintf(line, cap, "%*s", 15, "");
    }
    size_t L = strlen(line);
    snprintf(line + L, cap - L, " %s", item);
}

static void option_synopsis(const ArgOpt *o, char *buf, size_t n) {
    const char *meta = o->meta ? o->meta : "VALUE";
    if (o->kind == ARG_FLAG) snprintf(buf, n, o->required ? "%s" : "[%s]", o->name);
    else snprintf(buf, n, o->required ? "%s %s" : "[%s %s]", o->name, meta);
}

/* "  --name META        help", the help's further lines aligned under its first */
static void option_help(FILE *fp, const ArgOpt *o) {
    char head[96];
    if (o->kind == ARG_FLAG) snprintf(head, sizeof head, "  %s", o->name);
    else snprintf(head, sizeof head, "  %s %s", o->name, o->meta ? o->meta : "VALUE");
    int pad = 24 - (int)strlen(head);
    if (pad < 1) fprintf(fp, "%s\n", head), head[0] = 0, pad = 24;
    for (const char *p = o->help;;) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        fprintf(fp, "%s%*s%.*s\n", head, pad, "", len, p);
        if (!nl) break;
        p = nl + 1, head[0] = 0, pad = 24;
    }
}

void args_usage(const ArgSpec *spec, void *file) {
    FILE *fp = file;
    char line[256], item[160];
    snprintf(line, sizeof line, "usage: unet2022 %s", spec->command);
    for (int i = 0; i < spec->n_pos; i++) {
        snprintf(item, sizeof item, spec->pos[i].required ? "%s" : "[%s]", spec->pos[i].name);
        synopsis_item(fp, line, sizeof line, item);
    }
    if (spec->overrides) synopsis_item(fp, line, sizeof line, "[section.key=value ...]");
    for (int i = 0; i < spec->n_opts; i++) {
        if (!spec->opts[i].help) continue; /* hidden (test hooks) */
        option_synopsis(&spec->opts[i], item, sizeof item);
        synopsis_item(fp, line, sizeof line, item);
    }
    fprintf(fp, "%s\n", line);
    if (spec->summary) fprintf(fp, "%s\n", spec->summary);
    for (int i = 0; i < spec->n_opts; i++)
        if (spec->opts[i].help) option_help(fp, &spec->opts[i]);
    if (spec->epilog) fputs(spec->epilog, fp);
}
