/* import_isic.c — the skin-lesion datasets, one 2-D RGB image per case (D = 1, C = 3):
 *
 * `prepare isic`: ISIC-2016 as distributed: ISBI2016_ISIC_Part1_Training_Data/ISIC_XXXXXXX.jpg
 * with ISBI2016_ISIC_Part1_Training_GroundTruth/ISIC_XXXXXXX_Segmentation.png (train split), and,
 * when present, the same for Test (test split).
 * `prepare ph2`: PH2: IMDXXX/IMDXXX_Dermoscopic_Image/IMDXXX.bmp with
 * IMDXXX/IMDXXX_lesion/IMDXXX_lesion.bmp, under SRC or SRC/"PH2 Dataset images" (test split).
 *
 * Masks are 0 (background) / 255 (lesion) -> classes 0 / 1; any other value is an error.
 * Images: per-case, per-channel z-score. Geometry: pixel units (spacing 1, identity). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fsutil.h"
#include "image2d.h"
#include "import_common.h"
#include "importers.h"
#include "official_splits.h"
#include "resize2d.h"
#include "store_format.h"

static const char *const classes[2] = {"background", "lesion"};

/* --resize N: image (3, H, W) and mask to N x N (resize2d.h says how). */
static void resize_case(int n, float **img, uint8_t **lab, int *W, int *H) {
    float *ri = resize2d_image(*img, 3, *H, *W, n, n);
    uint8_t *rl = resize2d_mask(*lab, *H, *W, n, n);
    free(*img), free(*lab);
    *img = ri, *lab = rl, *W = n, *H = n;
}

static int add_pair(const PrepareOptions *o, StoreWriter *w, const char *name, const char *split, const char *ip,
                    const char *mp, char *err, size_t err_len) {
    Image2D im, mk;
    if (img2d_read(ip, &im, err, err_len)) return -1;
    if (img2d_read(mp, &mk, err, err_len)) {
        img2d_free(&im);
        return -1;
    }
    int rc = -1, W = im.width, H = im.height;
    size_t hw = (size_t)W * H;
    float *img = NULL, *mf = NULL;
    uint8_t *lab = NULL;
    if (mk.width != W || mk.height != H) {
        error_at(err, err_len, "case %s: image %s is %d x %d but mask %s is %d x %d", name, ip, W, H, mp, mk.width,
                  mk.height);
        goto out;
    }
    if (mk.channels != 1) {
        /* A colour mask must still be grey (R = G = B). */
        for (size_t i = 0; i < hw; i++)
            if (mk.data[3 * i] != mk.data[3 * i + 1] || mk.data[3 * i] != mk.data[3 * i + 2]) {
                error_at(err, err_len, "%s: mask pixel (x=%zu, y=%zu) is coloured; expected 0 or 255 grey", mp,
                          i % W, i / W);
                goto out;
            }
    }
    img = xmalloc(3 * hw * sizeof(float));
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < hw; i++) img[c * hw + i] = im.data[i * im.channels + (im.channels == 3 ? c : 0)];
    mf = xmalloc(hw * sizeof(float));
    for (size_t i = 0; i < hw; i++) mf[i] = mk.data[i * mk.channels];
    int map[256];
    for (int k = 0; k < 256; k++) map[k] = -1;
    map[0] = 0, map[255] = 1;
    lab = xmalloc(hw);
    if (imp_map_labels(mp, mf, lab, W, H, 1, map, 256, err, err_len)) goto out;
    int W0 = W, H0 = H;
    if (o->resize > 0) resize_case(o->resize, &img, &lab, &W, &H), hw = (size_t)W * H;
    imp_norm_zscore(img, hw, 3); /* after resizing: the statistics of what the network sees */
    StoreCaseInput in = {.name = name, .split = split, .depth = 1, .channels = 3, .height = H, .width = W,
                         .image = img, .label = lab, .original_ndim = 3, .original_shape = {H0, W0, im.channels},
                         .normalisation = o->resize > 0 ? "resized (image area/bilinear, mask nearest), per-case "
                                          "per-channel z-score" : "per-case per-channel z-score",
                         .num_sources = 2, .sources = {ip, mp}};
    imp_identity_geometry(in.spacing, in.affine);
    in.spacing[0] = in.affine[0] = (double)W0 / W; /* in source pixels */
    in.spacing[1] = in.affine[5] = (double)H0 / H;
    rc = store_writer_add_case(w, &in, err, err_len);
    if (rc == 0) imp_progress(o, "prepare %s: %s (%s) %d x %d", o->dataset, name, split, W, H);
out:
    free(img);
    free(mf);
    free(lab);
    img2d_free(&im);
    img2d_free(&mk);
    return rc;
}

/* Which split a training image goes to: ids/kinds from --split or the official list; -1: skipped. */
typedef struct {
    const int *ids;
    const SplitKind *kinds; /* NULL: all train */
    int n;
} IdSplit;

static int split_of(const IdSplit *sp, const char *id) {
    if (!sp) return SPLIT_TEST;
    long num = strtol(id + 5, NULL, 10); /* "ISIC_0000123" */
    for (int i = 0; i < sp->n; i++)
        if (sp->ids[i] == num) return sp->kinds ? (int)sp->kinds[i] : SPLIT_TRAIN;
    return -1;
}

