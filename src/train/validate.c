/* validate.c — see validate.h. */
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

typedef struct {
    int case_idx, z;
} SliceRef;

/* Centre crop (or zero pad) a (C, H, W) slice into the NHWC window (crop_h, crop_w, C);
 * labels outside the slice are -1 (ignored). */
static void center_fit(float *dst /* (ch, cw, C) */, int32_t *dst_lab /* (ch, cw) */, const float *img /* (C, H, W) */,
                       const int32_t *lab /* (H, W) */, int C, int H, int W, int ch, int cw) {
    int oy = (H - ch) / 2, ox = (W - cw) / 2; /* negative: padding */
    for (int y = 0; y < ch; y++)
        for (int x = 0; x < cw; x++) {
            int sy = y + oy, sx = x + ox;
            int inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
            for (int c = 0; c < C; c++)
                dst[((size_t)y * cw + x) * C + c] = inside ? img[((size_t)c * H + sy) * W + sx] : 0.0f;
            dst_lab[(size_t)y * cw + x] = inside ? lab[(size_t)sy * W + sx] : -1;
        }
}

int validate_pseudo_dice(ValResult *out, const Model *m, Backend *be, ModelActs *acts, int B, const float *params,
                         const Store *store, const char *split, int max_slices, Comm *comm, char *err,
                         size_t err_len) {
    int K = m->K, C = m->cin, ch = m->net.crop[0], cw = m->net.crop[1];
    CHECK(K <= 1024, "too many classes");
    memset(out, 0, sizeof *out);

    /* every slice of the split, then an even subsample */
    int n_cases = store_num_cases(store);
    int *cases = xmalloc((size_t)(n_cases ? n_cases : 1) * sizeof(int));
    int nc = store_split(store, split, cases, n_cases);
    long total = 0;
    for (int i = 0; i < nc; i++) total += store_case(store, cases[i])->depth;
    if (total == 0) {
        free(cases);
        snprintf(err, err_len, "validation: split '%s' of the store has no slices", split);
        return -1;
    }
    long take = max_slices > 0 && max_slices < total ? max_slices : total;
    SliceRef *refs = xmalloc((size_t)take * sizeof(SliceRef));
    for (long t = 0; t < take; t++) {
        long g = t * total / take, acc = 0;
        for (int i = 0; i < nc; i++) {
            int d = store_case(store, cases[i])->depth;
            if (g < acc + d) {
                refs[t] = (SliceRef){cases[i], (int)(g - acc)};
                break;
            }
            acc += d;
        }
    }

    int max_h = 0, max_w = 0;
    for (int i = 0; i < nc; i++) {
        const StoreCase *sc = store_case(store, cases[i]);
        if (sc->height > max_h) max_h = sc->height;
        if (sc->width > max_w) max_w = sc->width;
    }
    size_t win = (size_t)ch * cw;
    float *slice = xmalloc((size_t)C * max_h * max_w * sizeof(float));
    int32_t *slab = xmalloc((size_t)max_h * max_w * sizeof(int32_t));
    float *batch = xcalloc((size_t)B * win * C, sizeof(float));
    int32_t *blab = xmalloc((size_t)B * win * sizeof(int32_t));
    float *logits = xmalloc((size_t)B * win * K * sizeof(float));
    float *dev_img = be->alloc(be, (size_t)B * win * C * sizeof(float));
    double *counts = xcalloc(3 * (size_t)K + 1, sizeof(double)); /* tp, fp, fn per class; slices */
    PassOptions eval = {0};
    int rc = 0;

    /* round-robin: this rank's slices are rank, rank + R, ... */
    for (long t0 = comm->rank; t0 < take && rc == 0; t0 += (long)B * comm->size) {
        int nb = 0;
        for (long t = t0; t < take && nb < B; t += comm->size, nb++) {
            const StoreCase *sc = store_case(store, refs[t].case_idx);
            if (store_read_slice(store, refs[t].case_idx, refs[t].z, slice, slab, err, err_len) != 0) {
                rc = -1;
                break;
            }
            center_fit(batch + nb * win * C, blab + nb * win, slice, slab, C, sc->height, sc->width, ch, cw);
        }
        if (rc) break;
        for (int b = nb; b < B; b++) memset(batch + b * win * C, 0, win * C * sizeof(float));
        be->upload(be, dev_img, batch, (size_t)B * win * C * sizeof(float));
        float *outs[3];
        model_forward(m, be, acts, params, dev_img, &eval, outs);
        be->download(be, logits, outs[0], (size_t)B * win * K * sizeof(float));
        for (int b = 0; b < nb; b++)
            for (size_t p = 0; p < win; p++) {
                int y = blab[b * win + p];
                if (y < 0) continue;
                const float *l = logits + (b * win + p) * K;
                int pred = 0;
                for (int k = 1; k < K; k++)
                    if (l[k] > l[pred]) pred = k;
                if (pred == y) counts[pred] += 1;
                else {
                    counts[K + pred] += 1;   /* fp of the predicted class */
                    counts[2 * K + y] += 1;  /* fn of the true class */
                }
            }
        counts[3 * K] += nb;
    }
    /* every rank joins the reduction even after a local error, so none waits forever */
    double status = rc ? 1.0 : 0.0;
    comm->allreduce_sum_f64(comm, &status, 1);
    comm->allreduce_sum_f64(comm, counts, 3 * (size_t)K + 1);
    if (status > 0 && rc == 0) {
        snprintf(err, err_len, "validation failed on another rank");
        rc = -1;
    }
    if (rc == 0) {
        int n_fg = 0;
        for (int k = 0; k < K; k++) {
            double tp = counts[k], fp = counts[K + k], fn = counts[2 * K + k];
            double den = 2 * tp + fp + fn;
            out->dice[k] = den > 0 ? 2 * tp / den : 0.0;
            if (k > 0 && den > 0) {
                out->mean_fg += out->dice[k];
                n_fg++;
            }
        }
        out->mean_fg = n_fg ? out->mean_fg / n_fg : 0.0;
        out->slices = (long)counts[3 * K];
    }
    be->release(be, dev_img);
    free(counts), free(logits), free(blab), free(batch), free(slab), free(slice), free(refs), free(cases);
    return rc;
}
