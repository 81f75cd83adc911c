/* npz.c — see npz.h. Zip: the central directory is the authority (sizes, offsets, method,
 * CRC-32); local headers are only skipped over. Every offset is bounds-checked. */
#include "npz.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "check.h"
#include "file_check.h"
#include "resource_limits.h"
#include "store_format.h"

static uint16_t u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

void npy_free(NpyArray *a) {
    if (a) free(a->data), a->data = NULL;
}

/* Value of 'key': in the npy header dict, copied into out (up to a ',' or '}' at depth 0). */
static int dict_value(const char *h, const char *key, char *out, size_t n) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p) return -1;
    p = strchr(p + strlen(pat), ':');
    if (!p) return -1;
    p++;
    while (*p == ' ') p++;
    size_t k = 0;
    int depth = 0;
    for (; *p && k + 1 < n; p++) {
        if (*p == '(') depth++;
        if (*p == ')') depth--;
        if (depth == 0 && (*p == ',' || *p == '}')) {
            break;
        }
        out[k++] = *p;
    }
    out[k] = 0;
    return 0;
}

int npy_parse(const char *name, const uint8_t *buf, size_t n, NpyArray *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    if (n < 10 || memcmp(buf, "\x93NUMPY", 6)) return error_at(err, err_len, "%s: not a .npy array (bad magic)", name);
    int major = buf[6];
    size_t hlen, hoff;
    if (major == 1) hlen = u16(buf + 8), hoff = 10;
    else if (major == 2 || major == 3) {
        if (n < 12) return error_at(err, err_len, "%s: truncated .npy header", name);
        hlen = u32(buf + 8), hoff = 12;
    } else return error_at(err, err_len, "%s: .npy version %d not supported", name, major);
    if (hlen > UNET_MAX_NPY_HEADER_BYTES)
        return error_at(err, err_len, "%s: .npy header length %zu is over the limit of %zu bytes", name, hlen,
                        UNET_MAX_NPY_HEADER_BYTES);
    if (hlen > n - hoff) return error_at(err, err_len, "%s: truncated .npy header", name);
    char *h = xmalloc(hlen + 1);
    memcpy(h, buf + hoff, hlen);
    h[hlen] = 0;
    char descr[64], fortran[32], shape[256];
    int ok = !dict_value(h, "descr", descr, sizeof descr) && !dict_value(h, "fortran_order", fortran, sizeof fortran) &&
             !dict_value(h, "shape", shape, sizeof shape);
    free(h);
    if (!ok) return error_at(err, err_len, "%s: .npy header lacks descr, fortran_order or shape", name);
    /* descr like '<f4' */
    size_t dl = strlen(descr);
    if (dl < 4 || dl > 6 || (descr[0] != '\'' && descr[0] != '"'))
        return error_at(err, err_len, "%s: unsupported dtype %s", name, descr);
    char order = descr[1], kind = descr[2];
    int size = atoi(descr + 3);
    snprintf(out->descr, sizeof out->descr, "%.*s", (int)(dl - 2), descr + 1);
    int okdt = (kind == 'f' && (size == 4 || size == 8)) || ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) ||
               (kind == 'b' && size == 1);
    if (!okdt || (order != '<' && order != '>' && order != '|' && order != '='))
        return error_at(err, err_len, "%s: unsupported dtype %s (expected int, uint, bool or float)", name, out->descr);
    int fort = !strncmp(fortran, "True", 4);
    if (!fort && strncmp(fortran, "False", 5)) return error_at(err, err_len, "%s: bad fortran_order", name);
    /* shape like (512, 512) or (3,) or () */
    const char *p = strchr(shape, '(');
    if (!p) return error_at(err, err_len, "%s: bad shape %s", name, shape);
    p++;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || out->ndim == 8) return error_at(err, err_len, "%s: bad shape %s", name, shape);
        out->shape[out->ndim++] = v;
        p = end;
    }
    /* The element count is checked against the volume limit with a product that cannot
     * overflow (a shape whose byte count wraps around size_t once passed the size check below
     * and the parser wrote past its buffer); then count * size fits comfortably in size_t. */
    int64_t count64;
    if (unet_checked_product(out->shape, out->ndim, UNET_MAX_VOLUME_VOXELS, &count64))
        return error_at(err, err_len, "%s: field 'shape' %s declares more than %lld elements (the volume limit)", name,
                        shape, (long long)UNET_MAX_VOLUME_VOXELS);
    size_t count = (size_t)count64;
    size_t off = hoff + hlen;
    if (count * (size_t)size > n - off)
        return error_at(err, err_len, "%s: truncated: %zu elements of %d bytes promised, %zu bytes present", name,
                         count, size, n - off);
    out->data = malloc((count ? count : 1) * sizeof(float));
    if (!out->data) return error_at(err, err_len, "%s: out of memory", name);
    const uint8_t *d = buf + off;
    int swap = order == '>';
    for (size_t i = 0; i < count; i++) {
        uint8_t b[8];
        for (int k = 0; k < size; k++) b[k] = d[i * size + (swap ? size - 1 - k : k)];
        double v;
        if (kind == 'f') {
            if (size == 4) { float f; memcpy(&f, b, 4); v = f; }
            else memcpy(&v, b, 8);
        } else if (kind == 'b') v = b[0] != 0;
        else {
            uint64_t u = 0;
            for (int k = size - 1; k >= 0; k--) u = u << 8 | b[k];
            if (kind == 'i' && size < 8 && (u >> (8 * size - 1)) & 1) u |= ~(uint64_t)0 << (8 * size);
            v = kind == 'i' ? (double)(int64_t)u : (double)u;
        }
        out->data[i] = (float)v;
    }
    if (fort && out->ndim > 1) {
        /* Fortran order: reverse the index order into C order. */
        float *c = malloc(count * sizeof(float));
        if (!c) {
            npy_free(out);
            return error_at(err, err_len, "%s: out of memory", name);
        }
        int64_t idx[8] = {0};
        for (size_t i = 0; i < count; i++) {
            /* i walks C order; compute the Fortran offset of the same index. */
            size_t fo = 0, stride = 1;
            for (int k = 0; k < out->ndim; k++) fo += (size_t)idx[k] * stride, stride *= (size_t)out->shape[k];
            c[i] = out->data[fo];
            for (int k = out->ndim - 1; k >= 0; k--) {
                if (++idx[k] < out->shape[k]) break;
                idx[k] = 0;
            }
        }
        free(out->data);
        out->data = c;
    }
    return 0;
}

