/* official_splits.h — the released code's train/val/test lists (the authors' released
 * configuration), the defaults of `prepare acdc`, `prepare em` and `prepare isic` when no
 * --split FILE is given (docs/datasets.md). ISIC 2016 has no validation split; its test set is
 * PH2 (`prepare ph2`). */
#ifndef UNET_OFFICIAL_SPLITS_H
#define UNET_OFFICIAL_SPLITS_H

#define ACDC_OFFICIAL_TRAIN 70
#define ACDC_OFFICIAL_VAL 10
#define ACDC_OFFICIAL_TEST 20
extern const int acdc_official_train[ACDC_OFFICIAL_TRAIN]; /* patient numbers */
extern const int acdc_official_val[ACDC_OFFICIAL_VAL];
extern const int acdc_official_test[ACDC_OFFICIAL_TEST];

#define EM_OFFICIAL_TRAIN 24
#define EM_OFFICIAL_VAL 3
#define EM_OFFICIAL_TEST 3
extern const int em_official_train[EM_OFFICIAL_TRAIN]; /* slice numbers of train-labels.tif */
extern const int em_official_val[EM_OFFICIAL_VAL];
extern const int em_official_test[EM_OFFICIAL_TEST];

#define ISIC_OFFICIAL_TRAIN 900
extern const int isic_official_train[ISIC_OFFICIAL_TRAIN]; /* ISIC_NNNNNNN ids */

#endif
