/* eval_report.c — see eval_report.h. Means skip NaN (undefined: e.g. HD95 of an empty mask
 * under medpy's convention) and keep +inf (MONAI's one-sided empty case), as numpy.nanmean
 * and MONAI's reductions do. */
#include "eval_report.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

int eval_write_atomic(const char *path, const char *text, size_t len, char *err, size_t err_len) {
    char tmp[1200], dir[1024];
    const char *slash = strrchr(path, '/');
    if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%s", dir, (long)getpid(), slash ? slash + 1 : path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return error_at(err, err_len, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return error_at(err, err_len, "%s: write: %s", path, strerror(e));
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return error_at(err, err_len, "%s: fsync/close: %s", path, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return error_at(err, err_len, "%s: rename: %s", path, strerror(errno));
    }
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP) {
            close(dfd);
            return error_at(err, err_len, "%s: fsync of directory %s: %s", path, dir, strerror(errno));
        }
        close(dfd);
    }
    return 0;
}

/* ---- aggregation ---- */

enum { M_DSC, M_IOU, M_HD95, M_DSC_BASE, M_HD95_BASE, M_MIOU, M_MIOU2, N_METRICS };
static const char *METRIC_NAMES[N_METRICS] = {"dsc", "iou", "hd95", "dsc_base", "hd95_base", "miou", "miou_2class"};

static double metric_of(const EvalCell *c, int m) {
    switch (m) {
    case M_DSC: return c->scores.dsc;
    case M_IOU: return c->scores.iou;
    case M_HD95: return c->scores.hd95;
    case M_DSC_BASE: return c->scores.dsc_base;
    case M_HD95_BASE: return c->scores.hd95_base;
    case M_MIOU: return c->miou;
    default: return c->miou2;
    }
}

/* NaN-skipping mean; NaN when nothing is defined. */
static double nanmean(const double *x, int n, int *count) {
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[i])) s += x[i], k++;
    if (count) *count = k;
    return k ? s / k : NAN;
}

typedef struct {
    double *cls;  /* (n_classes, N_METRICS) class means over cases */
    int *valid;   /* (n_classes, N_METRICS) how many cases were defined */
    double mean[N_METRICS]; /* mean over classes of the class means */
} Summary;

static void summarise(Summary *s, const EvalResults *r) {
    int K = r->n_classes;
    s->cls = xmalloc((size_t)K * N_METRICS * sizeof(double));
    s->valid = xmalloc((size_t)K * N_METRICS * sizeof(int));
    double *tmp = xmalloc(((size_t)(r->n_cases > K ? r->n_cases : K) + 1) * sizeof(double));
    for (int k = 0; k < K; k++)
        for (int m = 0; m < N_METRICS; m++) {
            for (int c = 0; c < r->n_cases; c++) tmp[c] = metric_of(&r->cells[(size_t)c * K + k], m);
            s->cls[k * N_METRICS + m] = nanmean(tmp, r->n_cases, &s->valid[k * N_METRICS + m]);
        }
    for (int m = 0; m < N_METRICS; m++) {
        for (int k = 0; k < K; k++) tmp[k] = s->cls[k * N_METRICS + m];
        s->mean[m] = nanmean(tmp, K, NULL);
    }
    free(tmp);
}

/* CSV/Markdown number: full precision for files that programs read, 2 decimals for people. */
static void num(FILE *f, double x, int digits) {
    if (isnan(x)) fputs("nan", f);
    else if (isinf(x)) fputs(x > 0 ? "inf" : "-inf", f);
    else if (digits < 0) fprintf(f, "%.17g", x);
    else fprintf(f, "%.*f", digits, x);
}

static cJSON *jnum(double x) {
    if (isnan(x)) return cJSON_CreateNull();
    if (isinf(x)) return cJSON_CreateString(x > 0 ? "inf" : "-inf");
    return cJSON_CreateNumber(x);
}

static void csv_text(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_per_case_csv(FILE *f, const EvalResults *r) {
    fputs("case,label,class,n_pred,n_gt,n_inter,dsc,iou,hd95,dsc_base,hd95_base,hd95_medpy_mm,hd95_monai_mm,hd95_vox", f);
    if (r->prob) {
        for (int t = 0; t < EVAL_N_THRESH; t++) fprintf(f, ",iou@%.2f", 0.5 + 0.05 * t);
        fputs(",miou,miou_2class", f);
    }
    fputc('\n', f);
    for (int c = 0; c < r->n_cases; c++)
        for (int k = 0; k < r->n_classes; k++) {
            const EvalCell *e = &r->cells[(size_t)c * r->n_classes + k];
            csv_text(f, r->cases[c]);
            fprintf(f, ",%d,", r->labels[k]);
            csv_text(f, r->names[k]);
            fprintf(f, ",%lld,%lld,%lld", (long long)e->stats.n_pred, (long long)e->stats.n_gt,
                    (long long)e->stats.n_inter);
            double v[] = {e->scores.dsc, e->scores.iou, e->scores.hd95, e->scores.dsc_base, e->scores.hd95_base,
                          e->stats.hd95, e->stats.hd95_monai, e->stats.hd95_vox};
            for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) fputc(',', f), num(f, v[i], -1);
            if (r->prob) {
                for (int t = 0; t < EVAL_N_THRESH; t++) fputc(',', f), num(f, e->iou_t[t], -1);
                fputc(',', f), num(f, e->miou, -1);
                fputc(',', f), num(f, e->miou2, -1);
            }
            fputc('\n', f);
        }
}

