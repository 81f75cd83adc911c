/* import_transunet.c — `prepare synapse-transunet`: the preprocessed Synapse that TransUNet
 * released and most baselines use: train_npz/caseXXXX_sliceNNN.npz (keys image, label; one
 * axial slice each, already clipped to [-125, 275] and scaled to [0, 1]) and
 * test_vol_h5/caseXXXX.npy.h5 (datasets image, label: (D, H, W)). Labels are the 9-class form
 * (0..8). The intensities are kept as provided; no geometry survives that preprocessing, so
 * spacing is 1 and the affine the identity (manifest attribute "geometry": "unknown"). */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "file_check.h"
#include "resource_limits.h"
#include "fsutil.h"
#include "import_common.h"
#include "importers.h"
#include "isolate.h"
#include "npz.h"
#include "store_format.h"

#include <zlib.h>

static const char *const classes8[9] = {"background", "spleen", "right_kidney", "left_kidney", "gallbladder",
                                        "liver", "stomach", "aorta", "pancreas"};
static const int map9[9] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
static const char *const NORM = "as provided (TransUNet: clip [-125, 275] -> [0, 1])";

static int add_volume(const PrepareOptions *o, StoreWriter *w, const char *name, const char *split, float *img,
                      const float *labf, int D, int H, int W, const char *src_img, const char *src_lab, int nsrc,
                      int64_t orig0, char *err, size_t err_len) {
    if (imp_check_finite(src_img, img, W, H, D, 1, err, err_len)) return -1;
    uint8_t *lab = xmalloc((size_t)D * H * W);
    int rc = imp_map_labels(src_lab, labf, lab, W, H, D, map9, 9, err, err_len);
    if (rc == 0) {
        StoreCaseInput in = {.name = name, .split = split, .depth = D, .channels = 1, .height = H, .width = W,
                             .image = img, .label = lab, .original_ndim = 3, .original_shape = {orig0, H, W},
                             .normalisation = NORM, .num_sources = nsrc, .sources = {src_img, src_lab}};
        imp_identity_geometry(in.spacing, in.affine);
        rc = store_writer_add_case(w, &in, err, err_len);
        if (rc == 0) imp_progress(o, "prepare synapse-transunet: %s (%s) %d x %d x %d", name, split, W, H, D);
    }
    free(lab);
    return rc;
}

/* The entries of SRC/sub, and that path in *dir (the caller frees both); NULL with the error when
 * the directory cannot be listed. */
static char **list_layout_dir(const PrepareOptions *o, const char *sub, char **dir, int *n, char *err,
                              size_t err_len) {
    *dir = imp_join(o->src, sub);
    char **names = fsu_list(*dir, n);
    if (!names) {
        error_at(err, err_len, "%s: cannot list the directory (expected the TransUNet layout)", *dir);
        free(*dir);
        *dir = NULL;
    }
    return names;
}

