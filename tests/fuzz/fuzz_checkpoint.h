/* fuzz_checkpoint.h — the tiny network fuzz_checkpoint loads into and make_checkpoint_seed
 * writes seeds for (one definition, so the seeds match the target's model). */
#ifndef UNET_FUZZ_CHECKPOINT_H
#define UNET_FUZZ_CHECKPOINT_H

/* the smallest network the schema allows: C = 8, one head per stage, 2x2 windows, 32x32 crop */
static const char FUZZ_CKPT_CONFIG[] =
    "name: fuzz-tiny\n"
    "network:\n"
    "  preset: custom\n"
    "  embed_dim: 8\n"
    "  heads: [1, 1, 1, 1]\n"
    "  patch_size: 4\n"
    "  windows: [2, 2, 2, 2]\n"
    "  in_channels: 1\n"
    "  classes: 2\n"
    "  deep_supervision: false\n"
    "  crop: [32, 32]\n"
    "train:\n"
    "  batch_size: 1\n"
    "  seed: 7\n";

#endif
