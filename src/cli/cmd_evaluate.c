/* cmd_evaluate.c — `unet2022 evaluate --pred DIR --gt (DIR | STORE --split NAME) --out DIR`:
 * per case and class DSC, IoU, HD95 (mm; medpy's or MONAI's definition and empty-mask
 * convention), the baselines' DSC/HD95 protocol, and for probability maps the IoU at
 * thresholds 0.50…0.95 (EM protocol); summary tables as CSV, JSON and Markdown.
 * Definitions: docs/evaluation.md. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "clock.h"
#include "commands.h"
#include "eval_report.h"
#include "metrics.h"
#include "nifti_volume.h"
#include "store.h"

#define MAX_CLASSES 1024

static const char *USAGE =
    "usage: unet2022 evaluate --pred DIR --gt (DIR | STORE --split NAME) --out DIR\n"
    "                         [--classes SPEC] [--convention medpy|monai] [--prob] [--no-hd] [--method NAME]\n"
    "  --pred DIR        predictions, CASE.nii.gz (labels; or probabilities with --prob)\n"
    "  --gt DIR          ground truth, CASE.nii.gz, on the same grids\n"
    "  --gt STORE --split NAME   ground truth from a slice store's split\n"
    "  --out DIR         per_case.csv, summary.csv, summary.json, summary.md\n"
    "  --classes SPEC    'ID=NAME,ID=NAME,...', 'ID,ID,...', or a preset: synapse (raw BTCV labels,\n"
    "                    the paper's 8 organs), synapse9, acdc, binary. Default: the store's classes,\n"
    "                    else every label 1..max found\n"
    "  --convention C    empty masks and HD95 definition: medpy (default) or monai\n"
    "  --prob            predictions are float probability maps (4D: one channel per class; 3D: the\n"
    "                    foreground): masks are p > 0.5, plus IoU at thresholds 0.50..0.95 (mIoU)\n"
    "  --no-hd           skip surface distances\n";

/* ---- class lists ---- */

static const struct {
    const char *name, *spec;
} PRESETS[] = {
    {"synapse", "8=Aorta,4=Gallbladder,3=Kidney (L),2=Kidney (R),6=Liver,11=Pancreas,1=Spleen,7=Stomach"},
    {"synapse9", "7=Aorta,4=Gallbladder,3=Kidney (L),2=Kidney (R),5=Liver,8=Pancreas,1=Spleen,6=Stomach"},
    {"acdc", "1=RV,2=Myo,3=LV"},
    {"binary", "1=foreground"},
};

static int parse_classes(const char *spec, int *labels, char (*names)[64], int max) {
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

/* ---- case discovery ---- */

typedef struct {
    char (*names)[256];
    char (*paths)[1024];
    int n, cap;
} CaseList;

static int nifti_stem(const char *file, char *stem, size_t n) {
    size_t len = strlen(file);
    const char *exts[] = {".nii.gz", ".nii"};
    for (int i = 0; i < 2; i++) {
        size_t e = strlen(exts[i]);
        if (len > e && !strcmp(file + len - e, exts[i]) && file[0] != '.') {
            snprintf(stem, n, "%.*s", (int)(len - e), file);
            return 1;
        }
    }
    return 0;
}

static int cmp_case(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

static int list_dir(CaseList *cl, const char *dir, char *err, size_t err_len) {
    memset(cl, 0, sizeof *cl);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, err_len, "%s: cannot open directory", dir);
        return -1;
    }
    struct dirent *e;
    char stem[256];
    /* names and paths in one record so sorting keeps them together */
    typedef struct { char name[256]; char path[1024]; } Rec;
    Rec *recs = NULL;
    int n = 0, cap = 0;
    while ((e = readdir(d))) {
        if (!nifti_stem(e->d_name, stem, sizeof stem)) continue;
        if (n == cap) cap = cap ? 2 * cap : 64, recs = realloc(recs, (size_t)cap * sizeof(Rec));
        CHECK(recs, "out of memory");
        snprintf(recs[n].name, sizeof recs[n].name, "%s", stem);
        snprintf(recs[n].path, sizeof recs[n].path, "%s/%s", dir, e->d_name);
        for (int i = 0; i < n; i++)
            if (!strcmp(recs[i].name, stem)) {
                snprintf(err, err_len, "case %s: both %.400s and %.400s exist", stem, recs[i].path, recs[n].path);
                closedir(d);
                free(recs);
                return -1;
            }
        n++;
    }
    closedir(d);
    qsort(recs, (size_t)n, sizeof(Rec), cmp_case);
    cl->n = n;
    cl->names = xmalloc((size_t)(n ? n : 1) * sizeof *cl->names);
    cl->paths = xmalloc((size_t)(n ? n : 1) * sizeof *cl->paths);
    for (int i = 0; i < n; i++) {
        memcpy(cl->names[i], recs[i].name, sizeof cl->names[i]);
        memcpy(cl->paths[i], recs[i].path, sizeof cl->paths[i]);
    }
    free(recs);
    return 0;
}

