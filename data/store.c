/* store.c — reading the slice store (see store.h; format: docs/formats.md, "Slice store").
 *
 * HDF5 serialises every call behind one global lock, even in thread-safe builds, so a loader
 * whose threads all call H5Dread would decompress one slice at a time. Instead HDF5 is used
 * only at store_open(), in a child process per shard (a corrupt shard can crash libhdf5:
 * isolate.h): it validates each dataset (shape, type, filter pipeline) and reports
 * the file offset and size of every chunk (H5Dget_chunk_info_by_coord), and then the files
 * are closed. store_read_slice() reads a slice's chunk with pread() on a plain descriptor and
 * undoes the filters itself — Fletcher-32 check, inflate (zlib), unshuffle — so any number of
 * threads (and processes) read and decompress in parallel with no lock at all. */
#include "store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "file_check.h"
#include "isolate.h"
#include "resource_limits.h"
#include "store_format.h"

typedef struct {
    uint64_t offset;   /* byte offset of the chunk in its shard file */
    uint32_t size;     /* stored (filtered) bytes */
    uint32_t mask;     /* HDF5 filter mask: bit i set = filter i was skipped for this chunk */
} ChunkLoc;

struct Store {
    char dir[PATH_MAX];
    int ncases, nclasses, nshards;
    StoreCase *cases;          /* (ncases) */
    ChunkLoc **image_chunks;   /* (ncases) x (depth) */
    ChunkLoc **label_chunks;   /* (ncases) x (depth) */
    char (*class_names)[STORE_NAME_MAX]; /* (nclasses) */
    int *fds;                  /* (nshards) read-only descriptors */
    char (*shard_files)[STORE_NAME_MAX]; /* (nshards) file names */
};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the store reader decodes little-endian float32 in place: big-endian hosts are not supported"
#endif

int store_num_cases(const Store *s) { return s->ncases; }
const StoreCase *store_case(const Store *s, int i) { return i >= 0 && i < s->ncases ? &s->cases[i] : NULL; }
int store_num_classes(const Store *s) { return s->nclasses; }
const char *store_class_name(const Store *s, int k) { return k >= 0 && k < s->nclasses ? s->class_names[k] : NULL; }

int store_split(const Store *s, const char *split, int *case_idx, int max) {
    int n = 0;
    for (int i = 0; i < s->ncases && n < max; i++)
        if (!strcmp(s->cases[i].split, split)) case_idx[n++] = i;
    return n;
}

void store_close(Store *s) {
    if (!s) return;
    for (int i = 0; i < s->nshards; i++)
        if (s->fds && s->fds[i] >= 0) close(s->fds[i]);
    for (int i = 0; i < s->ncases; i++) {
        if (s->image_chunks) free(s->image_chunks[i]);
        if (s->label_chunks) free(s->label_chunks[i]);
    }
    free(s->image_chunks);
    free(s->label_chunks);
    free(s->cases);
    free(s->class_names);
    free(s->fds);
    free(s->shard_files);
    free(s);
}

/* ---- manifest ------------------------------------------------------------------------ */

static char *read_text(const char *path, char *err, size_t err_len) {
    char why[768];
    int64_t n;
    /* a FIFO named manifest.json would block fopen() forever */
    int fd = fc_open_regular(path, "store manifest", &n, why, sizeof why);
    if (fd < 0) {
        error_at(err, err_len, "%s (not a slice store, or an unfinished one)", why);
        return NULL;
    }
    if (n > UNET_MAX_MANIFEST_BYTES) {
        close(fd);
        error_at(err, err_len, "%s: %lld bytes, over the manifest limit of %lld", path, (long long)n,
                 (long long)UNET_MAX_MANIFEST_BYTES);
        return NULL;
    }
    char *buf = xmalloc((size_t)n + 1);
    size_t got = 0;
    while (got < (size_t)n) {
        ssize_t r = read(fd, buf + got, (size_t)n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    if (got != (size_t)n) {
        free(buf);
        error_at(err, err_len, "%s: short read", path);
        return NULL;
    }
    return buf;
}

static int json_doubles(const cJSON *arr, double *out, int n) {
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) return -1;
    for (int i = 0; i < n; i++) {
        cJSON *v = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsNumber(v)) return -1;
        out[i] = v->valuedouble;
    }
    return 0;
}

