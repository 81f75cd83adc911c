/* fuzz_checkpoint.c — checkpoints and weights files (src/io/checkpoint.c, weights_io.c) against
 * the tiny network of fuzz_checkpoint.h.
 *
 * Input: one mode byte, then a .safetensors file. Mode bit 1 set: the file is its 8-byte length
 * and JSON header, optionally followed by the first bytes of the data region; the harness fills
 * the rest of the data region the header describes (F32 tensors with 0.01, the
 * relative_position_index buffers with Swin's index for their size), so that the seeds are a
 * real checkpoint's header (a few tens of KB, where the parsing is) rather than its 4 MB of
 * floats. Mode bit 0 set: before the readers see it, the
 * harness re-computes the file's two checksums (metadata crc32 over the tensor bytes, meta_crc32
 * over the other metadata, as checkpoint.c defines them) and writes them over the stored ones
 * (same length, in place), so that mutated metadata (format_version, step, epoch, epoch_step,
 * seed, the stored config...) and tensors get past the checksums into the parsing behind them.
 * Mode bit 0 clear: the file as it is (the checksums and checkpoint_verify themselves).
 * Each input goes through checkpoint_verify, checkpoint_load (weights, Adam moments, state and
 * stored config, as a resume reads them), the stored config through config_load_text and
 * config_resume_diff as trainer.c's resume check does, and weights_load (by tensor name). */
#include <cjson/cJSON.h>
#include <math.h>
#include <zlib.h>

#include "checkpoint.h"
#include "config.h"
#include "fuzz_checkpoint.h"
#include "fuzz_common.h"
#include "weights_io.h"

static Config cfg;
static Model model;
static float *params, *adam_m, *adam_v;

static uint32_t tensors_crc(const StFile *f) {
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < f->n_tensors; i++) crc = crc32(crc, f->tensors[i].data, (uInt)f->tensors[i].nbytes);
    return (uint32_t)crc;
}
static int by_key(const void *a, const void *b) {
    return strcmp((*(const StMeta *const *)a)->key, (*(const StMeta *const *)b)->key);
}
static uint32_t meta_crc(const StFile *f) {
    const StMeta **order = malloc((size_t)(f->n_meta + 1) * sizeof *order);
    int n = 0;
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, "crc32") && strcmp(f->meta[i].key, "meta_crc32")) order[n++] = &f->meta[i];
    qsort(order, (size_t)n, sizeof *order, by_key);
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < n; i++) {
        crc = crc32(crc, (const Bytef *)order[i]->key, (uInt)strlen(order[i]->key) + 1);
        crc = crc32(crc, (const Bytef *)order[i]->value, (uInt)strlen(order[i]->value) + 1);
    }
    free(order);
    return (uint32_t)crc;
}

/* Overwrites the 8 hex digits stored under `key` in the raw header with the value given. */
static void patch(uint8_t *buf, size_t size, const char *key, const char *stored, uint32_t value) {
    if (!stored || strlen(stored) != 8 || size < 8) return;
    char pat[64], now[9];
    snprintf(pat, sizeof pat, "\"%s\":\"%s\"", key, stored);
    snprintf(now, sizeof now, "%08x", value);
    size_t pl = strlen(pat);
    for (size_t i = 8; i + pl <= size; i++)
        if (!memcmp(buf + i, pat, pl)) {
            memcpy(buf + i + pl - 9, now, 8);
            return;
        }
}

/* Mode bit 1: header + the data region synthesised (+ the input's data bytes over its start).
 * Returns a malloc'd file and its size in *out_size, or NULL when the header does not parse (the
 * input is then used as it is). */
