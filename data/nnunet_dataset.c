/* nnunet_dataset.c — see nnunet_dataset.h. dataset.json's two conventions:
 *   v1: "modality" {"0": "CT"}, "labels" {"0": "background", ...} (id -> name), "training"
 *       [{"image": "./imagesTr/X.nii.gz", "label": "./labelsTr/X.nii.gz"}] (the image path names
 *       the case; its channels are X_0000.nii.gz, ...), "test" ["./imagesTs/Y.nii.gz"].
 *   v2: "channel_names" {"0": "CT"}, "labels" {"background": 0, ...} (name -> id), "file_ending",
 *       "numTraining"; the cases are the label files of labelsTr. */
#include "nnunet_dataset.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "fsutil.h"

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static char *read_text(const char *path, char *err, size_t err_len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return error_at(err, err_len, "%s: not found (an nnU-Net raw dataset has dataset.json at its top)", path),
                  NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n - 1, fp)) > 0)
        if ((n += k) == cap - 1) buf = xrealloc(buf, cap *= 2);
    fclose(fp);
    buf[n] = 0;
    return buf;
}

static int field_missing(const char *path, const char *field, const char *what, char *err, size_t err_len) {
    return error_at(err, err_len, "%s: field \"%s\" is missing or not %s", path, field, what);
}

/* "0", "1", ... -> modality names, in channel order. */
static int read_channels(NnDataset *d, const cJSON *obj, const char *path, const char *field, char *err,
                         size_t err_len) {
    if (!cJSON_IsObject(obj) || cJSON_GetArraySize(obj) < 1) return field_missing(path, field, "a non-empty object", err, err_len);
    d->channels = cJSON_GetArraySize(obj);
    if (d->channels > NN_MAX_CHANNELS)
        return error_at(err, err_len, "%s: \"%s\" lists %d channels; at most %d are supported", path, field,
                        d->channels, NN_MAX_CHANNELS);
    for (int c = 0; c < d->channels; c++) {
        char key[16];
        snprintf(key, sizeof key, "%d", c);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        if (!cJSON_IsString(v))
            return error_at(err, err_len, "%s: \"%s\" has no channel \"%s\" (expected keys \"0\"..\"%d\" with names)",
                            path, field, key, d->channels - 1);
        snprintf(d->modality[c], sizeof d->modality[c], "%s", v->valuestring);
    }
    return 0;
}

static int add_label(NnDataset *d, int id, const char *name, int *seen, const char *path, char *err, size_t err_len) {
    if (id < 0 || id >= NN_MAX_CLASSES)
        return error_at(err, err_len, "%s: \"labels\": label id %d of \"%s\" (expected 0..%d)", path, id, name,
                        NN_MAX_CLASSES - 1);
    if (seen[id]) return error_at(err, err_len, "%s: \"labels\": label id %d given twice", path, id);
    seen[id] = 1;
    d->class_names[id] = xstrdup(name); /* compacted below */
    return 0;
}

/* Labels of either version; class index = rank of the label id (nnU-Net requires 0..K-1). */
static int read_labels(NnDataset *d, const cJSON *obj, const char *path, char *err, size_t err_len) {
    if (!cJSON_IsObject(obj) || cJSON_GetArraySize(obj) < 2)
        return field_missing(path, "labels", "an object with background and at least one label", err, err_len);
    int seen[NN_MAX_CLASSES] = {0};
    for (const cJSON *e = obj->child; e; e = e->next) {
        if (d->version == 1) {
            char *end;
            long id = strtol(e->string, &end, 10);
            if (*end || !cJSON_IsString(e))
                return error_at(err, err_len, "%s: \"labels\".\"%s\": expected \"<id>\": \"<name>\" (v1)", path,
                                e->string);
            if (add_label(d, (int)id, e->valuestring, seen, path, err, err_len)) return -1;
        } else {
            if (cJSON_IsArray(e))
                return error_at(err, err_len, "%s: \"labels\".\"%s\" is a list: region-based label definitions are "
                                "not supported (each label must be one integer id)", path, e->string);
            if (!cJSON_IsNumber(e) || e->valuedouble != (double)e->valueint)
                return error_at(err, err_len, "%s: \"labels\".\"%s\": expected an integer id (v2)", path, e->string);
            if (add_label(d, e->valueint, e->string, seen, path, err, err_len)) return -1;
        }
    }
    if (!seen[0]) return error_at(err, err_len, "%s: \"labels\" has no id 0 (background)", path);
    for (int id = 0; id < NN_MAX_CLASSES; id++) {
        d->map[id] = seen[id] ? d->classes : -1;
        if (seen[id]) d->class_names[d->classes++] = d->class_names[id];
    }
    for (int k = d->classes; k < NN_MAX_CLASSES; k++) d->class_names[k] = NULL;
    return 0;
}

