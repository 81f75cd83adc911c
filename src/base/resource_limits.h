/* resource_limits.h — the largest inputs the program accepts (docs/formats.md, "Resource limits").
 *
 * Every reader checks a file's declared sizes against these limits, and against the file's
 * actual size, BEFORE it allocates: a small hostile file that declares a huge array is
 * reported as what it is (a field out of range, or a truncated file) instead of making the
 * process allocate, fill or swap tens of GB. The numbers are far above any medical image or
 * model this program trains on, and small enough that one slice, volume or tensor fits the
 * memory of a cluster node. */
#ifndef UNET_RESOURCE_LIMITS_H
#define UNET_RESOURCE_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/* One 2-D slice: each side and the pixel count (16384 x 16384 = 1 GiB as float32). */
#define UNET_MAX_SLICE_SIDE 16384
#define UNET_MAX_SLICE_PIXELS ((int64_t)UNET_MAX_SLICE_SIDE * UNET_MAX_SLICE_SIDE)
/* Slices per volume (z) and channels per voxel. */
#define UNET_MAX_DEPTH 16384
#define UNET_MAX_CHANNELS 64
/* One volume, all channels: 2^30 values (4 GiB as float32; a 512 x 512 CT has 2^18 per slice). */
#define UNET_MAX_VOLUME_VOXELS ((int64_t)1 << 30)
/* One tensor of a weights/checkpoint file (4 GiB; the largest UNet-2022 tensor is a few MB)
 * and its rank. */
#define UNET_MAX_TENSOR_BYTES ((uint64_t)1 << 32)
#define UNET_MAX_TENSOR_DIMS 8
/* Text headers read whole: a store manifest, an .npy header (numpy writes < 100 bytes + shape). */
#define UNET_MAX_MANIFEST_BYTES ((int64_t)256 << 20)
#define UNET_MAX_NPY_HEADER_BYTES ((size_t)1 << 16)
/* deflate cannot expand data by more than 1032:1 (zlib's documented maximum): a gzip or zip
 * member that declares more uncompressed bytes than this times its stored size is truncated or
 * lying, whatever it says. */
#define UNET_MAX_DEFLATE_RATIO 1032
/* Any TIFF codec (LZW, PackBits, deflate, JPEG, LZMA, ZSTD...) expands its stored bytes at most
 * this much; the loosest, ZSTD's run-length blocks, is about 2^15:1. A page that declares more
 * pixel bytes than this times the bytes its strips occupy cannot be decoded from the file. */
#define UNET_MAX_TIFF_RATIO 32768

/* d0 x d1 x ... within limit, without overflow: 0 when every factor is >= 0 and the product is
 * <= limit, else -1. The product is stored in *out when it fits. */
static inline int unet_checked_product(const int64_t *dims, int n, int64_t limit, int64_t *out) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] == 0) p = 0;
        else if (p > limit / dims[i]) return -1;
        else p *= dims[i];
    }
    if (p > limit) return -1;
    if (out) *out = p;
    return 0;
}

/* A 2-D slice (h, w) and a volume (d, c, h, w) within the limits; 0 or -1. */
static inline int unet_slice_ok(int64_t h, int64_t w) {
    return h >= 1 && w >= 1 && h <= UNET_MAX_SLICE_SIDE && w <= UNET_MAX_SLICE_SIDE && h * w <= UNET_MAX_SLICE_PIXELS
               ? 0
               : -1;
}
static inline int unet_volume_ok(int64_t d, int64_t c, int64_t h, int64_t w) {
    if (unet_slice_ok(h, w) || d < 1 || d > UNET_MAX_DEPTH || c < 1 || c > UNET_MAX_CHANNELS) return -1;
    int64_t dims[4] = {d, c, h, w};
    return unet_checked_product(dims, 4, UNET_MAX_VOLUME_VOXELS, NULL);
}

#endif
