/* file_check.h — every input file is checked to be a regular file before a reader opens it.
 *
 * A FIFO, a character device (/dev/zero, a tty) or a directory given as an input would make a
 * reader block forever (a FIFO without a writer), read without end, or fail with a confusing
 * library message. The check opens with O_NONBLOCK (which never blocks, FIFO or not) and
 * fstat()s the descriptor, so what is checked is what was opened. Readers that get a
 * descriptor keep it (no race); libraries that open by name (HDF5, nifticlib, libzip, libtiff,
 * libpng) get the name right after the check. */
#ifndef UNET_FILE_CHECK_H
#define UNET_FILE_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* Opens path read-only if it is a regular file: the descriptor (O_CLOEXEC, blocking mode
 * restored), its size in *size (may be NULL); else -1 with "PATH: WHY" in err, where WHY names
 * the file type or the errno ("is a FIFO, not a regular file"). what (e.g. "NIfTI image") is
 * added to the message when not NULL. */
int fc_open_regular(const char *path, const char *what, int64_t *size, char *err, size_t err_len);

/* The same check for readers that open by name: 0 and the size, or -1 with the message. */
int fc_check_regular(const char *path, const char *what, int64_t *size, char *err, size_t err_len);

#endif
