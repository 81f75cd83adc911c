/* eval_case.c — see eval_case.h. */
#include "eval_case.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "metrics.h"

static const struct {
    const char *name, *spec;
} PRESETS[] = {
    {"synapse", "8=Aorta,4=Gallbladder,3=Kidney (L),2=Kidney (R),6=Liver,11=Pancreas,1=Spleen,7=Stomach"},
    {"synapse9", "7=Aorta,4=Gallbladder,3=Kidney (L),2=Kidney (R),5=Liver,8=Pancreas,1=Spleen,6=Stomach"},
    {"acdc", "1=RV,2=Myo,3=LV"},
    {"binary", "1=foreground"},
};

int eval_classes_parse(const char *spec, int *labels, char (*names)[64], int max) {
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
        if (!strcmp(spec, PRESETS[i].name)) spec = PRESETS[i].spec;
    int n = 0;
    const char *p = spec;
    while (*p) {
        if (n == max) return -1;
        char *end;
        long id = strtol(p, &end, 10);
        if (end == p || id < 0 || id > 1000000) return -1;
        labels[n] = (int)id;
        p = end;
        if (*p == '=') {
            const char *q = ++p;
            while (*p && *p != ',') p++;
            snprintf(names[n], 64, "%.*s", (int)(p - q), q);
        } else {
            snprintf(names[n], 64, "class %ld", id);
        }
        n++;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (labels[i] == labels[j]) return -1;
    return n;
}

/* The classes of this case into lab: the given ones, else 1..max label of either volume
 * (labels), else one per foreground channel (probabilities). Returns the count or -1. */
static int case_classes(int *lab, const EvalCaseOptions *o, const NiftiVolume *pred, const int32_t *pl,
                        const int32_t *gl, size_t vox, char *err, size_t err_len) {
    int kc;
    if (o->labels) {
        memcpy(lab, o->labels, (size_t)o->K * sizeof(int));
        return o->K;
    }
    if (o->prob) {
        kc = pred->nt > 1 ? pred->nt - 1 : 1;
    } else {
        kc = 0;
        for (size_t i = 0; i < vox; i++) {
            if (gl[i] > kc) kc = gl[i];
            if (pl[i] > kc) kc = pl[i];
        }
        if (kc >= EVAL_MAX_CLASSES)
            return error_at(err, err_len, "label %d: more than %d classes; name them with --classes", kc,
                            EVAL_MAX_CLASSES - 1);
    }
    if (kc > EVAL_MAX_CLASSES) return error_at(err, err_len, "%d channels: too many classes", kc + 1);
    for (int k = 0; k < kc; k++) lab[k] = k + 1;
    return kc;
}

/* Probability maps: masks p > 0.5 per class, plus the IoU at thresholds 0.50..0.95. */
static int eval_probs(EvalCell *row, const NiftiVolume *pred, const float *pf, const int32_t *gl, const int n[3],
                      const double spacing[3], const int *lab, int kc, int hd, char *err, size_t err_len) {
    static const double thr[EVAL_N_THRESH] = {0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95};
    size_t vox = (size_t)n[0] * n[1] * n[2];
    int32_t *bin = xmalloc(vox * sizeof(int32_t));
    int rc = 0;
    for (int k = 0; k < kc && rc == 0; k++) {
        int ch = pred->nt > 1 ? lab[k] : 0;
        if (ch >= pred->nt) {
            rc = error_at(err, err_len, "%s has %d channels, no channel for class %d", pred->path, pred->nt, lab[k]);
            break;
        }
        const float *p = pf + (size_t)ch * vox;
        for (size_t i = 0; i < vox; i++) bin[i] = p[i] > 0.5f ? lab[k] : (lab[k] == 0 ? -1 : 0);
        metrics_classes(&row[k].stats, bin, gl, n, spacing, &lab[k], 1, hd);
        metrics_iou_thresholds(row[k].iou_t, row[k].iou2_t, p, gl, vox, lab[k], thr, EVAL_N_THRESH);
        double s1 = 0, s2 = 0;
        for (int t = 0; t < EVAL_N_THRESH; t++) s1 += row[k].iou_t[t], s2 += row[k].iou2_t[t];
        row[k].miou = s1 / EVAL_N_THRESH, row[k].miou2 = s2 / EVAL_N_THRESH;
    }
    free(bin);
    return rc;
}

static void eval_labels(EvalCell *row, const int32_t *pl, const int32_t *gl, const int n[3], const double spacing[3],
                        const int *lab, int kc, int hd) {
    ClassStats *s = xmalloc((size_t)(kc ? kc : 1) * sizeof(ClassStats));
    metrics_classes(s, pl, gl, n, spacing, lab, kc, hd);
    for (int k = 0; k < kc; k++) row[k].stats = s[k], row[k].miou = row[k].miou2 = NAN;
    free(s);
}

static int read_prediction(const NiftiVolume *pred, int prob, int32_t **pl, float **pf, char *err, size_t err_len) {
    if (!prob && pred->nt != 1)
        return error_at(err, err_len, "%s: %d channels: a label prediction must be 3D (probability maps need --prob)",
                        pred->path, pred->nt);
    return prob ? nifti_volume_read_float(pred, pf, err, err_len) : nifti_volume_read_labels(pred, pl, err, err_len);
}

/* The largest label, or -1 with an error naming the voxel of the first negative one (-1 is no
 * class: it used to be scored as if it were background of every class). */
int eval_label_max(const int32_t *lab, const int n[3], const char *path, int *max_out, char *err, size_t err_len) {
    size_t vox = (size_t)n[0] * n[1] * n[2];
    int32_t mx = 0;
    for (size_t i = 0; i < vox; i++) {
        if (lab[i] < 0)
            return error_at(err, err_len, "%s: voxel (x=%zu, y=%zu, z=%zu) holds label %d: labels must be 0 or more",
                            path, i % (size_t)n[2], i / (size_t)n[2] % (size_t)n[1], i / ((size_t)n[2] * n[1]),
                            (int)lab[i]);
        if (lab[i] > mx) mx = lab[i];
    }
    *max_out = (int)mx;
    return 0;
}

int eval_case(EvalCell *row, int kmax, const NiftiVolume *pred, const int32_t *gt, const double spacing[3],
              const EvalCaseOptions *o, char *err, size_t err_len) {
    int32_t *pl = NULL;
    float *pf = NULL;
    if (read_prediction(pred, o->prob, &pl, &pf, err, err_len) != 0) return -1;
    const int n[3] = {pred->nz, pred->ny, pred->nx};
    size_t vox = (size_t)n[0] * n[1] * n[2];
    int pmax = 0;
    if (!o->prob && eval_label_max(pl, n, pred->path, &pmax, err, err_len) != 0) {
        free(pl);
        return -1;
    }
    if (o->pred_max) *o->pred_max = pmax;
    /* before any scoring: with the classes taken from the data a stray label 200 would be scored
     * as 200 classes, surface distances included, only to be refused afterwards */
    if (!o->prob && o->label_limit >= 0 && pmax > o->label_limit) {
        free(pl);
        return EVAL_DEFERRED;
    }
    int *lab = xmalloc(EVAL_MAX_CLASSES * sizeof(int));
    int kc = case_classes(lab, o, pred, pl, gt, vox, err, err_len);
    int hd = o->want_hd ? METRICS_HD_MM | METRICS_HD_VOX : 0;
    if (kc > kmax) kc = error_at(err, err_len, "%d classes, more than the %d evaluated", kc, kmax);
    if (kc >= 0 && !o->prob) eval_labels(row, pl, gt, n, spacing, lab, kc, hd);
    else if (kc >= 0 && eval_probs(row, pred, pf, gt, n, spacing, lab, kc, hd, err, err_len) != 0) kc = -1;
    /* classes this case lacks have zero counts: both masks empty */
    for (int k = kc < 0 ? 0 : kc; k < kmax; k++) {
        row[k].stats.hd95 = row[k].stats.hd95_monai = row[k].stats.hd95_vox = NAN;
        row[k].miou = row[k].miou2 = NAN;
    }
    free(lab);
    free(pl);
    free(pf);
    return kc;
}
