/* image2d.c — see image2d.h. */
#include "image2d.h"

#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "file_check.h"
#include "resource_limits.h"
#include "store_format.h"

void img2d_free(Image2D *im) {
    if (im) free(im->data), im->data = NULL;
}

/* ---- JPEG ---- */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} JpegErr;

static void jpeg_fail(j_common_ptr cinfo) {
    JpegErr *e = (JpegErr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jb, 1);
}

/* A warning (e.g. "premature end of data") is an error for us: the image would be partial. */
static void jpeg_warn(j_common_ptr cinfo, int level) {
    if (level < 0) jpeg_fail(cinfo);
}

static int read_jpeg(const char *path, FILE *fp, Image2D *out, char *err, size_t err_len) {
    struct jpeg_decompress_struct ci;
    JpegErr je;
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_fail;
    je.pub.emit_message = jpeg_warn;
    /* the pointer itself volatile: it is assigned after setjmp, and a longjmp from the decoder
     * would otherwise leave free() a stale copy (NULL) and leak the image (found by fuzz_png_jpeg) */
    uint8_t *volatile data = NULL;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&ci);
        free(data);
        return error_at(err, err_len, "%s: bad JPEG: %s", path, je.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_stdio_src(&ci, fp);
    jpeg_read_header(&ci, TRUE);
    /* the resource policy on the header's size, before the decoder allocates for it */
    if (unet_slice_ok((int64_t)ci.image_height, (int64_t)ci.image_width)) {
        snprintf(je.msg, sizeof je.msg, "image size %u x %u exceeds the slice limit (side %d)", ci.image_width,
                 ci.image_height, UNET_MAX_SLICE_SIDE);
        longjmp(je.jb, 1);
    }
    ci.out_color_space = ci.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&ci);
    int W = (int)ci.output_width, H = (int)ci.output_height, C = ci.output_components;
    data = malloc((size_t)W * H * C);
    if (!data) longjmp(je.jb, 1);
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = (JSAMPROW)(data + (size_t)ci.output_scanline * W * C);
        jpeg_read_scanlines(&ci, &row, 1);
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    out->width = W, out->height = H, out->channels = C, out->data = data;
    return 0;
}

/* ---- PNG (libpng's simplified API: 8-bit grey or RGB, alpha composited onto black) ---- */
static int read_png(const char *path, Image2D *out, char *err, size_t err_len) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path)) return error_at(err, err_len, "%s: bad PNG: %s", path, im.message);
    int color = (im.format & PNG_FORMAT_FLAG_COLOR) != 0;
    if (im.format & PNG_FORMAT_FLAG_LINEAR) {
        png_image_free(&im);
        return error_at(err, err_len, "%s: 16-bit PNG not supported (8-bit expected)", path);
    }
    if (unet_slice_ok((int64_t)im.height, (int64_t)im.width)) {
        png_image_free(&im);
        return error_at(err, err_len, "%s: field IHDR: %u x %u pixels exceed the slice limit (side %d)", path, im.width,
                        im.height, UNET_MAX_SLICE_SIDE);
    }
    im.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    size_t n = PNG_IMAGE_SIZE(im);
    uint8_t *buf = malloc(n);
    png_color black = {0, 0, 0};
    if (!buf || !png_image_finish_read(&im, &black, buf, 0, NULL)) {
        free(buf);
        int r = error_at(err, err_len, "%s: bad PNG: %s", path, im.message);
        png_image_free(&im);
        return r;
    }
    out->width = (int)im.width, out->height = (int)im.height, out->channels = color ? 3 : 1, out->data = buf;
    return 0;
}

