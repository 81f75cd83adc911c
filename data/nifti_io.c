/* nifti_io.c — see nifti_io.h. */
#include "nifti_io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <nifti1_io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "store_format.h"

void nvol_free(NiftiVol *v) {
    if (!v) return;
    free(v->data);
    v->data = NULL;
}

static int to_float(const nifti_image *nim, float *out, size_t n) {
    const void *p = nim->data;
    switch (nim->datatype) {
#define CONV(T)                                                                                    \
    for (size_t i = 0; i < n; i++) out[i] = (float)((const T *)p)[i];                             \
    return 0;
    case DT_UINT8: CONV(uint8_t)
    case DT_INT8: CONV(int8_t)
    case DT_INT16: CONV(int16_t)
    case DT_UINT16: CONV(uint16_t)
    case DT_INT32: CONV(int32_t)
    case DT_UINT32: CONV(uint32_t)
    case DT_INT64: CONV(int64_t)
    case DT_UINT64: CONV(uint64_t)
    case DT_FLOAT32: CONV(float)
    case DT_FLOAT64: CONV(double)
#undef CONV
    default: return -1;
    }
}

/* The voxel bytes, read with znz directly: nifticlib's own loader silently replaces NaN and
 * infinite floats with 0, which would hide exactly the bad input we must report, and it does
 * not always notice a truncated gzip stream. Returns 0, -1 short (truncated), -2 unreadable. */
static int read_payload(const nifti_image *nim, void *buf, size_t bytes) {
    znzFile fp = znzopen(nim->iname, "rb", nifti_is_gzfile(nim->iname));
    if (znz_isnull(fp)) return -2;
    int rc = 0;
    if (znzseek(fp, (long)nim->iname_offset, SEEK_SET) < 0) rc = -1;
    size_t got = 0;
    while (rc == 0 && got < bytes) {
        size_t chunk = bytes - got > (1u << 30) ? (1u << 30) : bytes - got;
        size_t r = znzread((char *)buf + got, 1, chunk, fp);
        if (r == 0) break;
        got += r;
    }
    if (got < bytes) rc = -1;
    znzclose(fp);
    return rc;
}

/* Size of a gzip/plain file's payload after offset: used to verify writes. */
static int gz_payload_ok(const char *path, size_t want_bytes) {
    znzFile fp = znzopen(path, "rb", nifti_is_gzfile(path));
    if (znz_isnull(fp)) return 0;
    char buf[1 << 16];
    size_t total = 0;
    long got;
    while ((got = (long)znzread(buf, 1, sizeof buf, fp)) > 0) total += (size_t)got;
    int ok = total >= want_bytes;
    znzclose(fp);
    return ok;
}

int nvol_read(const char *path, NiftiVol *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    if (access(path, R_OK) != 0) return error_at(err, err_len, "%s: cannot read: %s", path, strerror(errno));
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim) return error_at(err, err_len, "%s: not a readable NIfTI-1 file (bad or truncated header)", path);
    int rc = -1;
    if (nim->ndim < 1 || nim->nx < 1 || nim->ny < 1 || nim->nz < 1) {
        error_at(err, err_len, "%s: dimensions %d x %d x %d are not a volume", path, nim->nx, nim->ny, nim->nz);
        goto out;
    }
    size_t n = nim->nvox;
    size_t bytes = n * (size_t)nim->nbyper;
    nim->data = malloc(bytes ? bytes : 1);
    if (!nim->data) {
        error_at(err, err_len, "%s: out of memory for %zu voxels", path, n);
        goto out;
    }
    int pr = read_payload(nim, nim->data, bytes);
    if (pr != 0) {
        error_at(err, err_len, "%s: %s", path,
                  pr == -1 ? "truncated: the voxel data is shorter than the header promises (or the gzip stream is corrupt)"
                           : "the voxel data cannot be opened");
        goto out;
    }
    if (nim->byteorder != nifti_short_order() && nim->swapsize > 1) nifti_swap_Nbytes(n, nim->swapsize, nim->data);
    out->data = malloc(n * sizeof(float));
    if (!out->data) {
        error_at(err, err_len, "%s: out of memory for %zu voxels", path, n);
        goto out;
    }
    if (to_float(nim, out->data, n) != 0) {
        error_at(err, err_len, "%s: unsupported NIfTI datatype %d (%s)", path, nim->datatype,
                  nifti_datatype_string(nim->datatype));
        goto out;
    }
    if (nim->scl_slope != 0 && !(nim->scl_slope == 1 && nim->scl_inter == 0))
        for (size_t i = 0; i < n; i++) out->data[i] = out->data[i] * nim->scl_slope + nim->scl_inter;
    out->nx = nim->nx;
    out->ny = nim->ny;
    out->nz = nim->nz;
    out->nt = (int)(n / ((size_t)nim->nx * nim->ny * nim->nz));
    out->datatype = nim->datatype;
    out->spacing[0] = fabs(nim->dx);
    out->spacing[1] = fabs(nim->dy);
    out->spacing[2] = fabs(nim->dz);
    out->sform_code = nim->sform_code;
    out->qform_code = nim->qform_code;
    mat44 m = nim->sform_code > 0 ? nim->sto_xyz : nim->qto_xyz;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) out->affine[4 * i + j] = m.m[i][j];
    rc = 0;
