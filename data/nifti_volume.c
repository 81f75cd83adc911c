/* nifti_volume.c — see nifti_volume.h. */
#include "nifti_volume.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <nifti1_io.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

int nifti_volume_open(NiftiVolume *v, const char *path, char *err, size_t err_len) {
    memset(v, 0, sizeof *v);
    snprintf(v->path, sizeof v->path, "%s", path);
    if (access(path, R_OK) != 0) return error_at(err, err_len, "%s: cannot read: %s", path, strerror(errno));
    nifti_set_debug_level(getenv("UNET_NIFTI_DEBUG") ? 3 : 0); /* its own messages would duplicate ours */
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim) return error_at(err, err_len, "%s: not a readable NIfTI-1 file", path);
    if (nim->ndim < 2 || nim->ndim > 4 || nim->nu > 1 || nim->nv > 1 || nim->nw > 1) {
        int nd = nim->ndim;
        nifti_image_free(nim);
        return error_at(err, err_len, "%s: %d-dimensional image; expected a 3D volume (or 4D with channels last)", path, nd);
    }
    v->nx = nim->nx;
    v->ny = nim->ny > 0 ? nim->ny : 1;
    v->nz = nim->ndim >= 3 && nim->nz > 0 ? nim->nz : 1;
    v->nt = nim->ndim >= 4 && nim->nt > 0 ? nim->nt : 1;
    v->spacing[0] = nim->dx, v->spacing[1] = nim->dy, v->spacing[2] = nim->dz;
    for (int d = 0; d < 3; d++)
        if (!(v->spacing[d] > 0)) v->spacing[d] = 1.0; /* nibabel reports 0; medpy needs positive */
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

/* Loads the data of a fresh copy of the header; returns the nifti_image (caller frees). */
static nifti_image *load(const NiftiVolume *v, char *err, size_t err_len) {
    nifti_image *nim = nifti_image_read(v->path, 1);
    if (!nim || !nim->data) {
        if (nim) nifti_image_free(nim);
        error_at(err, err_len, "%s: cannot read the voxel data (truncated or corrupt file?)", v->path);
        return NULL;
    }
    return nim;
}

static double voxel(const nifti_image *nim, size_t i) {
    switch (nim->datatype) {
    case DT_UINT8: return ((const uint8_t *)nim->data)[i];
    case DT_INT8: return ((const int8_t *)nim->data)[i];
    case DT_UINT16: return ((const uint16_t *)nim->data)[i];
    case DT_INT16: return ((const int16_t *)nim->data)[i];
    case DT_UINT32: return ((const uint32_t *)nim->data)[i];
    case DT_INT32: return ((const int32_t *)nim->data)[i];
    case DT_UINT64: return (double)((const uint64_t *)nim->data)[i];
    case DT_INT64: return (double)((const int64_t *)nim->data)[i];
    case DT_FLOAT32: return ((const float *)nim->data)[i];
    case DT_FLOAT64: return ((const double *)nim->data)[i];
    default: return NAN;
    }
}

static int supported(const nifti_image *nim) {
    switch (nim->datatype) {
    case DT_UINT8: case DT_INT8: case DT_UINT16: case DT_INT16: case DT_UINT32: case DT_INT32:
    case DT_UINT64: case DT_INT64: case DT_FLOAT32: case DT_FLOAT64: return 1;
    default: return 0;
    }
}

int nifti_volume_read_labels(const NiftiVolume *v, int32_t **out, char *err, size_t err_len) {
    nifti_image *nim = load(v, err, err_len);
    if (!nim) return -1;
    if (!supported(nim)) {
        int dt = nim->datatype;
        nifti_image_free(nim);
        return error_at(err, err_len, "%s: unsupported voxel type %s", v->path, nifti_datatype_string(dt));
    }
    int scaled = nim->scl_slope != 0 && (nim->scl_slope != 1 || nim->scl_inter != 0);
    double slope = scaled ? nim->scl_slope : 1, inter = scaled ? nim->scl_inter : 0;
    size_t n = nim->nvox;
    int32_t *lab = xmalloc(n * sizeof(int32_t));
    size_t bad = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        double x = voxel(nim, i) * slope + inter;
        if (!(x == floor(x)) || x < -2147483648.0 || x > 2147483647.0) {
            bad = i;
            break;
        }
        lab[i] = (int32_t)x;
    }
    if (bad != (size_t)-1) {
        double x = voxel(nim, bad) * slope + inter;
        size_t nx = (size_t)v->nx, ny = (size_t)v->ny;
        error_at(err, err_len, "%s: voxel (x=%zu, y=%zu, z=%zu) holds %.9g: labels must be integers", v->path,
             bad % nx, bad / nx % ny, bad / (nx * ny), x);
        free(lab);
        nifti_image_free(nim);
        return -1;
    }
    nifti_image_free(nim);
    *out = lab;
    return 0;
}

