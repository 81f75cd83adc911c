/* fuzz_store.c — a slice store: manifest.json and one shard (HDF5), opened with store_open
 * (manifest fields, dataset checks, chunk index, geometry attributes) and every slice read
 * (pread, Fletcher-32, inflate, unshuffle). Input: 4-byte little-endian manifest length, the
 * manifest, then the shard file's bytes (tests/fuzz/make_store_seed.c writes valid ones). */
#include <sys/stat.h>

#include "fuzz_common.h"
#include "isolate.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t mlen = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    if (mlen > size - 4) return 0;
    isolate_in_process = 1; /* libFuzzer sees no coverage in a child (isolate.h) */
    static char dir[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/unet-fuzz-%ld-store", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    mkdir(dir, 0700);
    char mp[600], sp[600];
    snprintf(mp, sizeof mp, "%s/manifest.json", dir);
    snprintf(sp, sizeof sp, "%s/shard-00000.h5", dir);
    FILE *fp = fopen(mp, "wb");
    if (!fp || (mlen && fwrite(data + 4, 1, mlen, fp) != mlen)) abort();
    fclose(fp);
    fp = fopen(sp, "wb");
    size_t sl = size - 4 - mlen;
    if (!fp || (sl && fwrite(data + 4 + mlen, 1, sl, fp) != sl)) abort();
    fclose(fp);
    Store *s;
    char err[1024];
    if (store_open(&s, dir, err, sizeof err) != 0) return 0;
    for (int i = 0; i < store_num_cases(s); i++) {
        const StoreCase *c = store_case(s, i);
        size_t hw = (size_t)c->height * c->width;
        /* the harness's own memory bound (libFuzzer's malloc limit): the resource limits allow
         * slices far larger than a fuzz input can back, and store_open has checked the chunk
         * sizes against them, so larger slices add nothing but allocation time */
        if (hw * c->channels > ((size_t)1 << 24)) continue;
        float *img = malloc(hw * c->channels * sizeof(float));
        int32_t *lab = malloc(hw * sizeof(int32_t));
        for (int z = 0; z < c->depth; z++)
            if (store_read_slice(s, i, z, img, lab, err, sizeof err) == 0) fuzz_touch(img, hw * c->channels);
        free(img);
        free(lab);
    }
    store_close(s);
    return 0;
}
