/* nifti_volume.c — see nifti_volume.h. */
#include "nifti_volume.h"

#include <errno.h>
#include <math.h>
#include <nifti1_io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "file_check.h"
#include "resource_limits.h"
#include "fsutil.h"

/* nifticlib prints its own messages to stderr; ours already name the file and the problem. */
static void quiet_library(void) { nifti_set_debug_level(getenv("UNET_NIFTI_DEBUG") ? 3 : 0); }

int nifti_volume_open(NiftiVolume *v, const char *path, char *err, size_t err_len) {
    memset(v, 0, sizeof *v);
    if (snprintf(v->path, sizeof v->path, "%s", path) >= (int)sizeof v->path)
        return error_at(err, err_len, "%.64s...: path too long", path);
    /* nifticlib opens by name and would block forever on a FIFO */
    if (fc_check_regular(path, "NIfTI-1 file", NULL, err, err_len)) return -1;
    quiet_library();
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim) return error_at(err, err_len, "%s: not a readable NIfTI-1 file (bad or truncated header)", path);
    if (nim->ndim < 2 || nim->ndim > 4 || nim->nu > 1 || nim->nv > 1 || nim->nw > 1) {
        int nd = nim->ndim;
        nifti_image_free(nim);
        return error_at(err, err_len, "%s: %d-dimensional image; expected a 3D volume (or 4D with channels last)", path, nd);
    }
    v->nx = nim->nx;
    v->ny = nim->ny > 0 ? nim->ny : 1;
    v->nz = nim->ndim >= 3 && nim->nz > 0 ? nim->nz : 1;
    v->nt = nim->ndim >= 4 && nim->nt > 0 ? nim->nt : 1;
    if (v->nx < 1 || (size_t)v->nx * v->ny * v->nz * v->nt != nim->nvox) {
        error_at(err, err_len, "%s: dimensions %d x %d x %d x %d do not match the header's %zu voxels", path, nim->nx,
                 nim->ny, nim->nz, nim->nt, nim->nvox);
        nifti_image_free(nim);
        return -1;
    }
    /* the resource policy, on the header alone: nothing has been allocated for voxels yet */
    if (unet_volume_ok(v->nz, v->nt, v->ny, v->nx)) {
        error_at(err, err_len,
                 "%s: field 'dim': %d x %d x %d x %d voxels exceed the limits (slice side %d, %d slices, %d channels, "
                 "volume %lld values)",
                 path, v->nx, v->ny, v->nz, v->nt, UNET_MAX_SLICE_SIDE, UNET_MAX_DEPTH, UNET_MAX_CHANNELS,
                 (long long)UNET_MAX_VOLUME_VOXELS);
        nifti_image_free(nim);
        return -1;
    }
    /* |pixdim|: a flipped axis is the affine's business, a spacing is a length; 0 (nibabel reports
     * it as is) becomes 1 because metrics in mm need a positive one */
    double d[3] = {nim->dx, nim->dy, nim->dz};
    for (int k = 0; k < 3; k++) v->spacing[k] = isfinite(d[k]) && d[k] != 0 ? fabs(d[k]) : 1.0;
    /* nibabel's img.affine: sform if set, else qform, else the pixdim scaling */
    mat44 m;
    memset(&m, 0, sizeof m);
    if (nim->sform_code > 0) m = nim->sto_xyz;
    else if (nim->qform_code > 0) m = nim->qto_xyz;
    else m.m[0][0] = nim->dx, m.m[1][1] = nim->dy, m.m[2][2] = nim->dz, m.m[3][3] = 1;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) v->affine[r * 4 + c] = m.m[r][c];
    v->header = nim;
    return 0;
}

void nifti_volume_close(NiftiVolume *v) {
    if (v->header) nifti_image_free(v->header);
    v->header = NULL;
}