static int parse_manifest(Store *s, const char *mpath, cJSON *m, char *err, size_t err_len) {
    cJSON *f = cJSON_GetObjectItem(m, "format"), *v = cJSON_GetObjectItem(m, "version");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, STORE_FORMAT_NAME))
        return error_at(err, err_len, "%s: field 'format' is not \"%s\"", mpath, STORE_FORMAT_NAME);
    if (!cJSON_IsNumber(v) || v->valueint != STORE_FORMAT_VERSION)
        return error_at(err, err_len, "%s: field 'version': this build reads version %d", mpath, STORE_FORMAT_VERSION);
    cJSON *classes = cJSON_GetObjectItem(m, "classes"), *shards = cJSON_GetObjectItem(m, "shards"),
          *cases = cJSON_GetObjectItem(m, "cases"), *ch = cJSON_GetObjectItem(m, "channels");
    if (!cJSON_IsArray(classes) || cJSON_GetArraySize(classes) < 2 || cJSON_GetArraySize(classes) > STORE_MAX_CLASSES)
        return error_at(err, err_len, "%s: field 'classes': expected an array of 2..%d names", mpath, STORE_MAX_CLASSES);
    if (!cJSON_IsArray(shards) || cJSON_GetArraySize(shards) < 1)
        return error_at(err, err_len, "%s: field 'shards': expected a non-empty array", mpath);
    if (!cJSON_IsArray(cases) || cJSON_GetArraySize(cases) < 1)
        return error_at(err, err_len, "%s: field 'cases': expected a non-empty array", mpath);
    if (!cJSON_IsNumber(ch) || ch->valueint < 1) return error_at(err, err_len, "%s: field 'channels'", mpath);
    s->nclasses = cJSON_GetArraySize(classes);
    s->class_names = xcalloc((size_t)s->nclasses, sizeof *s->class_names);
    for (int k = 0; k < s->nclasses; k++) {
        cJSON *c = cJSON_GetArrayItem(classes, k);
        if (!cJSON_IsString(c)) return error_at(err, err_len, "%s: classes[%d] is not a string", mpath, k);
        snprintf(s->class_names[k], STORE_NAME_MAX, "%s", c->valuestring);
    }
    s->nshards = cJSON_GetArraySize(shards);
    s->fds = xmalloc((size_t)s->nshards * sizeof *s->fds);
    for (int i = 0; i < s->nshards; i++) s->fds[i] = -1;
    s->shard_files = xcalloc((size_t)s->nshards, sizeof *s->shard_files);
    s->ncases = cJSON_GetArraySize(cases);
    s->cases = xcalloc((size_t)s->ncases, sizeof *s->cases);
    s->image_chunks = xcalloc((size_t)s->ncases, sizeof *s->image_chunks);
    s->label_chunks = xcalloc((size_t)s->ncases, sizeof *s->label_chunks);
    for (int i = 0; i < s->ncases; i++) {
        cJSON *c = cJSON_GetArrayItem(cases, i);
        StoreCase *sc = &s->cases[i];
        cJSON *name = cJSON_GetObjectItem(c, "name"), *split = cJSON_GetObjectItem(c, "split"),
              *shard = cJSON_GetObjectItem(c, "shard");
        double shape[4];
        if (!cJSON_IsString(name) || strlen(name->valuestring) >= STORE_NAME_MAX)
            return error_at(err, err_len, "%s: cases[%d].name missing or too long", mpath, i);
        snprintf(sc->name, sizeof sc->name, "%s", name->valuestring);
        if (!cJSON_IsString(split) || strlen(split->valuestring) >= sizeof sc->split)
            return error_at(err, err_len, "%s: case %s: field 'split'", mpath, sc->name);
        snprintf(sc->split, sizeof sc->split, "%s", split->valuestring);
        if (!cJSON_IsNumber(shard) || shard->valueint < 0 || shard->valueint >= s->nshards)
            return error_at(err, err_len, "%s: case %s: field 'shard' is not a shard index", mpath, sc->name);
        sc->shard = shard->valueint;
        if (json_doubles(cJSON_GetObjectItem(c, "shape"), shape, 4) ||
            json_doubles(cJSON_GetObjectItem(c, "spacing"), sc->spacing, 3) ||
            json_doubles(cJSON_GetObjectItem(c, "affine"), sc->affine, 16))
            return error_at(err, err_len, "%s: case %s: fields shape[4], spacing[3], affine[16] expected", mpath, sc->name);
        for (int d = 0; d < 4; d++)
            if (!(shape[d] >= 1 && shape[d] <= 1e6))
                return error_at(err, err_len, "%s: case %s: shape[%d] = %g", mpath, sc->name, d, shape[d]);
        /* the resource policy before any buffer is sized from these numbers */
        if (unet_volume_ok((int64_t)shape[0], (int64_t)shape[1], (int64_t)shape[2], (int64_t)shape[3]))
            return error_at(err, err_len,
                            "%s: case %s: field 'shape' [%g, %g, %g, %g] exceeds the limits (slice side %d, %d slices, "
                            "%d channels, volume %lld values)",
                            mpath, sc->name, shape[0], shape[1], shape[2], shape[3], UNET_MAX_SLICE_SIDE,
                            UNET_MAX_DEPTH, UNET_MAX_CHANNELS, (long long)UNET_MAX_VOLUME_VOXELS);
        sc->depth = (int)shape[0];
        sc->channels = (int)shape[1];
        sc->height = (int)shape[2];
        sc->width = (int)shape[3];
        if (sc->channels != ch->valueint)
            return error_at(err, err_len, "%s: case %s has %d channels, the store %d", mpath, sc->name, sc->channels,
                             ch->valueint);
    }
    return 0;
}

