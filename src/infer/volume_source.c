/* volume_source.c — see volume_source.h. */
#include "volume_source.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "import_common.h"

typedef struct {
    char name[256];
    char path[1024]; /* NIfTI cases */
    int store_idx;   /* store cases, else -1 */
} Entry;

struct VolumeSource {
    Store *store; /* NULL: NIfTI files */
    char dir[1024];
    Entry *cases;
    int n, cap, next;
};

/* "dir/CASE.nii.gz" -> "CASE"; 0 when not a NIfTI file name (hidden files are not cases) */
static int nifti_stem(const char *file, char *stem, size_t n) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t len = strlen(base);
    const char *exts[] = {".nii.gz", ".nii"};
    for (int i = 0; i < 2; i++) {
        size_t e = strlen(exts[i]);
        if (len > e && !strcmp(base + len - e, exts[i]) && base[0] != '.') {
            snprintf(stem, n, "%.*s", (int)(len - e), base);
            return 1;
        }
    }
    return 0;
}

static Entry *add(VolumeSource *vs) {
    if (vs->n == vs->cap) {
        vs->cap = vs->cap ? 2 * vs->cap : 32;
        vs->cases = realloc(vs->cases, (size_t)vs->cap * sizeof(Entry));
        CHECK(vs->cases, "out of memory");
    }
    Entry *e = &vs->cases[vs->n++];
    memset(e, 0, sizeof *e);
    e->store_idx = -1;
    return e;
}

static int cmp_entry(const void *a, const void *b) { return strcmp(((const Entry *)a)->name, ((const Entry *)b)->name); }

static int open_store(VolumeSource *vs, const char *path, const char *split, char *err, size_t err_len) {
    if (!split) return error_at(err, err_len, "%s is a slice store: name the split with --split", path), VS_NEED_SPLIT;
    if (store_open(&vs->store, path, err, err_len) != 0) return VS_ERROR;
    int n = store_num_cases(vs->store);
    int *idx = xmalloc((size_t)(n ? n : 1) * sizeof(int));
    int k = store_split(vs->store, split, idx, n);
    for (int i = 0; i < k; i++) {
        Entry *e = add(vs);
        snprintf(e->name, sizeof e->name, "%s", store_case(vs->store, idx[i])->name);
        snprintf(e->path, sizeof e->path, "%s", path);
        e->store_idx = idx[i];
    }
    free(idx);
    return k ? 0 : (error_at(err, err_len, "%s: split '%s' has no cases", path, split), VS_ERROR);
}

static int open_dir(VolumeSource *vs, const char *path, char *err, size_t err_len) {
    DIR *d = opendir(path);
    if (!d) return error_at(err, err_len, "%s: cannot open directory", path);
    struct dirent *de;
    char stem[256];
    while ((de = readdir(d)))
        if (nifti_stem(de->d_name, stem, sizeof stem)) {
            Entry *e = add(vs);
            snprintf(e->name, sizeof e->name, "%s", stem);
            snprintf(e->path, sizeof e->path, "%s/%s", path, de->d_name);
        }
    closedir(d);
    if (vs->n == 0) return error_at(err, err_len, "%s: no .nii or .nii.gz files", path);
    qsort(vs->cases, (size_t)vs->n, sizeof(Entry), cmp_entry);
    for (int i = 1; i < vs->n; i++) /* sorted: a duplicated stem sits next to itself */
        if (!strcmp(vs->cases[i - 1].name, vs->cases[i].name))
            return error_at(err, err_len, "case %s: both %.400s and %.400s exist", vs->cases[i].name,
                            vs->cases[i - 1].path, vs->cases[i].path);
    return 0;
}

static int open_file(VolumeSource *vs, const char *path, char *err, size_t err_len) {
    Entry *e = add(vs);
    if (!nifti_stem(path, e->name, sizeof e->name))
        return error_at(err, err_len, "%s: not a .nii/.nii.gz file, a directory or a slice store", path), VS_NOT_NIFTI;
    snprintf(e->path, sizeof e->path, "%s", path);
    return 0;
}

int volume_source_open(VolumeSource **out, const char *path, const char *split, char *err, size_t err_len) {
    VolumeSource *vs = xcalloc(1, sizeof *vs);
    snprintf(vs->dir, sizeof vs->dir, "%s", path);
    char manifest[1200];
    snprintf(manifest, sizeof manifest, "%s/manifest.json", path);
    struct stat st;
    int rc;
    if (split || stat(manifest, &st) == 0) rc = open_store(vs, path, split, err, err_len);
    else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) rc = open_dir(vs, path, err, err_len);
    else rc = open_file(vs, path, err, err_len);
    if (rc != 0) {
        volume_source_close(vs);
        return rc;
    }
    *out = vs;
    return 0;
}

void volume_source_close(VolumeSource *vs) {
    if (!vs) return;
    if (vs->store) store_close(vs->store);
    free(vs->cases);
    free(vs);
}

int volume_source_count(const VolumeSource *vs) { return vs->n; }
const char *volume_source_name(const VolumeSource *vs, int i) { return vs->cases[i].name; }
const char *volume_source_path(const VolumeSource *vs, int i) { return vs->cases[i].path; }
const Store *volume_source_store(const VolumeSource *vs) { return vs->store; }