/* train_npz: group caseXXXX_sliceNNN.npz by case; slices must run 0..n-1 without gaps. */
static int import_train(const PrepareOptions *o, StoreWriter *w, char *err, size_t err_len) {
    char *dir;
    int n;
    char **names = list_layout_dir(o, "train_npz", &dir, &n, err, err_len);
    if (!names) return -1;
    int rc = 0, i = 0;
    while (rc == 0 && i < n) {
        int cs, sl;
        char tail[8];
        if (sscanf(names[i], "case%4d_slice%3d.np%1s", &cs, &sl, tail) != 3 || strcmp(tail, "z")) {
            i++;
            continue;
        }
        /* This case's files (sorted names: slices in order). */
        int j = i, D = 0, H = 0, W = 0;
        char pre[32];
        snprintf(pre, sizeof pre, "case%04d_slice", cs);
        while (j < n && !strncmp(names[j], pre, strlen(pre))) j++;
        D = j - i;
        float *img = NULL, *lab = NULL;
        for (int k = 0; rc == 0 && k < D; k++) {
            char *p = imp_join(dir, names[i + k]);
            int s2;
            if (sscanf(names[i + k] + strlen(pre), "%3d", &s2) != 1 || s2 != k) {
                rc = error_at(err, err_len, "%s: case%04d: expected slice %03d here (slices must run 0..%d with no gaps)",
                               p, cs, k, D - 1);
                free(p);
                break;
            }
            NpyArray a, b;
            rc = npz_read(p, "image", &a, err, err_len);
            if (rc == 0) {
                rc = npz_read(p, "label", &b, err, err_len);
                if (rc) npy_free(&a);
            }
            if (rc == 0) {
                if (a.ndim != 2 || b.ndim != 2 || a.shape[0] != b.shape[0] || a.shape[1] != b.shape[1])
                    rc = error_at(err, err_len, "%s: image and label shapes differ or are not 2-D", p);
                else if (k == 0 && unet_volume_ok(D, 1, a.shape[0], a.shape[1]))
                    rc = error_at(err, err_len,
                                  "%s: field 'shape': %d slices of %lld x %lld exceed the limits (slice side %d, volume %lld voxels)",
                                  p, D, (long long)a.shape[0], (long long)a.shape[1], UNET_MAX_SLICE_SIDE,
                                  (long long)UNET_MAX_VOLUME_VOXELS);
                else if (k == 0) {
                    H = (int)a.shape[0];
                    W = (int)a.shape[1];
                    img = xmalloc((size_t)D * H * W * sizeof(float));
                    lab = xmalloc((size_t)D * H * W * sizeof(float));
                } else if (a.shape[0] != H || a.shape[1] != W)
                    rc = error_at(err, err_len, "%s: slice is %lld x %lld, earlier slices of case%04d %d x %d", p,
                                   (long long)a.shape[0], (long long)a.shape[1], cs, H, W);
                if (rc == 0) {
                    memcpy(img + (size_t)k * H * W, a.data, (size_t)H * W * sizeof(float));
                    memcpy(lab + (size_t)k * H * W, b.data, (size_t)H * W * sizeof(float));
                }
                npy_free(&a);
                npy_free(&b);
            }
            free(p);
        }
        if (rc == 0) {
            char name[32], first[4096];
            snprintf(name, sizeof name, "case%04d", cs);
            snprintf(first, sizeof first, "%s/%s", dir, names[i]);
            /* Sources: the first slice file stands for the case (hashing every slice is noise). */
            rc = add_volume(o, w, name, "train", img, lab, D, H, W, first, first, 1, D, err, err_len);
        }
        free(img);
        free(lab);
        i = j;
    }
    fsu_free_list(names, n);
    free(dir);
    return rc;
}

/* A chunked dataset's chunks, checked before H5Dread: only the filters h5py writes and we can
 * verify (shuffle, deflate, fletcher32), and every chunk's stored bytes must pass its checksum
 * and inflate to exactly one chunk. libhdf5 1.10 reads freed memory inside H5Dread when a
 * corrupt chunk does not (found by fuzz_transunet_h5; input in tests/fuzz/crashes/), so such a
 * file must never reach it. */