static void write_summary_csv(FILE *f, const EvalResults *r, const Summary *s) {
    fputs("label,class", f);
    for (int m = 0; m < N_METRICS; m++) fprintf(f, ",%s", METRIC_NAMES[m]);
    for (int m = 0; m < N_METRICS; m++) fprintf(f, ",n_%s", METRIC_NAMES[m]);
    fputc('\n', f);
    for (int k = 0; k < r->n_classes; k++) {
        fprintf(f, "%d,", r->labels[k]);
        csv_text(f, r->names[k]);
        for (int m = 0; m < N_METRICS; m++) fputc(',', f), num(f, s->cls[k * N_METRICS + m], -1);
        for (int m = 0; m < N_METRICS; m++) fprintf(f, ",%d", s->valid[k * N_METRICS + m]);
        fputc('\n', f);
    }
    fputs(",mean", f);
    for (int m = 0; m < N_METRICS; m++) fputc(',', f), num(f, s->mean[m], -1);
    for (int m = 0; m < N_METRICS; m++) fprintf(f, ",%d", r->n_classes);
    fputc('\n', f);
}

static char *summary_json(const EvalResults *r, const Summary *s) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "format_version", 1);
    cJSON_AddStringToObject(root, "convention", r->conv == CONV_MONAI ? "monai" : "medpy");
    cJSON_AddBoolToObject(root, "probabilities", r->prob);
    cJSON_AddNumberToObject(root, "cases", r->n_cases);
    cJSON *mean = cJSON_AddObjectToObject(root, "mean");
    for (int m = 0; m < N_METRICS; m++) cJSON_AddItemToObject(mean, METRIC_NAMES[m], jnum(s->mean[m]));
    cJSON *classes = cJSON_AddArrayToObject(root, "classes");
    for (int k = 0; k < r->n_classes; k++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "label", r->labels[k]);
        cJSON_AddStringToObject(o, "name", r->names[k]);
        for (int m = 0; m < N_METRICS; m++) cJSON_AddItemToObject(o, METRIC_NAMES[m], jnum(s->cls[k * N_METRICS + m]));
        cJSON_AddItemToArray(classes, o);
    }
    cJSON *cases = cJSON_AddArrayToObject(root, "per_case");
    for (int c = 0; c < r->n_cases; c++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "case", r->cases[c]);
        cJSON *cl = cJSON_AddArrayToObject(o, "classes");
        for (int k = 0; k < r->n_classes; k++) {
            const EvalCell *e = &r->cells[(size_t)c * r->n_classes + k];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "label", r->labels[k]);
            cJSON_AddNumberToObject(x, "n_pred", (double)e->stats.n_pred);
            cJSON_AddNumberToObject(x, "n_gt", (double)e->stats.n_gt);
            cJSON_AddNumberToObject(x, "n_inter", (double)e->stats.n_inter);
            for (int m = 0; m < N_METRICS; m++) cJSON_AddItemToObject(x, METRIC_NAMES[m], jnum(metric_of(e, m)));
            cJSON_AddItemToObject(x, "hd95_medpy_mm", jnum(e->stats.hd95));
            cJSON_AddItemToObject(x, "hd95_monai_mm", jnum(e->stats.hd95_monai));
            cJSON_AddItemToObject(x, "hd95_vox", jnum(e->stats.hd95_vox));
            if (r->prob) {
                cJSON *a = cJSON_AddArrayToObject(x, "iou_thresholds");
                for (int t = 0; t < EVAL_N_THRESH; t++) cJSON_AddItemToArray(a, jnum(e->iou_t[t]));
            }
            cJSON_AddItemToArray(cl, x);
        }
        cJSON_AddItemToArray(cases, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

static void write_markdown(FILE *f, const EvalResults *r, const Summary *s) {
    int K = r->n_classes;
    const char *conv = r->conv == CONV_MONAI ? "MONAI" : "medpy";
    fprintf(f, "## Evaluation: %d cases, %d classes\n\n", r->n_cases, K);
    /* Paper layout (Tables 1-4): the means, then DSC per class. DSC and HD95 here follow the
     * baselines' protocol (HD95 without spacing; (1, 0) when predicted but absent). */
    fprintf(f, "Paper layout (Tables 1–4): DSC (%%) and HD95 under the baselines' protocol, then DSC (%%) per class.\n\n");
    fputs("| Method | DSC ↑ | HD95 ↓ | IoU ↑ |", f);
    if (r->prob) fputs(" mIoU ↑ |", f);
    for (int k = 0; k < K; k++) fprintf(f, " %s |", r->names[k]);
    fputs("\n|---|---|---|---|", f);
    if (r->prob) fputs("---|", f);
    for (int k = 0; k < K; k++) fputs("---|", f);
    fprintf(f, "\n| %s | ", r->method);
    num(f, 100 * s->mean[M_DSC_BASE], 2), fputs(" | ", f);
    num(f, s->mean[M_HD95_BASE], 2), fputs(" | ", f);
    num(f, 100 * s->mean[M_IOU], 2), fputs(" |", f);
    if (r->prob) fputc(' ', f), num(f, 100 * s->mean[M_MIOU], 2), fputs(" |", f);
    for (int k = 0; k < K; k++) fputc(' ', f), num(f, 100 * s->cls[k * N_METRICS + M_DSC_BASE], 2), fputs(" |", f);
    fprintf(f, "\n\nPer class, %s convention (HD95 in mm with voxel spacing), mean over cases:\n\n", conv);
    fputs("| Class | label | DSC (%) | IoU (%) | HD95 (mm) | DSC base (%) | HD95 base |", f);
    if (r->prob) fputs(" mIoU (%) |", f);
    fputs("\n|---|---|---|---|---|---|---|", f);
    if (r->prob) fputs("---|", f);
    fputc('\n', f);
    for (int k = 0; k <= K; k++) {
        const double *v = k < K ? s->cls + k * N_METRICS : s->mean;
        if (k < K) fprintf(f, "| %s | %d | ", r->names[k], r->labels[k]);
        else fputs("| **mean** | | ", f);
        num(f, 100 * v[M_DSC], 2), fputs(" | ", f);
        num(f, 100 * v[M_IOU], 2), fputs(" | ", f);
        num(f, v[M_HD95], 2), fputs(" | ", f);
        num(f, 100 * v[M_DSC_BASE], 2), fputs(" | ", f);
        num(f, v[M_HD95_BASE], 2), fputs(" |", f);
        if (r->prob) fputc(' ', f), num(f, 100 * v[M_MIOU], 2), fputs(" |", f);
        fputc('\n', f);
    }
}

static int write_stream(const char *dir, const char *name, void (*fn)(FILE *, const EvalResults *, const Summary *),
                        const EvalResults *r, const Summary *s, int echo, char *err, size_t err_len) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f, "open_memstream failed");
    fn(f, r, s);
    fclose(f);
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = eval_write_atomic(path, buf, len, err, err_len);
    if (echo && rc == 0) fwrite(buf, 1, len, stdout);
    free(buf);
    return rc;
}