int volume_source_find(const VolumeSource *vs, const char *name) {
    for (int i = 0; i < vs->n; i++)
        if (!strcmp(vs->cases[i].name, name)) return i;
    return -1;
}

int volume_source_case(VolumeSource *vs, int i, VolumeCase *c, char *err, size_t err_len) {
    const Entry *e = &vs->cases[i];
    memset(c, 0, sizeof *c);
    c->name = e->name, c->path = e->path, c->index = i;
    if (e->store_idx >= 0) {
        const StoreCase *sc = store_case(vs->store, e->store_idx);
        nifti_volume_from_affine(&c->geom, e->name, sc->width, sc->height, sc->depth, sc->spacing, sc->affine);
        c->channels = sc->channels;
    } else {
        if (nifti_volume_open(&c->geom, e->path, err, err_len) != 0) return -1;
        c->channels = c->geom.nt;
    }
    c->nx = c->geom.nx, c->ny = c->geom.ny, c->nz = c->geom.nz;
    return 0;
}

int volume_source_next(VolumeSource *vs, VolumeCase *c, char *err, size_t err_len) {
    if (vs->next >= vs->n) return 0;
    return volume_source_case(vs, vs->next++, c, err, err_len) == 0 ? 1 : -1;
}

void volume_case_close(VolumeCase *c) { nifti_volume_close(&c->geom); }

/* A store case slice by slice into (C, D, H, W) and (D, H, W). */
static int read_store(const Store *s, int ci, float *image, int32_t *labels, char *err, size_t err_len) {
    const StoreCase *sc = store_case(s, ci);
    size_t plane = (size_t)sc->height * sc->width;
    int C = sc->channels, D = sc->depth;
    float *img = xmalloc((size_t)C * plane * sizeof(float));
    int32_t *lab = xmalloc(plane * sizeof(int32_t));
    int rc = 0;
    for (int z = 0; z < D && rc == 0; z++) {
        rc = store_read_slice(s, ci, z, img, lab, err, err_len);
        for (int ch = 0; ch < C && rc == 0 && image; ch++)
            memcpy(image + ((size_t)ch * D + z) * plane, img + ch * plane, plane * sizeof(float));
        if (rc == 0 && labels) memcpy(labels + z * plane, lab, plane * sizeof(int32_t));
    }
    free(img);
    free(lab);
    return rc;
}

static int read_nifti(const VolumeCase *c, float **image, int32_t **labels, char *err, size_t err_len) {
    /* NaN or infinite input would spread through the normalisation and every window that sees
     * it: rejected as `prepare` rejects it */
    if (image && (nifti_volume_read_float(&c->geom, image, err, err_len) != 0 ||
                  imp_check_finite(c->path, *image, c->nx, c->ny, c->nz, c->channels, err, err_len) != 0))
        return -1;
    if (labels && c->channels != 1)
        return error_at(err, err_len, "%s: a label volume must be 3D, it has %d channels", c->path, c->channels);
    if (labels && nifti_volume_read_labels(&c->geom, labels, err, err_len) != 0) return -1;
    return 0;
}

int volume_case_read(const VolumeSource *vs, const VolumeCase *c, float **image, int32_t **labels, char *err,
                     size_t err_len) {
    const Entry *e = &vs->cases[c->index];
    if (image) *image = NULL;
    if (labels) *labels = NULL;
    int rc;
    if (e->store_idx >= 0) {
        size_t vox = (size_t)c->nx * c->ny * c->nz;
        if (image) *image = xmalloc((size_t)c->channels * vox * sizeof(float));
        if (labels) *labels = xmalloc(vox * sizeof(int32_t));
        rc = read_store(vs->store, e->store_idx, image ? *image : NULL, labels ? *labels : NULL, err, err_len);
    } else {
        rc = read_nifti(c, image, labels, err, err_len);
    }
    if (rc != 0) {
        if (image) free(*image), *image = NULL;
        if (labels) free(*labels), *labels = NULL;
    }
    return rc;
}

/* A store keeps its affine as written at import (float rounding of the source's): compared with a
 * tolerance that allows for that, and without the file-level spacing check. */
static int store_grid_matches(const StoreCase *c, const NiftiVolume *p, char *err, size_t err_len) {
    if (c->width != p->nx || c->height != p->ny || c->depth != p->nz)
        return error_at(err, err_len, "shape %dx%dx%d (%s) differs from the ground truth's %dx%dx%d (x, y, z)", p->nx,
                        p->ny, p->nz, p->path, c->width, c->height, c->depth);
    for (int i = 0; i < 12; i++)
        if (fabs(c->affine[i] - p->affine[i]) > 1e-3 + 1e-4 * fmax(fabs(c->affine[i]), fabs(p->affine[i])))
            return error_at(err, err_len, "affine entry [%d][%d]: %g (%s) vs %g (ground truth): not on the same grid",
                            i / 4, i % 4, p->affine[i], p->path, c->affine[i]);
    return 0;
}

int volume_case_same_grid(const VolumeSource *vs, const VolumeCase *c, const NiftiVolume *other, char *err,
                          size_t err_len) {
    const Entry *e = &vs->cases[c->index];
    if (e->store_idx >= 0) return store_grid_matches(store_case(vs->store, e->store_idx), other, err, err_len);
    return nifti_volume_same_geometry(other, &c->geom, err, err_len);
}
