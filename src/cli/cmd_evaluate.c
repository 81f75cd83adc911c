/* cmd_evaluate.c — `unet2022 evaluate --pred DIR --gt (DIR | STORE --split NAME) --out DIR`:
 * per case and class DSC, IoU, HD95 (mm; medpy's or MONAI's definition and empty-mask
 * convention), the baselines' DSC/HD95 protocol, and for probability maps the IoU at
 * thresholds 0.50…0.95 (EM protocol); summary tables as CSV, JSON and Markdown.
 * Definitions: docs/evaluation.md. The cases come from volume sources (volume_source.h), each
 * case's metrics from eval_case.h, the tables from eval_report.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "check.h"
#include "clock.h"
#include "commands.h"
#include "eval_case.h"
#include "eval_report.h"
#include "volume_source.h"

typedef struct {
    const char *pred, *gt, *split, *out, *classes, *method, *convention;
    int prob, no_hd;
} EvalArgs;

/* The class list: --classes, else the store's classes (label maps), else decided from the data
 * (K = -1). */
typedef struct {
    int K;
    int labels[EVAL_MAX_CLASSES];
    char names[EVAL_MAX_CLASSES][64];
} Classes;

static const char *SUMMARY =
    "  DSC, IoU, HD95 of predictions against ground truth (definitions: docs/evaluation.md)";

static int parse(EvalArgs *a, Classes *cl, int argc, char **argv) {
    const ArgOpt opts[] = {
        OPT_REQUIRED("--pred", &a->pred, "DIR", "predictions, CASE.nii.gz (labels; or probabilities with --prob)"),
        OPT_REQUIRED("--gt", &a->gt, "DIR|STORE", "ground truth, CASE.nii.gz on the same grids, or a slice store\n"
                     "(with --split)"),
        OPT_STRING("--split", &a->split, "NAME", "the store's split holding the ground truth"),
        OPT_REQUIRED("--out", &a->out, "DIR", "per_case.csv, summary.csv, summary.json, summary.md"),
        OPT_STRING("--classes", &a->classes, "SPEC", "'ID=NAME,ID=NAME,...', 'ID,ID,...', or a preset: synapse (raw\n"
                   "BTCV labels, the paper's 8 organs), synapse9, acdc, binary. Default: the\n"
                   "store's classes, else every label 1..max found"),
        OPT_CHOICE("--convention", &a->convention, "medpy|monai", "empty masks and HD95 definition (default medpy)"),
        OPT_FLAG("--prob", &a->prob, "predictions are float probability maps (4D: one channel per class;\n"
                 "3D: the foreground): masks are p > 0.5, plus IoU at thresholds\n0.50..0.95 (mIoU)"),
        OPT_FLAG("--no-hd", &a->no_hd, "skip surface distances"),
        OPT_STRING("--method", &a->method, "NAME", "row label of the paper-layout table (default 'UNet-2022 (ours)')"),
    };
    const ArgSpec spec = {"evaluate", SUMMARY, NULL, 0, opts, ARGS_N(opts), NULL, NULL, NULL};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE || !a->classes) return st;
    cl->K = eval_classes_parse(a->classes, cl->labels, cl->names, EVAL_MAX_CLASSES);
    if (cl->K <= 0)
        return args_error(&spec, "--classes: expected ID=NAME,... or ID,..., distinct non-negative IDs, or a preset "
                                 "(synapse, synapse9, acdc, binary), got '%s'", a->classes);
    return ARGS_CONTINUE;
}

/* Every ground-truth case has a prediction; with NIfTI ground truth, every prediction a case. */
static int check_pairs(const EvalArgs *a, const VolumeSource *gt, const VolumeSource *pr) {
    for (int i = 0; i < volume_source_count(gt); i++) {
        const char *name = volume_source_name(gt, i);
        if (!eval_text_is_utf8(name)) /* before any work: the report would refuse it at the end */
            return fprintf(stderr, "unet2022: error: %s: case name '%s' is not valid UTF-8 (summary.json is UTF-8): "
                                   "rename the file\n", volume_source_path(gt, i), name), 2;
        if (volume_source_find(pr, name) < 0)
            return fprintf(stderr, "unet2022: error: case %s: no prediction in %s (expected %s.nii.gz)\n", name,
                           a->pred, name), 2;
    }
    for (int i = 0; i < volume_source_count(pr) && !volume_source_store(gt); i++)
        if (volume_source_find(gt, volume_source_name(pr, i)) < 0)
            return fprintf(stderr, "unet2022: error: case %s: prediction %s has no ground truth in %s\n",
                           volume_source_name(pr, i), volume_source_path(pr, i), a->gt), 2;
    return 0;
}

