/* safetensors.c — see safetensors.h.
 *
 * Reader: the whole file is read into one buffer and the header is validated before any
 * tensor is exposed, so a corrupt file is reported (file + tensor) instead of crashing a
 * later consumer. Writer: header JSON built with cJSON (insertion order), padded with
 * spaces to a multiple of 8 bytes like the reference implementation, tensors contiguous
 * in insertion order, written to a temporary file that is fsynced and renamed over the
 * final name, so a reader never sees a partial file. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "file_check.h"
#include "resource_limits.h"

/* The reference implementation refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
/* Integers in the header arrive as JSON doubles: beyond 2^53 they are not exact. */
#define ST_MAX_JSON_INT 9007199254740992.0

size_t st_dtype_size(StDtype dt) {
    switch (dt) {
    case ST_F32: return 4;
    case ST_I32: return 4;
    case ST_I64: return 8;
    }
    return 0;
}

const char *st_dtype_name(StDtype dt) {
    switch (dt) {
    case ST_F32: return "F32";
    case ST_I32: return "I32";
    case ST_I64: return "I64";
    }
    return "?";
}

static int parse_dtype(const char *s, StDtype *dt) {
    if (strcmp(s, "F32") == 0) *dt = ST_F32;
    else if (strcmp(s, "I32") == 0) *dt = ST_I32;
    else if (strcmp(s, "I64") == 0) *dt = ST_I64;
    else return -1;
    return 0;
}