static const char *find_case(const CaseList *cl, const char *name) {
    for (int i = 0; i < cl->n; i++)
        if (!strcmp(cl->names[i], name)) return cl->paths[i];
    return NULL;
}

/* ---- ground truth from a store ---- */

static int store_labels(const Store *s, int ci, int32_t **out, char *err, size_t err_len) {
    const StoreCase *c = store_case(s, ci);
    size_t plane = (size_t)c->height * c->width;
    int32_t *lab = xmalloc(plane * (size_t)c->depth * sizeof(int32_t));
    float *img = xmalloc(plane * (size_t)c->channels * sizeof(float));
    for (int z = 0; z < c->depth; z++)
        if (store_read_slice(s, ci, z, img, lab + plane * z, err, err_len) != 0) {
            free(lab);
            free(img);
            return -1;
        }
    free(img);
    *out = lab;
    return 0;
}

static int store_geometry_matches(const StoreCase *c, const NiftiVolume *p, char *err, size_t err_len) {
    if (c->width != p->nx || c->height != p->ny || c->depth != p->nz) {
        return error_at(err, err_len, "shape %dx%dx%d (%s) differs from the ground truth's %dx%dx%d (x, y, z)", p->nx,
                        p->ny, p->nz, p->path, c->width, c->height, c->depth);
    }
    for (int i = 0; i < 12; i++)
        if (fabs(c->affine[i] - p->affine[i]) > 1e-3 + 1e-4 * fmax(fabs(c->affine[i]), fabs(p->affine[i]))) {
            return error_at(err, err_len, "affine entry [%d][%d]: %g (%s) vs %g (ground truth): not on the same grid",
                            i / 4, i % 4, p->affine[i], p->path, c->affine[i]);
        }
    return 0;
}

/* ---- the command ---- */

