/* args.h — the command-line parser every command shares: a command declares its options as a
 * table (name, kind, destination, required, help, valid range) and args_parse() reads argv
 * against it, prints the usage generated from the table for --help, and reports every
 * mistake as "unet2022 COMMAND: --opt: what was expected, got 'value'" (exit status 1). A
 * value that does not parse or is out of range is an error, never a silent default. */
#ifndef UNET_ARGS_H
#define UNET_ARGS_H

#include "check.h" /* UNET_PRINTF */

typedef enum {
    ARG_STRING, /* const char **: the argument as given */
    ARG_INT,    /* int *: a decimal integer in [lo, hi] */
    ARG_U64,    /* unsigned long long *: a decimal integer (seeds) */
    ARG_DOUBLE, /* double *: a number in the range (lo_open/hi_open: bound excluded) */
    ARG_FLAG,   /* int *: set to 1 by the option's presence; takes no value */
    ARG_CHOICE  /* const char **: one of `choices` ("a|b|c") */
} ArgKind;

typedef struct {
    const char *name;    /* "--step" */
    ArgKind kind;
    void *dest;          /* see ArgKind; the caller's default stays when the option is absent */
    const char *meta;    /* the value's name in the usage ("F", "DIR"); ARG_CHOICE: the choices */
    const char *help;    /* one line, or several separated by '\n' */
    int required;
    double lo, hi;       /* ARG_INT, ARG_DOUBLE; lo == hi == 0: any value */
    int lo_open, hi_open;
} ArgOpt;

/* Table rows (designated initializers: the fields a kind does not use stay zero). */
#define OPT_STRING(n, d, m, h) {.name = n, .kind = ARG_STRING, .dest = d, .meta = m, .help = h}
#define OPT_REQUIRED(n, d, m, h) {.name = n, .kind = ARG_STRING, .dest = d, .meta = m, .help = h, .required = 1}
#define OPT_INT(n, d, m, h, l, u) {.name = n, .kind = ARG_INT, .dest = d, .meta = m, .help = h, .lo = l, .hi = u}
#define OPT_U64(n, d, m, h) {.name = n, .kind = ARG_U64, .dest = d, .meta = m, .help = h}
/* (l, u]: a positive number up to u */
#define OPT_POSITIVE(n, d, m, h, u) \
    {.name = n, .kind = ARG_DOUBLE, .dest = d, .meta = m, .help = h, .lo = 0, .hi = u, .lo_open = 1}
#define OPT_DOUBLE(n, d, m, h, l, u) {.name = n, .kind = ARG_DOUBLE, .dest = d, .meta = m, .help = h, .lo = l, .hi = u}
#define OPT_FLAG(n, d, h) {.name = n, .kind = ARG_FLAG, .dest = d, .help = h}
#define OPT_CHOICE(n, d, choices, h) {.name = n, .kind = ARG_CHOICE, .dest = d, .meta = choices, .help = h}

/* A positional argument (CONFIG, STORE, DATASET): taken in order by the non-option arguments. */
typedef struct {
    const char *name;
    const char **dest;
    int required;
} ArgPos;

typedef struct {
    const char *command;     /* "predict": messages read "unet2022 predict: ..." */
    const char *summary;     /* the line under the usage */
    const ArgPos *pos;       /* may be NULL */
    int n_pos;
    const ArgOpt *opts;
    int n_opts;
    /* Where the command takes section.key=value overrides: a positional argument containing '='
     * lands here (argv pointers, at most ARGS_MAX_OVERRIDES). NULL: '=' arguments are positional. */
    const char **overrides;
    int *n_overrides;
    const char *epilog;      /* printed after the options (NULL: nothing) */
} ArgSpec;

#define ARGS_MAX_OVERRIDES 64
#define ARGS_MAX_OPTS 64 /* options in one table */
#define ARGS_CONTINUE (-1)
#define ARGS_N(table) ((int)(sizeof(table) / sizeof((table)[0])))

/* Returns ARGS_CONTINUE when the command should run, else the exit status to return: 0 after
 * --help / -h (usage on stdout), 1 after a usage error (message and usage on stderr). */
int args_parse(const ArgSpec *spec, int argc, char **argv);

/* The usage generated from the table (as --help prints it). */
void args_usage(const ArgSpec *spec, void *file /* FILE* */);

/* A usage error found after parsing (e.g. options that exclude each other), in the parser's
 * format: "unet2022 COMMAND: MESSAGE" on stderr. Returns 1, the usage exit status. */
int args_error(const ArgSpec *spec, const char *fmt, ...) UNET_PRINTF(2, 3);

#endif
