/* nnunet_split.c — which training cases `prepare nnunet` puts in train and val (nnunet_dataset.h):
 * a split file, nnU-Net's splits_final.json, or a seeded 80/20 default. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "nnunet_dataset.h"
#include "rng.h"

/* The case number of an id: its trailing digits ("la_003" -> 3), -1 without any. */
static long case_number(const char *name) {
    size_t L = strlen(name), i = L;
    while (i > 0 && isdigit((unsigned char)name[i - 1])) i--;
    return i == L ? -1 : strtol(name + i, NULL, 10);
}

static int from_split_file(NnDataset *d, const char *path, char *err, size_t err_len) {
    int cap = d->ncases + 1, *ids = xmalloc((size_t)cap * sizeof *ids);
    SplitKind *kinds = xmalloc((size_t)cap * sizeof *kinds);
    int n = imp_read_split(path, ids, kinds, cap, err, err_len), rc = n < 0 ? -1 : 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        int found = -1;
        for (int c = 0; c < d->ncases; c++) {
            if (d->cases[c].in_test || case_number(d->cases[c].name) != ids[i]) continue;
            if (found >= 0)
                rc = error_at(err, err_len, "%s: case number %d matches both %s and %s", path, ids[i],
                              d->cases[found].name, d->cases[c].name);
            found = c;
        }
        if (rc == 0 && found < 0)
            rc = error_at(err, err_len, "%s: case number %d: no training case of the dataset ends in it", path, ids[i]);
        if (rc == 0) d->cases[found].kind = kinds[i], d->cases[found].selected = 1;
    }
    free(ids);
    free(kinds);
    return rc;
}

static int find_case(const NnDataset *d, const char *name) {
    for (int c = 0; c < d->ncases; c++)
        if (!d->cases[c].in_test && !strcmp(d->cases[c].name, name)) return c;
    return -1;
}

static int mark_list(NnDataset *d, const cJSON *list, SplitKind kind, const char *path, int fold, const char *key,
                     char *err, size_t err_len) {
    if (!cJSON_IsArray(list)) return error_at(err, err_len, "%s: fold %d: \"%s\" is missing or not a list", path, fold, key);
    for (const cJSON *e = list->child; e; e = e->next) {
        int c = cJSON_IsString(e) ? find_case(d, e->valuestring) : -1;
        if (c < 0)
            return error_at(err, err_len, "%s: fold %d: \"%s\" names %s, which is no training case of the dataset",
                            path, fold, key, cJSON_IsString(e) ? e->valuestring : "a non-string");
        d->cases[c].kind = kind, d->cases[c].selected = 1;
    }
    return 0;
}

static int from_splits_final(NnDataset *d, const char *path, int fold, char *err, size_t err_len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return error_at(err, err_len, "%s: cannot open", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *text = xmalloc((size_t)n + 1);
    text[fread(text, 1, (size_t)n, fp)] = 0;
    fclose(fp);
    cJSON *root = cJSON_Parse(text);
    free(text);
    int rc;
    if (!root) rc = error_at(err, err_len, "%s: does not parse as JSON", path);
    else if (!cJSON_IsArray(root) || fold < 0 || fold >= cJSON_GetArraySize(root))
        rc = error_at(err, err_len, "%s: --fold %d: the file holds %d folds", path, fold,
                      cJSON_IsArray(root) ? cJSON_GetArraySize(root) : 0);
    else {
        const cJSON *f = cJSON_GetArrayItem(root, fold);
        rc = mark_list(d, cJSON_GetObjectItemCaseSensitive(f, "train"), SPLIT_TRAIN, path, fold, "train", err, err_len);
        if (rc == 0)
            rc = mark_list(d, cJSON_GetObjectItemCaseSensitive(f, "val"), SPLIT_VAL, path, fold, "val", err, err_len);
    }
    cJSON_Delete(root);
    return rc;
}

/* A Fisher-Yates shuffle of the training cases (in dataset order) with the counter-based RNG; the
 * first fifth (at least one case when there are two or more) is val. */
static void default_split(NnDataset *d) {
    int n = 0, *idx = xmalloc((size_t)d->ncases * sizeof *idx + 1);
    for (int c = 0; c < d->ncases; c++)
        if (!d->cases[c].in_test) idx[n++] = c;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng_uniform(rng_key(NN_DEFAULT_SPLIT_SEED, 0, (uint64_t)i)) * (i + 1));
        int t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
    int nval = (n + 2) / 5; /* round(n / 5) */
    if (nval == 0 && n >= 2) nval = 1;
    for (int i = 0; i < n; i++) d->cases[idx[i]].kind = i < nval ? SPLIT_VAL : SPLIT_TRAIN, d->cases[idx[i]].selected = 1;
    free(idx);
}

int nn_assign_split(NnDataset *d, const PrepareOptions *o, char *how, size_t how_len, char *err, size_t err_len) {
    for (int c = 0; c < d->ncases; c++) {
        d->cases[c].selected = d->cases[c].in_test;
        d->cases[c].kind = SPLIT_TEST;
    }
    char *sf = imp_join(o->src, "splits_final.json");
    int rc = 0;
    if (o->split_file) {
        rc = from_split_file(d, o->split_file, err, err_len);
        snprintf(how, how_len, "split file %s", o->split_file);
    } else if (imp_file_exists(sf)) {
        rc = from_splits_final(d, sf, o->fold, err, err_len);
        snprintf(how, how_len, "%s fold %d", sf, o->fold);
    } else {
        default_split(d);
        snprintf(how, how_len, "seeded 80/20 train/val (seed %d)", NN_DEFAULT_SPLIT_SEED);
    }
    free(sf);
    return rc;
}
