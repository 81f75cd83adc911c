/* store_format.h — constants and small pure functions shared by the slice-store reader
 * (store.c) and writer (store_write.c). The format is specified in docs/formats.md,
 * "Slice store". */
#ifndef UNET_STORE_FORMAT_H
#define UNET_STORE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define STORE_FORMAT_NAME "unet2022-slice-store"
#define STORE_FORMAT_VERSION 1
#define STORE_MANIFEST "manifest.json"
#define STORE_MAX_CLASSES 256
/* Shard file name for index i: shard-00000.h5, shard-00001.h5, ... */
#define STORE_SHARD_FMT "shard-%05d.h5"
/* Every dataset carries exactly this filter pipeline, in this order (HDF5 filter ids):
 * shuffle (2), deflate (1), fletcher32 (3). The reader undoes it itself. */
#define STORE_NFILTERS 3

/* HDF5's Fletcher-32 (H5checksum.c: big-endian 16-bit words, 360-word blocks, an odd final
 * byte as the high half of a word); the filter appends it little-endian after the data. */
uint32_t store_fletcher32(const uint8_t *data /* (n) */, size_t n);

/* Undo HDF5's shuffle filter: in holds byte b of every element, then byte b+1... */
void store_unshuffle(uint8_t *out /* (n) */, const uint8_t *in /* (n) */, size_t n, size_t elem_size);


#endif
