/* import_common.c — see import_common.h. */
#include "import_common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "file_check.h"
#include "store_format.h"

int imp_writer(const PrepareOptions *o, const char *const *classes, int nclasses, int channels, StoreWriter **w,
               char *err, size_t err_len) {
    StoreWriterOptions wo = {.dataset = o->dataset, .description = o->command_line, .num_classes = nclasses,
                             .class_names = classes, .channels = channels, .shard_mb = o->shard_mb, .force = o->force};
    return store_writer_create(w, o->out, &wo, err, err_len);
}

int imp_check_finite(const char *file, const float *x, int nx, int ny, int nz, int nc, char *err, size_t err_len) {
    size_t n = (size_t)nx * ny * nz * nc;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            size_t v = i % ((size_t)nx * ny * nz);
            int c = (int)(i / ((size_t)nx * ny * nz));
            int xx = (int)(v % nx), yy = (int)(v / nx % ny), zz = (int)(v / ((size_t)nx * ny));
            if (nc > 1)
                return error_at(err, err_len, "%s: %s intensity at voxel (x=%d, y=%d, z=%d), channel %d", file,
                                 isnan(x[i]) ? "NaN" : "infinite", xx, yy, zz, c);
            return error_at(err, err_len, "%s: %s intensity at voxel (x=%d, y=%d, z=%d)", file,
                             isnan(x[i]) ? "NaN" : "infinite", xx, yy, zz);
        }
    return 0;
}

int imp_map_labels(const char *file, const float *src, uint8_t *dst, int nx, int ny, int nz, const int *map,
                   int map_len, char *err, size_t err_len) {
    size_t n = (size_t)nx * ny * nz;
    for (size_t i = 0; i < n; i++) {
        float v = src[i];
        int ok = isfinite(v) && v == floorf(v) && v >= 0 && v < map_len && map[(int)v] >= 0;
        if (!ok) {
            int xx = (int)(i % nx), yy = (int)(i / nx % ny), zz = (int)(i / ((size_t)nx * ny));
            int first = -1, last = -1;
            for (int k = 0; k < map_len; k++)
                if (map[k] >= 0) {
                    if (first < 0) first = k;
                    last = k;
                }
            return error_at(err, err_len,
                             "%s: label id %g at voxel (x=%d, y=%d, z=%d) is outside the mapping (expected an integer "
                             "in %d..%d)",
                             file, (double)v, xx, yy, zz, first, last);
        }
        dst[i] = (uint8_t)map[(int)v];
    }
    return 0;
}

void imp_norm_clip(float *x, size_t n, float lo, float hi) {
    float s = 1.0f / (hi - lo);
    for (size_t i = 0; i < n; i++) x[i] = (fminf(fmaxf(x[i], lo), hi) - lo) * s;
}

void imp_norm_clip_zscore(float *x, size_t n, float lo, float hi, float mean, float sd) {
    for (size_t i = 0; i < n; i++) x[i] = (fminf(fmaxf(x[i], lo), hi) - mean) / sd;
}

void imp_norm_zscore(float *x, size_t n, int nc) {
    for (int c = 0; c < nc; c++) {
        float *p = x + (size_t)c * n;
        double s = 0, ss = 0;
        for (size_t i = 0; i < n; i++) s += p[i];
        double m = s / (double)n;
        for (size_t i = 0; i < n; i++) ss += (p[i] - m) * (p[i] - m);
        double sd = sqrt(ss / (double)n);
        if (sd < 1e-8) sd = 1e-8;
        for (size_t i = 0; i < n; i++) p[i] = (float)((p[i] - m) / sd);
    }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void imp_sort(float *v, size_t n) { qsort(v, n, sizeof *v, cmp_float); }

double imp_percentile_sorted(const float *v, size_t n, double p) {
    if (n == 0) return 0;
    double pos = p / 100.0 * (double)(n - 1);
    size_t i = (size_t)floor(pos);
    if (i + 1 >= n) return v[n - 1];
    double f = pos - (double)i;
    return v[i] + f * (v[i + 1] - v[i]);
}

const char *imp_split_name(SplitKind k) { return k == SPLIT_TRAIN ? "train" : k == SPLIT_VAL ? "val" : "test"; }

int imp_read_split(const char *path, int *ids, SplitKind *kinds, int max, char *err, size_t err_len) {
    /* a FIFO would block fopen() forever */
    int fd = fc_open_regular(path, "split file", NULL, err, err_len);
    if (fd < 0) return -1;
    FILE *fp = fdopen(fd, "r");
    if (!fp) {
        close(fd);
        return error_at(err, err_len, "%s: cannot open split file: %s", path, strerror(errno));
    }
    char line[512];
    int n = 0, ln = 0;
    while (fgets(line, sizeof line, fp)) {
        ln++;
        char *h = strchr(line, '#');
        if (h) *h = 0;
        char word[32], extra[8];
        long id;
        int k = sscanf(line, "%31s %ld %7s", word, &id, extra);
        if (k <= 0) continue;
        SplitKind kind;
        if (k != 2 || id < 0 || id > 99999) {
            fclose(fp);
            return error_at(err, err_len, "%s:%d: expected `<train|val|test> <case number>`", path, ln);
        }
        if (!strcmp(word, "train")) kind = SPLIT_TRAIN;
        else if (!strcmp(word, "val")) kind = SPLIT_VAL;
        else if (!strcmp(word, "test")) kind = SPLIT_TEST;
        else {
            fclose(fp);
            return error_at(err, err_len, "%s:%d: split '%s' (expected train, val or test)", path, ln, word);
        }
        for (int i = 0; i < n; i++)
            if (ids[i] == id) {
                fclose(fp);
                return error_at(err, err_len, "%s:%d: case %ld listed twice", path, ln, id);
            }
        if (n == max) {
            fclose(fp);
            return error_at(err, err_len, "%s:%d: more than %d cases", path, ln, max);
        }
        ids[n] = (int)id;
        kinds[n++] = kind;
    }
    fclose(fp);
    if (n == 0) return error_at(err, err_len, "%s: no cases listed", path);
    return n;
}

void imp_identity_geometry(double spacing[3], double affine[16]) {
    for (int i = 0; i < 3; i++) spacing[i] = 1;
    for (int i = 0; i < 16; i++) affine[i] = (i % 5 == 0) ? 1 : 0;
}

char *imp_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

int imp_file_exists(const char *path) { return access(path, F_OK) == 0; }

void imp_progress(const PrepareOptions *o, const char *fmt, ...) {
    if (o->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
