/* import_nifti.c — the NIfTI case reader shared by the Synapse and ACDC importers (see
 * import_common.h). Headers are checked before any voxel is read, so a shape mismatch fails
 * without inflating two volumes. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "import_common.h"
#include "nifti_volume.h"

void imp_free_nifti_case(ImpNiftiCase *c) {
    free(c->image);
    free(c->label);
    c->image = NULL;
    c->label = NULL;
}

int imp_read_nifti_case(ImpNiftiCase *out, const char *name, const char *image_path, const char *label_path,
                        const int *map, int map_len, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    NiftiVolume img, lab;
    if (nifti_volume_open(&img, image_path, err, err_len)) return -1;
    if (nifti_volume_open(&lab, label_path, err, err_len)) {
        nifti_volume_close(&img);
        return -1;
    }
    int rc = -1;
    float *lab_values = NULL;
    if (img.nt != 1 || lab.nt != 1) {
        error_at(err, err_len, "%s: expected a 3-D volume, found %d volumes", img.nt != 1 ? image_path : label_path,
                 img.nt != 1 ? img.nt : lab.nt);
        goto out;
    }
    if (img.nx != lab.nx || img.ny != lab.ny || img.nz != lab.nz) {
        error_at(err, err_len, "case %s: image %s is %d x %d x %d but label %s is %d x %d x %d", name, image_path,
                 img.nx, img.ny, img.nz, label_path, lab.nx, lab.ny, lab.nz);
        goto out;
    }
    out->nx = img.nx, out->ny = img.ny, out->nz = img.nz;
    memcpy(out->spacing, img.spacing, sizeof out->spacing);
    memcpy(out->affine, img.affine, sizeof out->affine);
    if (nifti_volume_read_float(&img, &out->image, err, err_len) ||
        imp_check_finite(image_path, out->image, img.nx, img.ny, img.nz, 1, err, err_len) ||
        nifti_volume_read_float(&lab, &lab_values, err, err_len))
        goto out;
    out->label = xmalloc((size_t)lab.nx * lab.ny * lab.nz);
    if (imp_map_labels(label_path, lab_values, out->label, lab.nx, lab.ny, lab.nz, map, map_len, err, err_len)) goto out;
    rc = 0;
out:
    free(lab_values);
    nifti_volume_close(&img);
    nifti_volume_close(&lab);
    if (rc) imp_free_nifti_case(out);
    return rc;
}