/* ---- chunk index from HDF5 ---------------------------------------------------------------- */

/* Checks one dataset (type, shape, chunking, filter pipeline) and records its chunks. */
static int index_dataset(const Store *s, hid_t file, const StoreCase *c, const char *shard, const char *what,
                         ChunkLoc *locs /* (depth) */, char *err, size_t err_len) {
    char path[STORE_NAME_MAX + 32];
    snprintf(path, sizeof path, "cases/%s/%s", c->name, what);
    int is_image = !strcmp(what, "image");
    int rank = is_image ? 4 : 3;
    hsize_t want[4] = {(hsize_t)c->depth, (hsize_t)c->channels, (hsize_t)c->height, (hsize_t)c->width};
    if (!is_image) {
        want[1] = (hsize_t)c->height;
        want[2] = (hsize_t)c->width;
    }
    hid_t ds = H5I_INVALID_HID, sp = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, t = H5I_INVALID_HID;
    int rc = -1;
    ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0) {
        error_at(err, err_len, "%s: case %s: dataset /%s missing", shard, c->name, path);
        goto out;
    }
    sp = H5Dget_space(ds);
    hsize_t dims[8];
    if (sp < 0 || H5Sget_simple_extent_ndims(sp) != rank || H5Sget_simple_extent_dims(sp, dims, NULL) != rank ||
        memcmp(dims, want, (size_t)rank * sizeof *dims)) {
        error_at(err, err_len, "%s: case %s: /%s does not have the manifest's shape", shard, c->name, path);
        goto out;
    }
    t = H5Dget_type(ds);
    int type_ok = is_image ? H5Tequal(t, H5T_IEEE_F32LE) > 0 : H5Tequal(t, H5T_STD_U8LE) > 0;
    if (!type_ok) {
        error_at(err, err_len, "%s: case %s: /%s is not %s", shard, c->name, path, is_image ? "float32 LE" : "uint8");
        goto out;
    }
    dcpl = H5Dget_create_plist(ds);
    hsize_t chunk[8];
    if (H5Pget_layout(dcpl) != H5D_CHUNKED || H5Pget_chunk(dcpl, 8, chunk) != rank || chunk[0] != 1 ||
        memcmp(chunk + 1, want + 1, (size_t)(rank - 1) * sizeof *chunk)) {
        error_at(err, err_len, "%s: case %s: /%s is not chunked one slice per chunk", shard, c->name, path);
        goto out;
    }
    static const H5Z_filter_t pipeline[STORE_NFILTERS] = {H5Z_FILTER_SHUFFLE, H5Z_FILTER_DEFLATE, H5Z_FILTER_FLETCHER32};
    int nf = H5Pget_nfilters(dcpl);
    int filters_ok = nf == STORE_NFILTERS;
    for (int i = 0; filters_ok && i < nf; i++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        char fname[64];
        filters_ok = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname, fname, NULL) == pipeline[i];
    }
    if (!filters_ok) {
        error_at(err, err_len, "%s: case %s: /%s does not have the filter pipeline shuffle, deflate, fletcher32",
                  shard, c->name, path);
        goto out;
    }
    size_t slice_bytes = (size_t)c->height * c->width * (is_image ? 4u * (size_t)c->channels : 1u);
    for (int z = 0; z < c->depth; z++) {
        hsize_t off[4] = {(hsize_t)z, 0, 0, 0};
        unsigned mask = 0;
        haddr_t addr = 0;
        hsize_t size = 0;
        if (H5Dget_chunk_info_by_coord(ds, off, &mask, &addr, &size) < 0 || addr == HADDR_UNDEF || size < 4 ||
            size > slice_bytes + slice_bytes / 8 + 1024) {
            error_at(err, err_len, "%s: case %s: slice %d of /%s has no valid chunk", shard, c->name, z, path);
            goto out;
        }
        locs[z].offset = addr;
        locs[z].size = (uint32_t)size;
        locs[z].mask = mask;
    }
    rc = 0;
