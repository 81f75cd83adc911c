/* test_hostile.c — hostile inputs to the readers of data/ and src/io (issue 16): each must be
 * refused with a message naming the file and the field, quickly, without a crash and without
 * allocating what the file merely declares.
 *
 *  - an .npy shape whose byte count wraps around size_t (it passed the old size check and the
 *    parser wrote past a 4-byte buffer);
 *  - NIfTI headers promising more than the limits, or more than the file holds (the old reader
 *    allocated first and reported "out of memory");
 *  - a FIFO given to every reader (each used to block forever in open()): an alarm turns a hang
 *    into a failure of this test;
 *  - safetensors shapes beyond the tensor limit. */
#include <errno.h>
#include <nifti1_io.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "file_check.h"
#include "image2d.h"
#include "nifti_volume.h"
#include "npz.h"
#include "resource_limits.h"
#include "safetensors.h"
#include "store.h"
#include "testutil.h"

/* gcc defines __SANITIZE_ADDRESS__ under -fsanitize=address; clang answers __has_feature */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN_CLANG 1
#endif
#endif
#ifndef UNDER_ASAN_CLANG
#define UNDER_ASAN_CLANG 0
#endif

static char dir[256];

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_hostile: a reader blocked (no answer within 20 s)\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(1);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(data, 1, n, fp) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(fp);
}

/* A version-1 .npy image with the given header dict and `data_bytes` zero bytes of data. */
static size_t make_npy(uint8_t *buf, size_t cap, const char *dict, size_t data_bytes) {
    size_t dl = strlen(dict), hl = (10 + dl + 1 + 15) / 16 * 16 - 10; /* padded like numpy */
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (uint8_t)(hl & 255), buf[9] = (uint8_t)(hl >> 8);
    memset(buf + 10, ' ', hl);
    memcpy(buf + 10, dict, dl);
    buf[10 + hl - 1] = '\n';
    if (10 + hl + data_bytes > cap) exit(1);
    memset(buf + 10 + hl, 0, data_bytes);
    return 10 + hl + data_bytes;
}

static void test_npy_overflow(void) {
    uint8_t buf[512];
    char err[512];
    NpyArray a;
    /* 2^62 + 1 float64: count * 8 wraps to 8 bytes (what the file holds), count * 4 wraps to 4 */
    size_t n = make_npy(buf, sizeof buf, "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387905,), }", 8);
    int rc = npy_parse("wrap.npy", buf, n, &a, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, "wrap.npy") && strstr(err, "shape"), "wrapping .npy shape refused: %s", err);
    npy_free(&a);
    /* two dimensions whose product overflows int64 */
    n = make_npy(buf, sizeof buf, "{'descr': '<f4', 'fortran_order': True, 'shape': (4294967296, 4294967297), }", 8);
    rc = npy_parse("wrap2.npy", buf, n, &a, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, "shape"), "overflowing 2-D .npy shape refused: %s", err);
    npy_free(&a);
    /* within the limits but more than present: truncated */
    n = make_npy(buf, sizeof buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000), }", 16);
    rc = npy_parse("short.npy", buf, n, &a, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, "truncated"), "short .npy data refused: %s", err);
    npy_free(&a);
    /* and a good one still parses */
    n = make_npy(buf, sizeof buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    rc = npy_parse("ok.npy", buf, n, &a, err, sizeof err);
    TEST_CHECK(rc == 0 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3, "valid .npy parses: %s", err);
    npy_free(&a);
    /* a header length beyond the limit is refused before it is copied */
    memcpy(buf, "\x93NUMPY\x02\x00\xff\xff\xff\x7f", 12);
    rc = npy_parse("hlen.npy", buf, 64, &a, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, "header"), "oversized .npy header length refused: %s", err);
}

/* A .nii: 352-byte header (NIfTI-1 single file) followed by data_bytes zero bytes. */
static void make_nifti(const char *path, int nx, int ny, int nz, size_t data_bytes) {
    nifti_1_header h;
    memset(&h, 0, sizeof h);
    h.sizeof_hdr = 348;
    h.dim[0] = 3, h.dim[1] = (short)nx, h.dim[2] = (short)ny, h.dim[3] = (short)nz;
    for (int d = 4; d < 8; d++) h.dim[d] = 1;
    h.datatype = DT_FLOAT32, h.bitpix = 32;
    for (int d = 0; d < 8; d++) h.pixdim[d] = 1;
    h.vox_offset = 352;
    memcpy(h.magic, "n+1", 4);
    size_t n = 352 + data_bytes;
    uint8_t *b = calloc(1, n);
    memcpy(b, &h, sizeof h);
    write_file(path, b, n);
    free(b);
}

