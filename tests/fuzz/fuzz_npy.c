/* fuzz_npy.c — an .npy image in memory (npy_parse: header dict, dtype, shape, C/Fortran order). */
#include "fuzz_common.h"
#include "npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    NpyArray a;
    char err[1024];
    if (npy_parse("fuzz.npy", data, size, &a, err, sizeof err) == 0) {
        size_t n = 1;
        for (int k = 0; k < a.ndim; k++) n *= (size_t)a.shape[k];
        fuzz_touch(a.data, n);
    }
    npy_free(&a);
    return 0;
}