static int open_sources(const EvalArgs *a, VolumeSource **gt, VolumeSource **pr) {
    char err[2048];
    int rc = volume_source_open(gt, a->gt, a->split, err, sizeof err);
    if (rc == 0 && (rc = volume_source_open(pr, a->pred, NULL, err, sizeof err)) != 0)
        fprintf(stderr, "unet2022: error: --pred: %s\n", err);
    else if (rc != 0) fprintf(stderr, "unet2022: error: --gt: %s\n", err);
    if (rc != 0) return rc == VS_NEED_SPLIT ? 1 : 2; /* a path that is no directory: bad input, as ever */
    return check_pairs(a, *gt, *pr);
}

/* Without --classes, label maps from a store are scored on the store's classes. */
static void store_classes(Classes *cl, const Store *s) {
    cl->K = store_num_classes(s) - 1;
    for (int k = 0; k < cl->K; k++) {
        cl->labels[k] = k + 1;
        snprintf(cl->names[k], 64, "%s", store_class_name(s, k + 1));
    }
}

/* Case c of the ground truth against its prediction into row, its largest labels into
 * gmax/pmax; returns the case's class count, EVAL_DEFERRED (the prediction holds a label above
 * o->label_limit and this case's own ground truth: nothing scored, nothing printed) or -1 after
 * printing the error. */
static int evaluate_case(EvalCell *row, int kmax, VolumeSource *gt, VolumeSource *pr, int c, const EvalCaseOptions *o,
                         int *gmax, int *pmax) {
    char err[2048];
    VolumeCase gc, pc;
    int32_t *gl = NULL;
    int kc = -1;
    EvalCaseOptions oc = *o;
    oc.pred_max = pmax;
    *gmax = *pmax = 0;
    if (volume_source_case(gt, c, &gc, err, sizeof err) != 0) return fprintf(stderr, "unet2022: error: %s\n", err), -1;
    int pi = volume_source_find(pr, gc.name);
    double t0 = monotonic_seconds(), sp[3] = {gc.geom.spacing[2], gc.geom.spacing[1], gc.geom.spacing[0]};
    if (volume_source_case(pr, pi, &pc, err, sizeof err) == 0) {
        const int n[3] = {gc.nz, gc.ny, gc.nx};
        if (volume_case_same_grid(gt, &gc, &pc.geom, err, sizeof err) == 0 &&
            volume_case_read(gt, &gc, NULL, &gl, err, sizeof err) == 0 &&
            eval_label_max(gl, n, volume_source_path(gt, c), gmax, err, sizeof err) == 0) {
            if (oc.label_limit >= 0 && *gmax > oc.label_limit) oc.label_limit = *gmax; /* its own labels count */
            kc = eval_case(row, kmax, &pc.geom, gl, sp, &oc, err, sizeof err);
        }
        volume_case_close(&pc);
    }
    if (kc == EVAL_DEFERRED) {
        /* the caller's to judge, once it knows every ground truth's labels */
    } else if (kc < 0) {
        fprintf(stderr, "unet2022: error: case %s: %s\n", gc.name, err);
    } else {
        fprintf(stderr, "evaluate: %s (%dx%dx%d, spacing %.4g %.4g %.4g mm): metrics %.3f s\n", gc.name, gc.nx, gc.ny,
                gc.nz, sp[2], sp[1], sp[0], monotonic_seconds() - t0);
    }
    free(gl);
    volume_case_close(&gc);
    return kc;
}

/* Raises *gt_max to the largest ground-truth label of cases from.. on, reading their ground
 * truth alone (no prediction, no metrics); 0, or -1 after printing the error. */
