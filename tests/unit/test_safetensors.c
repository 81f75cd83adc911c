/* test_safetensors.c — safetensors reader/writer: round trip of every dtype (with metadata,
 * 0-d and empty tensors), rejection of corrupt files with messages naming the file and the
 * tensor, realignment of misaligned tensors, and atomic writes that leave nothing behind on
 * failure. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "testutil.h"

static char g_dir[256];

static void path_in(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", g_dir, name); }

/* Number of directory entries other than . and .. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* A raw file: 8-byte length (hlen_field, or the JSON length when < 0), the JSON, then data. */
static void write_raw(const char *path, const char *json, long long hlen_field, const void *data, size_t data_len) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    uint64_t h = hlen_field < 0 ? (uint64_t)strlen(json) : (uint64_t)hlen_field;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(h >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(json, 1, strlen(json), f);
    if (data_len) fwrite(data, 1, data_len, f);
    fclose(f);
}

/* st_read must fail, leave the StFile empty, and name the file plus every string in `must`. */
static void expect_reject(const char *what, const char *path, const char *must1, const char *must2) {
    StFile f;
    char err[512] = "";
    int rc = st_read(&f, path, err, sizeof err);
    int named = strstr(err, path) != NULL && (!must1 || strstr(err, must1)) && (!must2 || strstr(err, must2));
    int empty = f.n_tensors == 0 && f.buf == NULL && f.tensors == NULL && f.path == NULL;
    TEST_CHECK(rc == -1 && named && empty, "reject %s: rc %d, message \"%s\"", what, rc, err);
    st_free(&f); /* harmless on the emptied struct */
}

