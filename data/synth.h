/* synth.h — the built-in phantom dataset (`unet2022 synth`): Synapse-like abdominal CT in the
 * raw BTCV layout (img/imgXXXX.nii.gz in HU as int16, label/labelXXXX.nii.gz with BTCV organ
 * ids), deterministic from a seed, so `prepare synapse` runs on it end to end.
 *
 * Each case: a body (fat ring, soft tissue), spine and six labelled organs — spleen 1, right
 * kidney 2, left kidney 3, liver 6, stomach 7 (with an air pocket), aorta 8 — with per-case
 * shape (deformed ellipsoids with angular harmonics), size, position, contrast, smooth texture,
 * noise, partial-volume edges (4x supersampled in-plane) and anisotropic spacing. Case ids
 * follow the official split: the first ntrain official training ids, then the first test ids;
 * with 30 cases the layout is exactly BTCV's 18/12. */
#ifndef UNET_SYNTH_H
#define UNET_SYNTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t seed;
    int cases;              /* 2..30; ntrain = min(18, cases - cases / 3) */
    int min_size, max_size; /* in-plane size range (multiples of 8 are drawn) */
    int min_depth, max_depth;
    int force;              /* replace an existing phantom directory (one with phantom.json) */
} SynthOptions;

/* Writes the dataset into out_dir (built in out_dir.tmp.<pid>, renamed into place), plus
 * phantom.json (generator, version, seed) and split.txt (`train 5` / `test 1` lines, the
 * format `prepare --split` reads). Returns 0 or -1 with a message. */
int synth_write(const char *out_dir, const SynthOptions *o, char *err, size_t err_len);

/* The official Synapse split (docs/network.md, "The released training recipe"). */
extern const int synapse_train_ids[18];
extern const int synapse_test_ids[12];

#endif