int cmd_evaluate(int argc, char **argv) {
    const char *pred_dir = NULL, *gt_path = NULL, *split = NULL, *out_dir = NULL, *class_spec = NULL;
    const char *method = "UNet-2022 (ours)";
    MetricsConvention conv = CONV_MEDPY;
    int prob = 0, want_hd = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--pred") && has) pred_dir = argv[++i];
        else if (!strcmp(a, "--gt") && has) gt_path = argv[++i];
        else if (!strcmp(a, "--split") && has) split = argv[++i];
        else if (!strcmp(a, "--out") && has) out_dir = argv[++i];
        else if (!strcmp(a, "--classes") && has) class_spec = argv[++i];
        else if (!strcmp(a, "--method") && has) method = argv[++i];
        else if (!strcmp(a, "--convention") && has) {
            const char *c = argv[++i];
            if (!strcmp(c, "medpy")) conv = CONV_MEDPY;
            else if (!strcmp(c, "monai")) conv = CONV_MONAI;
            else {
                fprintf(stderr, "unet2022: error: --convention: '%s' is not medpy or monai\n", c);
                return 1;
            }
        } else if (!strcmp(a, "--prob")) prob = 1;
        else if (!strcmp(a, "--no-hd")) want_hd = 0;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else {
            fprintf(stderr, "unet2022: error: evaluate: unexpected argument '%s'\n%s", a, USAGE);
            return 1;
        }
    }
    if (!pred_dir || !gt_path || !out_dir) {
        fputs(USAGE, stderr);
        return 1;
    }
    char err[2048];
    int labels[MAX_CLASSES];
    static char names[MAX_CLASSES][64];
    int K = -1; /* -1: decided from the data */
    if (class_spec) {
        K = parse_classes(class_spec, labels, names, MAX_CLASSES);
        if (K <= 0) {
            fprintf(stderr, "unet2022: error: --classes '%s': expected ID=NAME,... or ID,..., distinct non-negative "
                            "IDs, or a preset (synapse, synapse9, acdc, binary)\n", class_spec);
            return 1;
        }
    }

    /* ground truth: a directory of NIfTI files or a store split */
    char manifest[1200];
    snprintf(manifest, sizeof manifest, "%s/manifest.json", gt_path);
    struct stat st;
    int from_store = split != NULL || stat(manifest, &st) == 0;
    Store *store = NULL;
    CaseList gt = {0}, pr;
    int *store_idx = NULL;
    if (from_store) {
        if (!split) {
            fprintf(stderr, "unet2022: error: --gt %s is a slice store: name the split with --split\n", gt_path);
            return 1;
        }
        if (store_open(&store, gt_path, err, sizeof err) != 0) {
            fprintf(stderr, "unet2022: error: %s\n", err);
            return 2;
        }
        int n = store_num_cases(store);
        store_idx = xmalloc((size_t)(n ? n : 1) * sizeof(int));
        gt.n = store_split(store, split, store_idx, n);
        if (gt.n == 0) {
            fprintf(stderr, "unet2022: error: %s: split '%s' has no cases\n", gt_path, split);
            store_close(store);
            return 2;
        }
        gt.names = xmalloc((size_t)gt.n * sizeof *gt.names);
        for (int i = 0; i < gt.n; i++) snprintf(gt.names[i], 256, "%s", store_case(store, store_idx[i])->name);
        if (K < 0 && !prob) {
            K = store_num_classes(store) - 1;
            for (int k = 0; k < K; k++) {
                labels[k] = k + 1;
                snprintf(names[k], 64, "%s", store_class_name(store, k + 1));
            }
        }
    } else if (list_dir(&gt, gt_path, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: --gt: %s\n", err);
        return 2;
    } else if (gt.n == 0) {
        fprintf(stderr, "unet2022: error: --gt %s: no .nii or .nii.gz files\n", gt_path);
        return 2;
    }
    if (list_dir(&pr, pred_dir, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: --pred: %s\n", err);
        return 2;
    }
    for (int i = 0; i < gt.n; i++)
        if (!find_case(&pr, gt.names[i])) {
            fprintf(stderr, "unet2022: error: case %s: no prediction in %s (expected %s.nii.gz)\n", gt.names[i],
                    pred_dir, gt.names[i]);
            return 2;
        }
    if (!from_store)
        for (int i = 0; i < pr.n; i++)
            if (!find_case(&gt, pr.names[i])) {
                fprintf(stderr, "unet2022: error: case %s: prediction %s has no ground truth in %s\n", pr.names[i],
                        pr.paths[i], gt_path);
                return 2;
            }
    if (mkdir(out_dir, 0755) != 0 && (stat(out_dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr, "unet2022: error: --out %s: cannot create the directory\n", out_dir);
        return 2;
    }

    /* per case: stats for each class (labels decided later when K < 0) */
    int kmax = K > 0 ? K : MAX_CLASSES;
    EvalCell *cells = xcalloc((size_t)gt.n * kmax, sizeof(EvalCell));
    int found_max = 0; /* K < 0: the largest label seen */
    static const double thr[EVAL_N_THRESH] = {0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95};
    int rc = 0;
    for (int c = 0; c < gt.n && rc == 0; c++) {
        const char *name = gt.names[c];
        NiftiVolume pv, gv = {0};
        int32_t *gl = NULL, *pl = NULL;
        float *pf = NULL;
        double spacing[3];
        const char *pp = find_case(&pr, name);
        if (nifti_volume_open(&pv, pp, err, sizeof err) != 0) {
            fprintf(stderr, "unet2022: error: case %s: %s\n", name, err);
            rc = 2;
            break;
        }
        if (from_store) {
            const StoreCase *sc = store_case(store, store_idx[c]);
            for (int d = 0; d < 3; d++) spacing[2 - d] = sc->spacing[d];
            if (store_geometry_matches(sc, &pv, err, sizeof err) != 0 || store_labels(store, store_idx[c], &gl, err, sizeof err) != 0)
                rc = 2;
        } else {
            if (nifti_volume_open(&gv, gt.paths[c], err, sizeof err) != 0 ||
                nifti_volume_same_geometry(&pv, &gv, err, sizeof err) != 0 ||
                nifti_volume_read_labels(&gv, &gl, err, sizeof err) != 0)
                rc = 2;
            else if (gv.nt != 1) {
                snprintf(err, sizeof err, "%s: ground truth must be a 3D label volume, it has %d channels", gt.paths[c], gv.nt);
                rc = 2;
            }
            for (int d = 0; d < 3; d++) spacing[2 - d] = gv.spacing[d];
        }
        if (rc == 0 && !prob && pv.nt != 1) {
            snprintf(err, sizeof err, "%s: %d channels: a label prediction must be 3D (probability maps need --prob)", pp, pv.nt);
            rc = 2;
        }
        if (rc == 0) rc = (prob ? nifti_volume_read_float(&pv, &pf, err, sizeof err)
                                : nifti_volume_read_labels(&pv, &pl, err, sizeof err)) != 0 ? 2 : 0;
        int n[3] = {pv.nz, pv.ny, pv.nx};
        size_t vox = (size_t)pv.nx * pv.ny * pv.nz;
        if (rc != 0) {
            fprintf(stderr, "unet2022: error: case %s: %s\n", name, err);
        } else {
            /* labels of this case */
            int lab_c[MAX_CLASSES], kc = K;
            if (K > 0) memcpy(lab_c, labels, (size_t)K * sizeof(int));
            else if (prob) {
                kc = pv.nt > 1 ? pv.nt - 1 : 1;
                for (int k = 0; k < kc; k++) lab_c[k] = k + 1;
            } else {
                int mx = 0;
                for (size_t i = 0; i < vox; i++) {
                    if (gl[i] > mx) mx = gl[i];
                    if (pl[i] > mx) mx = pl[i];
                }
                if (mx >= MAX_CLASSES) {
                    fprintf(stderr, "unet2022: error: case %s: label %d: more than %d classes; name them with --classes\n",
                            name, mx, MAX_CLASSES - 1);
                    rc = 2;
                }
                kc = mx;
                for (int k = 0; k < kc; k++) lab_c[k] = k + 1;
                if (mx > found_max) found_max = mx;
            }
            EvalCell *row = cells + (size_t)c * kmax;
            double t0 = monotonic_seconds();
            int hd = want_hd ? METRICS_HD_MM | METRICS_HD_VOX : 0;
            if (rc == 0 && !prob) {
                ClassStats *s = xmalloc((size_t)(kc ? kc : 1) * sizeof(ClassStats));
                metrics_classes(s, pl, gl, n, spacing, lab_c, kc, hd);
                for (int k = 0; k < kc; k++) row[k].stats = s[k], row[k].miou = row[k].miou2 = NAN;
                free(s);
            } else if (rc == 0) {
                int32_t *bin = xmalloc(vox * sizeof(int32_t));
                for (int k = 0; k < kc; k++) {
                    int ch = pv.nt > 1 ? lab_c[k] : 0;
                    if (ch >= pv.nt) {
                        fprintf(stderr, "unet2022: error: case %s: %s has %d channels, no channel for class %d\n", name,
                                pp, pv.nt, lab_c[k]);
                        rc = 2;
                        break;
                    }
                    const float *p = pf + (size_t)ch * vox;
                    for (size_t i = 0; i < vox; i++) bin[i] = p[i] > 0.5f ? lab_c[k] : (lab_c[k] == 0 ? -1 : 0);
                    metrics_classes(&row[k].stats, bin, gl, n, spacing, &lab_c[k], 1, hd);
                    metrics_iou_thresholds(row[k].iou_t, row[k].iou2_t, p, gl, vox, lab_c[k], thr, EVAL_N_THRESH);
                    double s1 = 0, s2 = 0;
                    for (int t = 0; t < EVAL_N_THRESH; t++) s1 += row[k].iou_t[t], s2 += row[k].iou2_t[t];
                    row[k].miou = s1 / EVAL_N_THRESH, row[k].miou2 = s2 / EVAL_N_THRESH;
                }
                free(bin);
                if (K < 0 && kc > found_max) found_max = kc;
            }
            /* classes this case lacks have zero counts: both masks empty */
            for (int k = kc; k < kmax; k++) {
                row[k].stats.hd95 = row[k].stats.hd95_monai = row[k].stats.hd95_vox = NAN;
                row[k].miou = row[k].miou2 = NAN;
            }
            double secs = monotonic_seconds() - t0;
            if (rc == 0)
                fprintf(stderr, "evaluate: %s (%dx%dx%d, spacing %.4g %.4g %.4g mm): metrics %.3f s\n", name, pv.nx,
                        pv.ny, pv.nz, spacing[2], spacing[1], spacing[0], secs);
        }
        free(gl);
        free(pl);
        free(pf);
        nifti_volume_close(&pv);
        if (!from_store) nifti_volume_close(&gv);
    }
    if (rc == 0 && K < 0) {
        K = found_max;
        for (int k = 0; k < K; k++) labels[k] = k + 1, snprintf(names[k], 64, "class %d", k + 1);
        if (K == 0) {
            fprintf(stderr, "unet2022: error: no foreground label in any prediction or ground truth; name the classes with --classes\n");
            rc = 2;
        }
    }
    if (rc == 0) {
        /* compact rows to K columns and apply the convention */
        EvalCell *packed = xmalloc((size_t)gt.n * K * sizeof(EvalCell));
        for (int c = 0; c < gt.n; c++)
            for (int k = 0; k < K; k++) {
                EvalCell *e = &packed[(size_t)c * K + k];
                *e = cells[(size_t)c * kmax + k];
                metrics_scores(&e->scores, &e->stats, conv);
            }
        EvalResults r = {method, conv, prob, K, labels, names, gt.n, gt.names, packed};
        if (eval_report_write(&r, out_dir, err, sizeof err) != 0) {
            fprintf(stderr, "unet2022: error: %s\n", err);
            rc = 2;
        }
        free(packed);
    }
    free(cells);
    free(gt.names);
    free(gt.paths);
    free(pr.names);
    free(pr.paths);
    free(store_idx);
    if (store) store_close(store);
    return rc;
}
