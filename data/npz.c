/* npz.c — see npz.h. Zip: the central directory is the authority (sizes, offsets, method,
 * CRC-32); local headers are only skipped over. Every offset is bounds-checked. */
#include "npz.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "store_format.h"

static uint16_t u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t u64(const uint8_t *p) { return (uint64_t)u32(p) | (uint64_t)u32(p + 4) << 32; }

void npy_free(NpyArray *a) {
    if (a) free(a->data), a->data = NULL;
}

static int read_file(const char *path, uint8_t **buf, size_t *n, char *err, size_t err_len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return store_err(err, err_len, "%s: cannot open", path);
    fseek(fp, 0, SEEK_END);
    long L = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (L < 0) {
        fclose(fp);
        return store_err(err, err_len, "%s: cannot size", path);
    }
    *buf = malloc((size_t)L + 1);
    if (!*buf) {
        fclose(fp);
        return store_err(err, err_len, "%s: out of memory", path);
    }
    *n = fread(*buf, 1, (size_t)L, fp);
    fclose(fp);
    if (*n != (size_t)L) {
        free(*buf);
        return store_err(err, err_len, "%s: short read", path);
    }
    return 0;
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
    if (n < 10 || memcmp(buf, "\x93NUMPY", 6)) return store_err(err, err_len, "%s: not a .npy array (bad magic)", name);
    int major = buf[6];
    size_t hlen, hoff;
    if (major == 1) hlen = u16(buf + 8), hoff = 10;
    else if (major == 2 || major == 3) {
        if (n < 12) return store_err(err, err_len, "%s: truncated .npy header", name);
        hlen = u32(buf + 8), hoff = 12;
    } else return store_err(err, err_len, "%s: .npy version %d not supported", name, major);
    if (hoff + hlen > n) return store_err(err, err_len, "%s: truncated .npy header", name);
    char *h = malloc(hlen + 1);
    memcpy(h, buf + hoff, hlen);
    h[hlen] = 0;
    char descr[64], fortran[32], shape[256];
    int ok = !dict_value(h, "descr", descr, sizeof descr) && !dict_value(h, "fortran_order", fortran, sizeof fortran) &&
             !dict_value(h, "shape", shape, sizeof shape);
    free(h);
    if (!ok) return store_err(err, err_len, "%s: .npy header lacks descr, fortran_order or shape", name);
    /* descr like '<f4' */
    size_t dl = strlen(descr);
    if (dl < 4 || dl > 6 || (descr[0] != '\'' && descr[0] != '"'))
        return store_err(err, err_len, "%s: unsupported dtype %s", name, descr);
    char order = descr[1], kind = descr[2];
    int size = atoi(descr + 3);
    snprintf(out->descr, sizeof out->descr, "%.*s", (int)(dl - 2), descr + 1);
    int okdt = (kind == 'f' && (size == 4 || size == 8)) || ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) ||
               (kind == 'b' && size == 1);
    if (!okdt || (order != '<' && order != '>' && order != '|' && order != '='))
        return store_err(err, err_len, "%s: unsupported dtype %s (expected int, uint, bool or float)", name, out->descr);
    int fort = !strncmp(fortran, "True", 4);
    if (!fort && strncmp(fortran, "False", 5)) return store_err(err, err_len, "%s: bad fortran_order", name);
    /* shape like (512, 512) or (3,) or () */
    const char *p = strchr(shape, '(');
    if (!p) return store_err(err, err_len, "%s: bad shape %s", name, shape);
    p++;
    size_t count = 1;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || out->ndim == 8) return store_err(err, err_len, "%s: bad shape %s", name, shape);
        out->shape[out->ndim++] = v;
        count *= (size_t)v;
        p = end;
    }
    size_t off = hoff + hlen;
    if (off + count * (size_t)size > n)
        return store_err(err, err_len, "%s: truncated: %zu elements of %d bytes promised, %zu bytes present", name,
                         count, size, n - off);
    out->data = malloc((count ? count : 1) * sizeof(float));
    if (!out->data) return store_err(err, err_len, "%s: out of memory", name);
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
    uint8_t *z = NULL;
    size_t n = 0;
    if (read_file(path, &z, &n, err, err_len)) return -1;
    int rc = -1;
    uint8_t *member = NULL;
    /* End of central directory: the last signature within 64 KiB + 22 bytes of the end. */
    size_t eocd = (size_t)-1;
    for (size_t i = n >= 22 ? n - 22 : 0; n >= 22; i--) {
        if (u32(z + i) == 0x06054b50) {
            eocd = i;
            break;
        }
        if (i == 0 || n - i > 65557) break;
    }
    if (eocd == (size_t)-1) {
        store_err(err, err_len, "%s: not a zip (.npz) archive, or truncated (no end of central directory)", path);
        goto out;
    }
    uint64_t entries = u16(z + eocd + 10), cd = u32(z + eocd + 16);
    if (cd == 0xFFFFFFFFu || entries == 0xFFFF) {
        if (eocd < 20 || u32(z + eocd - 20) != 0x07064b50) {
            store_err(err, err_len, "%s: zip64 locator missing", path);
            goto out;
        }
        uint64_t z64 = u64(z + eocd - 20 + 8);
        if (z64 + 56 > n || u32(z + z64) != 0x06064b50) {
            store_err(err, err_len, "%s: bad zip64 end record", path);
            goto out;
        }
        entries = u64(z + z64 + 32);
        cd = u64(z + z64 + 48);
    }
    char want[256];
    snprintf(want, sizeof want, "%s.npy", key);
    size_t p = (size_t)cd;
    for (uint64_t e = 0; e < entries; e++) {
        if (p + 46 > n || u32(z + p) != 0x02014b50) {
            store_err(err, err_len, "%s: corrupt zip central directory", path);
            goto out;
        }
        int method = u16(z + p + 10);
        uint32_t crc = u32(z + p + 16);
        uint64_t csize = u32(z + p + 20), usize = u32(z + p + 24), loff = u32(z + p + 42);
        size_t nl = u16(z + p + 28), xl = u16(z + p + 30), cl = u16(z + p + 32);
        if (p + 46 + nl + xl + cl > n) {
            store_err(err, err_len, "%s: corrupt zip central directory", path);
            goto out;
        }
        const char *nm = (const char *)z + p + 46;
        /* zip64 extra field: only the fields whose 32-bit slot is 0xFFFFFFFF, in this order. */
        for (size_t x = p + 46 + nl; x + 4 <= p + 46 + nl + xl;) {
            size_t id = u16(z + x), sz = u16(z + x + 2), q = x + 4;
            if (id == 1) {
                if (usize == 0xFFFFFFFFu && q + 8 <= x + 4 + sz) usize = u64(z + q), q += 8;
                if (csize == 0xFFFFFFFFu && q + 8 <= x + 4 + sz) csize = u64(z + q), q += 8;
                if (loff == 0xFFFFFFFFu && q + 8 <= x + 4 + sz) loff = u64(z + q), q += 8;
            }
            x += 4 + sz;
        }
        if (nl == strlen(want) && !memcmp(nm, want, nl)) {
            if (loff + 30 > n || u32(z + loff) != 0x04034b50) {
                store_err(err, err_len, "%s: member %s: bad local header", path, want);
                goto out;
            }
            size_t data = (size_t)loff + 30 + u16(z + loff + 26) + u16(z + loff + 28);
            if (data + csize > n) {
                store_err(err, err_len, "%s: member %s is truncated", path, want);
                goto out;
            }
            member = malloc(usize ? usize : 1);
            if (!member) {
                store_err(err, err_len, "%s: out of memory", path);
                goto out;
            }
            if (method == 0) {
                if (csize != usize) {
                    store_err(err, err_len, "%s: member %s: stored sizes differ", path, want);
                    goto out;
                }
                memcpy(member, z + data, usize);
            } else if (method == 8) {
                z_stream s;
                memset(&s, 0, sizeof s);
                inflateInit2(&s, -15);
                s.next_in = z + data;
                s.avail_in = (uInt)csize;
                s.next_out = member;
                s.avail_out = (uInt)usize;
                int zr = inflate(&s, Z_FINISH);
                size_t got = s.total_out;
                inflateEnd(&s);
                if (zr != Z_STREAM_END || got != usize) {
                    store_err(err, err_len, "%s: member %s does not inflate (corrupt or truncated)", path, want);
                    goto out;
                }
            } else {
                store_err(err, err_len, "%s: member %s: zip method %d not supported (stored or deflate only)", path,
                          want, method);
                goto out;
            }
            if ((uint32_t)crc32(0L, member, (uInt)usize) != crc) {
                store_err(err, err_len, "%s: member %s fails its CRC-32", path, want);
                goto out;
            }
            char nm2[512];
            snprintf(nm2, sizeof nm2, "%s[%s]", path, key);
            rc = npy_parse(nm2, member, usize, out, err, err_len);
            goto out;
        }
        p += 46 + nl + xl + cl;
    }
    store_err(err, err_len, "%s: no array '%s' in the archive", path, key);
out:
    free(member);
    free(z);
    return rc;
}
