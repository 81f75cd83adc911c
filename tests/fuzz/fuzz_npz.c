/* fuzz_npz.c — an .npz archive (libzip, member sizes, CRC) and its 'image' and 'label' arrays. */
#include "fuzz_common.h"
#include "npz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_temp_file("npz", ".npz", data, size);
    static const char *const keys[2] = {"image", "label"};
    for (int k = 0; k < 2; k++) {
        NpyArray a;
        char err[1024];
        if (npz_read(p, keys[k], &a, err, sizeof err) == 0) {
            size_t n = 1;
            for (int d = 0; d < a.ndim; d++) n *= (size_t)a.shape[d];
            fuzz_touch(a.data, n);
        }
        npy_free(&a);
    }
    return 0;
}
