/* fuzz_image2d.c — img2d_read: JPEG (libjpeg), PNG (libpng) and the BMP reader, picked by magic
 * bytes. Built twice, as fuzz_png_jpeg and fuzz_bmp: one code path each by their seed corpora. */
#include "fuzz_common.h"
#include "image2d.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_temp_file("img", ".img", data, size);
    Image2D im;
    char err[1024];
    if (img2d_read(p, &im, err, sizeof err) == 0) {
        volatile uint8_t sink = 0;
        size_t n = (size_t)im.width * im.height * im.channels;
        for (size_t i = 0; i < n; i++) sink ^= im.data[i];
        (void)sink;
        img2d_free(&im);
    }
    return 0;
}
