/* fuzz_tiff.c — a grey TIFF stack (libtiff, every page) as `prepare em` reads it. */
#include "fuzz_common.h"
#include "importers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_temp_file("stack", ".tif", data, size);
    float *x;
    int n, h, w;
    char err[1024];
    if (em_read_tiff_stack(p, &x, &n, &h, &w, err, sizeof err) == 0) {
        fuzz_touch(x, (size_t)n * h * w);
        free(x);
    }
    return 0;
}