static int gt_max_from(VolumeSource *gt, int from, int *gt_max) {
    char err[2048];
    for (int c = from; c < volume_source_count(gt); c++) {
        VolumeCase gc;
        int32_t *gl = NULL;
        int m = 0;
        if (volume_source_case(gt, c, &gc, err, sizeof err) != 0)
            return fprintf(stderr, "unet2022: error: %s\n", err), -1;
        const int n[3] = {gc.nz, gc.ny, gc.nx};
        int bad = volume_case_read(gt, &gc, NULL, &gl, err, sizeof err) != 0 ||
                  eval_label_max(gl, n, volume_source_path(gt, c), &m, err, sizeof err) != 0;
        if (bad) fprintf(stderr, "unet2022: error: case %s: %s\n", gc.name, err);
        if (m > *gt_max) *gt_max = m;
        free(gl);
        volume_case_close(&gc);
        if (bad) return -1;
    }
    return 0;
}

/* Compacts the rows to K columns, applies the convention and writes the tables. */
static int report(const EvalArgs *a, Classes *cl, const VolumeSource *gt, const EvalCell *cells, int kmax) {
    int n = volume_source_count(gt), K = cl->K;
    EvalCell *packed = xmalloc((size_t)n * K * sizeof(EvalCell));
    char(*cases)[256] = xmalloc((size_t)n * sizeof *cases);
    MetricsConvention conv = !strcmp(a->convention, "monai") ? CONV_MONAI : CONV_MEDPY;
    for (int c = 0; c < n; c++) {
        snprintf(cases[c], sizeof cases[c], "%s", volume_source_name(gt, c));
        for (int k = 0; k < K; k++) {
            EvalCell *e = &packed[(size_t)c * K + k];
            *e = cells[(size_t)c * kmax + k];
            metrics_scores(&e->scores, &e->stats, conv);
        }
    }
    EvalResults r = {a->method, conv, a->prob, K, cl->labels, cl->names, n, cases, packed};
    char err[2048];
    int rc = eval_report_write(&r, a->out, err, sizeof err);
    if (rc != 0) fprintf(stderr, "unet2022: error: %s\n", err);
    free(packed);
    free(cases);
    return rc ? 2 : 0;
}

/* "1, 2, 3 (and 5 more)": the class list's labels for messages; from the data (K < 0, every
 * ground truth read): 1..gt_max, the list the report would have. */
static void label_list(char *out, size_t n, const Classes *cl, int gt_max) {
    int K = cl->K < 0 ? gt_max : cl->K;
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < K && k + 32 < n; i++) {
        if (i == 24) {
            snprintf(out + k, n - k, " (and %d more)", K - i);
            return;
        }
        k += (size_t)snprintf(out + k, n - k, "%s%d", i ? ", " : "", cl->K < 0 ? i + 1 : cl->labels[i]);
    }
}

/* Every label a prediction holds must lie within the class list (or the ground truth's labels,
 * which --classes may leave out on purpose, e.g. the synapse preset on raw BTCV labels): a
 * single stray voxel of label 200 used to add 200 classes when they came from the data, and
 * the headline mean fell from 57.5% to 1.5%. The error for case c's prediction holding `label`;
 * gt_max: the largest ground-truth label of all cases; given: whether the classes were named
 * (--classes or the store) rather than found. Returns -1. */
static int label_out_of_range(const EvalArgs *a, const Classes *cl, const VolumeSource *gt, const VolumeSource *pr,
                              int c, int label, int gt_max, int given) {
    char list[512];
    label_list(list, sizeof list, cl, gt_max);
    const char *name = volume_source_name(gt, c);
    fprintf(stderr, "unet2022: error: %s: label %d is outside the class list [%s] (%s; the ground truth's largest "
                    "label is %d): fix the prediction, or name the classes with --classes\n",
            volume_source_path(pr, volume_source_find(pr, name)), label, list[0] ? list : "none",
            given ? (a->classes ? "from --classes" : "the store's classes") : "labels 1.. of the ground truth in --gt",
            gt_max);
    return -1;
}

static int max_int(int x, int y) { return x > y ? x : y; }