void nifti_volume_from_affine(NiftiVolume *v, const char *name, int nx, int ny, int nz, const double spacing[3],
                              const double affine[16]) {
    memset(v, 0, sizeof *v);
    snprintf(v->path, sizeof v->path, "%s", name);
    int dims[8] = {3, nx, ny, nz, 1, 1, 1, 1};
    nifti_image *nim = nifti_make_new_nim(dims, DT_UINT8, 0);
    CHECK(nim, "nifti_make_new_nim failed for %s", name);
    v->nx = nx, v->ny = ny, v->nz = nz, v->nt = 1;
    for (int d = 0; d < 3; d++) v->spacing[d] = spacing[d];
    nim->dx = nim->pixdim[1] = (float)spacing[0];
    nim->dy = nim->pixdim[2] = (float)spacing[1];
    nim->dz = nim->pixdim[3] = (float)spacing[2];
    mat44 m;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) m.m[r][c] = (float)affine[r * 4 + c], v->affine[r * 4 + c] = affine[r * 4 + c];
    nim->sform_code = nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->sto_xyz = m;
    nim->sto_ijk = nifti_mat44_inverse(m);
    float qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
    nifti_mat44_to_quatern(m, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
    nim->quatern_b = qb, nim->quatern_c = qc, nim->quatern_d = qd;
    nim->qoffset_x = qx, nim->qoffset_y = qy, nim->qoffset_z = qz, nim->qfac = qfac;
    nim->qto_xyz = nifti_quatern_to_mat44(qb, qc, qd, qx, qy, qz, nim->dx, nim->dy, nim->dz, qfac);
    nim->qto_ijk = nifti_mat44_inverse(nim->qto_xyz);
    nim->xyz_units = NIFTI_UNITS_MM;
    v->header = nim;
}

/* ---- voxels ---- */

static int supported(int datatype) {
    switch (datatype) {
    case DT_UINT8: case DT_INT8: case DT_UINT16: case DT_INT16: case DT_UINT32: case DT_INT32:
    case DT_UINT64: case DT_INT64: case DT_FLOAT32: case DT_FLOAT64: return 1;
    default: return 0;
    }
}

/* Reads the `bytes` bytes at `offset` of a plain or gzip file into buf (buf NULL: only checks
 * they are there, to verify a write without a second copy in memory). With to_end the file must
 * also end right after them. Returns 0, -1 when the file is shorter or unreadable past the
 * offset (truncated, corrupt gzip stream), -2 when it cannot be opened. */
static int read_span(const char *path, size_t offset, void *buf, size_t bytes, int to_end) {
    znzFile fp = znzopen(path, "rb", nifti_is_gzfile(path));
    if (znz_isnull(fp)) return -2;
    int rc = znzseek(fp, (long)offset, SEEK_SET) < 0 ? -1 : 0;
    char scratch[1 << 16];
    size_t got = 0;
    while (rc == 0 && got < bytes) {
        size_t want = bytes - got;
        if (!buf && want > sizeof scratch) want = sizeof scratch;
        size_t r = znzread(buf ? (char *)buf + got : scratch, 1, want, fp);
        if (r == 0 || r > want) break; /* end of data, or zlib's error (-1 as size_t) */
        got += r;
    }
    if (got < bytes) rc = -1;
    if (rc == 0 && to_end && znzread(scratch, 1, 1, fp) != 0) rc = -1;
    znzclose(fp);
    return rc;
}

/* The voxel bytes of an opened volume, in this machine's byte order (malloc'ed; NULL and an error
 * otherwise). Read with znz rather than nifti_image_load: the library's loader silently replaces
 * NaN and infinite floats with 0, which would hide exactly the bad input the importers must report
 * (and make a NaN label look like background). */