static int check_chunks(const char *path, const char *name, hid_t ds, hid_t dcpl, size_t tsize, int64_t file_size,
                        char *err, size_t err_len) {
    if (dcpl < 0) return error_at(err, err_len, "%s: dataset '%s': creation properties unreadable (corrupt?)", path, name);
    if (H5Pget_layout(dcpl) != H5D_CHUNKED) return 0;
    hsize_t cd[3];
    int64_t cdims[3], cvals;
    if (H5Pget_chunk(dcpl, 3, cd) != 3)
        return error_at(err, err_len, "%s: dataset '%s': chunk shape is not 3-D", path, name);
    for (int k = 0; k < 3; k++) cdims[k] = cd[k] > (hsize_t)INT64_MAX ? -1 : (int64_t)cd[k];
    if (unet_checked_product(cdims, 3, UNET_MAX_VOLUME_VOXELS, &cvals) || cvals == 0)
        return error_at(err, err_len, "%s: dataset '%s': chunk shape %llu x %llu x %llu beyond the limits", path, name,
                        (unsigned long long)cd[0], (unsigned long long)cd[1], (unsigned long long)cd[2]);
    size_t chunk_bytes = (size_t)cvals * tsize;
    int nf = H5Pget_nfilters(dcpl), pos_deflate = -1, pos_fletcher = -1;
    for (int i = 0; i < nf; i++) {
        unsigned flags, cdv[8];
        size_t ncd = 8;
        char fname[64];
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cdv, sizeof fname, fname, NULL);
        if (id == H5Z_FILTER_DEFLATE) pos_deflate = i;
        else if (id == H5Z_FILTER_FLETCHER32) pos_fletcher = i;
        else if (id != H5Z_FILTER_SHUFFLE)
            return error_at(err, err_len, "%s: dataset '%s': HDF5 filter %d is not supported (deflate, shuffle, fletcher32)",
                            path, name, (int)id);
    }
    if (pos_fletcher >= 0 && pos_fletcher != nf - 1)
        return error_at(err, err_len, "%s: dataset '%s': fletcher32 is not the last filter", path, name);
    hsize_t nchunks = 0;
    hid_t fs = H5Dget_space(ds); /* libhdf5 1.10 does not take H5S_ALL here */
    herr_t got_n = fs < 0 ? -1 : H5Dget_num_chunks(ds, fs, &nchunks);
    if (got_n < 0) {
        if (fs >= 0) H5Sclose(fs);
        return error_at(err, err_len, "%s: dataset '%s': chunk index unreadable (corrupt?)", path, name);
    }
    uint8_t *raw = NULL, *out = malloc(chunk_bytes);
    size_t raw_cap = 0;
    int rc = out ? 0 : error_at(err, err_len, "%s: dataset '%s': out of memory", path, name);
    for (hsize_t i = 0; rc == 0 && i < nchunks; i++) {
        hsize_t off[3];
        unsigned mask = 0;
        haddr_t addr;
        hsize_t size = 0;
        if (H5Dget_chunk_info(ds, fs, i, off, &mask, &addr, &size) < 0 || size == 0 ||
            size > (hsize_t)file_size) {
            rc = error_at(err, err_len, "%s: dataset '%s': chunk %llu has no valid location or size (corrupt?)", path,
                          name, (unsigned long long)i);
            break;
        }
        if (size > raw_cap) {
            free(raw);
            raw = malloc((size_t)size);
            raw_cap = raw ? (size_t)size : 0;
            if (!raw) {
                rc = error_at(err, err_len, "%s: dataset '%s': out of memory", path, name);
                break;
            }
        }
        uint32_t m2 = 0;
        if (H5Dread_chunk(ds, H5P_DEFAULT, off, &m2, raw) < 0) {
            rc = error_at(err, err_len, "%s: dataset '%s': chunk %llu cannot be read (truncated or corrupt)", path, name,
                          (unsigned long long)i);
            break;
        }
        size_t n = (size_t)size;
        if (pos_fletcher >= 0 && !(mask & (1u << pos_fletcher))) {
            uint32_t stored = n >= 4 ? (uint32_t)raw[n - 4] | (uint32_t)raw[n - 3] << 8 | (uint32_t)raw[n - 2] << 16 |
                                           (uint32_t)raw[n - 1] << 24
                                     : 0;
            if (n < 4 || store_fletcher32(raw, n - 4) != stored) {
                rc = error_at(err, err_len, "%s: dataset '%s': chunk %llu fails its Fletcher-32 checksum", path, name,
                              (unsigned long long)i);
                break;
            }
            n -= 4;
        }
        if (pos_deflate >= 0 && !(mask & (1u << pos_deflate))) {
            uLongf dlen = (uLongf)chunk_bytes;
            int zr = uncompress(out, &dlen, raw, (uLong)n);
            if (zr != Z_OK || dlen != chunk_bytes)
                rc = error_at(err, err_len, "%s: dataset '%s': chunk %llu does not inflate to %zu bytes (corrupt)", path,
                              name, (unsigned long long)i, chunk_bytes);
        } else if (n != chunk_bytes)
            rc = error_at(err, err_len, "%s: dataset '%s': chunk %llu holds %zu bytes, a chunk is %zu (corrupt)", path,
                          name, (unsigned long long)i, n, chunk_bytes);
    }
    H5Sclose(fs);
    free(raw);
    free(out);
    return rc;
}

/* Dataset `name` of an open TransUNet case file as float (D, H, W): *out is set only on success,
 * so the caller owns exactly what it was given (on failure this function has freed its own
 * buffer and *out stays NULL). The declared shape and type are checked before anything is
 * allocated: numbers only (a compound or string type cannot be converted), within the resource
 * limits, and backed by stored bytes (a 2 KB file cannot hold a 65536 x 65536 slice). */
