/* import_nnunet.c — `prepare nnunet`: an nnU-Net raw dataset, v1 or v2 (nnunet_dataset.h), into a
 * store whose channels are the dataset's channels in order and whose classes are its labels.
 *
 * Normalisation per channel, by the modality dataset.json gives it (nnU-Net's scheme):
 *   CT: statistics of the foreground (label > 0) of every labelled imagesTr case, every 10th
 *       foreground voxel of each case (nnU-Net v1's sampling): clip to the 0.5 / 99.5
 *       percentiles, then (x - mean) / sd;
 *   anything else: per-case z-score over the whole volume, (x - mean) / max(sd, 1e-8).
 * The statistics use every training case whatever the split, as nnU-Net's fingerprint does, so
 * a different fold never changes the intensities. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "import_common.h"
#include "importers.h"
#include "nifti_volume.h"
#include "nnunet_dataset.h"

typedef struct {
    int nx, ny, nz;
    double spacing[3], affine[16];
    float *image; /* (nz, C, ny, nx): the store's (D, C, H, W) */
    uint8_t *label;
} NnVolume;

static void nn_volume_free(NnVolume *v) {
    free(v->image);
    free(v->label);
    v->image = NULL, v->label = NULL;
}

/* One channel file into the interleaved (nz, C, ny, nx) image, after checking its grid against ref. */
static int read_channel(const NnCase *c, int k, int C, const NiftiVolume *ref, float *dst, char *err, size_t err_len) {
    NiftiVolume v;
    if (nifti_volume_open(&v, c->image[k], err, err_len)) return -1;
    float *x = NULL;
    char why[1024];
    int rc = -1;
    if (v.nt != 1) error_at(err, err_len, "%s: expected a 3-D volume, found %d volumes", c->image[k], v.nt);
    else if (nifti_volume_same_geometry(ref, &v, why, sizeof why))
        error_at(err, err_len, "case %s: the geometry of %s differs from %s: %s", c->name, c->image[k], ref->path, why);
    else if (nifti_volume_read_float(&v, &x, err, err_len) == 0 &&
             imp_check_finite(c->image[k], x, v.nx, v.ny, v.nz, 1, err, err_len) == 0) {
        size_t hw = (size_t)v.nx * v.ny;
        for (int z = 0; z < v.nz; z++) memcpy(dst + ((size_t)z * C + k) * hw, x + (size_t)z * hw, hw * sizeof *x);
        rc = 0;
    }
    free(x);
    nifti_volume_close(&v);
    return rc;
}

/* A case's label (the reference grid) and every channel, checked against each other. */
static int read_case(const NnDataset *d, const NnCase *c, NnVolume *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    NiftiVolume lab;
    if (nifti_volume_open(&lab, c->label, err, err_len)) return -1;
    float *lv = NULL;
    int rc = -1;
    if (lab.nt != 1) {
        error_at(err, err_len, "%s: expected a 3-D volume, found %d volumes", c->label, lab.nt);
        goto out;
    }
    out->nx = lab.nx, out->ny = lab.ny, out->nz = lab.nz;
    size_t nv = (size_t)lab.nx * lab.ny * lab.nz;
    out->image = xmalloc(nv * d->channels * sizeof(float));
    for (int k = 0; k < d->channels; k++)
        if (read_channel(c, k, d->channels, &lab, out->image, err, err_len)) goto out;
    NiftiVolume first;
    if (nifti_volume_open(&first, c->image[0], err, err_len)) goto out;
    memcpy(out->spacing, first.spacing, sizeof out->spacing); /* the image's grid, as the other importers */
    memcpy(out->affine, first.affine, sizeof out->affine);
    nifti_volume_close(&first);
    if (nifti_volume_read_float(&lab, &lv, err, err_len)) goto out;
    out->label = xmalloc(nv);
    if (imp_map_labels(c->label, lv, out->label, lab.nx, lab.ny, lab.nz, d->map, NN_MAX_CLASSES, err, err_len)) {
        size_t L = strlen(err);
        snprintf(err + L, err_len - L, "; dataset.json \"labels\" lists %d labels", d->classes);
        goto out;
    }
    rc = 0;
out:
    free(lv);
    nifti_volume_close(&lab);
    if (rc) nn_volume_free(out);
    return rc;
}

typedef struct {
    double lo, hi, mean, sd;
} CtStats;

/* Pass 1: every 10th foreground voxel of each labelled training case, per CT channel. */
static int ct_stats(const NnDataset *d, CtStats *st, char *err, size_t err_len) {
    int any = 0;
    for (int k = 0; k < d->channels; k++) any |= nn_channel_is_ct(d, k);
    if (!any) return 0;
    size_t cap[NN_MAX_CHANNELS] = {0}, cnt[NN_MAX_CHANNELS] = {0};
    float *fg[NN_MAX_CHANNELS] = {0};
    int rc = 0;
    for (int i = 0; rc == 0 && i < d->ncases; i++) {
        if (d->cases[i].in_test) continue;
        NnVolume v;
        if ((rc = read_case(d, &d->cases[i], &v, err, err_len))) break;
        size_t hw = (size_t)v.nx * v.ny, nv = hw * v.nz;
        for (int k = 0; k < d->channels; k++) {
            if (!nn_channel_is_ct(d, k)) continue;
            for (size_t p = 0, seen = 0; p < nv; p++) {
                if (!v.label[p] || seen++ % 10) continue;
                if (cnt[k] == cap[k]) fg[k] = xrealloc(fg[k], (cap[k] = cap[k] ? 2 * cap[k] : 1 << 16) * sizeof(float));
                fg[k][cnt[k]++] = v.image[((p / hw) * d->channels + k) * hw + p % hw];
            }
        }
        nn_volume_free(&v);
    }
    for (int k = 0; rc == 0 && k < d->channels; k++) {
        if (!nn_channel_is_ct(d, k)) continue;
        if (cnt[k] < 2) {
            rc = error_at(err, err_len, "channel %d (CT): the training cases have no labelled foreground to take "
                          "the intensity statistics from", k);
            break;
        }
        double s = 0, ss = 0;
        for (size_t i = 0; i < cnt[k]; i++) s += fg[k][i];
        st[k].mean = s / (double)cnt[k];
        for (size_t i = 0; i < cnt[k]; i++) ss += (fg[k][i] - st[k].mean) * (fg[k][i] - st[k].mean);
        st[k].sd = fmax(sqrt(ss / (double)cnt[k]), 1e-6);
        imp_sort(fg[k], cnt[k]);
        st[k].lo = imp_percentile_sorted(fg[k], cnt[k], 0.5);
        st[k].hi = imp_percentile_sorted(fg[k], cnt[k], 99.5);
    }
    for (int k = 0; k < d->channels; k++) free(fg[k]);
    return rc;
}