static void *load_raw(const NiftiVolume *v, char *err, size_t err_len) {
    const nifti_image *nim = v->header;
    CHECK(nim, "nifti_volume: %s is closed", v->path);
    if (!nim->iname) {
        error_at(err, err_len, "%s: no voxel data to read (a grid made from an affine)", v->path);
        return NULL;
    }
    if (!supported(nim->datatype)) {
        error_at(err, err_len, "%s: unsupported NIfTI datatype %d (%s)", v->path, nim->datatype,
                 nifti_datatype_string(nim->datatype));
        return NULL;
    }
    size_t bytes = nim->nvox * (size_t)nim->nbyper; /* nvox is within the volume limit (open) */
    size_t offset = nim->iname_offset > 0 ? (size_t)nim->iname_offset : 0;
    /* The data file must be able to hold what the header promises before anything is allocated:
     * a header promising terabytes in an 8 KB file is a truncated file, not "out of memory".
     * A gzip stream cannot inflate beyond deflate's maximum ratio. */
    int64_t fsize;
    if (fc_check_regular(nim->iname, "NIfTI voxel data", &fsize, err, err_len)) return NULL;
    int gz = nifti_is_gzfile(nim->iname);
    uint64_t room = gz ? (uint64_t)fsize * UNET_MAX_DEFLATE_RATIO + 4096
                       : (uint64_t)fsize > offset ? (uint64_t)fsize - offset : 0;
    if ((uint64_t)bytes > room) {
        error_at(err, err_len,
                 "%s: truncated: the header (fields dim, datatype) promises %zu bytes of voxel data at offset %zu, "
                 "the %sfile has %lld bytes",
                 v->path, bytes, offset, gz ? "gzip " : "", (long long)fsize);
        return NULL;
    }
    void *raw = malloc(bytes ? bytes : 1);
    if (!raw) {
        error_at(err, err_len, "%s: out of memory for %zu voxels", v->path, nim->nvox);
        return NULL;
    }
    int rc = read_span(nim->iname, offset, raw, bytes, 0);
    if (rc != 0) {
        if (rc == -1)
            error_at(err, err_len,
                     "%s: truncated: the voxel data is shorter than the header promises (or the gzip stream is corrupt)",
                     v->path);
        else error_at(err, err_len, "%s: the voxel data (%s) cannot be opened", v->path, nim->iname);
        free(raw);
        return NULL;
    }
    if (nim->byteorder != nifti_short_order() && nim->swapsize > 1) nifti_swap_Nbytes(nim->nvox, nim->swapsize, raw);
    return raw;
}

/* scl_slope/scl_inter, when they change values: slope 0 means unscaled (nifticlib has already
 * turned a NaN or infinite one into 0), and (1, 0) is the identity. */
static int scaling(const nifti_image *nim, double *slope, double *inter) {
    int scaled = nim->scl_slope != 0 && (nim->scl_slope != 1 || nim->scl_inter != 0);
    *slope = scaled ? nim->scl_slope : 1;
    *inter = scaled ? nim->scl_inter : 0;
    return scaled;
}

static double voxel(int datatype, const void *raw, size_t i) {
    switch (datatype) {
    case DT_UINT8: return ((const uint8_t *)raw)[i];
    case DT_INT8: return ((const int8_t *)raw)[i];
    case DT_UINT16: return ((const uint16_t *)raw)[i];
    case DT_INT16: return ((const int16_t *)raw)[i];
    case DT_UINT32: return ((const uint32_t *)raw)[i];
    case DT_INT32: return ((const int32_t *)raw)[i];
    case DT_UINT64: return (double)((const uint64_t *)raw)[i];
    case DT_INT64: return (double)((const int64_t *)raw)[i];
    case DT_FLOAT32: return ((const float *)raw)[i];
    case DT_FLOAT64: return ((const double *)raw)[i];
    default: return NAN;
    }
}