out:
    if (t >= 0) H5Tclose(t);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    (void)s;
    return rc;
}

/* The case group's geometry attributes (spacing[3], affine[4][4]) against the manifest's: the
 * manifest is what the loader and `predict` use, the shard's copy is what h5py users see, and
 * they must be the same grid. cJSON writes doubles so that they read back exactly, hence the
 * tolerance is only a last-bit one; a real difference is reported with the shard, the case,
 * the field and the entry. */
static int check_geometry(hid_t file, const StoreCase *c, const char *shard, char *err, size_t err_len) {
    char path[STORE_NAME_MAX + 16];
    snprintf(path, sizeof path, "cases/%s", c->name);
    hid_t g = H5Gopen2(file, path, H5P_DEFAULT);
    if (g < 0) return error_at(err, err_len, "%s: case %s: group /%s missing", shard, c->name, path);
    static const char *const names[2] = {"spacing", "affine"};
    const double *want[2] = {c->spacing, c->affine};
    const int count[2] = {3, 16};
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        double got[16];
        hid_t a = H5Aopen(g, names[k], H5P_DEFAULT);
        hid_t sp = a < 0 ? H5I_INVALID_HID : H5Aget_space(a);
        hssize_t npts = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
        if (a < 0 || npts != count[k] || H5Aread(a, H5T_NATIVE_DOUBLE, got) < 0)
            rc = error_at(err, err_len, "%s: case %s: attribute '%s' missing or not %d numbers", shard, c->name,
                          names[k], count[k]);
        for (int i = 0; rc == 0 && i < count[k]; i++) {
            double x = got[i], y = want[k][i];
            if (!(fabs(x - y) <= 1e-12 * fmax(fabs(x), fabs(y))))
                rc = error_at(err, err_len,
                              "%s: case %s: attribute '%s'[%d] is %.17g but the manifest's %s[%d] is %.17g: the shard and "
                              "the manifest disagree",
                              shard, c->name, names[k], i, x, names[k], i, y);
        }
        if (sp >= 0) H5Sclose(sp);
        if (a >= 0) H5Aclose(a);
    }
    H5Gclose(g);
    return rc;
}

/* HDF5 reports chunk addresses relative to the file's base address, which is 0 unless the
 * file has a user block: check once per shard that the first chunk reads back identically
 * through HDF5 and through our descriptor. */
static int check_addressing(hid_t file, int fd, const StoreCase *c, const ChunkLoc *loc, const char *shard,
                            char *err, size_t err_len) {
    char path[STORE_NAME_MAX + 32];
    snprintf(path, sizeof path, "cases/%s/label", c->name);
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    uint8_t *a = xmalloc(loc->size), *b = xmalloc(loc->size);
    hsize_t off[3] = {0, 0, 0};
    uint32_t mask = 0;
    int ok = ds >= 0 && H5Dread_chunk(ds, H5P_DEFAULT, off, &mask, a) >= 0 &&
             pread(fd, b, loc->size, (off_t)loc->offset) == (ssize_t)loc->size && !memcmp(a, b, loc->size);
    if (ds >= 0) H5Dclose(ds);
    free(a);
    free(b);
    return ok ? 0 : error_at(err, err_len, "%s: chunk addresses do not match file offsets (user block?)", shard);
}

/* One shard's cases, read with libhdf5: runs in a child process (isolate.h), since a corrupt
 * shard can crash the library and the store is opened by every rank of a training job. Sends,
 * for each case of the shard in manifest order, its image chunks then its label chunks. */