static int isic_part(const PrepareOptions *o, StoreWriter *w, const char *part, const IdSplit *sp, int required,
                     int *count, char *err, size_t err_len) {
    char dd[4096], gd[4096];
    snprintf(dd, sizeof dd, "%s/ISBI2016_ISIC_Part1_%s_Data", o->src, part);
    snprintf(gd, sizeof gd, "%s/ISBI2016_ISIC_Part1_%s_GroundTruth", o->src, part);
    int n;
    char **names = fsu_list(dd, &n);
    if (!names) return required ? error_at(err, err_len, "isic: %s not found (expected the ISIC-2016 layout)", dd) : 0;
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        size_t L = strlen(names[i]);
        if (L < 5 || strncmp(names[i], "ISIC_", 5) || strcmp(names[i] + L - 4, ".jpg")) continue;
        char id[64], ip[8192], mp[8192];
        snprintf(id, sizeof id, "%.*s", (int)(L - 4), names[i]);
        int kind = split_of(sp, id);
        if (kind < 0) continue;
        const char *split = imp_split_name((SplitKind)kind);
        snprintf(ip, sizeof ip, "%s/%s", dd, names[i]);
        snprintf(mp, sizeof mp, "%s/%s_Segmentation.png", gd, id);
        if (!imp_file_exists(mp)) rc = error_at(err, err_len, "isic: missing case %s: mask %s not found", id, mp);
        else rc = add_pair(o, w, id, split, ip, mp, err, err_len);
        (*count)++;
    }
    fsu_free_list(names, n);
    return rc;
}

/* Listed training ids without an image: a warning (not suppressed by --quiet), naming the first. */
static void warn_absent(const PrepareOptions *o, const IdSplit *sp) {
    int absent = 0, first = -1;
    for (int i = 0; i < sp->n; i++) {
        char ip[8192];
        snprintf(ip, sizeof ip, "%s/ISBI2016_ISIC_Part1_Training_Data/ISIC_%07d.jpg", o->src, sp->ids[i]);
        if (!imp_file_exists(ip) && absent++ == 0) first = sp->ids[i];
    }
    if (absent)
        fprintf(stderr, "prepare isic: warning: %d of the %d listed training images are absent (first: ISIC_%07d)%s\n",
                absent, sp->n, first, o->split_file ? "" : "; the released configuration trains on all 900");
}

int import_isic(const PrepareOptions *o, char *err, size_t err_len) {
    StoreWriter *w;
    if (imp_writer(o, classes, 2, 3, &w, err, err_len)) return -1;
    store_writer_set_attribute(w, "normalisation", "per-case per-channel z-score");
    int count = 0, ids[ISIC_OFFICIAL_TRAIN + 1024];
    SplitKind kinds[ISIC_OFFICIAL_TRAIN + 1024];
    IdSplit sp = {isic_official_train, NULL, ISIC_OFFICIAL_TRAIN};
    if (o->split_file) {
        if ((sp.n = imp_read_split(o->split_file, ids, kinds, ISIC_OFFICIAL_TRAIN + 1024, err, err_len)) < 0) {
            store_writer_abort(w);
            return -1;
        }
        sp.ids = ids, sp.kinds = kinds;
    }
    if (isic_part(o, w, "Training", &sp, 1, &count, err, err_len) ||
        isic_part(o, w, "Test", NULL, 0, &count, err, err_len)) {
        store_writer_abort(w);
        return -1;
    }
    warn_absent(o, &sp);
    return store_writer_commit(w, err, err_len);
}

int import_ph2(const PrepareOptions *o, char *err, size_t err_len) {
    char root[4096];
    snprintf(root, sizeof root, "%s/PH2 Dataset images", o->src);
    if (!imp_file_exists(root)) snprintf(root, sizeof root, "%s", o->src);
    int n;
    char **names = fsu_list(root, &n);
    if (!names) return error_at(err, err_len, "ph2: cannot list %s", root);
    StoreWriter *w;
    if (imp_writer(o, classes, 2, 3, &w, err, err_len)) {
        fsu_free_list(names, n);
        return -1;
    }
    store_writer_set_attribute(w, "normalisation", "per-case per-channel z-score");
    int rc = 0, found = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (strncmp(names[i], "IMD", 3) || strlen(names[i]) > 32) continue;
        char ip[8192], mp[8192];
        snprintf(ip, sizeof ip, "%s/%s/%s_Dermoscopic_Image/%s.bmp", root, names[i], names[i], names[i]);
        snprintf(mp, sizeof mp, "%s/%s/%s_lesion/%s_lesion.bmp", root, names[i], names[i], names[i]);
        if (!imp_file_exists(ip)) rc = error_at(err, err_len, "ph2: missing case %s: %s not found", names[i], ip);
        else if (!imp_file_exists(mp)) rc = error_at(err, err_len, "ph2: missing case %s: %s not found", names[i], mp);
        else rc = add_pair(o, w, names[i], "test", ip, mp, err, err_len);
        found++;
    }
    fsu_free_list(names, n);
    if (rc == 0 && found == 0) rc = error_at(err, err_len, "ph2: no IMDXXX case directories in %s", root);
    if (rc) {
        store_writer_abort(w);
        return -1;
    }
    return store_writer_commit(w, err, err_len);
}