int nifti_volume_read_labels(const NiftiVolume *v, int32_t **out, char *err, size_t err_len) {
    void *raw = load_raw(v, err, err_len);
    if (!raw) return -1;
    const nifti_image *nim = v->header;
    double slope, inter;
    scaling(nim, &slope, &inter);
    size_t n = nim->nvox;
    int32_t *lab = malloc((n ? n : 1) * sizeof(int32_t));
    if (!lab) {
        free(raw);
        return error_at(err, err_len, "%s: out of memory for %zu voxels", v->path, n);
    }
    for (size_t i = 0; i < n; i++) {
        double x = voxel(nim->datatype, raw, i) * slope + inter;
        if (!(x == floor(x)) || x < -2147483648.0 || x > 2147483647.0) { /* NaN fails the first test */
            size_t nx = (size_t)v->nx, ny = (size_t)v->ny, nz = (size_t)v->nz, t = i / (nx * ny * nz);
            char chan[48] = "";
            if (v->nt > 1) snprintf(chan, sizeof chan, ", channel %zu", t);
            error_at(err, err_len, "%s: voxel (x=%zu, y=%zu, z=%zu)%s holds %.9g: labels must be integers", v->path,
                     i % nx, i / nx % ny, i / (nx * ny) % nz, chan, x);
            free(lab);
            free(raw);
            return -1;
        }
        lab[i] = (int32_t)x;
    }
    free(raw);
    *out = lab;
    return 0;
}

int nifti_volume_read_float(const NiftiVolume *v, float **out, char *err, size_t err_len) {
    void *raw = load_raw(v, err, err_len);
    if (!raw) return -1;
    const nifti_image *nim = v->header;
    double slope, inter;
    int scaled = scaling(nim, &slope, &inter);
    size_t n = nim->nvox;
    float *f = malloc((n ? n : 1) * sizeof(float));
    if (!f) {
        free(raw);
        return error_at(err, err_len, "%s: out of memory for %zu voxels", v->path, n);
    }
    /* scaled in double as nibabel does (one rounding, to float, at the end); unscaled values are
     * converted directly */
    switch (nim->datatype) {
#define CONV(T)                                                                                    \
    {                                                                                              \
        const T *p = raw;                                                                          \
        if (scaled)                                                                                \
            for (size_t i = 0; i < n; i++) f[i] = (float)((double)p[i] * slope + inter);           \
        else                                                                                       \
            for (size_t i = 0; i < n; i++) f[i] = (float)p[i];                                     \
    }                                                                                              \
    break;
    case DT_UINT8: CONV(uint8_t)
    case DT_INT8: CONV(int8_t)
    case DT_UINT16: CONV(uint16_t)
    case DT_INT16: CONV(int16_t)
    case DT_UINT32: CONV(uint32_t)
    case DT_INT32: CONV(int32_t)
    case DT_UINT64: CONV(uint64_t)
    case DT_INT64: CONV(int64_t)
    case DT_FLOAT32: CONV(float)
    case DT_FLOAT64: CONV(double)
#undef CONV
    default: CHECK(0, "nifti_volume_read_float: datatype %d passed load_raw", nim->datatype);
    }
    free(raw);
    *out = f;
    return 0;
}

/* ---- geometry ---- */

static int close_rel(double a, double b) {
    return fabs(a - b) <= 1e-3 + 1e-4 * fmax(fabs(a), fabs(b));
}

int nifti_volume_same_geometry(const NiftiVolume *a, const NiftiVolume *b, char *err, size_t err_len) {
    if (a->nx != b->nx || a->ny != b->ny || a->nz != b->nz)
        return error_at(err, err_len, "shape %dx%dx%d (%s) differs from %dx%dx%d (%s)", a->nx, a->ny, a->nz, a->path,
                    b->nx, b->ny, b->nz, b->path);
    for (int d = 0; d < 3; d++)
        if (!close_rel(a->spacing[d], b->spacing[d]))
            return error_at(err, err_len, "voxel spacing along %c: %g mm (%s) vs %g mm (%s)", "xyz"[d], a->spacing[d],
                        a->path, b->spacing[d], b->path);
    for (int i = 0; i < 12; i++)
        if (!close_rel(a->affine[i], b->affine[i]))
            return error_at(err, err_len, "affine entry [%d][%d]: %g (%s) vs %g (%s): the volumes are not on the same grid",
                        i / 4, i % 4, a->affine[i], a->path, b->affine[i], b->path);
    return 0;
}

/* ---- writing ---- */

/* .nii or .nii.gz: one file, so that a single rename publishes it (a .hdr/.img pair could not be
 * replaced atomically). */