int nifti_volume_read_float(const NiftiVolume *v, float **out, char *err, size_t err_len) {
    nifti_image *nim = load(v, err, err_len);
    if (!nim) return -1;
    if (!supported(nim)) {
        int dt = nim->datatype;
        nifti_image_free(nim);
        return error_at(err, err_len, "%s: unsupported voxel type %s", v->path, nifti_datatype_string(dt));
    }
    int scaled = nim->scl_slope != 0 && (nim->scl_slope != 1 || nim->scl_inter != 0);
    double slope = scaled ? nim->scl_slope : 1, inter = scaled ? nim->scl_inter : 0;
    float *f = xmalloc(nim->nvox * sizeof(float));
    for (size_t i = 0; i < nim->nvox; i++) f[i] = (float)(voxel(nim, i) * slope + inter);
    nifti_image_free(nim);
    *out = f;
    return 0;
}

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

int nifti_volume_write_like(const NiftiVolume *ref, const char *path, const void *data /* (nt, nz, ny, nx) */,
                            int nt, int dtype, char *err, size_t err_len) {
    const nifti_image *src = ref->header;
    CHECK(src, "nifti_volume_write_like: reference volume %s is closed", ref->path);
    if (dtype != DT_UINT8 && dtype != DT_INT16 && dtype != DT_FLOAT32)
        return error_at(err, err_len, "%s: unsupported output type %d", path, dtype);
    nifti_image *nim = nifti_copy_nim_info(src);
    nim->datatype = dtype;
    nifti_datatype_sizes(dtype, &nim->nbyper, &nim->swapsize);
    nim->ndim = nim->dim[0] = nt > 1 ? 4 : 3;
    nim->dim[1] = nim->nx = ref->nx;
    nim->dim[2] = nim->ny = ref->ny;
    nim->dim[3] = nim->nz = ref->nz;
    nim->dim[4] = nim->nt = nt;
    for (int d = 5; d < 8; d++) nim->dim[d] = 1;
    nim->nu = nim->nv = nim->nw = 1;
    if (nt > 1 && !(nim->pixdim[4] > 0)) nim->pixdim[4] = nim->dt = 1;
    nim->scl_slope = 1, nim->scl_inter = 0; /* values are stored as they are */
    nim->cal_min = nim->cal_max = 0;
    nim->nvox = (size_t)ref->nx * ref->ny * ref->nz * nt;
    nim->data = (void *)data;

    /* temporary name in the same directory, with the same extension (it picks compression) */
    char tmp[1200], dir[1024];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (slash == path) snprintf(dir, sizeof dir, "/");
    snprintf(tmp, sizeof tmp, "%s/.tmp-%ld-%s", dir, (long)getpid(), base);
    int rc = 0;
    nim->nifti_type = NIFTI_FTYPE_NIFTI1_1; /* one .nii(.gz) file, whatever the reference was */
    if (nifti_set_filenames(nim, tmp, 0, 1) != 0) {
        rc = error_at(err, err_len, "%s: not a NIfTI file name (use .nii or .nii.gz)", path);
    } else {
        /* with write_data the library closes the file itself and returns NULL; it reports no
         * status, so the written header is read back as the check */
        znzFile fp = nifti_image_write_hdr_img(nim, 1, "wb");
        if (!znz_isnull(fp)) znzclose(fp);
        nifti_image *back = nifti_image_read(tmp, 0);
        if (!back || back->nvox != nim->nvox || back->datatype != dtype)
            rc = error_at(err, err_len, "%s: cannot write %s", path, tmp);
        if (back) nifti_image_free(back);
    }
    nim->data = NULL;
    nifti_image_free(nim);
    if (rc == 0) {
        int fd = open(tmp, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0) rc = error_at(err, err_len, "%s: fsync of %s: %s", path, tmp, strerror(errno));
        if (fd >= 0) close(fd);
    }
    if (rc == 0 && rename(tmp, path) != 0) rc = error_at(err, err_len, "%s: rename from %s: %s", path, tmp, strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP)
            rc = error_at(err, err_len, "%s: fsync of directory %s: %s", path, dir, strerror(errno));
        close(dfd);
    }
    return rc;
}
