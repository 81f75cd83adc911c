/* model_flops.c — the forward pass's floating-point operations (multiply-add = 2), counted
 * from the layer descriptions: convolutions, linears and attention matmuls; elementwise
 * ops (LayerNorm, GELU, softmax) are left out, as is customary. A training step costs about
 * 3x the forward (the backward computes an input and a weight gradient per layer). */
#include "model.h"

static double block_flops(const BlockDesc *bd, int B, int H, int W) {
    int w = bd->window;
    double Hp = (double)((H + w - 1) / w * w), Wp = (double)((W + w - 1) / w * w);
    double N = (double)B * H * W, Np = (double)B * Hp * Wp, d = bd->dim;
    double f = 2 * N * d * 49;                  /* dwconv */
    f += 2 * N * d * 4 * d * 2;                 /* pwconv1 + pwconv2 */
    f += 2 * Np * d * 3 * d;                    /* qkv */
    f += 2 * Np * (double)(w * w) * d * 2;      /* q·kᵀ and attn·v over all heads */
    f += 2 * Np * d * 49;                       /* attention-part dwconv */
    f += 2 * Np * d * d;                        /* proj */
    return f;
}

double model_forward_flops(const Model *m, int B, int H, int W) {
    double f = 0;
    int h = H, w = W;
    for (int i = 0; i < m->n_stem; i++) {
        const StemBlockDesc *s = &m->stem[i];
        h /= 2;
        w /= 2;
        f += 2.0 * B * h * w * s->cout * (s->cin + s->cout) * 9;
    }
    for (int i = 0; i < 4; i++) {
        int hi = h >> i, wi = w >> i, d = m->C << i;
        for (int j = 0; j < 3; j++) f += block_flops(&m->enc[i][j], B, hi, wi);
        if (i < 3) f += 2.0 * B * (hi / 2) * (wi / 2) * 2 * d * d * 9;      /* downsample */
    }
    for (int i = 2; i >= 0; i--) {
        int hi = h >> i, wi = w >> i, d = m->C << i;
        f += 2.0 * B * (hi / 2) * (wi / 2) * 2 * d * d * 4;                  /* convT 2x2 */
        for (int j = 0; j < 3; j++) f += block_flops(&m->dec[i][j], B, hi, wi);
    }
    int n_out = m->net.deep_supervision ? 3 : 1;
    for (int k = 0; k < n_out; k++) {
        const HeadDesc *hd = &m->head[k];
        double rows = (double)B * (h >> k) * (w >> k);
        if (hd->has_project) {
            f += 2 * rows * hd->dim * hd->mid * 4;      /* convT 2x2 */
            rows *= 4;
            f += 2 * rows * hd->mid * hd->mid * 9;      /* conv3x3 */
        }
        f += 2 * rows * hd->mid * m->K * 16;            /* convT 4x4 */
    }
    return f;
}