static void set_err(char *err, size_t err_len, const char *fmt, ...) UNET_PRINTF(3, 4);
static void set_err(char *err, size_t err_len, const char *fmt, ...) {
    if (!err || err_len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* ---- shared bookkeeping ------------------------------------------------------------ */

void st_init(StFile *f) { memset(f, 0, sizeof *f); }

static StTensor *push_tensor(StFile *f) {
    if (f->n_tensors == f->cap_tensors) {
        int cap = f->cap_tensors ? 2 * f->cap_tensors : 16;
        StTensor *t = realloc(f->tensors, (size_t)cap * sizeof *t);
        if (!t) die("out of memory growing the tensor list of a safetensors file");
        f->tensors = t;
        f->cap_tensors = cap;
    }
    StTensor *t = &f->tensors[f->n_tensors++];
    memset(t, 0, sizeof *t);
    return t;
}

static void push_meta(StFile *f, const char *key, const char *value) {
    if (f->n_meta == f->cap_meta) {
        int cap = f->cap_meta ? 2 * f->cap_meta : 8;
        StMeta *m = realloc(f->meta, (size_t)cap * sizeof *m);
        if (!m) die("out of memory growing the metadata list of a safetensors file");
        f->meta = m;
        f->cap_meta = cap;
    }
    f->meta[f->n_meta].key = xstrdup(key);
    f->meta[f->n_meta].value = xstrdup(value);
    f->n_meta++;
}

void st_free(StFile *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->tensors);
    free(f->meta);
    free(f->buf);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_meta_get(const StFile *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

/* ---- reader -------------------------------------------------------------------------- */

/* A JSON number that must be a non-negative integer exactly representable in a double. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0) || d > ST_MAX_JSON_INT || floor(d) != d) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int read_whole_file(const char *path, unsigned char **buf_out, size_t *len_out, char *err,
                           size_t err_len) {
    /* fopen() of a FIFO blocks until a writer appears: check the type on a non-blocking open */
    int fd = fc_open_regular(path, "safetensors file", NULL, err, err_len);
    if (fd < 0) return -1;
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        set_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) {
        set_err(err, err_len, "%s: cannot stat: %s", path, strerror(errno));
        fclose(fp);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        set_err(err, err_len, "%s: not a regular file", path);
        fclose(fp);
        return -1;
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) {
        set_err(err, err_len, "%s: out of memory reading %zu bytes", path, len);
        fclose(fp);
        return -1;
    }
    size_t got = len ? fread(buf, 1, len, fp) : 0;
    if (got != len) {
        set_err(err, err_len, "%s: read %zu of %zu bytes: %s", path, got, len,
                ferror(fp) ? strerror(errno) : "file shrank while reading");
        free(buf);
        fclose(fp);
        return -1;
    }
    fclose(fp);
    *buf_out = buf;
    *len_out = len;
    return 0;
}

typedef struct {
    uint64_t begin, end;
    int index;
} Span;

static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Parses one tensor entry into t (name already set); returns -1 with err set on any problem. */
static int parse_tensor_entry(const char *path, const cJSON *e, StTensor *t, uint64_t data_len,
                              uint64_t *begin_out, char *err, size_t err_len) {
    const char *name = t->name;
    if (!cJSON_IsObject(e)) {
        set_err(err, err_len, "%s: tensor '%s': header entry is not a JSON object", path, name);
        return -1;
    }
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo)) {
        set_err(err, err_len, "%s: tensor '%s': needs string 'dtype', array 'shape' and array 'data_offsets'",
                path, name);
        return -1;
    }
    if (parse_dtype(jd->valuestring, &t->dtype) != 0) {
        set_err(err, err_len, "%s: tensor '%s' has unsupported dtype %s (only F32, I32, I64)", path, name,
                jd->valuestring);
        return -1;
    }
    int ndim = cJSON_GetArraySize(js);
    if (ndim > ST_MAX_DIMS) {
        set_err(err, err_len, "%s: tensor '%s' has %d dimensions (at most %d)", path, name, ndim, ST_MAX_DIMS);
        return -1;
    }
    t->ndim = ndim;
    /* numel * itemsize must not overflow: track it against the data region size, which
     * bounds every valid tensor anyway. */
    uint64_t nbytes = st_dtype_size(t->dtype);
    int zero = 0;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, js) {
        uint64_t s;
        if (json_uint(d, &s) != 0) {
            set_err(err, err_len, "%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, i);
            return -1;
        }
        t->shape[i++] = (int64_t)s;
        if (s == 0) zero = 1;
        else if (!zero) {
            if (nbytes > data_len / s) nbytes = data_len + 1; /* saturate: larger than any valid span */
            else nbytes *= s;
        }
    }
    if (zero) nbytes = 0;
    /* The resource policy: no tensor above UNET_MAX_TENSOR_BYTES, and no shape whose element
     * count (zero dimensions aside) would overflow a consumer's size arithmetic. */
    int64_t numel_nonzero;
    {
        int64_t dims[ST_MAX_DIMS];
        for (int k = 0; k < ndim; k++) dims[k] = t->shape[k] ? t->shape[k] : 1;
        if (unet_checked_product(dims, ndim, (int64_t)UNET_MAX_TENSOR_BYTES, &numel_nonzero) ||
            (uint64_t)numel_nonzero * st_dtype_size(t->dtype) > UNET_MAX_TENSOR_BYTES) {
            set_err(err, err_len, "%s: tensor '%s': field 'shape' declares more than the %llu-byte tensor limit", path,
                    name, (unsigned long long)UNET_MAX_TENSOR_BYTES);
            return -1;
        }
    }
    if (cJSON_GetArraySize(jo) != 2) {
        set_err(err, err_len, "%s: tensor '%s': data_offsets must have 2 entries", path, name);
        return -1;
    }
    uint64_t b, en;
    if (json_uint(cJSON_GetArrayItem(jo, 0), &b) != 0 || json_uint(cJSON_GetArrayItem(jo, 1), &en) != 0) {
        set_err(err, err_len, "%s: tensor '%s': data_offsets are not non-negative integers", path, name);
        return -1;
    }
    if (b > en) {
        set_err(err, err_len, "%s: tensor '%s': data_offsets [%llu, %llu] are reversed", path, name,
                (unsigned long long)b, (unsigned long long)en);
        return -1;
    }
    if (en > data_len) {
        set_err(err, err_len,
                "%s: tensor '%s': data_offsets [%llu, %llu] run past the data region (%llu bytes; file truncated?)",
                path, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)data_len);
        return -1;
    }
    if (nbytes > data_len) {
        set_err(err, err_len, "%s: tensor '%s': dtype %s and its shape need more bytes than the data region holds (%llu)",
                path, name, st_dtype_name(t->dtype), (unsigned long long)data_len);
        return -1;
    }
    if (en - b != nbytes) {
        set_err(err, err_len,
                "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but dtype %s and the shape need %llu",
                path, name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b),
                st_dtype_name(t->dtype), (unsigned long long)nbytes);
        return -1;
    }
    t->nbytes = (size_t)nbytes;
    *begin_out = b;
    return 0;
}

