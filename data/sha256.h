/* sha256.h — SHA-256 (FIPS 180-4) of a file, for recording where a store's cases came from. */
#ifndef UNET_SHA256_H
#define UNET_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len;       /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} Sha256;

void sha256_init(Sha256 *c);
void sha256_update(Sha256 *c, const void *data, size_t n);
void sha256_final(Sha256 *c, uint8_t out[32]);
/* Hex digest of a whole file into hex (65 bytes); returns 0 or -1 (errno set). */
int sha256_file_hex(const char *path, char hex[65]);

#endif
