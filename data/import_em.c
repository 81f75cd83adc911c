/* import_em.c — `prepare em`: ISBI-2012 train-volume.tif / train-labels.tif (30 slices, 8- or
 * 16-bit grey, libtiff). Labels: 0 (black, membrane) -> class 0, 255 (white, cell) -> class 1;
 * anything else is an error. Split by slice: the released configuration's lists (official_splits.h:
 * 24 / 3 / 3) or --split FILE (slice numbers 0..29). Each split is one case, its slices stacked in
 * the listed order: em_train, em_val, em_test. Per-case z-score. Spacing 4 x 4 x 50 nm; a case's
 * affine places its first slice (slices that were not adjacent in the stack become adjacent). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

#include "check.h"
#include "file_check.h"
#include "resource_limits.h"
#include "import_common.h"
#include "importers.h"
#include "official_splits.h"
#include "store_format.h"

static const char *const classes[2] = {"membrane", "cell"};

static void quiet_handler(const char *module, const char *fmt, va_list ap) {
    (void)module, (void)fmt, (void)ap;
}

/* The bytes the current page's strips (or tiles) occupy, each counted at most up to the file's
 * size: what its pixels must be decoded from. */
static uint64_t page_stored_bytes(TIFF *t, int64_t fsize) {
    int tiled = TIFFIsTiled(t);
    uint32_t n = tiled ? TIFFNumberOfTiles(t) : TIFFNumberOfStrips(t);
    uint64_t *counts = NULL, sum = 0;
    if (!TIFFGetField(t, tiled ? TIFFTAG_TILEBYTECOUNTS : TIFFTAG_STRIPBYTECOUNTS, &counts) || !counts) return 0;
    for (uint32_t i = 0; i < n && sum < (uint64_t)fsize; i++) sum += counts[i] < (uint64_t)fsize ? counts[i] : (uint64_t)fsize;
    return sum < (uint64_t)fsize ? sum : (uint64_t)fsize;
}

/* All pages of a grey TIFF stack as float (pages, h, w) (importers.h). */
int em_read_tiff_stack(const char *path, float **out, int *pages, int *h, int *w, char *err, size_t err_len) {
    TIFFSetErrorHandler(quiet_handler);
    TIFFSetWarningHandler(quiet_handler);
    /* libtiff opens by name: a FIFO would block it */
    int64_t fsize;
    if (fc_check_regular(path, "TIFF stack", &fsize, err, err_len)) return -1;
    TIFF *t = TIFFOpen(path, "r");
    if (!t) return error_at(err, err_len, "%s: cannot open as TIFF (missing, truncated or not a TIFF)", path);
    int n = 0, rc = -1;
    uint32_t W = 0, H = 0;
    float *data = NULL;
    uint8_t *row = NULL;
    do {
        uint32_t w2 = 0, h2 = 0;
        uint16_t bps = 0, spp = 1, fmt = SAMPLEFORMAT_UINT;
        TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w2);
        TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h2);
        TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bps);
        TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
        TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &fmt);
        if (spp != 1 || (bps != 8 && bps != 16) || fmt != SAMPLEFORMAT_UINT) {
            error_at(err, err_len, "%s: page %d: %u-bit, %u samples per pixel; expected 8- or 16-bit grey", path, n,
                      bps, spp);
            goto out;
        }
        /* the resource policy before the stack grows by one more page */
        if (unet_volume_ok(n + 1, 1, h2, w2)) {
            error_at(err, err_len, "%s: page %d: %u x %u pixels (page %d) exceed the limits (slice side %d, %d pages, volume %lld)",
                     path, n, w2, h2, n + 1, UNET_MAX_SLICE_SIDE, UNET_MAX_DEPTH, (long long)UNET_MAX_VOLUME_VOXELS);
            goto out;
        }
        /* ... and against the file: a page cannot hold more pixels than its strips can decode to */
        uint16_t codec = COMPRESSION_NONE;
        TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &codec);
        uint64_t stored = page_stored_bytes(t, fsize), raw = (uint64_t)w2 * h2 * (bps / 8);
        uint64_t room = codec == COMPRESSION_NONE ? stored : stored * UNET_MAX_TIFF_RATIO;
        if (raw > room) {
            error_at(err, err_len,
                     "%s: page %d: %u x %u pixels need %llu bytes but its strips hold %llu stored bytes (%s): the file is "
                     "truncated or corrupt", path, n, w2, h2, (unsigned long long)raw, (unsigned long long)stored,
                     codec == COMPRESSION_NONE ? "uncompressed" : "compressed");
            goto out;
        }
        if (n == 0) {
            W = w2, H = h2;
            row = xmalloc((size_t)TIFFScanlineSize(t) + 16);
        } else if (w2 != W || h2 != H) {
            error_at(err, err_len, "%s: page %d is %u x %u, page 0 %u x %u", path, n, w2, h2, W, H);
            goto out;
        }
        data = realloc(data, (size_t)(n + 1) * W * H * sizeof(float));
        CHECK(data, "out of memory");
        free(row);
        row = xmalloc((size_t)TIFFScanlineSize(t) + 16);
        for (uint32_t y = 0; y < H; y++) {
            if (TIFFReadScanline(t, row, y, 0) < 0) {
                error_at(err, err_len, "%s: page %d row %u cannot be read (truncated or corrupt)", path, n, y);
                goto out;
            }
            float *dst = data + ((size_t)n * H + y) * W;
            for (uint32_t x = 0; x < W; x++) dst[x] = bps == 8 ? row[x] : ((uint16_t *)row)[x];
        }
        n++;
    } while (TIFFReadDirectory(t));
    *out = data, *pages = n, *h = (int)H, *w = (int)W;
    data = NULL;
    rc = 0;
