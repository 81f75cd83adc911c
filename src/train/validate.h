/* validate.h — the training-time validation of the released recipe: nnU-Net v1's "online
 * evaluation", a foreground pseudo-Dice. Each validation slice is centre-cropped (or zero-padded)
 * to the crop, the network predicts it (no augmentation, no drop path), and true/false positives
 * and false negatives are summed per class over all slices (padding ignored). Dice per class =
 * 2tp / (2tp + fp + fn); the run tracks the mean over foreground classes and its EMA. */
#ifndef UNET_VALIDATE_H
#define UNET_VALIDATE_H

#include "backend.h"
#include "comm.h"
#include "model.h"
#include "store.h"

typedef struct {
    double dice[1024]; /* per class (class 0 = background, reported but not averaged) */
    double mean_fg;    /* mean over classes 1..K-1 that occur in labels or predictions */
    long slices;
} ValResult;

/* acts must be sized for (B, crop_h, crop_w); slices are dealt round-robin to ranks and the
 * counts summed over comm. At most max_slices slices (evenly spaced; 0 = all). */
int validate_pseudo_dice(ValResult *out, const Model *m, Backend *be, ModelActs *acts, int B, const float *params,
                         const Store *store, const char *split, int max_slices, Comm *comm, char *err,
                         size_t err_len);

#endif