int st_read(StFile *out, const char *path, char *err, size_t err_len) {
    st_init(out);
    unsigned char *buf = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    uint64_t *begins = NULL;
    Span *spans = NULL;
    if (read_whole_file(path, &buf, &len, err, err_len) != 0) return -1;
    out->path = xstrdup(path);
    out->buf = buf;
    out->buf_len = len;

    if (len < 8) {
        set_err(err, err_len, "%s: file is %zu bytes, too short for a safetensors header", path, len);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i]; /* little-endian */
    if (hlen > ST_MAX_HEADER) {
        set_err(err, err_len, "%s: header length %llu is implausible (over %llu bytes)", path,
                (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > len - 8) {
        set_err(err, err_len, "%s: header length %llu runs past the end of the file (%zu bytes; truncated?)", path,
                (unsigned long long)hlen, len);
        goto fail;
    }
    if (hlen < 2) {
        set_err(err, err_len, "%s: header length %llu is too short for a JSON object", path,
                (unsigned long long)hlen);
        goto fail;
    }
    const char *hdr = (const char *)buf + 8;
    const char *parse_end = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &parse_end, 0);
    if (!root) {
        const char *where = cJSON_GetErrorPtr();
        long off = (where && where >= hdr && where <= hdr + hlen) ? (long)(where - hdr) : -1;
        set_err(err, err_len, "%s: header is not valid JSON (error near byte %ld of the header)", path, off);
        goto fail;
    }
    /* Anything after the JSON value must be padding whitespace. */
    for (const char *p = parse_end; p && p < hdr + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            set_err(err, err_len, "%s: header has trailing garbage after the JSON object (byte %ld)", path,
                    (long)(p - hdr));
            goto fail;
        }
    }
    if (!cJSON_IsObject(root)) {
        set_err(err, err_len, "%s: header JSON is not an object", path);
        goto fail;
    }

    uint64_t data_start = 8 + hlen;
    uint64_t data_len = len - data_start;
    int n_entries = cJSON_GetArraySize(root);
    begins = xcalloc((size_t)(n_entries ? n_entries : 1), sizeof *begins);
    const cJSON *e;
    int seen_meta = 0;
    cJSON_ArrayForEach(e, root) {
        const char *name = e->string ? e->string : "";
        if (strcmp(name, "__metadata__") == 0) {
            if (seen_meta++) {
                set_err(err, err_len, "%s: '__metadata__' appears twice", path);
                goto fail;
            }
            if (!cJSON_IsObject(e)) {
                set_err(err, err_len, "%s: '__metadata__' is not a JSON object", path);
                goto fail;
            }
            const cJSON *m;
            cJSON_ArrayForEach(m, e) {
                if (!cJSON_IsString(m)) {
                    set_err(err, err_len, "%s: metadata '%s' is not a string", path, m->string ? m->string : "");
                    goto fail;
                }
                if (st_meta_get(out, m->string)) {
                    set_err(err, err_len, "%s: metadata key '%s' appears twice", path, m->string);
                    goto fail;
                }
                push_meta(out, m->string, m->valuestring);
            }
            continue;
        }
        if (st_find(out, name)) {
            set_err(err, err_len, "%s: tensor '%s' appears twice in the header", path, name);
            goto fail;
        }
        StTensor *t = push_tensor(out);
        t->name = xstrdup(name);
        if (parse_tensor_entry(path, e, t, data_len, &begins[out->n_tensors - 1], err, err_len) != 0) goto fail;
    }

    /* No two tensors may share bytes. Empty tensors occupy nothing and cannot overlap. */
    spans = xcalloc((size_t)(out->n_tensors ? out->n_tensors : 1), sizeof *spans);
    int n_spans = 0;
    for (int i = 0; i < out->n_tensors; i++) {
        if (out->tensors[i].nbytes == 0) continue;
        spans[n_spans].begin = begins[i];
        spans[n_spans].end = begins[i] + out->tensors[i].nbytes;
        spans[n_spans].index = i;
        n_spans++;
    }
    qsort(spans, (size_t)n_spans, sizeof *spans, cmp_span);
    for (int i = 1; i < n_spans; i++) {
        if (spans[i].begin < spans[i - 1].end) {
            set_err(err, err_len, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", path,
                    out->tensors[spans[i - 1].index].name, (unsigned long long)spans[i - 1].begin,
                    (unsigned long long)spans[i - 1].end, out->tensors[spans[i].index].name,
                    (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end);
            goto fail;
        }
    }

    /* Element alignment: malloc gives 16-byte alignment, so a tensor is aligned iff its file
     * offset is a multiple of its item size. Files from writers that do not pad (or that put an
     * I64 after an odd number of 4-byte items) get a misaligned tensor, which the compiler's
     * vectorised loops may not tolerate: such tensors are copied to an aligned tail of buf. */
    size_t extra = 0;
    for (int i = 0; i < out->n_tensors; i++) {
        StTensor *t = &out->tensors[i];
        if (t->nbytes && (data_start + begins[i]) % st_dtype_size(t->dtype) != 0) extra += t->nbytes + 16;
    }
    if (extra) {
        unsigned char *nb = realloc(out->buf, len + extra + 16);
        if (!nb) {
            set_err(err, err_len, "%s: out of memory realigning tensors", path);
            goto fail;
        }
        out->buf = nb;
    }
    size_t tail = (len + 15) / 16 * 16;
    for (int i = 0; i < out->n_tensors; i++) {
        StTensor *t = &out->tensors[i];
        const unsigned char *src = out->buf + data_start + begins[i];
        if (t->nbytes && (data_start + begins[i]) % st_dtype_size(t->dtype) != 0) {
            memcpy(out->buf + tail, src, t->nbytes);
            t->data = out->buf + tail;
            tail += (t->nbytes + 15) / 16 * 16;
        } else {
            t->data = src;
        }
    }

    free(spans);
    free(begins);
    cJSON_Delete(root);
    return 0;

fail:
    free(spans);
    free(begins);
    cJSON_Delete(root);
    st_free(out);
    return -1;
}

/* ---- writer -------------------------------------------------------------------------- */

void st_add(StFile *f, const char *name, StDtype dtype, int ndim, const int64_t *shape, const void *data) {
    CHECK(ndim >= 0 && ndim <= ST_MAX_DIMS, "st_add: tensor '%s' has %d dimensions (0..%d allowed)", name, ndim,
          ST_MAX_DIMS);
    CHECK(st_dtype_size(dtype) != 0, "st_add: tensor '%s' has an unknown dtype %d", name, (int)dtype);
    StTensor *t = push_tensor(f);
    t->name = xstrdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        CHECK(shape[i] >= 0, "st_add: tensor '%s' has negative shape[%d] = %lld", name, i, (long long)shape[i]);
        t->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    t->nbytes = numel * st_dtype_size(dtype);
    t->data = data;
}

/* A repeated key replaces the earlier value (the header can hold each key once). */
void st_add_meta(StFile *f, const char *key, const char *value) {
    for (int i = 0; i < f->n_meta; i++) {
        if (strcmp(f->meta[i].key, key) == 0) {
            free(f->meta[i].value);
            f->meta[i].value = xstrdup(value);
            return;
        }
    }
    push_meta(f, key, value);
}

static int write_all(int fd, const void *p, size_t n) {
    const unsigned char *c = p;
    while (n > 0) {
        /* Some kernels cap a single write near 2 GiB; chunk to stay well below. */
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = write(fd, c, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Header JSON (metadata first, as the reference writer does; then tensors in order), or NULL. */
static char *build_header(const StFile *f, const char *path, char *err, size_t err_len) {
    cJSON *root = cJSON_CreateObject();
    if (!root) goto oom;
    if (f->n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        if (!m) goto oom;
        for (int i = 0; i < f->n_meta; i++)
            if (!cJSON_AddStringToObject(m, f->meta[i].key, f->meta[i].value)) goto oom;
    }
    uint64_t off = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const StTensor *t = &f->tensors[i];
        if (strcmp(t->name, "__metadata__") == 0) {
            set_err(err, err_len, "%s: '__metadata__' cannot be a tensor name", path);
            cJSON_Delete(root);
            return NULL;
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(f->tensors[j].name, t->name) == 0) {
                set_err(err, err_len, "%s: tensor '%s' added twice", path, t->name);
                cJSON_Delete(root);
                return NULL;
            }
        }
        if (t->nbytes && !t->data) {
            set_err(err, err_len, "%s: tensor '%s' has %zu bytes but no data", path, t->name, t->nbytes);
            cJSON_Delete(root);
            return NULL;
        }
        if ((double)(off + t->nbytes) > ST_MAX_JSON_INT) {
            set_err(err, err_len, "%s: tensor '%s': offsets beyond 2^53 bytes", path, t->name);
            cJSON_Delete(root);
            return NULL;
        }
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        if (!e || !cJSON_AddStringToObject(e, "dtype", st_dtype_name(t->dtype))) goto oom;
        cJSON *s = cJSON_AddArrayToObject(e, "shape");
        if (!s) goto oom;
        for (int d = 0; d < t->ndim; d++) {
            cJSON *n = cJSON_CreateNumber((double)t->shape[d]);
            if (!n || !cJSON_AddItemToArray(s, n)) goto oom;
        }
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        if (!o) goto oom;
        cJSON *n0 = cJSON_CreateNumber((double)off);
        if (!n0 || !cJSON_AddItemToArray(o, n0)) goto oom;
        off += t->nbytes;
        cJSON *n1 = cJSON_CreateNumber((double)off);
        if (!n1 || !cJSON_AddItemToArray(o, n1)) goto oom;
    }
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!txt) goto oom_noroot;
    return txt;
oom:
    cJSON_Delete(root);
oom_noroot:
    set_err(err, err_len, "%s: out of memory building the header", path);
    return NULL;
}

int st_write_file(const StFile *f, const char *path, char *err, size_t err_len) {
    char *json = build_header(f, path, err, err_len);
    if (!json) return -1;
    size_t jlen = strlen(json);
    size_t hlen = (jlen + 7) / 8 * 8; /* pad with spaces so the data region is 8-aligned */
    unsigned char *hdr = xmalloc(8 + hlen);
    for (int i = 0; i < 8; i++) hdr[i] = (unsigned char)(((uint64_t)hlen >> (8 * i)) & 0xff);
    memcpy(hdr + 8, json, jlen);
    memset(hdr + 8 + jlen, ' ', hlen - jlen);
    cJSON_free(json);

    size_t tlen = strlen(path) + 32;
    char *tmp = xmalloc(tlen);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';

    int rc = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        set_err(err, err_len, "%s: cannot create temporary file %s: %s", path, tmp, strerror(errno));
        goto out;
    }
    if (write_all(fd, hdr, 8 + hlen) != 0) {
        set_err(err, err_len, "%s: writing the header to %s: %s", path, tmp, strerror(errno));
        goto fail_fd;
    }
    for (int i = 0; i < f->n_tensors; i++) {
        const StTensor *t = &f->tensors[i];
        if (t->nbytes && write_all(fd, t->data, t->nbytes) != 0) {
            set_err(err, err_len, "%s: writing tensor '%s' to %s: %s", path, t->name, tmp, strerror(errno));
            goto fail_fd;
        }
    }
    if (fsync(fd) != 0) {
        set_err(err, err_len, "%s: fsync of %s: %s", path, tmp, strerror(errno));
        goto fail_fd;
    }
    if (close(fd) != 0) {
        fd = -1;
        set_err(err, err_len, "%s: close of %s: %s", path, tmp, strerror(errno));
        goto fail_tmp;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        set_err(err, err_len, "%s: rename from %s: %s", path, tmp, strerror(errno));
        goto fail_tmp;
    }
    /* Make the rename itself durable. Some filesystems cannot fsync a directory (EINVAL);
     * the data is complete under its final name either way, so only real I/O errors count. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP) {
            set_err(err, err_len, "%s: fsync of directory %s: %s", path, dir, strerror(errno));
            close(dfd);
            goto out;
        }
        close(dfd);
    }
    rc = 0;
    goto out;

fail_fd:
    close(fd);
fail_tmp:
    unlink(tmp);
out:
    free(dir);
    free(tmp);
    free(hdr);
    return rc;
}