/* The case's channel files DIR/NAME_0000<ending>, ... and its label; every file must exist. */
static int add_case(NnDataset *d, const char *src, const char *name, const char *imgdir, const char *label,
                    int in_test, char *err, size_t err_len) {
    if (strlen(name) >= STORE_NAME_MAX || !*name)
        return error_at(err, err_len, "%s/%s: case id '%s' is empty or longer than %d characters", src, imgdir, name,
                        STORE_NAME_MAX - 1);
    d->cases = xrealloc(d->cases, (size_t)(d->ncases + 1) * sizeof *d->cases);
    NnCase *c = &d->cases[d->ncases++];
    memset(c, 0, sizeof *c);
    c->name = xstrdup(name);
    c->in_test = in_test;
    c->label = xstrdup(label);
    for (int k = 0; k < d->channels; k++) {
        size_t n = strlen(src) + strlen(imgdir) + strlen(name) + 32;
        c->image[k] = xmalloc(n);
        snprintf(c->image[k], n, "%s/%s/%s_%04d%s", src, imgdir, name, k, d->ending);
        if (!imp_file_exists(c->image[k]))
            return error_at(err, err_len, "case %s: channel %d (%s) file %s not found", name, k, d->modality[k],
                            c->image[k]);
    }
    if (!imp_file_exists(c->label)) return error_at(err, err_len, "case %s: label file %s not found", name, c->label);
    return 0;
}

static const char *strip_dot_slash(const char *p) { return strncmp(p, "./", 2) ? p : p + 2; }

/* "./imagesTr/X.nii.gz" -> "X" */
static void case_from_path(const char *p, const char *ending, char *out, size_t n) {
    const char *b = strrchr(p, '/');
    snprintf(out, n, "%s", b ? b + 1 : p);
    size_t L = strlen(out), E = strlen(ending);
    if (L > E && !strcmp(out + L - E, ending)) out[L - E] = 0;
}

static int v1_cases(NnDataset *d, const cJSON *root, const char *src, const char *path, char *err, size_t err_len) {
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(root, "training");
    if (!cJSON_IsArray(tr) || cJSON_GetArraySize(tr) < 1)
        return field_missing(path, "training", "a non-empty list", err, err_len);
    int i = 0;
    for (const cJSON *e = tr->child; e; e = e->next, i++) {
        const cJSON *im = cJSON_GetObjectItemCaseSensitive(e, "image"), *lb = cJSON_GetObjectItemCaseSensitive(e, "label");
        if (!cJSON_IsString(im) || !cJSON_IsString(lb))
            return error_at(err, err_len, "%s: \"training\"[%d]: expected {\"image\": ..., \"label\": ...}", path, i);
        char name[256];
        case_from_path(im->valuestring, d->ending, name, sizeof name);
        char *lp = imp_join(src, strip_dot_slash(lb->valuestring));
        int rc = add_case(d, src, name, "imagesTr", lp, 0, err, err_len);
        free(lp);
        if (rc) return -1;
    }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "test");
    for (const cJSON *e = cJSON_IsArray(ts) ? ts->child : NULL; e; e = e->next) {
        if (!cJSON_IsString(e)) return error_at(err, err_len, "%s: \"test\": expected a list of file names", path);
        char name[256], lab[512];
        case_from_path(e->valuestring, d->ending, name, sizeof name);
        snprintf(lab, sizeof lab, "labelsTs/%s%s", name, d->ending);
        char *lp = imp_join(src, lab);
        int rc = 0;
        if (imp_file_exists(lp)) rc = add_case(d, src, name, "imagesTs", lp, 1, err, err_len);
        else d->ntest_skipped++;
        free(lp);
        if (rc) return -1;
    }
    return 0;
}

/* Names in SRC/dir ending in suffix, the suffix removed. */
static int list_dir(const char *src, const char *dir, const char *suffix, char ***out, int *n) {
    char *p = imp_join(src, dir);
    int nf;
    char **names = fsu_list(p, &nf);
    free(p);
    *out = NULL, *n = 0;
    if (!names) return -1;
    for (int k = 0; k < nf; k++) {
        size_t L = strlen(names[k]), S = strlen(suffix);
        if (L <= S || strcmp(names[k] + L - S, suffix)) continue;
        names[k][L - S] = 0;
        *out = xrealloc(*out, (size_t)(*n + 1) * sizeof **out);
        (*out)[(*n)++] = xstrdup(names[k]);
    }
    fsu_free_list(names, nf);
    return 0;
}

