/* eval_report.h — `unet2022 evaluate`'s results and their tables (CSV, JSON, Markdown; the
 * layout of the paper's Tables 1–4: one row per method with the means, then one column per
 * class). Formats: docs/formats.md, "Evaluation results". */
#ifndef UNET_EVAL_REPORT_H
#define UNET_EVAL_REPORT_H

#include <stddef.h>

#include "metrics.h"

#define EVAL_N_THRESH 10 /* IoU thresholds 0.50, 0.55, ..., 0.95 */

typedef struct {
    ClassStats stats;
    ClassScores scores;
    double iou_t[EVAL_N_THRESH];   /* probability maps only: foreground IoU at each threshold */
    double iou2_t[EVAL_N_THRESH];  /* ... and the two-class mean IoU */
    double miou, miou2;            /* their means (NaN without probability maps) */
} EvalCell;

typedef struct {
    const char *method;        /* row label of the paper-layout table */
    MetricsConvention conv;
    int prob;                  /* predictions were probability maps */
    int n_classes;
    const int *labels;         /* (n_classes) */
    char (*names)[64];         /* (n_classes) */
    int n_cases;
    char (*cases)[256];        /* (n_cases) */
    EvalCell *cells;           /* (n_cases, n_classes) */
} EvalResults;

/* Writes DIR/per_case.csv, DIR/summary.csv, DIR/summary.json, DIR/summary.md (each atomically)
 * and prints the Markdown summary to stdout. Returns 0 or -1 with a message; case, class and
 * method names that are not valid UTF-8 are refused before any file is written (summary.json
 * must stay valid JSON). */
int eval_report_write(const EvalResults *r, const char *dir, char *err, size_t err_len);

/* 1 if text is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
int eval_text_is_utf8(const char *text);

/* Writes text to path atomically (temporary file in the same directory, fsync, rename, fsync
 * of the directory). */
int eval_write_atomic(const char *path, const char *text, size_t len, char *err, size_t err_len);

#endif