out:
    if (rc) nvol_free(out);
    nifti_image_free(nim);
    return rc;
}

int nvol_write(const char *path, const void *data, int datatype, int nx, int ny, int nz, const double spacing[3],
               const double affine[16], char *err, size_t err_len) {
    if (datatype != DT_UINT8 && datatype != DT_INT16 && datatype != DT_FLOAT32)
        return error_at(err, err_len, "%s: datatype %d not supported for writing", path, datatype);
    size_t L = strlen(path);
    int gz = L > 7 && !strcmp(path + L - 7, ".nii.gz");
    if (!gz && !(L > 4 && !strcmp(path + L - 4, ".nii")))
        return error_at(err, err_len, "%s: expected a .nii or .nii.gz name", path);
    char tmp[PATH_MAX];
    /* Same directory (so rename is atomic), same extension (nifticlib picks gzip by name). */
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    snprintf(tmp, sizeof tmp, "%.*s.tmp%ld.%s", dirlen, path, (long)getpid(), path + dirlen);

    int dims[8] = {3, nx, ny, nz, 1, 1, 1, 1};
    nifti_image *nim = nifti_make_new_nim(dims, datatype, 0);
    if (!nim) return error_at(err, err_len, "%s: nifticlib could not make an image", path);
    nim->data = (void *)data; /* borrowed: detached before nifti_image_free */
    nim->dx = nim->pixdim[1] = (float)spacing[0];
    nim->dy = nim->pixdim[2] = (float)spacing[1];
    nim->dz = nim->pixdim[3] = (float)spacing[2];
    nim->xyz_units = NIFTI_UNITS_MM;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) nim->sto_xyz.m[i][j] = (float)affine[4 * i + j];
    nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->sto_ijk = nifti_mat44_inverse(nim->sto_xyz);
    nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
    nifti_mat44_to_quatern(nim->sto_xyz, &nim->quatern_b, &nim->quatern_c, &nim->quatern_d, &nim->qoffset_x,
                           &nim->qoffset_y, &nim->qoffset_z, NULL, NULL, NULL, &nim->qfac);
    nim->pixdim[0] = nim->qfac;
    nim->qto_xyz = nifti_quatern_to_mat44(nim->quatern_b, nim->quatern_c, nim->quatern_d, nim->qoffset_x,
                                          nim->qoffset_y, nim->qoffset_z, nim->dx, nim->dy, nim->dz, nim->qfac);
    nim->qto_ijk = nifti_mat44_inverse(nim->qto_xyz);
    int rc = -1;
    if (nifti_set_filenames(nim, tmp, 0, 1) != 0) {
        error_at(err, err_len, "%s: nifticlib rejected the file name", tmp);
        goto out;
    }
    nifti_image_write(nim); /* void: success is checked by reading the header back */
    nifti_image *back = nifti_image_read(tmp, 0);
    int ok = back && back->nx == nx && back->ny == ny && back->nz == nz &&
             gz_payload_ok(tmp, (size_t)back->iname_offset + (size_t)nx * ny * nz * back->nbyper);
    if (back) nifti_image_free(back);
    if (!ok) {
        error_at(err, err_len, "%s: writing failed (disk full or not writable?)", tmp);
        unlink(tmp);
        goto out;
    }
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        error_at(err, err_len, "%s: fsync failed: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        error_at(err, err_len, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", dirlen ? dirlen : 1, dirlen ? path : ".");
    fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    rc = 0;
out:
    nim->data = NULL;
    nifti_image_free(nim);
    return rc;
}