/* Every case, then the class list when it comes from the data (the largest ground-truth label).
 * A prediction may hold labels up to top, the largest of the class list's labels and of the
 * ground truth's over ALL cases (label_out_of_range), and that is checked before a case is
 * scored (surface distances take seconds to minutes a case), not after every case: a case's
 * limit is top over the ground truth read so far, its own included. A prediction above it is
 * deferred: the remaining cases' ground truth alone is read to make top final, then the case is
 * refused at once or, rarely (its label is held by a later case's ground truth only), scored;
 * after that no case can be deferred, only refused. Every scored case thus lies within the
 * final top, so the former check over all cases once scored could no longer fire: it is gone. */
static int evaluate_all(const EvalArgs *a, Classes *cl, VolumeSource *gt, VolumeSource *pr) {
    int n = volume_source_count(gt), kmax = cl->K > 0 ? cl->K : EVAL_MAX_CLASSES, rc = 0, gt_max = 0, found = 0;
    int given = cl->K > 0, list_top = 0, gt_all = 0; /* gt_all: gt_max covers every case */
    for (int k = 0; k < cl->K; k++) list_top = max_int(list_top, cl->labels[k]);
    EvalCell *cells = xcalloc((size_t)n * kmax, sizeof(EvalCell));
    EvalCaseOptions o = {a->prob, !a->no_hd, cl->K > 0 ? cl->labels : NULL, cl->K, NULL, -1};
    for (int c = 0; c < n && rc == 0; c++) {
        EvalCell *row = cells + (size_t)c * kmax;
        int gmax, pmax;
        o.label_limit = a->prob ? -1 : max_int(list_top, gt_max); /* probability maps hold no labels */
        int kc = evaluate_case(row, kmax, gt, pr, c, &o, &gmax, &pmax);
        gt_max = max_int(gt_max, gmax);
        if (kc == EVAL_DEFERRED) {
            int ok = gt_all || gt_max_from(gt, c + 1, &gt_max) == 0;
            gt_all = 1;
            o.label_limit = max_int(list_top, gt_max); /* final */
            if (!ok) kc = -1;
            else if (pmax > o.label_limit) kc = label_out_of_range(a, cl, gt, pr, c, pmax, gt_max, given);
            else kc = evaluate_case(row, kmax, gt, pr, c, &o, &gmax, &pmax); /* within the final limit now */
        }
        if (kc < 0) rc = 2;
        found = kc > found ? kc : found;
    }
    if (rc == 0 && cl->K < 0) { /* label maps: the ground truth's labels 1..max; probabilities: the channels */
        cl->K = a->prob ? found : gt_max;
        for (int k = 0; k < cl->K; k++) cl->labels[k] = k + 1, snprintf(cl->names[k], 64, "class %d", k + 1);
    }
    if (rc == 0 && cl->K == 0)
        fprintf(stderr, "unet2022: error: no foreground label in any %s; name the classes with --classes\n",
                a->prob ? "prediction" : "ground truth"),
            rc = 2;
    if (rc == 0) rc = report(a, cl, gt, cells, kmax);
    free(cells);
    return rc;
}

int cmd_evaluate(int argc, char **argv) {
    EvalArgs a = {.method = "UNet-2022 (ours)", .convention = "medpy"};
    static Classes cl = {.K = -1}; /* -1: decided from the data; static: 64 KiB of names */
    int rc = parse(&a, &cl, argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    VolumeSource *gt = NULL, *pr = NULL;
    struct stat st;
    rc = open_sources(&a, &gt, &pr);
    if (rc == 0 && mkdir(a.out, 0755) != 0 && (stat(a.out, &st) != 0 || !S_ISDIR(st.st_mode)))
        fprintf(stderr, "unet2022: error: --out %s: cannot create the directory\n", a.out), rc = 2;
    if (rc == 0 && cl.K < 0 && !a.prob && volume_source_store(gt)) store_classes(&cl, volume_source_store(gt));
    if (rc == 0) rc = evaluate_all(&a, &cl, gt, pr);
    volume_source_close(gt);
    volume_source_close(pr);
    return rc;
}