typedef struct {
    const Store *s;
    int sh;
    const char *path;
} ShardJob;

static int index_shard_step(void *ctx, IsolateOut *out, char *err, size_t err_len) {
    const ShardJob *j = ctx;
    const Store *s = j->s;
    hid_t file = H5Fopen(j->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return error_at(err, err_len, "%s: cannot open as HDF5", j->path);
    int rc = 0, first = 1;
    for (int i = 0; i < s->ncases && rc == 0; i++) {
        const StoreCase *c = &s->cases[i];
        if (c->shard != j->sh) continue;
        ChunkLoc *img = xmalloc((size_t)c->depth * sizeof(ChunkLoc)), *lab = xmalloc((size_t)c->depth * sizeof(ChunkLoc));
        rc = index_dataset(s, file, c, j->path, "image", img, err, err_len);
        if (rc == 0) rc = index_dataset(s, file, c, j->path, "label", lab, err, err_len);
        if (rc == 0) rc = check_geometry(file, c, j->path, err, err_len);
        if (rc == 0 && first) rc = check_addressing(file, s->fds[j->sh], c, &lab[0], j->path, err, err_len);
        first = 0;
        if (rc == 0 && (isolate_put(out, img, (size_t)c->depth * sizeof(ChunkLoc)) ||
                        isolate_put(out, lab, (size_t)c->depth * sizeof(ChunkLoc))))
            rc = error_at(err, err_len, "%s: the reader could not send its results", j->path);
        free(img);
        free(lab);
    }
    H5Fclose(file);
    return rc;
}

static int index_shard(Store *s, int sh, const char *shard_path, char *err, size_t err_len) {
    size_t want = 0;
    for (int i = 0; i < s->ncases; i++)
        if (s->cases[i].shard == sh) want += 2 * (size_t)s->cases[i].depth * sizeof(ChunkLoc);
    ShardJob job = {s, sh, shard_path};
    void *res;
    size_t len;
    if (isolate_run(index_shard_step, &job, shard_path, "HDF5", want, &res, &len, err, err_len)) return -1;
    if (len != want) {
        free(res);
        return error_at(err, err_len, "%s: the reader returned %zu bytes of chunk index, expected %zu", shard_path, len,
                        want);
    }
    const ChunkLoc *p = res;
    for (int i = 0; i < s->ncases; i++) {
        const StoreCase *c = &s->cases[i];
        if (c->shard != sh) continue;
        size_t n = (size_t)c->depth * sizeof(ChunkLoc);
        s->image_chunks[i] = xmalloc(n);
        s->label_chunks[i] = xmalloc(n);
        memcpy(s->image_chunks[i], p, n), p += c->depth;
        memcpy(s->label_chunks[i], p, n), p += c->depth;
    }
    free(res);
    return 0;
}

int store_open(Store **out, const char *dir, char *err, size_t err_len) {
    *out = NULL;
    Store *s = xcalloc(1, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    char mpath[PATH_MAX + 32];
    snprintf(mpath, sizeof mpath, "%s/%s", dir, STORE_MANIFEST);
    char *text = read_text(mpath, err, err_len);
    if (!text) {
        store_close(s);
        return -1;
    }
    cJSON *m = cJSON_Parse(text);
    free(text);
    if (!m) {
        store_close(s);
        return error_at(err, err_len, "%s: not valid JSON", mpath);
    }
    int rc = parse_manifest(s, mpath, m, err, err_len);
    cJSON *shards = cJSON_GetObjectItem(m, "shards");
    /* HDF5 keeps process-wide state; this only silences its own stderr printing, since every
     * failure is reported here with the store, case and dataset. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (int sh = 0; rc == 0 && sh < s->nshards; sh++) {
        cJSON *file = cJSON_GetObjectItem(cJSON_GetArrayItem(shards, sh), "file");
        if (!cJSON_IsString(file) || strchr(file->valuestring, '/') || strlen(file->valuestring) >= STORE_NAME_MAX) {
            rc = error_at(err, err_len, "%s: shards[%d].file missing or not a plain file name", mpath, sh);
            break;
        }
        snprintf(s->shard_files[sh], STORE_NAME_MAX, "%s", file->valuestring);
        char spath[PATH_MAX + 300];
        snprintf(spath, sizeof spath, "%s/%s", dir, file->valuestring);
        /* a regular file, checked on the descriptor that is kept (HDF5 opens the same name next) */
        s->fds[sh] = fc_open_regular(spath, "store shard", NULL, err, err_len);
        if (s->fds[sh] < 0) {
            rc = -1;
            break;
        }
        rc = index_shard(s, sh, spath, err, err_len);
    }
    cJSON_Delete(m);
    if (rc != 0) {
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

/* ---- reading ------------------------------------------------------------------------------ */

/* One chunk: read, verify Fletcher-32, inflate, unshuffle into out (raw_bytes). */
static int read_chunk(const Store *s, const StoreCase *c, int z, const char *what, const ChunkLoc *loc,
                      size_t elem_size, uint8_t *out /* (raw_bytes) */, size_t raw_bytes, char *err, size_t err_len) {
    uint8_t *buf = malloc(loc->size + raw_bytes);
    if (!buf) return error_at(err, err_len, "%s: case %s slice %d: out of memory", s->dir, c->name, z);
    uint8_t *tmp = buf + loc->size;
    int rc = -1;
    ssize_t got = pread(s->fds[c->shard], buf, loc->size, (off_t)loc->offset);
    if (got != (ssize_t)loc->size) {
        error_at(err, err_len, "%s: case %s slice %d: %s chunk: %s", s->dir, c->name, z, what,
                  got < 0 ? strerror(errno) : "shard file is truncated");
        goto out;
    }
    /* Filters were applied shuffle -> deflate -> fletcher32; undo them in reverse. */
    size_t n = loc->size;
    if (!(loc->mask & 4u)) {
        n -= 4;
        uint32_t stored = (uint32_t)buf[n] | (uint32_t)buf[n + 1] << 8 | (uint32_t)buf[n + 2] << 16 | (uint32_t)buf[n + 3] << 24;
        if (store_fletcher32(buf, n) != stored) {
            error_at(err, err_len, "%s: case %s slice %d: %s chunk fails its Fletcher-32 checksum (corrupted shard file %s)",
                      s->dir, c->name, z, what, s->shard_files[c->shard]);
            goto out;
        }
    }
    uint8_t *src = buf;
    if (!(loc->mask & 2u)) {
        uLongf dlen = (uLongf)raw_bytes;
        int zr = uncompress(tmp, &dlen, buf, (uLong)n);
        if (zr != Z_OK || dlen != raw_bytes) {
            error_at(err, err_len, "%s: case %s slice %d: %s chunk does not inflate to %zu bytes (zlib %d)", s->dir,
                      c->name, z, what, raw_bytes, zr);
            goto out;
        }
        src = tmp;
    } else if (n != raw_bytes) {
        error_at(err, err_len, "%s: case %s slice %d: %s chunk has %zu bytes, expected %zu", s->dir, c->name, z, what,
                  n, raw_bytes);
        goto out;
    }
    if (!(loc->mask & 1u)) store_unshuffle(out, src, raw_bytes, elem_size);
    else memcpy(out, src, raw_bytes);
    rc = 0;
out:
    free(buf);
    return rc;
}

int store_read_slice(const Store *s, int case_idx, int z, float *image, int32_t *label, char *err, size_t err_len) {
    if (case_idx < 0 || case_idx >= s->ncases)
        return error_at(err, err_len, "%s: case index %d out of range 0..%d", s->dir, case_idx, s->ncases - 1);
    const StoreCase *c = &s->cases[case_idx];
    if (z < 0 || z >= c->depth)
        return error_at(err, err_len, "%s: case %s: slice %d out of range 0..%d", s->dir, c->name, z, c->depth - 1);
    size_t hw = (size_t)c->height * c->width;
    if (image) {
        /* Stored little-endian float32, unshuffled straight into the caller's buffer. */
        if (read_chunk(s, c, z, "image", &s->image_chunks[case_idx][z], 4, (uint8_t *)image, hw * c->channels * 4,
                       err, err_len))
            return -1;
    }
    if (label) {
        uint8_t *raw = malloc(hw);
        if (!raw) return error_at(err, err_len, "%s: out of memory", s->dir);
        int rc = read_chunk(s, c, z, "label", &s->label_chunks[case_idx][z], 1, raw, hw, err, err_len);
        if (rc == 0)
            for (size_t i = 0; i < hw; i++) label[i] = raw[i];
        free(raw);
        if (rc) return -1;
    }
    return 0;
}
