/* nnunet_dataset.h — an nnU-Net raw dataset (v1 TaskNNN_Name or v2 DatasetNNN_Name) as
 * `prepare nnunet` reads it: dataset.json (channels and their modality, labels, file ending),
 * the labelled cases of imagesTr/labelsTr and the optional test cases of imagesTs (those with a
 * labelsTs partner; the store holds labelled cases only). Errors name the file and the field. */
#ifndef UNET_NNUNET_DATASET_H
#define UNET_NNUNET_DATASET_H

#include <stddef.h>

#include "import_common.h"

#define NN_MAX_CHANNELS (STORE_MAX_SOURCES - 1) /* every channel file and the label are hashed sources */
#define NN_MAX_CLASSES 256

typedef struct {
    char *name;                     /* case id, e.g. "la_003" */
    char *image[NN_MAX_CHANNELS];   /* CASE_0000.nii.gz, CASE_0001.nii.gz, ... */
    char *label;
    int in_test;                    /* from imagesTs (always the test split) */
    SplitKind kind;
    int selected;                   /* part of the store (the split may leave training cases out) */
} NnCase;

typedef struct {
    int version;                               /* 1 or 2 */
    int channels;
    char modality[NN_MAX_CHANNELS][32];        /* "CT", "MRI", ... as dataset.json says */
    int classes;                               /* including background */
    char *class_names[NN_MAX_CLASSES];         /* by class index (label ids in ascending order) */
    int map[NN_MAX_CLASSES];                   /* label id in the files -> class index; -1: unknown */
    char ending[16];                           /* ".nii.gz" or ".nii" */
    int ncases, ntest_skipped;                 /* test cases without labelsTs are not imported */
    NnCase *cases;
} NnDataset;

/* Reads SRC/dataset.json and lists the cases; 0, or -1 with a message. */
int nn_dataset_read(NnDataset *d, const char *src, char *err, size_t err_len);
void nn_dataset_free(NnDataset *d);
/* Whether channel c is normalised with the CT scheme (dataset.json says "CT", any case). */
int nn_channel_is_ct(const NnDataset *d, int c);

/* Assigns kind/selected: --split FILE (case numbers: the trailing digits of a case id), else
 * SRC/splits_final.json's fold, else the seeded 80/20 split (NN_DEFAULT_SPLIT_SEED). Test cases
 * stay test. Writes a one-line description of what was used to how (how_len). */
#define NN_DEFAULT_SPLIT_SEED 12345
int nn_assign_split(NnDataset *d, const PrepareOptions *o, char *how, size_t how_len, char *err, size_t err_len);

#endif
