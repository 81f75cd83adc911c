/* store_match.h — the network's input channels and classes against the store a config trains on
 * (train.store): `info` reports a disagreement as a note, `train` refuses it, naming both values
 * and the override that fixes it (docs/datasets.md: the store decides, the config must say so). */
#ifndef UNET_STORE_MATCH_H
#define UNET_STORE_MATCH_H

#include <stddef.h>

#include "config.h"

/* 0: no train.store, a store that cannot be opened (left to the command's own checks) or a
 * store that agrees; 1: they disagree, msg says how (both values and the overrides to use). */
int store_match_check(const Config *cfg, char *msg, size_t msg_len);

#endif
