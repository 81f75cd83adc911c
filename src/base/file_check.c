/* file_check.c — see file_check.h. */
#include "file_check.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static const char *type_name(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO (named pipe)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "a special file";
}

int fc_open_regular(const char *path, const char *what, int64_t *size, char *err, size_t err_len) {
    const char *sep = what ? " " : "", *w = what ? what : "";
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return error_at(err, err_len, "%s: cannot open%s%s: %s", path, sep, w, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return error_at(err, err_len, "%s: cannot stat%s%s: %s", path, sep, w, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return error_at(err, err_len, "%s: is %s, not a regular file%s%s%s", path, type_name(st.st_mode),
                        what ? " (expected " : "", w, what ? ")" : "");
    }
    /* back to blocking reads: O_NONBLOCK means nothing for regular files on Linux, but a reader
     * that is handed the descriptor should not have to know */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (size) *size = (int64_t)st.st_size;
    return fd;
}

int fc_check_regular(const char *path, const char *what, int64_t *size, char *err, size_t err_len) {
    int fd = fc_open_regular(path, what, size, err, err_len);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}
