/* fuzz_nifti.c — NIfTI-1 header and voxels (nifti_volume_open, _read_float, _read_labels).
 * The first byte picks .nii or .nii.gz (nifticlib decides compression by the name). */
#include "fuzz_common.h"
#include "nifti_volume.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *p = fuzz_temp_file("nifti", data[0] & 1 ? ".nii.gz" : ".nii", data + 1, size - 1);
    NiftiVolume v;
    char err[1024];
    if (nifti_volume_open(&v, p, err, sizeof err) == 0) {
        size_t n = (size_t)v.nx * v.ny * v.nz * v.nt;
        float *f = NULL;
        if (nifti_volume_read_float(&v, &f, err, sizeof err) == 0) {
            fuzz_touch(f, n);
            free(f);
        }
        int32_t *lab = NULL;
        if (nifti_volume_read_labels(&v, &lab, err, sizeof err) == 0) free(lab);
        nifti_volume_close(&v);
    }
    return 0;
}
