/* store_write.c — see store_write.h.
 *
 * Cases go through HDF5's own filter pipeline (H5Dwrite with shuffle + deflate + fletcher32,
 * one chunk per slice), so the files are ordinary HDF5 that h5py and h5dump read. The
 * manifest is cJSON built as cases arrive and written last. */
#include "store_write.h"

#include "fsutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "sha256.h"
#include "store_format.h"

struct StoreWriter {
    char out[PATH_MAX];          /* final directory */
    char tmp[PATH_MAX];          /* OUT.tmp.<host>.<pid> */
    StoreWriterOptions opt;
    cJSON *manifest, *cases, *shards, *attributes;
    hid_t file;                  /* current shard, or H5I_INVALID_HID */
    int shard;                   /* index of the current shard; -1 before the first */
    double shard_bytes;          /* uncompressed bytes in the current shard */
};

/* Every HDF5 call that can fail goes through this: the message names our source line. */
#define H5W(call)                                                                                  \
    do {                                                                                           \
        if ((call) < 0) {                                                                          \
            error_at(err, err_len, "%s: HDF5 call failed at %s:%d: %s", w->tmp, __FILE__, __LINE__, #call); \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

static int fsync_path(const char *path, int is_dir) {
    int fd = open(path, is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void parent_dir(const char *path, char *out, size_t n) {
    snprintf(out, n, "%s", path);
    char *slash = strrchr(out, '/');
    if (!slash) snprintf(out, n, ".");
    else if (slash == out) out[1] = 0;
    else *slash = 0;
}

/* Removes a directory holding only what a store holds (shards, manifest, its temp file). */
static int remove_store_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    char p[PATH_MAX + 256];
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        int ours = (!strncmp(n, "shard-", 6) && strstr(n, ".h5")) || !strncmp(n, STORE_MANIFEST, strlen(STORE_MANIFEST));
        if (!ours) continue;
        snprintf(p, sizeof p, "%s/%s", dir, n);
        unlink(p);
    }
    closedir(d);
    return rmdir(dir);
}

/* This machine's name for temporary directories: [A-Za-z0-9_-] only ('.' separates the pid). */
static void host_tag(char *out, size_t n) {
    char h[256] = "";
    if (gethostname(h, sizeof h - 1) != 0 || !h[0]) snprintf(h, sizeof h, "localhost");
    size_t k = 0;
    for (const char *c = h; *c && k + 1 < n; c++)
        out[k++] = (char)((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-'
                              ? *c
                              : '_');
    out[k] = 0;
}

/* Removes OUT.tmp.<host>.<pid> directories that earlier runs on this machine left behind when
 * they crashed, ran out of memory or were killed (no later run would ever clean them): only
 * those whose pid is not a live process — kill(pid, 0) fails with ESRCH — so a `prepare` running
 * right now into the same OUT keeps its directory (EPERM: the process exists under another user,
 * kept too). The host is in the name because a store on a shared file system may be being built
 * by a live process on another node, whose pid means nothing here: those are never touched.
 * OUT.tmp.<pid> (no host: the name before this rule) is judged by the pid alone. */
static void remove_stale_temporaries(const char *out) {
    char parent[PATH_MAX], host[128];
    parent_dir(out, parent, sizeof parent);
    host_tag(host, sizeof host);
    const char *slash = strrchr(out, '/');
    const char *base = slash ? slash + 1 : out;
    size_t bl = strlen(base), hl = strlen(host);
    DIR *d = opendir(parent);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) || strncmp(n + bl, ".tmp.", 5)) continue;
        const char *rest = n + bl + 5, *digits = strrchr(rest, '.');
        if (!digits) digits = rest; /* OUT.tmp.<pid> */
        else if ((size_t)(digits - rest) != hl || strncmp(rest, host, hl)) continue; /* another node's */
        else digits++;
        char *end;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (end == digits || *end || errno || pid <= 0 || (pid_t)pid != pid) continue;
        if (pid == (long)getpid()) continue; /* ours: store_writer_create replaces it */
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char p[PATH_MAX + 300];
        snprintf(p, sizeof p, "%s/%s", parent, n);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_store_dir(p);
    }
    closedir(d);
}

/* An existing directory may be replaced only if it is a store (has a manifest) or is empty. */
static int is_replaceable(const char *dir) {
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/%s", dir, STORE_MANIFEST);
    if (access(p, F_OK) == 0) return 1;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n == 0;
}

int store_writer_create(StoreWriter **out, const char *out_dir, const StoreWriterOptions *opt, char *err,
                        size_t err_len) {
    *out = NULL;
    if (!out_dir || !*out_dir) return error_at(err, err_len, "no output directory given");
    if (opt->num_classes < 2 || opt->num_classes > STORE_MAX_CLASSES)
        return error_at(err, err_len, "%s: %d classes (expected 2..%d)", out_dir, opt->num_classes, STORE_MAX_CLASSES);
    if (opt->channels < 1) return error_at(err, err_len, "%s: %d channels", out_dir, opt->channels);
    StoreWriter *w = xcalloc(1, sizeof *w);
    snprintf(w->out, sizeof w->out, "%s", out_dir);
    size_t L = strlen(w->out);
    while (L > 1 && w->out[L - 1] == '/') w->out[--L] = 0;
    w->opt = *opt;
    if (w->opt.deflate_level <= 0) w->opt.deflate_level = 1;
    if (w->opt.deflate_level > 9) w->opt.deflate_level = 9;
    if (!(w->opt.shard_mb > 0)) w->opt.shard_mb = 1024;
    w->file = H5I_INVALID_HID;
    w->shard = -1;

    struct stat st;
    if (stat(w->out, &st) == 0) {
        if (!opt->force) {
            error_at(err, err_len, "%s already exists (pass --force to replace it)", w->out);
            free(w);
            return -1;
        }
        if (!S_ISDIR(st.st_mode) || !is_replaceable(w->out)) {
            error_at(err, err_len, "%s exists and is not a slice store (no %s); refusing to replace it",
                      w->out, STORE_MANIFEST);
            free(w);
            return -1;
        }
    }
    char host[128];
    host_tag(host, sizeof host);
    if (snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%s.%ld", w->out, host, (long)getpid()) >= (int)sizeof w->tmp) {
        error_at(err, err_len, "%.64s...: path too long", w->out);
        free(w);
        return -1;
    }
    remove_store_dir(w->tmp); /* a leftover of a crashed run with our pid */
    remove_stale_temporaries(w->out);
    if (fsu_mkdir_parents(w->tmp) != 0 || mkdir(w->tmp, 0755) != 0) {
        error_at(err, err_len, "%s: cannot create directory: %s", w->tmp, strerror(errno));
        free(w);
        return -1;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are reported by us, with context */

    w->manifest = cJSON_CreateObject();
    cJSON_AddStringToObject(w->manifest, "format", STORE_FORMAT_NAME);
    cJSON_AddNumberToObject(w->manifest, "version", STORE_FORMAT_VERSION);
    cJSON_AddStringToObject(w->manifest, "dataset", opt->dataset ? opt->dataset : "");
    cJSON_AddStringToObject(w->manifest, "description", opt->description ? opt->description : "");
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON_AddStringToObject(w->manifest, "created", when);
    cJSON_AddNumberToObject(w->manifest, "channels", opt->channels);
    cJSON *classes = cJSON_AddArrayToObject(w->manifest, "classes");
    for (int k = 0; k < opt->num_classes; k++) cJSON_AddItemToArray(classes, cJSON_CreateString(opt->class_names[k]));
    w->attributes = cJSON_AddObjectToObject(w->manifest, "attributes");
    w->shards = cJSON_AddArrayToObject(w->manifest, "shards");
    w->cases = cJSON_AddArrayToObject(w->manifest, "cases");
    *out = w;
    return 0;
}

void store_writer_set_attribute(StoreWriter *w, const char *key, const char *value) {
    cJSON_DeleteItemFromObject(w->attributes, key);
    cJSON_AddStringToObject(w->attributes, key, value);
}

static int close_shard(StoreWriter *w, char *err, size_t err_len) {
    if (w->file == H5I_INVALID_HID) return 0;
    herr_t rc = H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/" STORE_SHARD_FMT, w->tmp, w->shard);
    if (rc < 0) return error_at(err, err_len, "%s: closing the HDF5 file failed", p);
    if (fsync_path(p, 0) != 0) return error_at(err, err_len, "%s: fsync failed: %s", p, strerror(errno));
    return 0;
}

static int open_shard(StoreWriter *w, char *err, size_t err_len) {
    w->shard++;
    w->shard_bytes = 0;
    char name[64], p[PATH_MAX + 64];
    snprintf(name, sizeof name, STORE_SHARD_FMT, w->shard);
    snprintf(p, sizeof p, "%s/%s", w->tmp, name);
    hid_t g = H5I_INVALID_HID, a = H5I_INVALID_HID, sp = H5I_INVALID_HID, t = H5I_INVALID_HID;
    w->file = H5Fcreate(p, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) return error_at(err, err_len, "%s: cannot create HDF5 file", p);
    /* File-level identification, so a shard found alone says what it is. */
    H5W(sp = H5Screate(H5S_SCALAR));
    H5W(t = H5Tcopy(H5T_C_S1));
    H5W(H5Tset_size(t, H5T_VARIABLE));
    H5W(H5Tset_cset(t, H5T_CSET_UTF8));
    H5W(a = H5Acreate2(w->file, "format", t, sp, H5P_DEFAULT, H5P_DEFAULT));
    const char *fmt = STORE_FORMAT_NAME;
    H5W(H5Awrite(a, t, &fmt));
    H5W(H5Aclose(a));
    a = H5I_INVALID_HID;
    H5W(a = H5Acreate2(w->file, "version", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT));
    int v = STORE_FORMAT_VERSION;
    H5W(H5Awrite(a, H5T_NATIVE_INT, &v));
    H5W(H5Aclose(a));
    a = H5I_INVALID_HID;
    H5W(g = H5Gcreate2(w->file, "cases", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5W(H5Gclose(g));
    H5Tclose(t);
    H5Sclose(sp);
    cJSON *sh = cJSON_CreateObject();
    cJSON_AddStringToObject(sh, "file", name);
    cJSON_AddArrayToObject(sh, "cases");
    cJSON_AddItemToArray(w->shards, sh);
    return 0;
fail:
    if (a >= 0) H5Aclose(a);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    return -1;
}

/* One chunked, filtered dataset: chunk = one slice (first dimension 1). */
static int write_dataset(StoreWriter *w, hid_t grp, const char *name, hid_t filetype, hid_t memtype, int rank,
                         const hsize_t *dims, const void *data, char *err, size_t err_len) {
    hid_t sp = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, ds = H5I_INVALID_HID;
    hsize_t chunk[4];
    for (int i = 0; i < rank; i++) chunk[i] = dims[i];
    chunk[0] = 1;
    H5W(sp = H5Screate_simple(rank, dims, NULL));
    H5W(dcpl = H5Pcreate(H5P_DATASET_CREATE));
    H5W(H5Pset_chunk(dcpl, rank, chunk));
    H5W(H5Pset_shuffle(dcpl));
    H5W(H5Pset_deflate(dcpl, (unsigned)w->opt.deflate_level));
    H5W(H5Pset_fletcher32(dcpl));
    H5W(ds = H5Dcreate2(grp, name, filetype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5W(H5Dwrite(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return 0;
fail:
    if (ds >= 0) H5Dclose(ds);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return -1;
}

static int write_attr(StoreWriter *w, hid_t obj, const char *name, hid_t filetype, hid_t memtype, int rank,
                      const hsize_t *dims, const void *data, char *err, size_t err_len) {
    hid_t sp = H5I_INVALID_HID, a = H5I_INVALID_HID;
    H5W(sp = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR));
    H5W(a = H5Acreate2(obj, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT));
    H5W(H5Awrite(a, memtype, data));
    H5Aclose(a);
    H5Sclose(sp);
    return 0;
fail:
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return -1;
}

/* Variable-length UTF-8 string attribute: a scalar (n < 0) or an array of n strings. */
static int write_str_attr(StoreWriter *w, hid_t obj, const char *name, int n, const char *const *v, char *err,
                          size_t err_len) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return error_at(err, err_len, "%s: H5Tcopy failed", w->tmp);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t d = (hsize_t)(n < 0 ? 1 : n);
    int rc = write_attr(w, obj, name, t, t, n < 0 ? 0 : 1, &d, v, err, err_len);
    H5Tclose(t);
    return rc;
}

static int valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= STORE_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return 0;
    }
    return 1;
}

int store_writer_add_case(StoreWriter *w, const StoreCaseInput *c, char *err, size_t err_len) {
    if (!valid_name(c->name))
        return error_at(err, err_len, "case name '%s': expected 1..%d characters of [A-Za-z0-9_.-]", c->name,
                         STORE_NAME_MAX - 1);
    if (strcmp(c->split, "train") && strcmp(c->split, "val") && strcmp(c->split, "test"))
        return error_at(err, err_len, "case %s: split '%s' (expected train, val or test)", c->name, c->split);
    cJSON *it;
    cJSON_ArrayForEach(it, w->cases) {
        if (!strcmp(cJSON_GetObjectItem(it, "name")->valuestring, c->name))
            return error_at(err, err_len, "case %s appears twice", c->name);
    }
    if (c->depth < 1 || c->height < 1 || c->width < 1 || c->channels != w->opt.channels)
        return error_at(err, err_len, "case %s: shape (%d, %d, %d, %d), expected D, H, W >= 1 and C = %d", c->name,
                         c->depth, c->channels, c->height, c->width, w->opt.channels);
    size_t nl = (size_t)c->depth * c->height * c->width, ni = nl * c->channels;
    for (size_t i = 0; i < nl; i++)
        if (c->label[i] >= w->opt.num_classes)
            return error_at(err, err_len, "case %s: label %d at voxel %zu is outside 0..%d", c->name, c->label[i], i,
                             w->opt.num_classes - 1);
    for (size_t i = 0; i < ni; i++)
        if (!isfinite(c->image[i]))
            return error_at(err, err_len, "case %s: non-finite intensity at element %zu after normalisation", c->name, i);

    if (c->num_sources < 0 || c->num_sources > STORE_MAX_SOURCES || c->original_ndim < 1 || c->original_ndim > 4)
        return error_at(err, err_len, "case %s: %d sources / %d original dimensions", c->name, c->num_sources,
                         c->original_ndim);
    /* Source hashes first: a vanished source is an error before anything is written. */
    char hexes[STORE_MAX_SOURCES][65];
    for (int s = 0; s < c->num_sources; s++)
        if (sha256_file_hex(c->sources[s], hexes[s]) != 0)
            return error_at(err, err_len, "%s: cannot read to hash it: %s", c->sources[s], strerror(errno));

    double bytes = (double)ni * 4 + (double)nl;
    if (w->file == H5I_INVALID_HID || (w->shard_bytes > 0 && w->shard_bytes + bytes > w->opt.shard_mb * 1e6)) {
        if (close_shard(w, err, err_len) != 0 || open_shard(w, err, err_len) != 0) return -1;
    }
    hid_t g = H5I_INVALID_HID;
    char path[STORE_NAME_MAX + 16];
    snprintf(path, sizeof path, "cases/%s", c->name);
    H5W(g = H5Gcreate2(w->file, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    hsize_t di[4] = {(hsize_t)c->depth, (hsize_t)c->channels, (hsize_t)c->height, (hsize_t)c->width};
    hsize_t dl[3] = {(hsize_t)c->depth, (hsize_t)c->height, (hsize_t)c->width};
    if (write_dataset(w, g, "image", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, di, c->image, err, err_len) != 0) goto fail;
    if (write_dataset(w, g, "label", H5T_STD_U8LE, H5T_NATIVE_UINT8, 3, dl, c->label, err, err_len) != 0) goto fail;
    hsize_t d3 = 3, d44[2] = {4, 4}, dn = (hsize_t)c->original_ndim;
    if (write_attr(w, g, "spacing", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &d3, c->spacing, err, err_len) ||
        write_attr(w, g, "affine", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, d44, c->affine, err, err_len) ||
        write_attr(w, g, "original_shape", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &dn, c->original_shape, err, err_len))
        goto fail;
    const char *split = c->split, *norm = c->normalisation ? c->normalisation : "none";
    const char *hp[STORE_MAX_SOURCES];
    for (int s = 0; s < c->num_sources; s++) hp[s] = hexes[s];
    if (write_str_attr(w, g, "split", -1, &split, err, err_len) ||
        write_str_attr(w, g, "normalisation", -1, &norm, err, err_len) ||
        (c->num_sources > 0 && (write_str_attr(w, g, "source_files", c->num_sources, c->sources, err, err_len) ||
                                write_str_attr(w, g, "source_sha256", c->num_sources, hp, err, err_len))))
        goto fail;
    H5Gclose(g);
    g = H5I_INVALID_HID;
    w->shard_bytes += bytes;

    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", c->name);
    cJSON_AddStringToObject(j, "split", c->split);
    cJSON_AddNumberToObject(j, "shard", w->shard);
    int shape[4] = {c->depth, c->channels, c->height, c->width};
    cJSON_AddItemToObject(j, "shape", cJSON_CreateIntArray(shape, 4));
    cJSON_AddItemToObject(j, "spacing", cJSON_CreateDoubleArray(c->spacing, 3));
    cJSON_AddItemToObject(j, "affine", cJSON_CreateDoubleArray(c->affine, 16));
    double os[4];
    for (int i = 0; i < c->original_ndim; i++) os[i] = (double)c->original_shape[i];
    cJSON_AddItemToObject(j, "original_shape", cJSON_CreateDoubleArray(os, c->original_ndim));
    cJSON_AddStringToObject(j, "normalisation", norm);
    cJSON *src = cJSON_AddArrayToObject(j, "sources");
    for (int s = 0; s < c->num_sources; s++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", c->sources[s]);
        cJSON_AddStringToObject(o, "sha256", hexes[s]);
        cJSON_AddItemToArray(src, o);
    }
    cJSON_AddItemToArray(w->cases, j);
    cJSON *sh = cJSON_GetArrayItem(w->shards, w->shard);
    cJSON_AddItemToArray(cJSON_GetObjectItem(sh, "cases"), cJSON_CreateString(c->name));
    return 0;
fail:
    if (g >= 0) H5Gclose(g);
    return -1;
}

static void free_writer(StoreWriter *w) {
    if (w->file != H5I_INVALID_HID) H5Fclose(w->file);
    cJSON_Delete(w->manifest);
    free(w);
}

void store_writer_abort(StoreWriter *w) {
    if (!w) return;
    if (w->file != H5I_INVALID_HID) H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
    remove_store_dir(w->tmp);
    free_writer(w);
}

int store_writer_commit(StoreWriter *w, char *err, size_t err_len) {
    char p[PATH_MAX + 64], old[PATH_MAX + 64], parent[PATH_MAX];
    if (close_shard(w, err, err_len) != 0) goto fail;
    if (cJSON_GetArraySize(w->cases) == 0) {
        error_at(err, err_len, "%s: no cases to write", w->out);
        goto fail;
    }
    cJSON *splits = cJSON_AddObjectToObject(w->manifest, "splits");
    const char *names[3] = {"train", "val", "test"};
    for (int s = 0; s < 3; s++) {
        cJSON *arr = cJSON_AddArrayToObject(splits, names[s]), *it;
        cJSON_ArrayForEach(it, w->cases) {
            if (!strcmp(cJSON_GetObjectItem(it, "split")->valuestring, names[s]))
                cJSON_AddItemToArray(arr, cJSON_CreateString(cJSON_GetObjectItem(it, "name")->valuestring));
        }
    }
    /* The manifest last: a directory without it is not a store. */
    char *text = cJSON_Print(w->manifest);
    snprintf(p, sizeof p, "%s/%s", w->tmp, STORE_MANIFEST);
    FILE *fp = fopen(p, "wb");
    int ok = fp && fputs(text, fp) >= 0 && fputc('\n', fp) != EOF && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    if (fp && fclose(fp) != 0) ok = 0;
    free(text);
    if (!ok) {
        error_at(err, err_len, "%s: write failed: %s", p, strerror(errno));
        goto fail;
    }
    if (fsync_path(w->tmp, 1) != 0) {
        error_at(err, err_len, "%s: fsync failed: %s", w->tmp, strerror(errno));
        goto fail;
    }
    old[0] = 0;
    struct stat st;
    if (stat(w->out, &st) == 0) {
        if (!w->opt.force || !S_ISDIR(st.st_mode) || !is_replaceable(w->out)) {
            error_at(err, err_len, "%s appeared while the store was being built; not replacing it", w->out);
            goto fail;
        }
        snprintf(old, sizeof old, "%s.old.%ld", w->out, (long)getpid());
        if (rename(w->out, old) != 0) {
            error_at(err, err_len, "%s: cannot move the old store aside: %s", w->out, strerror(errno));
            goto fail;
        }
    }
    if (rename(w->tmp, w->out) != 0) {
        error_at(err, err_len, "cannot rename %s to %s: %s", w->tmp, w->out, strerror(errno));
        if (old[0]) rename(old, w->out);
        goto fail;
    }
    parent_dir(w->out, parent, sizeof parent);
    fsync_path(parent, 1);
    if (old[0] && remove_store_dir(old) != 0)
        fprintf(stderr, "unet2022: warning: could not remove the replaced store %s\n", old);
    free_writer(w);
    return 0;
fail:
    store_writer_abort(w);
    return -1;
}
