/* check.h — error reporting with file:line for every library call.
 *
 * die() prints "unet2022: error: <file>:<line>: <message>" and exits with status 2;
 * it is for unrecoverable conditions (bad input is reported by the caller with the
 * offending file/field before it gets here). The library-specific macros
 * (MPI_CHECK, H5_CHECK...) live beside the code that uses each library, the CUDA family's
 * (CUDA_CHECK, NCCL_CHECK...) in cuda_check.h for the CUDA backend and the NCCL transport;
 * all end in die_at(). */
#ifndef UNET_CHECK_H
#define UNET_CHECK_H

#include <stddef.h>

#if defined(__GNUC__)
#define UNET_NORETURN __attribute__((noreturn))
#define UNET_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define UNET_NORETURN
#define UNET_PRINTF(a, b)
#endif

void die_at(const char *file, int line, const char *fmt, ...) UNET_NORETURN UNET_PRINTF(3, 4);
#define die(...) die_at(__FILE__, __LINE__, __VA_ARGS__)

/* Abort with file:line if cond is false; for internal invariants. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) die_at(__FILE__, __LINE__, __VA_ARGS__);                                      \
    } while (0)

/* Formats a message into err (for functions that return errors instead of exiting) and
 * returns -1, so error paths read `return error_at(err, err_len, "...", ...);`. */
int error_at(char *err, size_t err_len, const char *fmt, ...) UNET_PRINTF(3, 4);

/* malloc/calloc that never return NULL. */
void *xmalloc_at(const char *file, int line, size_t bytes);
void *xcalloc_at(const char *file, int line, size_t n, size_t size);
void *xrealloc_at(const char *file, int line, void *ptr, size_t bytes);
#define xrealloc(ptr, bytes) xrealloc_at(__FILE__, __LINE__, (ptr), (bytes))
#define xmalloc(bytes) xmalloc_at(__FILE__, __LINE__, (bytes))
#define xcalloc(n, size) xcalloc_at(__FILE__, __LINE__, (n), (size))

#endif
