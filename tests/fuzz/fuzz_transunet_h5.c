/* fuzz_transunet_h5.c — a TransUNet test_vol_h5 case file (HDF5: datasets image and label). */
#include "fuzz_common.h"
#include "importers.h"
#include "isolate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* in-process: libFuzzer sees no coverage in a child (what `prepare` does: isolate.h) */
    isolate_in_process = 1;
    const char *p = fuzz_temp_file("case", ".npy.h5", data, size);
    float *img, *lab;
    int d[3];
    char err[1024];
    if (transunet_read_h5_case(p, &img, &lab, d, err, sizeof err) == 0) {
        size_t n = (size_t)d[0] * d[1] * d[2];
        fuzz_touch(img, n);
        fuzz_touch(lab, n);
        free(img);
        free(lab);
    }
    return 0;
}
