/* test_store.c — the slice store: write with store_write.c, read back with store.c.
 *
 * The writer hands the data to HDF5's own filter pipeline (shuffle, deflate, fletcher32), and
 * the reader undoes the filters itself, so equality of every slice read back with the arrays
 * written checks our decoding against HDF5's encoding. Also: concurrent readers, a corrupted
 * chunk (detected by the checksum, and by HDF5 too), atomic creation and --force. */
#include <glob.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_write.h"
#include "testutil.h"

typedef struct {
    const char *name, *split;
    int d, c, h, w;
    float *image;   /* (d, c, h, w) */
    uint8_t *label; /* (d, h, w) */
} Case;

static Case cases[3] = {{"img0001", "train", 5, 2, 17, 23, NULL, NULL},
                        {"img0002", "test", 3, 2, 32, 8, NULL, NULL},
                        {"img0003", "val", 4, 2, 9, 9, NULL, NULL}};
static const char *classes[3] = {"background", "liver", "spleen"};

static void make_cases(void) {
    TestRng r = {42};
    for (int i = 0; i < 3; i++) {
        Case *c = &cases[i];
        size_t n = (size_t)c->d * c->c * c->h * c->w, nl = (size_t)c->d * c->h * c->w;
        c->image = malloc(n * sizeof(float));
        c->label = malloc(nl);
        /* Case 0 is noise; the others are smooth and compress well. */
        for (size_t k = 0; k < n; k++) c->image[k] = i == 0 ? test_uniform(&r, -3, 3) : (float)((double)(k % 97) * 0.25);
        for (size_t k = 0; k < nl; k++) c->label[k] = (uint8_t)(i == 0 ? (size_t)test_uniform(&r, 0, 3) : (k / 50) % 3);
    }
}

static int write_store(const char *dir, int force, double shard_mb, char *err, size_t n) {
    StoreWriterOptions o = {.dataset = "unit", .description = "test_store", .num_classes = 3, .class_names = classes,
                            .channels = 2, .shard_mb = shard_mb, .force = force};
    StoreWriter *w;
    if (store_writer_create(&w, dir, &o, err, n)) return -1;
    for (int i = 0; i < 3; i++) {
        Case *c = &cases[i];
        StoreCaseInput in = {.name = c->name, .split = c->split, .depth = c->d, .channels = c->c, .height = c->h,
                             .width = c->w, .image = c->image, .label = c->label, .spacing = {0.7, 0.8, 2.5},
                             .affine = {-0.7, 0, 0, 10, 0, -0.8, 0, 20, 0, 0, 2.5, 30 + i, 0, 0, 0, 1},
                             .original_ndim = 3, .original_shape = {c->w, c->h, c->d}, .normalisation = "none"};
        if (store_writer_add_case(w, &in, err, n)) {
            store_writer_abort(w);
            return -1;
        }
    }
    return store_writer_commit(w, err, n);
}

static int slice_equal(const Store *s, int ci, int z, const Case *c) {
    size_t hw = (size_t)c->h * c->w;
    float *img = malloc(hw * c->c * sizeof(float));
    int32_t *lab = malloc(hw * sizeof(int32_t));
    char err[512];
    int ok = store_read_slice(s, ci, z, img, lab, err, sizeof err) == 0;
    if (!ok) fprintf(stderr, "read failed: %s\n", err);
    ok = ok && !memcmp(img, c->image + (size_t)z * c->c * hw, hw * c->c * sizeof(float));
    for (size_t k = 0; ok && k < hw; k++) ok = lab[k] == c->label[(size_t)z * hw + k];
    free(img);
    free(lab);
    return ok;
}

typedef struct {
    const Store *s;
    int seed, ok;
} Reader;

static void *reader(void *arg) {
    Reader *r = arg;
    r->ok = 1;
    for (int it = 0; it < 300; it++) {
        int ci = (r->seed * 7 + it * 13) % 3;
        int z = (it * 5 + r->seed) % cases[ci].d;
        r->ok &= slice_equal(r->s, ci, z, &cases[ci]);
    }
    return NULL;
}

/* Flips one byte in the middle of the image chunk of (case, slice), located through HDF5. */
static void corrupt_chunk(const char *shard, const char *case_name, int z) {
    hid_t f = H5Fopen(shard, H5F_ACC_RDONLY, H5P_DEFAULT);
    char p[128];
    snprintf(p, sizeof p, "cases/%s/image", case_name);
    hid_t ds = H5Dopen2(f, p, H5P_DEFAULT);
    hsize_t off[4] = {(hsize_t)z, 0, 0, 0}, size = 0;
    haddr_t addr = 0;
    unsigned mask = 0;
    H5Dget_chunk_info_by_coord(ds, off, &mask, &addr, &size);
    H5Dclose(ds);
    H5Fclose(f);
    FILE *fp = fopen(shard, "r+b");
    fseek(fp, (long)(addr + size / 2), SEEK_SET);
    int b = fgetc(fp);
    fseek(fp, (long)(addr + size / 2), SEEK_SET);
    fputc(b ^ 0x5a, fp);
    fclose(fp);
}

