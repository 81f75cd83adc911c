/* fuzz_safetensors.c — st_read (header JSON, offsets, shapes) and every tensor's bytes. */
#include "fuzz_common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_temp_file("st", ".safetensors", data, size);
    StFile f;
    char err[1024];
    if (st_read(&f, p, err, sizeof err) == 0) {
        volatile uint8_t sink = 0;
        for (int i = 0; i < f.n_tensors; i++) {
            const StTensor *t = &f.tensors[i];
            const uint8_t *b = t->data;
            for (size_t k = 0; k < t->nbytes; k++) sink ^= b[k];
            (void)st_meta_get(&f, t->name);
        }
        (void)sink;
    }
    st_free(&f);
    return 0;
}