/* ---- BMP ---- */
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static int read_bmp(const char *path, FILE *fp, Image2D *out, char *err, size_t err_len) {
    fseek(fp, 0, SEEK_END);
    long L = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (L < 54) return error_at(err, err_len, "%s: truncated BMP (%ld bytes)", path, L);
    uint8_t *f = malloc((size_t)L);
    if (!f || fread(f, 1, (size_t)L, fp) != (size_t)L) {
        free(f);
        return error_at(err, err_len, "%s: cannot read", path);
    }
    int rc = -1;
    uint32_t off = le32(f + 10), hsz = le32(f + 14);
    int32_t W = (int32_t)le32(f + 18), Hs = (int32_t)le32(f + 22);
    uint16_t planes = le16(f + 26), bpp = le16(f + 28);
    uint32_t comp = hsz >= 40 ? le32(f + 30) : 0, ncol = hsz >= 40 ? le32(f + 46) : 0;
    /* negated in 64 bits: a height of INT32_MIN has no int32 negation (fuzz_png_jpeg found it) */
    int64_t Habs = Hs < 0 ? -(int64_t)Hs : (int64_t)Hs;
    int H = Habs > UNET_MAX_SLICE_SIDE ? 0 : (int)Habs, top_down = Hs < 0;
    if (hsz < 40 || hsz > 124 || planes != 1 || W <= 0 || H <= 0 || unet_slice_ok(H, W)) {
        error_at(err, err_len, "%s: unsupported BMP header (size %u, %d x %d; sides up to %d)", path, hsz, W, Hs,
                 UNET_MAX_SLICE_SIDE);
        goto out;
    }
    /* BI_RGB (0), or BI_BITFIELDS (3) with 32-bit BGRX masks as some writers emit. */
    if (!(comp == 0 || (comp == 3 && bpp == 32))) {
        error_at(err, err_len, "%s: compressed BMP (method %u) not supported; expected uncompressed", path, comp);
        goto out;
    }
    if (bpp != 1 && bpp != 8 && bpp != 24 && bpp != 32) {
        error_at(err, err_len, "%s: %u-bit BMP not supported (1, 8, 24 or 32)", path, bpp);
        goto out;
    }
    size_t stride = ((size_t)W * bpp + 31) / 32 * 4;
    if ((size_t)off + stride * H > (size_t)L) {
        error_at(err, err_len, "%s: truncated BMP: pixel data needs %zu bytes from offset %u, file has %ld", path,
                  stride * H, off, L);
        goto out;
    }
    const uint8_t *pal = f + 14 + hsz;
    if (bpp <= 8) {
        if (ncol == 0) ncol = 1u << bpp;
        if (ncol > 256u || (size_t)(14 + hsz + 4 * ncol) > off) {
            error_at(err, err_len, "%s: bad BMP palette", path);
            goto out;
        }
    }
    /* Palette images whose colours are all grey come out as 1 channel; otherwise RGB. */
    int grey = 0;
    if (bpp <= 8) {
        grey = 1;
        for (uint32_t i = 0; i < ncol; i++)
            if (pal[4 * i] != pal[4 * i + 1] || pal[4 * i] != pal[4 * i + 2]) grey = 0;
    }
    int C = grey ? 1 : 3;
    uint8_t *d = malloc((size_t)W * H * C);
    if (!d) {
        error_at(err, err_len, "%s: out of memory", path);
        goto out;
    }
    for (int y = 0; y < H; y++) {
        const uint8_t *row = f + off + stride * (size_t)(top_down ? y : H - 1 - y);
        uint8_t *o = d + (size_t)y * W * C;
        for (int x = 0; x < W; x++) {
            const uint8_t *bgr;
            if (bpp <= 8) {
                unsigned idx = bpp == 8 ? row[x] : (row[x >> 3] >> (7 - (x & 7))) & 1;
                if (idx >= ncol) {
                    free(d);
                    error_at(err, err_len, "%s: palette index %u at (x=%d, y=%d) beyond %u colours", path, idx, x, y, ncol);
                    goto out;
                }
                bgr = pal + 4 * idx;
            } else bgr = row + (size_t)x * (bpp / 8);
            if (C == 1) o[x] = bgr[0];
            else o[3 * x] = bgr[2], o[3 * x + 1] = bgr[1], o[3 * x + 2] = bgr[0];
        }
    }
    out->width = W, out->height = H, out->channels = C, out->data = d;
    rc = 0;
out:
    free(f);
    return rc;
}

int img2d_read(const char *path, Image2D *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    /* a FIFO would block fopen() (and libpng's open by name) forever */
    int fd = fc_open_regular(path, "JPEG, PNG or BMP image", NULL, err, err_len);
    if (fd < 0) return -1;
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        close(fd);
        return error_at(err, err_len, "%s: cannot open", path);
    }
    uint8_t m[8] = {0};
    size_t got = fread(m, 1, 8, fp);
    fseek(fp, 0, SEEK_SET);
    int rc;
    if (got >= 2 && m[0] == 0xFF && m[1] == 0xD8) rc = read_jpeg(path, fp, out, err, err_len);
    else if (got >= 8 && !memcmp(m, "\x89PNG\r\n\x1a\n", 8)) {
        fclose(fp);
        return read_png(path, out, err, err_len);
    } else if (got >= 2 && m[0] == 'B' && m[1] == 'M') rc = read_bmp(path, fp, out, err, err_len);
    else rc = error_at(err, err_len, "%s: not a JPEG, PNG or BMP file", path);
    fclose(fp);
    return rc;
}