int main(void) {
    make_cases();
    char root[] = "/tmp/test_store_XXXXXX";
    TEST_CHECK(mkdtemp(root) != NULL, "mkdtemp");
    char dir[256], err[1024];
    snprintf(dir, sizeof dir, "%s/store", root);
    /* A shard limit below one case's size: every case gets its own shard. */
    TEST_CHECK(write_store(dir, 0, 1e-6, err, sizeof err) == 0, "write: %s", err);

    Store *s = NULL;
    TEST_CHECK(store_open(&s, dir, err, sizeof err) == 0, "open: %s", err);
    if (!s) return test_summary("test_store");
    TEST_CHECK(store_num_cases(s) == 3, "3 cases");
    TEST_CHECK(store_num_classes(s) == 3 && !strcmp(store_class_name(s, 2), "spleen"), "classes");
    const StoreCase *c1 = store_case(s, 1);
    TEST_CHECK(!strcmp(c1->name, "img0002") && c1->depth == 3 && c1->channels == 2 && c1->height == 32 &&
                   c1->width == 8 && c1->shard == 1,
               "case 1 metadata");
    TEST_CHECK(c1->spacing[2] == 2.5 && c1->affine[11] == 31 && c1->affine[0] == -0.7, "geometry");
    int idx[8];
    TEST_CHECK(store_split(s, "train", idx, 8) == 1 && idx[0] == 0, "train split");
    TEST_CHECK(store_split(s, "test", idx, 8) == 1 && idx[0] == 1, "test split");
    TEST_CHECK(store_split(s, "val", idx, 8) == 1 && idx[0] == 2, "val split");
    for (int i = 0; i < 3; i++)
        for (int z = 0; z < cases[i].d; z++) TEST_CHECK(slice_equal(s, i, z, &cases[i]), "case %d slice %d", i, z);
    TEST_CHECK(store_read_slice(s, 0, 5, NULL, NULL, err, sizeof err) != 0 && strstr(err, "img0001") &&
                   strstr(err, "slice 5"),
               "out-of-range slice names case and slice: %s", err);

    /* Four threads at once. */
    pthread_t th[4];
    Reader rd[4];
    for (int t = 0; t < 4; t++) {
        rd[t] = (Reader){s, t, 0};
        pthread_create(&th[t], NULL, reader, &rd[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        TEST_CHECK(rd[t].ok, "concurrent reader %d", t);
    }
    store_close(s);

    /* Not clobbered without force; replaced with it; a non-store directory is never replaced. */
    TEST_CHECK(write_store(dir, 0, 1024, err, sizeof err) != 0 && strstr(err, "already exists"), "no clobber: %s", err);
    TEST_CHECK(write_store(dir, 1, 1024, err, sizeof err) == 0, "force: %s", err);
    TEST_CHECK(store_open(&s, dir, err, sizeof err) == 0 && store_case(s, 2)->shard == 0, "one shard after force");
    store_close(s);
    char other[300];
    snprintf(other, sizeof other, "%s/other", root);
    mkdir(other, 0755);
    char keep[320];
    snprintf(keep, sizeof keep, "%s/keep.txt", other);
    fclose(fopen(keep, "w"));
    TEST_CHECK(write_store(other, 1, 1024, err, sizeof err) != 0 && access(keep, F_OK) == 0,
               "non-store dir kept: %s", err);

    /* An aborted build leaves nothing behind. */
    char ab[300], tmp[340];
    snprintf(ab, sizeof ab, "%s/aborted", root);
    StoreWriterOptions o = {.dataset = "unit", .num_classes = 3, .class_names = classes, .channels = 2};
    StoreWriter *w;
    TEST_CHECK(store_writer_create(&w, ab, &o, err, sizeof err) == 0, "create");
    uint8_t bad_label[4] = {0, 1, 7, 0};
    float img[8] = {0};
    StoreCaseInput in = {.name = "x", .split = "train", .depth = 1, .channels = 2, .height = 2, .width = 2,
                         .image = img, .label = bad_label, .original_ndim = 1, .original_shape = {4}};
    TEST_CHECK(store_writer_add_case(w, &in, err, sizeof err) != 0 && strstr(err, "label 7"), "bad label: %s", err);
    store_writer_abort(w);
    snprintf(tmp, sizeof tmp, "%s.tmp.*", ab);
    glob_t g;
    int gr = glob(tmp, 0, NULL, &g);
    TEST_CHECK(access(ab, F_OK) != 0 && gr == GLOB_NOMATCH, "abort leaves nothing (%s)", gr == 0 ? g.gl_pathv[0] : "");
    if (gr == 0) globfree(&g);

    /* A corrupted chunk: the checksum catches it, naming store, case and slice; HDF5 agrees. */
    char shard[320];
    snprintf(shard, sizeof shard, "%s/shard-00000.h5", dir);
    corrupt_chunk(shard, "img0003", 2);
    TEST_CHECK(store_open(&s, dir, err, sizeof err) == 0, "open after corruption: %s", err);
    float buf[2 * 9 * 9];
    int32_t lab[81];
    TEST_CHECK(store_read_slice(s, 2, 2, buf, lab, err, sizeof err) != 0 && strstr(err, "Fletcher-32") &&
                   strstr(err, "img0003") && strstr(err, "slice 2") && strstr(err, "shard-00000.h5"),
               "corruption detected: %s", err);
    TEST_CHECK(slice_equal(s, 2, 1, &cases[2]), "other slices still read");
    store_close(s);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(shard, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "cases/img0003/image", H5P_DEFAULT);
    float *all = malloc(4 * 2 * 81 * sizeof(float));
    TEST_CHECK(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, all) < 0, "HDF5 also rejects the chunk");
    free(all);
    H5Dclose(ds);
    H5Fclose(f);

    /* Incompressible chunks (random labels over 256 classes): deflate output larger than its
     * input. HDF5 1.10 stores it deflated anyway (filter mask 0); other versions may skip the
     * optional filter (mask bit 1), which the reader honours. Either way the slice reads back. */
    {
        static const char *names256[256];
        for (int k = 0; k < 256; k++) names256[k] = "k";
        char d2[300];
        snprintf(d2, sizeof d2, "%s/raw", root);
        StoreWriterOptions o2 = {.dataset = "unit", .num_classes = 256, .class_names = names256, .channels = 1};
        enum { D2 = 2, H2 = 64, W2 = 64 };
        static uint8_t lab2[D2 * H2 * W2];
        static float img2[D2 * H2 * W2];
        TestRng r2 = {7};
        for (int k = 0; k < D2 * H2 * W2; k++) lab2[k] = (uint8_t)(test_uniform(&r2, 0, 1) * 256), img2[k] = (float)k;
        StoreCaseInput in2 = {.name = "noise", .split = "train", .depth = D2, .channels = 1, .height = H2, .width = W2,
                              .image = img2, .label = lab2, .original_ndim = 1, .original_shape = {1}};
        StoreWriter *w2;
        TEST_CHECK(store_writer_create(&w2, d2, &o2, err, sizeof err) == 0 &&
                       store_writer_add_case(w2, &in2, err, sizeof err) == 0 && store_writer_commit(w2, err, sizeof err) == 0,
                   "write raw store: %s", err);
        char sh2[340];
        snprintf(sh2, sizeof sh2, "%s/shard-00000.h5", d2);
        hid_t f2 = H5Fopen(sh2, H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t ds2 = H5Dopen2(f2, "cases/noise/label", H5P_DEFAULT);
        hsize_t off2[3] = {1, 0, 0}, size2 = 0;
        haddr_t addr2;
        unsigned mask2 = 0;
        H5Dget_chunk_info_by_coord(ds2, off2, &mask2, &addr2, &size2);
        H5Dclose(ds2);
        H5Fclose(f2);
        TEST_CHECK(mask2 == 0u || mask2 == 2u, "noise chunk filter mask %u", mask2);
        Store *s2;
        TEST_CHECK(store_open(&s2, d2, err, sizeof err) == 0, "open raw store: %s", err);
        int32_t got[H2 * W2];
        float gi[H2 * W2];
        int ok2 = store_read_slice(s2, 0, 1, gi, got, err, sizeof err) == 0;
        for (int k = 0; ok2 && k < H2 * W2; k++) ok2 = got[k] == lab2[H2 * W2 + k] && gi[k] == img2[H2 * W2 + k];
        TEST_CHECK(ok2, "incompressible slice reads back: %s", err);
        store_close(s2);
    }

    /* A directory without a manifest is not a store. */
    char m[320];
    snprintf(m, sizeof m, "%s/manifest.json", dir);
    unlink(m);
    TEST_CHECK(store_open(&s, dir, err, sizeof err) != 0 && strstr(err, "manifest.json"), "no manifest: %s", err);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    for (int i = 0; i < 3; i++) {
        free(cases[i].image);
        free(cases[i].label);
    }
    return test_summary("test_store");
}
