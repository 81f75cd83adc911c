/* sha256.h — SHA-256 of a file (OpenSSL's libcrypto), recording where a store's cases came from. */
#ifndef UNET_SHA256_H
#define UNET_SHA256_H

/* Hex digest of a whole file into hex (65 bytes); returns 0 or -1 (errno set on I/O errors). */
int sha256_file_hex(const char *path, char *hex /* (65) */);

#endif