static void test_nifti_declared_sizes(void) {
    char p[320], err[1024];
    NiftiVolume v;
    float *f = NULL;
    /* 30000^3 float32 (about 100 TB) in an 8 KB file: the limits refuse the header */
    snprintf(p, sizeof p, "%s/huge.nii", dir);
    make_nifti(p, 30000, 30000, 30000, 8192 - 352);
    int rc = nifti_volume_open(&v, p, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, p) && strstr(err, "dim") && !strstr(err, "out of memory"),
               "NIfTI promising terabytes refused by the limits: %s", err);
    if (rc == 0) nifti_volume_close(&v);
    /* 1024 x 1024 x 512 float32 (2 GiB) is within the limits but the file has 8 KB: truncated,
     * reported before anything is allocated */
    snprintf(p, sizeof p, "%s/short.nii", dir);
    make_nifti(p, 1024, 1024, 512, 8192 - 352);
    rc = nifti_volume_open(&v, p, err, sizeof err);
    TEST_CHECK(rc == 0, "short.nii header opens: %s", err);
    if (rc == 0) {
        rc = nifti_volume_read_float(&v, &f, err, sizeof err);
        TEST_CHECK(rc == -1 && strstr(err, p) && strstr(err, "truncated") && !strstr(err, "out of memory"),
                   "NIfTI promising 2 GiB in 8 KB reported as truncated: %s", err);
        if (rc == 0) free(f);
        nifti_volume_close(&v);
    }
    /* the same with 1 GiB of address space (in a child): the old reader allocated the 2 GiB first
     * and said "out of memory"; the check must come before the allocation. Not under
     * AddressSanitizer, whose shadow memory alone exceeds any such limit. */
#if !defined(__SANITIZE_ADDRESS__) && !UNDER_ASAN_CLANG
    snprintf(p, sizeof p, "%s/short.nii", dir);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {(rlim_t)1 << 30, (rlim_t)1 << 30};
        setrlimit(RLIMIT_AS, &rl);
        NiftiVolume w;
        float *g = NULL;
        int ok = nifti_volume_open(&w, p, err, sizeof err) == 0 && nifti_volume_read_float(&w, &g, err, sizeof err) == -1 &&
                 strstr(err, "truncated") && !strstr(err, "out of memory");
        if (!ok) fprintf(stderr, "child: %s\n", err);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    TEST_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "truncated NIfTI reported before allocating (1 GiB address space)");
#endif
    /* a well-formed small one reads */
    snprintf(p, sizeof p, "%s/ok.nii", dir);
    make_nifti(p, 4, 3, 2, 4 * 3 * 2 * 4);
    rc = nifti_volume_open(&v, p, err, sizeof err);
    if (rc == 0) {
        rc = nifti_volume_read_float(&v, &f, err, sizeof err);
        if (rc == 0) free(f);
        nifti_volume_close(&v);
    }
    TEST_CHECK(rc == 0, "valid NIfTI reads: %s", err);
}

static void test_fifos(void) {
    char p[320], err[1024];
    signal(SIGALRM, on_alarm);
    alarm(20);
    const char *names[] = {"in.nii", "in.npz", "in.safetensors", "in.png", "store/manifest.json"};
    char sdir[300];
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    mkdir(sdir, 0755);
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (mkfifo(p, 0600) != 0) {
            TEST_CHECK(0, "mkfifo %s: %s", p, strerror(errno));
            return;
        }
    }
    NiftiVolume v;
    snprintf(p, sizeof p, "%s/in.nii", dir);
    int rc = nifti_volume_open(&v, p, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, p) && strstr(err, "FIFO"), "NIfTI FIFO refused: %s", err);
    NpyArray a;
    snprintf(p, sizeof p, "%s/in.npz", dir);
    rc = npz_read(p, "image", &a, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, p) && strstr(err, "FIFO"), "npz FIFO refused: %s", err);
    StFile sf;
    snprintf(p, sizeof p, "%s/in.safetensors", dir);
    rc = st_read(&sf, p, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, p) && strstr(err, "FIFO"), "safetensors FIFO refused: %s", err);
    st_free(&sf);
    Image2D im;
    snprintf(p, sizeof p, "%s/in.png", dir);
    rc = img2d_read(p, &im, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, p) && strstr(err, "FIFO"), "image FIFO refused: %s", err);
    Store *s;
    rc = store_open(&s, sdir, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, "manifest.json") && strstr(err, "FIFO"), "store manifest FIFO refused: %s", err);
    /* and the helper on a directory and a character device */
    TEST_CHECK(fc_check_regular(dir, NULL, NULL, err, sizeof err) == -1 && strstr(err, "directory"),
               "directory refused: %s", err);
    TEST_CHECK(fc_check_regular("/dev/zero", NULL, NULL, err, sizeof err) == -1 && strstr(err, "character device"),
               "/dev/zero refused: %s", err);
    alarm(0);
}

static void test_safetensors_limits(void) {
    char p[320], err[1024];
    const char *hdr = "{\"t\":{\"dtype\":\"F32\",\"shape\":[0,4294967296,4294967296],\"data_offsets\":[0,0]}}";
    size_t L = strlen(hdr);
    uint8_t buf[256] = {0};
    buf[0] = (uint8_t)L;
    memcpy(buf + 8, hdr, L);
    snprintf(p, sizeof p, "%s/big.safetensors", dir);
    write_file(p, buf, 8 + L);
    StFile f;
    int rc = st_read(&f, p, err, sizeof err);
    TEST_CHECK(rc == -1 && strstr(err, "'t'") && strstr(err, "shape"), "empty tensor with a huge shape refused: %s", err);
    st_free(&f);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_hostile_%ld", (long)getpid());
    if (mkdir(dir, 0755) != 0) return 1;
    test_npy_overflow();
    test_nifti_declared_sizes();
    test_fifos();
    test_safetensors_limits();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary("hostile");
}
