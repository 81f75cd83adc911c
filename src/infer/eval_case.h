/* eval_case.h — the per-case work of `unet2022 evaluate`: the class list (--classes, presets)
 * and one case's metrics from its prediction (labels or probability maps) and ground truth.
 * Definitions: docs/evaluation.md. */
#ifndef UNET_EVAL_CASE_H
#define UNET_EVAL_CASE_H

#include <stddef.h>
#include <stdint.h>

#include "eval_report.h"
#include "nifti_volume.h"

#define EVAL_MAX_CLASSES 1024

/* 'ID=NAME,ID=NAME,...', 'ID,ID,...' or a preset (synapse, synapse9, acdc, binary): the count,
 * or -1 when malformed, with repeated IDs, or more than max. */
int eval_classes_parse(const char *spec, int *labels, char (*names)[64], int max);

typedef struct {
    int prob;          /* predictions are probability maps (4D: a channel per class; 3D: foreground) */
    int want_hd;       /* surface distances too */
    const int *labels; /* the classes; NULL: every label 1..max found (prob: channels 1..nt-1) */
    int K;
    int *pred_max;     /* out, optional (label maps): the largest label in the prediction */
    int label_limit;   /* label maps: a prediction holding a larger label is not scored but
                        * EVAL_DEFERRED (the caller decides whether it is an error); <0: none */
} EvalCaseOptions;

/* eval_case()'s answer for a prediction above o->label_limit: nothing scored, no message. */
#define EVAL_DEFERRED (-2)

/* Reads the prediction `pred` (on the ground truth's grid, checked by the caller) and fills
 * row[0..kmax): the case's classes, then NaN distances for the classes it lacks (both masks
 * empty). spacing: mm along z, y, x. Returns the case's class count, EVAL_DEFERRED (above),
 * or -1 with a message; a negative label in the prediction is an error naming the file and
 * the voxel. */
int eval_case(EvalCell *row, int kmax, const NiftiVolume *pred, const int32_t *gt, const double spacing[3],
              const EvalCaseOptions *o, char *err, size_t err_len);

/* The largest label of a label map of n = (z, y, x) voxels into *max_out; a negative label is
 * an error naming path and the voxel. */
int eval_label_max(const int32_t *lab, const int n[3], const char *path, int *max_out, char *err, size_t err_len);

#endif