static void per_case_fn(FILE *f, const EvalResults *r, const Summary *s) { write_per_case_csv(f, r); }

int eval_text_is_utf8(const char *text) {
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        int extra = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
        if (extra < 0) return 0;
        uint32_t cp = extra == 0 ? *p : extra == 1 ? *p & 0x1fu : extra == 2 ? *p & 0x0fu : *p & 0x07u;
        for (int i = 1; i <= extra; i++) {
            if ((p[i] & 0xc0) != 0x80) return 0; /* also stops at the terminating NUL */
            cp = cp << 6 | (p[i] & 0x3fu);
        }
        /* overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8 */
        static const uint32_t least[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < least[extra] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return 0;
        p += extra + 1;
    }
    return 1;
}

int eval_report_write(const EvalResults *r, const char *dir, char *err, size_t err_len) {
    /* JSON text is UTF-8 and cJSON copies bytes as they are: one Latin-1 case name made
     * summary.json unreadable. Checked before any file is written, so none is left half done. */
    for (int c = 0; c < r->n_cases; c++)
        if (!eval_text_is_utf8(r->cases[c]))
            return error_at(err, err_len, "case name '%s' is not valid UTF-8: rename the file", r->cases[c]);
    for (int k = 0; k < r->n_classes; k++)
        if (!eval_text_is_utf8(r->names[k]))
            return error_at(err, err_len, "class name '%s' (label %d) is not valid UTF-8", r->names[k], r->labels[k]);
    if (!eval_text_is_utf8(r->method)) return error_at(err, err_len, "--method '%s' is not valid UTF-8", r->method);
    Summary s;
    summarise(&s, r);
    int rc = write_stream(dir, "per_case.csv", per_case_fn, r, &s, 0, err, err_len);
    if (rc == 0) rc = write_stream(dir, "summary.csv", write_summary_csv, r, &s, 0, err, err_len);
    if (rc == 0) {
        char *json = summary_json(r, &s);
        char path[1400];
        snprintf(path, sizeof path, "%s/summary.json", dir);
        rc = eval_write_atomic(path, json, strlen(json), err, err_len);
        free(json);
    }
    if (rc == 0) rc = write_stream(dir, "summary.md", write_markdown, r, &s, 1, err, err_len);
    free(s.cls);
    free(s.valid);
    return rc;
}
