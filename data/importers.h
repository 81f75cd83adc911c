/* importers.h — one function per dataset of `unet2022 prepare` (import_*.c). Each builds the
 * whole store or nothing: on failure the temporary directory is removed and the message names
 * the source file and the problem. */
#ifndef UNET_IMPORTERS_H
#define UNET_IMPORTERS_H

#include <stddef.h>

#include "import_common.h"

int import_synapse(const PrepareOptions *o, char *err, size_t err_len);
int import_synapse_transunet(const PrepareOptions *o, char *err, size_t err_len);
int import_acdc(const PrepareOptions *o, char *err, size_t err_len);
int import_em(const PrepareOptions *o, char *err, size_t err_len);
int import_isic(const PrepareOptions *o, char *err, size_t err_len);
int import_nnunet(const PrepareOptions *o, char *err, size_t err_len);
int import_ph2(const PrepareOptions *o, char *err, size_t err_len);

#endif