static void test_round_trip(void) {
    char path[512];
    path_in(path, sizeof path, "rt.safetensors");
    float a[6] = {1.5f, -2.25f, 3e-38f, 1e38f, 0.0f, -0.0f};
    int32_t b[4] = {0, -1, 2147483647, -2147483647 - 1};
    int64_t c[4] = {INT64_MAX, INT64_MIN, 42, -7};
    float scalar = 3.25f;
    int32_t odd[3] = {7, 8, 9}; /* 12 bytes: the I64 after it lands at a 4 mod 8 offset */
    int64_t after_odd[2] = {1234567890123LL, -5};
    float eight_d[2 * 1 * 1 * 1 * 1 * 1 * 1 * 2] = {1, 2, 3, 4};

    StFile w;
    st_init(&w);
    st_add_meta(&w, "format", "pt");
    st_add_meta(&w, "note", "quote \" backslash \\ newline \n tab \t unicode \xc3\xa9");
    st_add_meta(&w, "format", "np"); /* repeated key replaces */
    st_add(&w, "a", ST_F32, 2, (int64_t[]){2, 3}, a);
    st_add(&w, "b", ST_I32, 1, (int64_t[]){4}, b);
    st_add(&w, "c", ST_I64, 2, (int64_t[]){2, 2}, c);
    st_add(&w, "scalar", ST_F32, 0, NULL, &scalar);
    st_add(&w, "empty", ST_F32, 2, (int64_t[]){0, 5}, NULL);
    st_add(&w, "empty_i64", ST_I64, 1, (int64_t[]){0}, NULL);
    st_add(&w, "odd", ST_I32, 1, (int64_t[]){3}, odd);
    st_add(&w, "after_odd", ST_I64, 1, (int64_t[]){2}, after_odd);
    st_add(&w, "eight_d", ST_F32, 8, (int64_t[]){2, 1, 1, 1, 1, 1, 1, 2}, eight_d);
    char err[512] = "";
    int rc = st_write_file(&w, path, err, sizeof err);
    TEST_CHECK(rc == 0, "write round-trip file: %s", rc == 0 ? "ok" : err);
    TEST_CHECK(count_entries(g_dir) == 1, "no temporary file left beside the output (%d entries)",
               count_entries(g_dir));

    /* Layout: header length multiple of 8 and data contiguous. */
    FILE *fp = fopen(path, "rb");
    unsigned char le[8] = {0};
    size_t got = fp ? fread(le, 1, 8, fp) : 0;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | le[i];
    if (fp) fseek(fp, 0, SEEK_END);
    long size = fp ? ftell(fp) : -1;
    if (fp) fclose(fp);
    size_t data = sizeof a + sizeof b + sizeof c + sizeof scalar + sizeof odd + sizeof after_odd + sizeof eight_d;
    TEST_CHECK(got == 8 && hlen % 8 == 0 && (uint64_t)size == 8 + hlen + data,
               "header length %llu is a multiple of 8 and file size %ld = 8 + header + %zu data bytes",
               (unsigned long long)hlen, size, data);

    StFile r;
    rc = st_read(&r, path, err, sizeof err);
    TEST_CHECK(rc == 0, "read round-trip file: %s", rc == 0 ? "ok" : err);
    if (rc != 0) {
        st_free(&w);
        return;
    }
    TEST_CHECK(r.n_tensors == w.n_tensors, "tensor count %d == %d", r.n_tensors, w.n_tensors);
    int all_ok = 1;
    for (int i = 0; i < w.n_tensors && i < r.n_tensors; i++) {
        const StTensor *x = &w.tensors[i], *y = &r.tensors[i];
        int ok = strcmp(x->name, y->name) == 0 && x->dtype == y->dtype && x->ndim == y->ndim &&
                 x->nbytes == y->nbytes && (x->nbytes == 0 || memcmp(x->data, y->data, x->nbytes) == 0) &&
                 ((uintptr_t)y->data % st_dtype_size(y->dtype) == 0 || y->nbytes == 0);
        for (int d = 0; d < x->ndim; d++) ok = ok && x->shape[d] == y->shape[d];
        if (!ok) printf("  mismatch in tensor %d '%s'\n", i, x->name);
        all_ok = all_ok && ok;
    }
    TEST_CHECK(all_ok, "every tensor (F32, I32, I64, 0-d, empty, 8-d) round-trips in order, bytes equal, aligned");
    const StTensor *s = st_find(&r, "scalar");
    TEST_CHECK(s && s->ndim == 0 && s->nbytes == 4 && *(const float *)s->data == 3.25f, "0-d tensor value");
    const StTensor *ao = st_find(&r, "after_odd");
    TEST_CHECK(ao && ((const int64_t *)ao->data)[0] == 1234567890123LL && (uintptr_t)ao->data % 8 == 0,
               "I64 at a 4-mod-8 file offset is read aligned and intact");
    TEST_CHECK(st_find(&r, "nope") == NULL, "st_find of an absent name is NULL");
    const char *fmt = st_meta_get(&r, "format"), *note = st_meta_get(&r, "note");
    TEST_CHECK(r.n_meta == 2 && fmt && strcmp(fmt, "np") == 0 && note &&
                   strcmp(note, "quote \" backslash \\ newline \n tab \t unicode \xc3\xa9") == 0 &&
                   st_meta_get(&r, "absent") == NULL,
               "metadata round-trips (escapes, UTF-8, replaced key)");
    st_free(&r);
    TEST_CHECK(r.buf == NULL && r.tensors == NULL && r.n_tensors == 0, "st_free empties the reader");

    /* Overwriting an existing file replaces it whole. */
    StFile w2;
    st_init(&w2);
    st_add(&w2, "only", ST_F32, 1, (int64_t[]){1}, &scalar);
    rc = st_write_file(&w2, path, err, sizeof err);
    rc = rc == 0 ? st_read(&r, path, err, sizeof err) : rc;
    TEST_CHECK(rc == 0 && r.n_tensors == 1 && r.n_meta == 0 && st_find(&r, "only"),
               "overwrite replaces the old file: %s", rc == 0 ? "ok" : err);
    if (rc == 0) st_free(&r);
    st_free(&w2);
    st_free(&w);
    unlink(path);
}