#define SYNTH_MAX (16u << 20)
static uint8_t *synthesise(const uint8_t *data, size_t size, size_t *out_size) {
    if (size < 8) return NULL;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)data[i] << (8 * i);
    if (hlen > size - 8) return NULL;
    cJSON *root = cJSON_ParseWithLength((const char *)data + 8, (size_t)hlen);
    if (!root) return NULL;
    size_t end = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, root) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        const cJSON *e = cJSON_GetArrayItem(o, 1);
        if (cJSON_IsNumber(e) && e->valuedouble > (double)end && e->valuedouble <= SYNTH_MAX) end = (size_t)e->valuedouble;
    }
    uint8_t *out = calloc(1, 8 + hlen + end + 1);
    memcpy(out, data, 8 + hlen);
    uint8_t *region = out + 8 + hlen;
    cJSON_ArrayForEach(t, root) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        const cJSON *b = cJSON_GetArrayItem(o, 0), *e = cJSON_GetArrayItem(o, 1);
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
        if (!cJSON_IsNumber(b) || !cJSON_IsNumber(e) || !cJSON_IsString(dt) || !t->string) continue;
        if (!(b->valuedouble >= 0 && b->valuedouble <= e->valuedouble && e->valuedouble <= (double)end)) continue;
        size_t lo = (size_t)b->valuedouble, hi = (size_t)e->valuedouble;
        if (!strcmp(dt->valuestring, "F32")) {
            const float v = 0.01f;
            for (size_t k = lo; k + 4 <= hi; k += 4) memcpy(region + k, &v, 4);
        } else if (!strcmp(dt->valuestring, "I64") && strstr(t->string, ".relative_position_index")) {
            size_t n = (hi - lo) / 8, w = 1;
            while (w * w * w * w < n) w++;
            if (w <= 64 && w * w * w * w == n) {
                int64_t *idx = malloc(n * sizeof *idx);
                model_relative_position_index(idx, (int)w);
                memcpy(region + lo, idx, n * 8);
                free(idx);
            }
        }
    }
    cJSON_Delete(root);
    size_t given = size - 8 - (size_t)hlen;
    memcpy(region, data + 8 + hlen, given < end ? given : end);
    *out_size = 8 + hlen + end;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!params) {
        char err[1024];
        if (config_load_text(&cfg, FUZZ_CKPT_CONFIG, "fuzz-tiny", err, sizeof err)) abort();
        model_build(&model, &cfg.net);
        params = malloc(model.params.total * sizeof(float));
        adam_m = malloc(model.params.total * sizeof(float));
        adam_v = malloc(model.params.total * sizeof(float));
    }
    if (size < 1) return 0;
    int mode = data[0];
    data++, size--;
    uint8_t *synth = NULL;
    size_t synth_size = 0;
    if ((mode & 2) && (synth = synthesise(data, size, &synth_size))) data = synth, size = synth_size;
    const char *p = fuzz_temp_file("ckpt", ".safetensors", data, size);
    char err[1024];
    if (mode & 1) {
        StFile f;
        if (st_read(&f, p, err, sizeof err) == 0) {
            uint8_t *copy = malloc(size);
            memcpy(copy, data, size);
            patch(copy, size, "crc32", st_meta_get(&f, "crc32"), tensors_crc(&f));
            patch(copy, size, "meta_crc32", st_meta_get(&f, "meta_crc32"), meta_crc(&f));
            p = fuzz_temp_file("ckpt", ".safetensors", copy, size);
            free(copy);
        }
        st_free(&f);
    }
    const int debug = getenv("FUZZ_DEBUG") != NULL; /* says how far each input got */
    int rc = checkpoint_verify(p, err, sizeof err);
    if (debug) fprintf(stderr, "checkpoint_verify: %d %s\n", rc, rc ? err : "");
    TrainState st;
    char *yaml = NULL;
    rc = checkpoint_load(p, &model, params, adam_m, adam_v, &st, &yaml, err, sizeof err);
    if (debug) fprintf(stderr, "checkpoint_load: %d %s\n", rc, rc ? err : "");
    if (rc == 0) {
        Config old;
        char diff[1200];
        rc = config_load_text(&old, yaml, "stored config", err, sizeof err);
        if (debug) fprintf(stderr, "stored config: %d %s\n", rc, rc ? err : "");
        if (rc == 0 && config_resume_diff(&old, &cfg, diff, sizeof diff) != 0 && debug)
            fprintf(stderr, "resume diff: %s\n", diff);
        /* the state a resume continues from: the metrics are numbers (-1: none yet) */
        if (!isfinite(st.best_metric) || !isfinite(st.ema_metric)) {
            fprintf(stderr, "fuzz_checkpoint: checkpoint_load accepted a non-finite metric (%g, %g)\n", st.best_metric,
                    st.ema_metric);
            abort();
        }
        fuzz_touch(params, model.params.total);
        fuzz_touch(adam_m, model.params.total);
        fuzz_touch(adam_v, model.params.total);
    }
    free(yaml);
    rc = weights_load(&model, params, p, err, sizeof err);
    if (debug) fprintf(stderr, "weights_load: %d %s\n", rc, rc ? err : "");
    free(synth);
    return 0;
}
