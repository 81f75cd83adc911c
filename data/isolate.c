/* isolate.c — see isolate.h.
 *
 * The pipe carries frames: a u64 byte count and that many bytes per isolate_put, then the end
 * frame: u64 ISOLATE_END, i32 rc, u32 message length, the message. A child that dies before the
 * end frame has crashed, whatever its exit status (a sanitizer turns a crash into exit 1). */
#include "isolate.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define ISOLATE_END UINT64_MAX
#define ISOLATE_MSG_MAX 2048 /* the child's message buffer */

int isolate_in_process = 0;

struct IsolateOut {
    int fd;           /* the pipe (child), or -1: collect in buf (in process) */
    uint8_t *buf;     /* (cap) in-process results */
    size_t len, cap, max;
    int over;         /* in process: the step put more than max bytes */
};

static int read_full(int fd, void *buf, size_t n) {
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
    for (size_t put = 0; put < n;) {
        ssize_t r = write(fd, (const char *)buf + put, n - put);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        put += (size_t)r;
    }
    return 0;
}

/* Grows b to hold need bytes (doubling: a volume arrives in many frames). */
static int reserve(uint8_t **b, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c = c > SIZE_MAX / 2 ? need : 2 * c;
    uint8_t *nb = realloc(*b, c);
    if (!nb) return -1;
    *b = nb, *cap = c;
    return 0;
}

int isolate_put(IsolateOut *out, const void *data, size_t n) {
    if (out->fd < 0) {
        if (out->over || n > out->max - out->len) return out->over = 1, -1;
        CHECK(reserve(&out->buf, &out->cap, out->len + n) == 0, "out of memory for %zu bytes", out->len + n);
        memcpy(out->buf + out->len, data, n);
        out->len += n;
        return 0;
    }
    uint64_t head = n;
    return write_full(out->fd, &head, sizeof head) || write_full(out->fd, data, n) ? -1 : 0;
}

static int run_here(IsolatedStep step, void *ctx, const char *path, size_t max_bytes, void **result,
                    size_t *result_len, char *err, size_t err_len) {
    IsolateOut o = {.fd = -1, .max = max_bytes};
    int rc = step(ctx, &o, err, err_len);
    if (rc == 0 && o.over) rc = error_at(err, err_len, "%s: the reader's results exceed %zu bytes", path, max_bytes);
    if (rc) {
        free(o.buf);
        return -1;
    }
    *result = o.buf ? o.buf : malloc(1), *result_len = o.len;
    return 0;
}

/* Bounds the child's address space to what it has now plus `allowance`: a corrupt size field
 * makes libhdf5 malloc whatever it says (fuzz_store: 4 GiB for an object header of an 18 KB
 * shard), and the bound turns that into a failed allocation, which the library reports, instead
 * of memory the node's other ranks need. Relative to the current size, so that a parent with a
 * huge address space (CUDA, AddressSanitizer) is no problem. */
static void limit_address_space(size_t allowance) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0;
    int ok = f && fscanf(f, "%llu", &pages) == 1;
    if (f) fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (!ok || page <= 0) return; /* no /proc: unbounded, as before */
    struct rlimit r;
    r.rlim_cur = r.rlim_max = (rlim_t)(pages * (unsigned long long)page + allowance);
    setrlimit(RLIMIT_AS, &r);
}

/* The child: run the step, send the end frame, leave without atexit handlers (the libraries'
 * would close the parent's open files from here) and without flushing the parent's stdio. */
static void child(IsolatedStep step, void *ctx, int fd, size_t max_bytes) {
    signal(SIGPIPE, SIG_IGN);
    /* room for the results twice over (the step's own copy and its working buffers) and for the
     * library's metadata */
    limit_address_space(max_bytes > SIZE_MAX / 4 ? SIZE_MAX / 2 : 2 * max_bytes + ((size_t)512 << 20));
    IsolateOut o = {.fd = fd};
    char msg[ISOLATE_MSG_MAX] = "";
    int32_t rc = step(ctx, &o, msg, sizeof msg);
    uint64_t end = ISOLATE_END;
    uint32_t len = (uint32_t)strlen(msg);
    int ok = write_full(fd, &end, sizeof end) == 0 && write_full(fd, &rc, sizeof rc) == 0 &&
             write_full(fd, &len, sizeof len) == 0 && write_full(fd, msg, len) == 0;
    _exit(ok ? 0 : 1);
}

/* The parent's side of the pipe: 1 when the end frame arrived (rc, message in err), 0 when the
 * stream stopped early (the child died), -1 on a protocol breach (error in err). */
static int collect(int fd, const char *path, size_t max_bytes, uint8_t **buf, size_t *len, int *rc, char *err,
                   size_t err_len) {
    size_t cap = 0;
    for (;;) {
        uint64_t head;
        if (read_full(fd, &head, sizeof head)) return 0;
        if (head == ISOLATE_END) break;
        if (head > max_bytes - *len)
            return error_at(err, err_len, "%s: the reader's results exceed %zu bytes", path, max_bytes), -1;
        if (reserve(buf, &cap, *len + (size_t)head))
            return error_at(err, err_len, "%s: out of memory for %zu bytes", path, *len + (size_t)head), -1;
        if (read_full(fd, *buf + *len, (size_t)head)) return 0;
        *len += (size_t)head;
    }
    int32_t r;
    uint32_t mlen;
    char msg[ISOLATE_MSG_MAX];
    if (read_full(fd, &r, sizeof r) || read_full(fd, &mlen, sizeof mlen) || mlen >= sizeof msg ||
        read_full(fd, msg, mlen))
        return 0;
    msg[mlen] = '\0';
    if (err_len) snprintf(err, err_len, "%s", msg);
    *rc = r;
    return 1;
}

int isolate_run(IsolatedStep step, void *ctx, const char *path, const char *library, size_t max_bytes,
                void **result, size_t *result_len, char *err, size_t err_len) {
    *result = NULL, *result_len = 0;
    if (err_len) err[0] = '\0';
    if (isolate_in_process) return run_here(step, ctx, path, max_bytes, result, result_len, err, err_len);
    int fds[2];
    if (pipe(fds) != 0) return error_at(err, err_len, "%s: pipe: %s", path, strerror(errno));
    fflush(NULL); /* the child must not flush our buffered output a second time */
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        return error_at(err, err_len, "%s: fork: %s", path, strerror(errno));
    }
    if (pid == 0) {
        close(fds[0]);
        child(step, ctx, fds[1], max_bytes);
    }
    close(fds[1]);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = -1;
    int got = collect(fds[0], path, max_bytes, &buf, &len, &rc, err, err_len);
    close(fds[0]); /* a child still writing (a protocol breach) gets EPIPE and ends */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got == 0 && WIFSIGNALED(status))
        rc = error_at(err, err_len, "%s: the %s library crashed reading this file (signal %d): the file is corrupt",
                      path, library, WTERMSIG(status));
    else if (got == 0)
        rc = error_at(err, err_len,
                      "%s: the %s library crashed reading this file (the reader ended without a report, exit status "
                      "%d): the file is corrupt",
                      path, library, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    else if (got < 0)
        rc = -1;
    else if (rc != 0 && !err[0])
        rc = error_at(err, err_len, "%s: the reader failed without a message", path);
    if (rc != 0) {
        free(buf);
        return -1;
    }
    *result = buf ? buf : malloc(1), *result_len = len;
    return 0;
}