static void test_misaligned_header(void) {
    /* A header not padded to 8 bytes (other writers may do this): every tensor is misaligned. */
    char path[512];
    path_in(path, sizeof path, "unpadded.safetensors");
    const char *json = "{\"x\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                       "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}}";
    unsigned char data[20];
    int64_t xv[2] = {-3, 1LL << 40};
    float yv = 0.5f;
    memcpy(data, xv, 16);
    memcpy(data + 16, &yv, 4);
    TEST_CHECK((8 + strlen(json)) % 4 != 0, "test header really is misaligned (%zu)", strlen(json));
    write_raw(path, json, -1, data, sizeof data);
    StFile r;
    char err[512];
    int rc = st_read(&r, path, err, sizeof err);
    TEST_CHECK(rc == 0, "read unpadded header: %s", rc == 0 ? "ok" : err);
    if (rc == 0) {
        const StTensor *x = st_find(&r, "x"), *y = st_find(&r, "y");
        TEST_CHECK(x && y && (uintptr_t)x->data % 8 == 0 && (uintptr_t)y->data % 4 == 0 &&
                       ((const int64_t *)x->data)[0] == -3 && ((const int64_t *)x->data)[1] == (1LL << 40) &&
                       *(const float *)y->data == 0.5f,
                   "misaligned tensors are realigned with intact values");
        st_free(&r);
    }
    unlink(path);
}

static void test_corrupt(void) {
    char p[512];
    float four[4] = {1, 2, 3, 4};

    path_in(p, sizeof p, "missing.safetensors");
    expect_reject("nonexistent file", p, NULL, NULL);

    path_in(p, sizeof p, "short.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite("\x10\0\0", 1, 3, f);
    fclose(f);
    expect_reject("file shorter than 8 bytes", p, NULL, NULL);

    /* Truncated: a valid file cut short in its data. */
    path_in(p, sizeof p, "trunc.safetensors");
    StFile w;
    st_init(&w);
    st_add(&w, "weights", ST_F32, 1, (int64_t[]){4}, four);
    char err[512];
    int rc = st_write_file(&w, p, err, sizeof err);
    st_free(&w);
    struct stat sb;
    stat(p, &sb);
    rc = rc == 0 ? truncate(p, sb.st_size - 5) : rc;
    TEST_CHECK(rc == 0, "made a truncated file");
    expect_reject("truncated file", p, "weights", NULL);

    path_in(p, sizeof p, "hlen.safetensors");
    write_raw(p, "{}", 4096, NULL, 0);
    expect_reject("header length beyond the file", p, "header length", NULL);
    write_raw(p, "{}", (long long)1 << 40, NULL, 0);
    expect_reject("absurd header length", p, "header length", NULL);

    path_in(p, sizeof p, "json.safetensors");
    write_raw(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], ", -1, four, 4);
    expect_reject("bad JSON", p, "JSON", NULL);
    write_raw(p, "[1, 2]", -1, NULL, 0);
    expect_reject("JSON that is not an object", p, "object", NULL);
    write_raw(p, "{}  x     ", -1, NULL, 0);
    expect_reject("garbage after the JSON", p, "garbage", NULL);

    path_in(p, sizeof p, "range.safetensors");
    write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"late\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
              -1, four, 16);
    expect_reject("offsets out of range", p, "'late'", NULL);

    path_in(p, sizeof p, "overlap.safetensors");
    write_raw(p, "{\"first\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                 "\"second\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
              -1, four, 16);
    expect_reject("overlapping tensors", p, "'first'", "'second'");

    path_in(p, sizeof p, "mismatch.safetensors");
    write_raw(p, "{\"m\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", -1, four, 16);
    expect_reject("shape larger than its offsets", p, "'m'", NULL);
    write_raw(p, "{\"m3\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", -1, four, 16);
    expect_reject("shape/offset mismatch", p, "'m3'", "need 12");
    write_raw(p, "{\"m64\":{\"dtype\":\"I64\",\"shape\":[4],\"data_offsets\":[0,16]}}", -1, four, 16);
    expect_reject("dtype size/offset mismatch", p, "'m64'", NULL);
    write_raw(p, "{\"huge\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,16]}}", -1,
              four, 16);
    expect_reject("shape whose byte size overflows", p, "'huge'", NULL);

    path_in(p, sizeof p, "f16.safetensors");
    write_raw(p, "{\"half\":{\"dtype\":\"F16\",\"shape\":[8],\"data_offsets\":[0,16]}}", -1, four, 16);
    expect_reject("unknown dtype F16", p, "'half'", "F16");

    path_in(p, sizeof p, "shape.safetensors");
    write_raw(p, "{\"neg\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", -1, four, 16);
    expect_reject("negative shape", p, "'neg'", NULL);
    write_raw(p, "{\"frac\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,16]}}", -1, four, 16);
    expect_reject("fractional shape", p, "'frac'", NULL);
    write_raw(p, "{\"rev\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", -1, four, 16);
    expect_reject("reversed offsets", p, "'rev'", NULL);
    write_raw(p, "{\"nodt\":{\"shape\":[4],\"data_offsets\":[0,16]}}", -1, four, 16);
    expect_reject("missing dtype", p, "'nodt'", NULL);
    write_raw(p, "{\"d\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"d\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
              -1, four, 16);
    expect_reject("duplicate tensor name", p, "'d'", NULL);
    write_raw(p, "{\"__metadata__\":{\"k\":3}}", -1, NULL, 0);
    expect_reject("non-string metadata value", p, "'k'", NULL);
}