static int single_file_name(const char *path) {
    size_t L = strlen(path);
    return (L > 4 && !strcmp(path + L - 4, ".nii")) || (L > 7 && !strcmp(path + L - 7, ".nii.gz"));
}

/* Writes nim to tmp and checks it by reading it back: nifticlib's writer reports no status. */
static int write_checked(nifti_image *nim, const char *tmp) {
    if (nifti_set_filenames(nim, tmp, 0, 1) != 0) return -1;
    znzFile fp = nifti_image_write_hdr_img(nim, 1, "wb"); /* with data it closes the file itself */
    if (!znz_isnull(fp)) znzclose(fp);
    nifti_image *back = nifti_image_read(tmp, 0);
    int ok = back && back->datatype == nim->datatype && back->nvox == nim->nvox && back->nx == nim->nx &&
             back->ny == nim->ny && back->nz == nim->nz && back->nt == nim->nt &&
             read_span(tmp, (size_t)back->iname_offset, NULL, nim->nvox * (size_t)nim->nbyper, 1) == 0;
    if (back) nifti_image_free(back);
    return ok ? 0 : -1;
}

int nifti_volume_write_like(const NiftiVolume *ref, const char *path, const void *data /* (nt, nz, ny, nx) */,
                            int nt, int dtype, char *err, size_t err_len) {
    const nifti_image *src = ref->header;
    CHECK(src, "nifti_volume_write_like: reference volume %s is closed", ref->path);
    if (dtype != DT_UINT8 && dtype != DT_INT16 && dtype != DT_FLOAT32)
        return error_at(err, err_len, "%s: unsupported output type %d", path, dtype);
    if (!single_file_name(path)) return error_at(err, err_len, "%s: expected a .nii or .nii.gz name", path);

    /* temporary name in the same directory (rename is atomic only there), with the same extension
     * (nifticlib picks compression by name) */
    char tmp[PATH_MAX], dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (strlen(path) >= sizeof dir ||
        snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%s", dir, (long)getpid(), base) >= (int)sizeof tmp)
        return error_at(err, err_len, "%.64s...: path too long", path);

    nifti_image *nim = nifti_copy_nim_info(src);
    nim->datatype = dtype;
    nifti_datatype_sizes(dtype, &nim->nbyper, &nim->swapsize);
    nim->ndim = nim->dim[0] = nt > 1 ? 4 : 3;
    nim->dim[1] = nim->nx = ref->nx;
    nim->dim[2] = nim->ny = ref->ny;
    nim->dim[3] = nim->nz = ref->nz;
    nim->dim[4] = nim->nt = nt;
    for (int d = 5; d < 8; d++) nim->dim[d] = 1; /* unused dimensions 1, as nibabel writes them */
    nim->nu = nim->nv = nim->nw = 1;
    if (nt > 1 && !(nim->pixdim[4] > 0)) nim->pixdim[4] = nim->dt = 1;
    nim->scl_slope = 1, nim->scl_inter = 0; /* values are stored as they are */
    nim->cal_min = nim->cal_max = 0;
    nim->nvox = (size_t)ref->nx * ref->ny * ref->nz * nt;
    nim->data = (void *)data; /* borrowed: detached before nifti_image_free */
    nim->nifti_type = NIFTI_FTYPE_NIFTI1_1; /* one .nii(.gz) file, whatever the reference was */
    quiet_library();
    int rc = 0;
    if (write_checked(nim, tmp) != 0)
        rc = error_at(err, err_len, "%s: writing %s failed (disk full or not writable?)", path, tmp);
    nim->data = NULL;
    nifti_image_free(nim);
    if (rc == 0 && fsu_fsync_path(tmp, 0) != 0)
        rc = error_at(err, err_len, "%s: fsync of %s: %s", path, tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0) rc = error_at(err, err_len, "%s: rename from %s: %s", path, tmp, strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    if (fsu_fsync_path(dir, 1) != 0 && errno != EINVAL && errno != ENOTSUP)
        rc = error_at(err, err_len, "%s: fsync of directory %s: %s", path, dir, strerror(errno));
    return rc;
}
