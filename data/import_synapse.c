/* import_synapse.c — `prepare synapse`: raw BTCV (img/imgXXXX.nii.gz, label/labelXXXX.nii.gz).
 *
 * Labels: all 13 BTCV organs (the released recipe, 14 classes) or the baselines' 9-class form
 * (8 organs mapped to 1..8, the other five to background). Intensities: the baselines' clip
 * [-125, 275] -> [0, 1], or nnU-Net's CT scheme: dataset-wide statistics of the training
 * cases' foreground (every 10th foreground voxel: 0.5 / 99.5 percentiles, mean, sd), clip to the
 * percentiles, z-score. Split: the official 18/12 unless --split FILE. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "import_common.h"
#include "importers.h"
#include "store_format.h"
#include "synth.h"

static const char *const classes13[14] = {"background", "spleen", "right_kidney", "left_kidney", "gallbladder",
                                          "esophagus", "liver", "stomach", "aorta", "inferior_vena_cava",
                                          "portal_splenic_veins", "pancreas", "right_adrenal_gland",
                                          "left_adrenal_gland"};
static const char *const classes8[9] = {"background", "spleen", "right_kidney", "left_kidney", "gallbladder",
                                        "liver", "stomach", "aorta", "pancreas"};
static const int map13[14] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
static const int map8[14] = {0, 1, 2, 3, 4, 0, 5, 6, 7, 0, 0, 8, 0, 0};

typedef struct {
    char img[4096], lab[4096], name[32];
    int id;
    SplitKind kind;
} SynCase;

/* Reads and checks one case: same grid, finite HU, labels inside the mapping. */
static int load_case(const SynCase *c, const int *map, ImpNiftiCase *out, char *err, size_t err_len) {
    return imp_read_nifti_case(out, c->name, c->img, c->lab, map, 14, err, err_len);
}

int import_synapse(const PrepareOptions *o, char *err, size_t err_len) {
    if (o->labels != 13 && o->labels != 8)
        return error_at(err, err_len, "synapse: --labels %d (expected 13 or 8)", o->labels);
    int zscore = !strcmp(o->norm, "zscore");
    if (!zscore && strcmp(o->norm, "clip"))
        return error_at(err, err_len, "synapse: --norm %s (expected clip or zscore)", o->norm);
    const int *map = o->labels == 13 ? map13 : map8;

    int ids[512];
    SplitKind kinds[512];
    int n = 0;
    if (o->split_file) {
        n = imp_read_split(o->split_file, ids, kinds, 512, err, err_len);
        if (n < 0) return -1;
    } else {
        for (int i = 0; i < 18; i++) ids[n] = synapse_train_ids[i], kinds[n++] = SPLIT_TRAIN;
        for (int i = 0; i < 12; i++) ids[n] = synapse_test_ids[i], kinds[n++] = SPLIT_TEST;
    }
    SynCase *cs = xcalloc((size_t)n, sizeof *cs);
    for (int i = 0; i < n; i++) {
        SynCase *c = &cs[i];
        c->id = ids[i];
        c->kind = kinds[i];
        snprintf(c->name, sizeof c->name, "img%04d", ids[i]);
        snprintf(c->img, sizeof c->img, "%s/img/img%04d.nii.gz", o->src, ids[i]);
        snprintf(c->lab, sizeof c->lab, "%s/label/label%04d.nii.gz", o->src, ids[i]);
        /* Every case is checked for presence before any work, so a missing one fails fast. */
        const char *missing = !imp_file_exists(c->img) ? c->img : !imp_file_exists(c->lab) ? c->lab : NULL;
        if (missing) {
            error_at(err, err_len, "synapse: missing case %04d (%s split): %s not found", ids[i],
                      imp_split_name(kinds[i]), missing);
            free(cs);
            return -1;
        }
    }

    double lo = -125, hi = 275, mean = 0, sd = 1;
    char norm[256];
    if (zscore) {
        /* Pass 1: foreground statistics over the training cases (nnU-Net v1's CT scheme). */
        size_t cap = 1 << 20, cnt = 0;
        float *fg = xmalloc(cap * sizeof *fg);
        for (int i = 0; i < n; i++) {
            if (cs[i].kind != SPLIT_TRAIN) continue;
            ImpNiftiCase img;
            if (load_case(&cs[i], map, &img, err, err_len)) {
                free(fg);
                free(cs);
                return -1;
            }
            size_t nv = (size_t)img.nx * img.ny * img.nz, k = 0;
            for (size_t v = 0; v < nv; v++) {
                if (!img.label[v]) continue;
                if (k++ % 10) continue;
                if (cnt == cap) fg = realloc(fg, (cap *= 2) * sizeof *fg);
                CHECK(fg, "out of memory collecting foreground intensities");
                fg[cnt++] = img.image[v];
            }
            imp_free_nifti_case(&img);
        }
        if (cnt < 2) {
            free(fg);
            free(cs);
            return error_at(err, err_len, "synapse: --norm zscore needs labelled foreground in the training cases");
        }
        double s = 0, ss = 0;
        for (size_t i = 0; i < cnt; i++) s += fg[i];
        mean = s / (double)cnt;
        for (size_t i = 0; i < cnt; i++) ss += (fg[i] - mean) * (fg[i] - mean);
        sd = sqrt(ss / (double)cnt);
        imp_sort(fg, cnt);
        lo = imp_percentile_sorted(fg, cnt, 0.5);
        hi = imp_percentile_sorted(fg, cnt, 99.5);
        free(fg);
        if (sd < 1e-6) sd = 1e-6;
        snprintf(norm, sizeof norm, "zscore: clip [%.9g, %.9g], (x - %.9g) / %.9g", lo, hi, mean, sd);
    } else {
        snprintf(norm, sizeof norm, "clip [-125, 275] -> [0, 1]");
    }

    StoreWriter *w;
    if (imp_writer(o, o->labels == 13 ? classes13 : classes8, o->labels + 1, 1, &w, err, err_len)) {
        free(cs);
        return -1;
    }
    store_writer_set_attribute(w, "normalisation", norm);
    imp_progress_total(n);
    store_writer_set_attribute(w, "labels", o->labels == 13 ? "all 13 BTCV organs" : "BTCV 13 -> 8 (baselines)");
    for (int i = 0; i < n; i++) {
        SynCase *c = &cs[i];
        ImpNiftiCase img;
        if (load_case(c, map, &img, err, err_len)) goto fail;
        size_t nv = (size_t)img.nx * img.ny * img.nz;
        if (zscore) imp_norm_clip_zscore(img.image, nv, (float)lo, (float)hi, (float)mean, (float)sd);
        else imp_norm_clip(img.image, nv, -125, 275);
        StoreCaseInput in = {.name = c->name, .split = imp_split_name(c->kind), .depth = img.nz, .channels = 1,
                             .height = img.ny, .width = img.nx, .image = img.image, .label = img.label,
                             .original_ndim = 3, .original_shape = {img.nx, img.ny, img.nz},
                             .normalisation = norm, .num_sources = 2, .sources = {c->img, c->lab}};
        memcpy(in.spacing, img.spacing, sizeof in.spacing);
        memcpy(in.affine, img.affine, sizeof in.affine);
        int rc = store_writer_add_case(w, &in, err, err_len);
        imp_free_nifti_case(&img);
        if (rc) goto fail;
        imp_progress(o, "prepare synapse: %s (%s) %d x %d x %d", c->name, in.split, in.width, in.height, in.depth);
    }
    free(cs);
    return store_writer_commit(w, err, err_len);
fail:
    store_writer_abort(w);
    free(cs);
    return -1;
}