/* Normalises each channel of v in place ((nz, C, ny, nx) layout: channel k is strided). */
static void normalise(const NnDataset *d, const CtStats *st, NnVolume *v) {
    size_t hw = (size_t)v->nx * v->ny, nv = hw * v->nz;
    float *tmp = xmalloc(nv * sizeof *tmp);
    for (int k = 0; k < d->channels; k++) {
        for (int z = 0; z < v->nz; z++) memcpy(tmp + z * hw, v->image + ((size_t)z * d->channels + k) * hw, hw * 4);
        if (nn_channel_is_ct(d, k))
            imp_norm_clip_zscore(tmp, nv, (float)st[k].lo, (float)st[k].hi, (float)st[k].mean, (float)st[k].sd);
        else imp_norm_zscore(tmp, nv, 1);
        for (int z = 0; z < v->nz; z++) memcpy(v->image + ((size_t)z * d->channels + k) * hw, tmp + z * hw, hw * 4);
    }
    free(tmp);
}

static void describe_norm(const NnDataset *d, const CtStats *st, char *out, size_t n) {
    out[0] = 0;
    for (int k = 0; k < d->channels; k++) {
        size_t L = strlen(out);
        if (nn_channel_is_ct(d, k))
            snprintf(out + L, n - L, "%schannel %d %s: clip [%.9g, %.9g], (x - %.9g) / %.9g", k ? "; " : "", k,
                     d->modality[k], st[k].lo, st[k].hi, st[k].mean, st[k].sd);
        else snprintf(out + L, n - L, "%schannel %d %s: per-case z-score", k ? "; " : "", k, d->modality[k]);
    }
}

static int write_case(const PrepareOptions *o, const NnDataset *d, const NnCase *c, const CtStats *st,
                      const char *norm, StoreWriter *w, int *slices, char *err, size_t err_len) {
    NnVolume v;
    if (read_case(d, c, &v, err, err_len)) return -1;
    normalise(d, st, &v);
    StoreCaseInput in = {.name = c->name, .split = imp_split_name(c->kind), .depth = v.nz, .channels = d->channels,
                         .height = v.ny, .width = v.nx, .image = v.image, .label = v.label, .original_ndim = 3,
                         .original_shape = {v.nx, v.ny, v.nz}, .normalisation = norm,
                         .num_sources = d->channels + 1};
    for (int k = 0; k < d->channels; k++) in.sources[k] = c->image[k];
    in.sources[d->channels] = c->label;
    memcpy(in.spacing, v.spacing, sizeof in.spacing);
    memcpy(in.affine, v.affine, sizeof in.affine);
    int rc = store_writer_add_case(w, &in, err, err_len);
    nn_volume_free(&v);
    if (rc == 0) {
        *slices += in.depth;
        imp_progress(o, "prepare nnunet: %s (%s) %d x %d x %d x %d", c->name, in.split, in.width, in.height,
                     in.depth, in.channels);
    }
    return rc;
}

int import_nnunet(const PrepareOptions *o, char *err, size_t err_len) {
    NnDataset d;
    if (nn_dataset_read(&d, o->src, err, err_len)) return -1;
    char how[4096 + 64], norm[2048];
    CtStats st[NN_MAX_CHANNELS] = {{0}};
    StoreWriter *w = NULL;
    int rc = -1, slices = 0, ncases = 0;
    if (nn_assign_split(&d, o, how, sizeof how, err, err_len) || ct_stats(&d, st, err, err_len)) goto out;
    describe_norm(&d, st, norm, sizeof norm);
    if (imp_writer(o, (const char *const *)d.class_names, d.classes, d.channels, &w, err, err_len)) goto out;
    store_writer_set_attribute(w, "normalisation", norm);
    store_writer_set_attribute(w, "split", how);
    for (int i = 0; i < d.ncases; i++) ncases += d.cases[i].selected;
    imp_progress_total(ncases);
    store_writer_set_attribute(w, "nnunet_version", d.version == 1 ? "1 (TaskNNN_Name)" : "2 (DatasetNNN_Name)");
    for (int i = 0; i < d.ncases; i++) {
        if (!d.cases[i].selected) continue;
        if (write_case(o, &d, &d.cases[i], st, norm, w, &slices, err, err_len)) goto out;
    }
    if (d.ntest_skipped)
        imp_note(o, "prepare nnunet: %d imagesTs cases have no labelsTs partner and were not imported",
                     d.ntest_skipped);
    imp_note(o, "prepare nnunet: split: %s", how);
    rc = store_writer_commit(w, err, err_len);
    w = NULL;
out:
    if (w) store_writer_abort(w);
    nn_dataset_free(&d);
    return rc;
}
