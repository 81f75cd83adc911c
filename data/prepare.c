/* prepare.c — see prepare.h. */
#include "prepare.h"

#include <string.h>

#include "importers.h"
#include "check.h"
#include "store_format.h"

const char *const prepare_datasets = "synapse, synapse-transunet, acdc, em, isic, ph2, nnunet";

int prepare_run(const PrepareOptions *o, char *err, size_t err_len) {
    static const struct {
        const char *name;
        int (*fn)(const PrepareOptions *, char *, size_t);
    } table[] = {{"synapse", import_synapse}, {"synapse-transunet", import_synapse_transunet},
                 {"acdc", import_acdc},       {"em", import_em},
                 {"isic", import_isic},       {"ph2", import_ph2},
                 {"nnunet", import_nnunet}};
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!strcmp(o->dataset, table[i].name)) {
            imp_progress_total(0);
            int rc = table[i].fn(o, err, err_len);
            imp_progress_finish();
            return rc;
        }
    return error_at(err, err_len, "unknown dataset '%s' (expected one of: %s)", o->dataset, prepare_datasets);
}