int npz_read(const char *path, const char *key, NpyArray *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    /* libzip opens by name: a FIFO would block it */
    int64_t fsize;
    if (fc_check_regular(path, ".npz archive", &fsize, err, err_len)) return -1;
    int zerr = 0;
    zip_t *za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!za) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        error_at(err, err_len, "%s: not a readable .npz (zip) archive: %s", path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return -1;
    }
    char want[256];
    snprintf(want, sizeof want, "%s.npy", key);
    int rc = -1;
    uint8_t *member = NULL;
    zip_stat_t st;
    zip_file_t *zf = NULL;
    if (zip_stat(za, want, ZIP_FL_ENC_GUESS, &st) != 0 || !(st.valid & ZIP_STAT_SIZE)) {
        error_at(err, err_len, "%s: no array '%s' in the archive", path, key);
        goto out;
    }
    /* The member's declared size, before allocating it: within the limits, and no more than
     * deflate can expand its stored bytes to (else the archive is truncated or lying). */
    uint64_t max_member = (uint64_t)UNET_MAX_VOLUME_VOXELS * 8 + UNET_MAX_NPY_HEADER_BYTES + 16;
    uint64_t stored = (st.valid & ZIP_STAT_COMP_SIZE) ? st.comp_size : (uint64_t)fsize;
    if (st.size > max_member || st.size > stored * UNET_MAX_DEFLATE_RATIO + 4096 || stored > (uint64_t)fsize) {
        error_at(err, err_len, "%s: member %s declares %llu bytes from %llu stored (file %lld bytes): truncated or corrupt",
                 path, want, (unsigned long long)st.size, (unsigned long long)stored, (long long)fsize);
        goto out;
    }
    member = malloc(st.size ? st.size : 1);
    if (!member) {
        error_at(err, err_len, "%s: out of memory", path);
        goto out;
    }
    /* libzip checks the member's CRC-32 when the last byte is read */
    zf = zip_fopen(za, want, 0);
    zip_int64_t got = zf ? zip_fread(zf, member, st.size) : -1;
    if (!zf || got != (zip_int64_t)st.size) {
        error_at(err, err_len, "%s: member %s is corrupt or truncated: %s", path, want,
                  zip_strerror(za));
        goto out;
    }
    uint8_t extra;
    if (zip_fread(zf, &extra, 1) != 0) { /* reaching the end is what triggers the CRC check */
        error_at(err, err_len, "%s: member %s fails its checksum: %s", path, want, zip_file_strerror(zf));
        goto out;
    }
    char nm2[512];
    snprintf(nm2, sizeof nm2, "%s[%s]", path, key);
    rc = npy_parse(nm2, member, (size_t)st.size, out, err, err_len);
out:
    if (zf) zip_fclose(zf);
    free(member);
    zip_discard(za);
    return rc;
}