static int read_h5_float(const char *path, int64_t file_size, hid_t f, const char *name, float **out,
                         hsize_t dims[3], char *err, size_t err_len) {
    *out = NULL;
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return error_at(err, err_len, "%s: no dataset '%s'", path, name);
    hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds), dcpl = H5Dget_create_plist(ds);
    int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    int rc = -1;
    float *buf = NULL;
    if (rank != 3) {
        error_at(err, err_len, "%s: dataset '%s' has %d dimensions, expected 3 (D, H, W)", path, name, rank);
        goto out;
    }
    H5T_class_t cls = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    size_t tsize = t < 0 ? 0 : H5Tget_size(t);
    if ((cls != H5T_INTEGER && cls != H5T_FLOAT) || tsize < 1 || tsize > 8) {
        error_at(err, err_len, "%s: dataset '%s' is not an integer or float array (HDF5 type class %d, %zu bytes)", path,
                 name, (int)cls, tsize);
        goto out;
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    if (unet_volume_ok((int64_t)dims[0], 1, (int64_t)dims[1], (int64_t)dims[2]) || dims[0] > INT32_MAX ||
        dims[1] > INT32_MAX || dims[2] > INT32_MAX) {
        error_at(err, err_len,
                 "%s: dataset '%s' declares shape %llu x %llu x %llu, beyond the limits (slice side %d, %d slices, "
                 "volume %lld voxels)",
                 path, name, (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
                 UNET_MAX_SLICE_SIDE, UNET_MAX_DEPTH, (long long)UNET_MAX_VOLUME_VOXELS);
        goto out;
    }
    uint64_t nvals = (uint64_t)dims[0] * dims[1] * dims[2], declared = nvals * tsize;
    /* Stored bytes: without filters every value needs its bytes in the file; with filters
     * (deflate) no more than deflate's maximum ratio. Unwritten data (fill value) is refused:
     * a real case has its voxels. */
    uint64_t stored = (uint64_t)H5Dget_storage_size(ds);
    int nfilters = dcpl < 0 ? 0 : H5Pget_nfilters(dcpl);
    uint64_t cap = nfilters > 0 ? stored * UNET_MAX_DEFLATE_RATIO + 4096 : stored;
    if (stored == 0 || stored > (uint64_t)file_size || declared > cap) {
        error_at(err, err_len,
                 "%s: dataset '%s' declares %llu x %llu x %llu values (%llu bytes) but the file stores %llu bytes of "
                 "it (%lld-byte file): truncated or corrupt",
                 path, name, (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
                 (unsigned long long)declared, (unsigned long long)stored, (long long)file_size);
        goto out;
    }
    if (check_chunks(path, name, ds, dcpl, tsize, file_size, err, err_len)) goto out;
    buf = malloc((size_t)nvals * sizeof(float) + 1);
    if (!buf) {
        error_at(err, err_len, "%s: dataset '%s': out of memory for %llu values", path, name, (unsigned long long)nvals);
        goto out;
    }
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        error_at(err, err_len, "%s: dataset '%s' cannot be read as numbers (corrupt?)", path, name);
        goto out;
    }
    *out = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    return rc;
}

/* The reading itself, in this process. */
static int read_case_here(const char *path, int64_t fsize, float **img, float **lab, int dims[3], char *err,
                          size_t err_len) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return error_at(err, err_len, "%s: not a readable HDF5 file (truncated or corrupt?)", path);
    float *im = NULL, *lb = NULL;
    hsize_t di[3], dl[3];
    int rc = read_h5_float(path, fsize, f, "image", &im, di, err, err_len);
    if (rc == 0) rc = read_h5_float(path, fsize, f, "label", &lb, dl, err, err_len);
    H5Fclose(f);
    if (rc == 0 && memcmp(di, dl, sizeof di))
        rc = error_at(err, err_len, "%s: image is %llu x %llu x %llu but label %llu x %llu x %llu", path,
                      (unsigned long long)di[0], (unsigned long long)di[1], (unsigned long long)di[2],
                      (unsigned long long)dl[0], (unsigned long long)dl[1], (unsigned long long)dl[2]);
    if (rc) {
        free(im);
        free(lb);
        return -1;
    }
    for (int k = 0; k < 3; k++) dims[k] = (int)di[k];
    *img = im, *lab = lb;
    return 0;
}

/* A case file given to `prepare` is untrusted and libhdf5 crashes on some corrupt ones
 * (isolate.h), so it is read in a child process that sends back the image, the label and their
 * shape (3 x int32), in that order. */
