/* store_write.h — building a slice store (format: docs/formats.md, "Slice store").
 *
 * The store is built in a sibling temporary directory OUT.tmp.<host>.<pid> (stale ones of dead
 * processes on this host are removed at create); store_writer_commit()
 * writes the manifest last, fsyncs everything and renames the directory into place, so a
 * failed or interrupted build never leaves anything at OUT that looks like a store.
 * store_writer_abort() removes the temporary directory. Single-threaded. */
#ifndef UNET_STORE_WRITE_H
#define UNET_STORE_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct {
    const char *dataset;        /* e.g. "synapse" */
    const char *description;    /* free text recorded in the manifest (command line, options) */
    int num_classes;            /* including background */
    const char *const *class_names; /* (num_classes) */
    int channels;               /* C of every case */
    double shard_mb;            /* start a new shard once a shard holds this many MB (uncompressed) */
    int force;                  /* replace an existing store at OUT */
    int deflate_level;          /* 0..9; 0 = default (1) */
} StoreWriterOptions;

#define STORE_MAX_SOURCES 4

typedef struct {
    const char *name;           /* case id, [A-Za-z0-9_.-], < STORE_NAME_MAX */
    const char *split;          /* "train", "val" or "test" */
    int depth, channels, height, width;
    const float *image;         /* (D, C, H, W), normalised */
    const uint8_t *label;       /* (D, H, W), values < num_classes */
    double spacing[3];          /* mm along x (W), y (H), z (D) */
    double affine[16];          /* voxel (x, y, z, 1) -> world mm, row-major */
    int original_ndim;
    int64_t original_shape[4];  /* the source array's shape, as the source stores it */
    const char *normalisation;  /* what was applied, e.g. "clip[-125,275]->[0,1]" */
    int num_sources;
    const char *sources[STORE_MAX_SOURCES]; /* source files (paths as given) */
} StoreCaseInput;

typedef struct StoreWriter StoreWriter;

int store_writer_create(StoreWriter **out, const char *out_dir, const StoreWriterOptions *opt, char *err,
                        size_t err_len);
/* Appends one case (hashes its source files: SHA-256). */
int store_writer_add_case(StoreWriter *w, const StoreCaseInput *c, char *err, size_t err_len);
/* Records dataset-level facts in the manifest's "attributes" object (e.g. normalisation statistics). */
void store_writer_set_attribute(StoreWriter *w, const char *key, const char *value);
/* Finishes the store and moves it into place; frees w whatever happens (on failure the
 * temporary directory is removed). */
int store_writer_commit(StoreWriter *w, char *err, size_t err_len);
/* Removes the temporary directory and frees w. NULL is fine. */
void store_writer_abort(StoreWriter *w);

#endif
