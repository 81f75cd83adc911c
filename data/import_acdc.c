/* import_acdc.c — `prepare acdc`: patientXXX/patientXXX_frameNN.nii.gz with ground truth
 * patientXXX_frameNN_gt.nii.gz (labels 1 RV, 2 MYO, 3 LV); each annotated frame is one case
 * (patientXXX_frameNN). MRI: per-case z-score. Split: the released configuration's patient
 * lists (official_splits.h: 70 train, 10 val, 20 test; every frame of a listed patient), or
 * --split FILE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fsutil.h"
#include "import_common.h"
#include "importers.h"
#include "official_splits.h"
#include "store_format.h"

static const char *const classes[4] = {"background", "RV", "MYO", "LV"};
static const int map4[4] = {0, 1, 2, 3};

static int add_frame(const PrepareOptions *o, StoreWriter *w, const char *name, const char *split, const char *ip,
                     const char *lp, char *err, size_t err_len) {
    ImpNiftiCase c;
    if (imp_read_nifti_case(&c, name, ip, lp, map4, 4, err, err_len)) return -1;
    imp_norm_zscore(c.image, (size_t)c.nx * c.ny * c.nz, 1);
    StoreCaseInput in = {.name = name, .split = split, .depth = c.nz, .channels = 1, .height = c.ny,
                         .width = c.nx, .image = c.image, .label = c.label, .original_ndim = 3,
                         .original_shape = {c.nx, c.ny, c.nz}, .normalisation = "per-case z-score",
                         .num_sources = 2, .sources = {ip, lp}};
    memcpy(in.spacing, c.spacing, sizeof in.spacing);
    memcpy(in.affine, c.affine, sizeof in.affine);
    int rc = store_writer_add_case(w, &in, err, err_len);
    if (rc == 0) imp_progress(o, "prepare acdc: %s (%s) %d x %d x %d", name, split, c.nx, c.ny, c.nz);
    imp_free_nifti_case(&c);
    return rc;
}

int import_acdc(const PrepareOptions *o, char *err, size_t err_len) {
    int ids[512];
    SplitKind kinds[512];
    int n = 0;
    if (o->split_file) {
        if ((n = imp_read_split(o->split_file, ids, kinds, 512, err, err_len)) < 0) return -1;
    } else {
        for (int i = 0; i < ACDC_OFFICIAL_TRAIN; i++) ids[n] = acdc_official_train[i], kinds[n++] = SPLIT_TRAIN;
        for (int i = 0; i < ACDC_OFFICIAL_VAL; i++) ids[n] = acdc_official_val[i], kinds[n++] = SPLIT_VAL;
        for (int i = 0; i < ACDC_OFFICIAL_TEST; i++) ids[n] = acdc_official_test[i], kinds[n++] = SPLIT_TEST;
    }
    /* Presence first: a missing patient fails before any work. */
    for (int i = 0; i < n; i++) {
        char d[4096];
        snprintf(d, sizeof d, "%s/patient%03d", o->src, ids[i]);
        if (!imp_file_exists(d))
            return error_at(err, err_len, "acdc: missing case patient%03d (%s split): %s not found", ids[i],
                             imp_split_name(kinds[i]), d);
    }
    StoreWriter *w;
    if (imp_writer(o, classes, 4, 1, &w, err, err_len)) return -1;
    store_writer_set_attribute(w, "normalisation", "per-case z-score");
    for (int i = 0; i < n; i++) {
        char d[4096];
        snprintf(d, sizeof d, "%s/patient%03d", o->src, ids[i]);
        int nf;
        char **names = fsu_list(d, &nf);
        int frames = 0, rc = 0;
        for (int k = 0; rc == 0 && names && k < nf; k++) {
            int pid, fr;
            char rest[64];
            if (sscanf(names[k], "patient%3d_frame%2d%63s", &pid, &fr, rest) != 3 || strcmp(rest, ".nii.gz") ||
                pid != ids[i])
                continue;
            char ip[8192], lp[8192], name[64];
            snprintf(ip, sizeof ip, "%s/%s", d, names[k]);
            snprintf(lp, sizeof lp, "%s/patient%03d_frame%02d_gt.nii.gz", d, pid, fr);
            if (!imp_file_exists(lp)) continue; /* only annotated frames */
            snprintf(name, sizeof name, "patient%03d_frame%02d", pid, fr);
            rc = add_frame(o, w, name, imp_split_name(kinds[i]), ip, lp, err, err_len);
            frames++;
        }
        if (names) fsu_free_list(names, nf);
        if (rc == 0 && frames == 0)
            rc = error_at(err, err_len, "acdc: missing case: %s has no patient%03d_frameNN.nii.gz with a _gt partner",
                           d, ids[i]);
        if (rc) {
            store_writer_abort(w);
            return -1;
        }
    }
    return store_writer_commit(w, err, err_len);
}