typedef struct {
    const char *path;
    int64_t fsize;
} CaseFile;

static int read_case_step(void *ctx, IsolateOut *out, char *err, size_t err_len) {
    const CaseFile *f = ctx;
    float *im = NULL, *lb = NULL;
    int32_t d[3];
    int dims[3] = {0, 0, 0};
    if (read_case_here(f->path, f->fsize, &im, &lb, dims, err, err_len)) return -1;
    size_t n = (size_t)dims[0] * dims[1] * dims[2] * sizeof(float);
    d[0] = dims[0], d[1] = dims[1], d[2] = dims[2];
    int rc = isolate_put(out, im, n) || isolate_put(out, lb, n) || isolate_put(out, d, sizeof d) ? -1 : 0;
    free(im);
    free(lb);
    return rc ? error_at(err, err_len, "%s: the reader could not send its results", f->path) : 0;
}

static int read_case_isolated(const char *path, int64_t fsize, float **img, float **lab, int dims[3], char *err,
                              size_t err_len) {
    CaseFile f = {path, fsize};
    void *res;
    size_t len;
    size_t max = 2 * (size_t)UNET_MAX_VOLUME_VOXELS * sizeof(float) + 3 * sizeof(int32_t);
    if (isolate_run(read_case_step, &f, path, "HDF5", max, &res, &len, err, err_len)) return -1;
    int32_t d[3] = {0, 0, 0};
    if (len >= sizeof d) memcpy(d, (uint8_t *)res + len - sizeof d, sizeof d);
    size_t n = unet_volume_ok(d[0], 1, d[1], d[2]) ? 0 : (size_t)d[0] * d[1] * d[2] * sizeof(float);
    if (!n || len != 2 * n + sizeof d) {
        free(res);
        return error_at(err, err_len, "%s: the reader returned an impossible shape", path);
    }
    float *lb = malloc(n);
    if (!lb) {
        free(res);
        return error_at(err, err_len, "%s: out of memory for %zu bytes", path, n);
    }
    memcpy(lb, (uint8_t *)res + n, n);
    float *im = realloc(res, n); /* the image leads the results: keep it, drop the rest */
    *img = im ? im : res, *lab = lb;
    for (int k = 0; k < 3; k++) dims[k] = d[k];
    return 0;
}

int transunet_read_h5_case(const char *path, float **img, float **lab, int dims[3], char *err, size_t err_len) {
    *img = *lab = NULL;
    if (err_len) err[0] = 0;
    int64_t fsize;
    /* HDF5 opens by name: a FIFO would block it */
    if (fc_check_regular(path, "HDF5 case file", &fsize, err, err_len)) return -1;
    return read_case_isolated(path, fsize, img, lab, dims, err, err_len);
}

static int import_test(const PrepareOptions *o, StoreWriter *w, char *err, size_t err_len) {
    char *dir;
    int n;
    char **names = list_layout_dir(o, "test_vol_h5", &dir, &n, err, err_len);
    if (!names) return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        int cs;
        size_t L = strlen(names[i]);
        if (sscanf(names[i], "case%4d", &cs) != 1 || L < 7 || strcmp(names[i] + L - 7, ".npy.h5")) continue;
        char *p = imp_join(dir, names[i]);
        float *img = NULL, *lab = NULL;
        int d[3];
        rc = transunet_read_h5_case(p, &img, &lab, d, err, err_len);
        if (rc == 0) {
            char name[32];
            snprintf(name, sizeof name, "case%04d", cs);
            rc = add_volume(o, w, name, "test", img, lab, d[0], d[1], d[2], p, p, 1, (int64_t)d[0], err, err_len);
        }
        free(img);
        free(lab);
        free(p);
    }
    fsu_free_list(names, n);
    free(dir);
    return rc;
}

int import_synapse_transunet(const PrepareOptions *o, char *err, size_t err_len) {
    StoreWriter *w;
    if (imp_writer(o, classes8, 9, 1, &w, err, err_len)) return -1;
    store_writer_set_attribute(w, "normalisation", NORM);
    store_writer_set_attribute(w, "geometry", "unknown (spacing 1, identity affine)");
    if (import_train(o, w, err, err_len) || import_test(o, w, err, err_len)) {
        store_writer_abort(w);
        return -1;
    }
    return store_writer_commit(w, err, err_len);
}