out:
    free(data);
    free(row);
    TIFFClose(t);
    return rc;
}

/* Slices per split (SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST order): --split FILE or the official lists. */
static int em_split(const PrepareOptions *o, int zs[3][30], int nz[3], char *err, size_t err_len) {
    if (!o->split_file) {
        for (int i = 0; i < EM_OFFICIAL_TRAIN; i++) zs[SPLIT_TRAIN][nz[SPLIT_TRAIN]++] = em_official_train[i];
        for (int i = 0; i < EM_OFFICIAL_VAL; i++) zs[SPLIT_VAL][nz[SPLIT_VAL]++] = em_official_val[i];
        for (int i = 0; i < EM_OFFICIAL_TEST; i++) zs[SPLIT_TEST][nz[SPLIT_TEST]++] = em_official_test[i];
        return 0;
    }
    int ids[30];
    SplitKind kinds[30];
    int n = imp_read_split(o->split_file, ids, kinds, 30, err, err_len);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        if (ids[i] > 29) return error_at(err, err_len, "%s: slice %d (ISBI 2012 has slices 0..29)", o->split_file, ids[i]);
        zs[kinds[i]][nz[kinds[i]]++] = ids[i];
    }
    return 0;
}

int import_em(const PrepareOptions *o, char *err, size_t err_len) {
    char *ip = imp_join(o->src, "train-volume.tif"), *lp = imp_join(o->src, "train-labels.tif");
    float *img = NULL, *labf = NULL;
    uint8_t *lab = NULL;
    int n, h, w, n2, h2, w2, rc = -1;
    StoreWriter *wr = NULL;
    if (em_read_tiff_stack(ip, &img, &n, &h, &w, err, err_len) || em_read_tiff_stack(lp, &labf, &n2, &h2, &w2, err, err_len)) goto out;
    if (n != n2 || h != h2 || w != w2) {
        error_at(err, err_len, "%s is %d x %d x %d but %s is %d x %d x %d", ip, w, h, n, lp, w2, h2, n2);
        goto out;
    }
    if (n != 30) {
        error_at(err, err_len, "%s: %d slices; ISBI-2012 has 30 (split 24 / 3 / 3)", ip, n);
        goto out;
    }
    if (imp_check_finite(ip, img, w, h, n, 1, err, err_len)) goto out;
    /* map: 0 -> 0, 255 -> 1, everything else invalid */
    int *map = xmalloc(256 * sizeof *map);
    for (int k = 0; k < 256; k++) map[k] = -1;
    map[0] = 0, map[255] = 1;
    lab = xmalloc((size_t)n * h * w);
    rc = imp_map_labels(lp, labf, lab, w, h, n, map, 256, err, err_len);
    free(map);
    if (rc) goto out;
    rc = -1;
    if (imp_writer(o, classes, 2, 1, &wr, err, err_len)) goto out;
    store_writer_set_attribute(wr, "normalisation", "per-case z-score");
    int zs[3][30], nz[3] = {0};
    if (em_split(o, zs, nz, err, err_len)) goto out;
    imp_progress_total((nz[0] > 0) + (nz[1] > 0) + (nz[2] > 0));
    static const char *const names[3] = {"em_train", "em_val", "em_test"};
    size_t hw = (size_t)h * w;
    float *simg = xmalloc(30 * hw * sizeof(float));
    uint8_t *slab = xmalloc(30 * hw);
    for (int p = 0; p < 3; p++) {
        int D = nz[p];
        if (D == 0) continue;
        for (int k = 0; k < D; k++) {
            memcpy(simg + k * hw, img + (size_t)zs[p][k] * hw, hw * sizeof(float));
            memcpy(slab + k * hw, lab + (size_t)zs[p][k] * hw, hw);
        }
        imp_norm_zscore(simg, (size_t)D * hw, 1);
        const double nm = 1e-6; /* mm */
        StoreCaseInput in = {.name = names[p], .split = imp_split_name((SplitKind)p), .depth = D, .channels = 1,
                             .height = h, .width = w, .image = simg, .label = slab, .spacing = {4 * nm, 4 * nm, 50 * nm},
                             .affine = {4 * nm, 0, 0, 0, 0, 4 * nm, 0, 0, 0, 0, 50 * nm, 50 * nm * zs[p][0], 0, 0, 0, 1},
                             .original_ndim = 3, .original_shape = {n, h, w}, .normalisation = "per-case z-score",
                             .num_sources = 2, .sources = {ip, lp}};
        if (store_writer_add_case(wr, &in, err, err_len)) {
            free(simg), free(slab);
            goto out;
        }
        imp_progress(o, "prepare em: %s (%s) %d x %d x %d", in.name, in.split, w, h, D);
    }
    free(simg), free(slab);
    rc = store_writer_commit(wr, err, err_len);
    wr = NULL;
out:
    if (wr) store_writer_abort(wr);
    free(img);
    free(labf);
    free(lab);
    free(ip);
    free(lp);
    return rc;
}