static void test_write_failures(void) {
    float x[2] = {1, 2};
    StFile w;
    st_init(&w);
    st_add(&w, "x", ST_F32, 1, (int64_t[]){2}, x);
    char err[1024], p[600];

    /* Directory that does not exist. */
    path_in(p, sizeof p, "no/such/dir/out.safetensors");
    err[0] = '\0';
    int rc = st_write_file(&w, p, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, p), "write into a missing directory fails: \"%s\"", err);

    /* Final name is a non-empty directory: the temp file is written, rename fails, and the
     * temp file must be removed. Works even as root, unlike permission bits. */
    char sub[512];
    path_in(sub, sizeof sub, "target");
    mkdir(sub, 0755);
    char inner[600];
    snprintf(inner, sizeof inner, "%s/keep", sub);
    fclose(fopen(inner, "wb"));
    int before = count_entries(g_dir);
    err[0] = '\0';
    rc = st_write_file(&w, sub, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, sub) && count_entries(g_dir) == before,
               "rename onto a directory fails and leaves no temp file (%d -> %d entries): \"%s\"", before,
               count_entries(g_dir), err);
    unlink(inner);
    rmdir(sub);

    /* Read-only directory (meaningless for root, who ignores permission bits). */
    char ro[512];
    path_in(ro, sizeof ro, "ro");
    mkdir(ro, 0555);
    snprintf(p, sizeof p, "%s/out.safetensors", ro);
    if (geteuid() != 0) {
        err[0] = '\0';
        rc = st_write_file(&w, p, err, sizeof err);
        TEST_CHECK(rc == -1 && strstr(err, p) && count_entries(ro) == 0,
                   "write into a read-only directory fails cleanly, nothing left: \"%s\"", err);
    } else {
        printf("note: running as root; read-only directory case replaced by the two above\n");
    }
    rmdir(ro);

    /* Bad requests are refused before anything touches the disk. */
    StFile bad;
    st_init(&bad);
    st_add(&bad, "dup", ST_F32, 1, (int64_t[]){2}, x);
    st_add(&bad, "dup", ST_F32, 1, (int64_t[]){2}, x);
    path_in(p, sizeof p, "dup.safetensors");
    before = count_entries(g_dir);
    rc = st_write_file(&bad, p, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, "'dup'") && count_entries(g_dir) == before,
               "duplicate tensor names refused: \"%s\"", err);
    st_free(&bad);
    st_init(&bad);
    st_add(&bad, "nodata", ST_F32, 1, (int64_t[]){2}, NULL);
    rc = st_write_file(&bad, p, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, "'nodata'") && count_entries(g_dir) == before,
               "tensor without data refused: \"%s\"", err);
    st_free(&bad);
    st_free(&w);
}

static void rm_tree_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/test_safetensors_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_misaligned_header();
    test_corrupt();
    test_write_failures();
    rm_tree_files(g_dir);
    return test_summary("test_safetensors");
}