static void free_names(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static int v2_cases(NnDataset *d, const cJSON *root, const char *src, const char *path, char *err, size_t err_len) {
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(root, "numTraining");
    if (!cJSON_IsNumber(nt)) return field_missing(path, "numTraining", "a number", err, err_len);
    char **names;
    int n;
    if (list_dir(src, "labelsTr", d->ending, &names, &n))
        return error_at(err, err_len, "%s/labelsTr: cannot read the directory", src);
    int rc = 0;
    if (n != nt->valueint)
        rc = error_at(err, err_len, "%s: \"numTraining\" is %d but %s/labelsTr holds %d *%s files", path, nt->valueint,
                      src, n, d->ending);
    for (int i = 0; rc == 0 && i < n; i++) {
        char lab[512];
        snprintf(lab, sizeof lab, "labelsTr/%s%s", names[i], d->ending);
        char *lp = imp_join(src, lab);
        rc = add_case(d, src, names[i], "imagesTr", lp, 0, err, err_len);
        free(lp);
    }
    free_names(names, n);
    char suffix[32];
    snprintf(suffix, sizeof suffix, "_0000%s", d->ending);
    if (rc || list_dir(src, "imagesTs", suffix, &names, &n)) return rc; /* imagesTs is optional */
    for (int i = 0; rc == 0 && i < n; i++) {
        char lab[512];
        snprintf(lab, sizeof lab, "labelsTs/%s%s", names[i], d->ending);
        char *lp = imp_join(src, lab);
        if (imp_file_exists(lp)) rc = add_case(d, src, names[i], "imagesTs", lp, 1, err, err_len);
        else d->ntest_skipped++;
        free(lp);
    }
    free_names(names, n);
    return rc;
}

static int read_json(NnDataset *d, const cJSON *root, const char *src, const char *path, char *err, size_t err_len) {
    const cJSON *ch2 = cJSON_GetObjectItemCaseSensitive(root, "channel_names");
    const cJSON *ch1 = cJSON_GetObjectItemCaseSensitive(root, "modality");
    if (!cJSON_IsObject(root))
        return error_at(err, err_len, "%s: expected a JSON object", path);
    if (!ch1 && !ch2)
        return error_at(err, err_len, "%s: field \"channel_names\" (v2) or \"modality\" (v1) is missing", path);
    d->version = ch2 ? 2 : 1;
    if (read_channels(d, ch2 ? ch2 : ch1, path, ch2 ? "channel_names" : "modality", err, err_len)) return -1;
    if (cJSON_GetObjectItemCaseSensitive(root, "regions_class_order"))
        return error_at(err, err_len, "%s: \"regions_class_order\": region-based label definitions are not supported",
                        path);
    if (read_labels(d, cJSON_GetObjectItemCaseSensitive(root, "labels"), path, err, err_len)) return -1;
    snprintf(d->ending, sizeof d->ending, ".nii.gz");
    if (d->version == 2) {
        const cJSON *fe = cJSON_GetObjectItemCaseSensitive(root, "file_ending");
        if (!cJSON_IsString(fe)) return field_missing(path, "file_ending", "a string", err, err_len);
        if (strcmp(fe->valuestring, ".nii.gz") && strcmp(fe->valuestring, ".nii"))
            return error_at(err, err_len, "%s: \"file_ending\" is \"%s\"; only NIfTI (.nii.gz, .nii) is supported",
                            path, fe->valuestring);
        snprintf(d->ending, sizeof d->ending, "%s", fe->valuestring);
        return v2_cases(d, root, src, path, err, err_len);
    }
    return v1_cases(d, root, src, path, err, err_len);
}

int nn_dataset_read(NnDataset *d, const char *src, char *err, size_t err_len) {
    memset(d, 0, sizeof *d);
    char *path = imp_join(src, "dataset.json");
    char *text = read_text(path, err, err_len);
    int rc = -1;
    if (text) {
        cJSON *root = cJSON_Parse(text);
        if (!root) {
            const char *at = cJSON_GetErrorPtr();
            error_at(err, err_len, "%s: does not parse as JSON (near \"%.20s\")", path, at ? at : "");
        } else {
            rc = read_json(d, root, src, path, err, err_len);
            cJSON_Delete(root);
        }
    }
    free(text);
    free(path);
    if (rc) nn_dataset_free(d);
    return rc;
}

void nn_dataset_free(NnDataset *d) {
    for (int i = 0; i < d->ncases; i++) {
        free(d->cases[i].name);
        free(d->cases[i].label);
        for (int k = 0; k < NN_MAX_CHANNELS; k++) free(d->cases[i].image[k]);
    }
    free(d->cases);
    for (int k = 0; k < NN_MAX_CLASSES; k++) free(d->class_names[k]); /* NULL past the compacted names */
    memset(d, 0, sizeof *d);
}

int nn_channel_is_ct(const NnDataset *d, int c) { return !strcasecmp(d->modality[c], "CT"); }
