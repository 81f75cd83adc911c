/* model_build.c — config → parameter table and layer descriptions, in the released
 * network's state_dict order, plus PyTorch-default initialisation. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "rng.h"

/* ---- registering tensors ---- */

static size_t add_w(Model *m, ParamInit init, int fan_in, int ndim, const int64_t *shape, const char *fmt, ...)
    UNET_PRINTF(6, 7);

static size_t add_w(Model *m, ParamInit init, int fan_in, int ndim, const int64_t *shape, const char *fmt, ...) {
    char name[PARAM_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return param_add(&m->params, name, ndim, shape, init, fan_in);
}

/* conv weight [co, ci, k, k] + bias; PyTorch fan_in = ci·k·k */
static void add_conv(Model *m, size_t *w, size_t *b, const char *prefix, int co, int ci, int k) {
    int64_t ws[4] = {co, ci, k, k}, bs[1] = {co};
    *w = add_w(m, INIT_KAIMING_UNIFORM, ci * k * k, 4, ws, "%s.weight", prefix);
    *b = add_w(m, INIT_FAN_IN_BIAS, ci * k * k, 1, bs, "%s.bias", prefix);
}

/* transposed conv weight [ci, co, k, k]; PyTorch computes fan_in from dim 1: co·k·k */
static void add_convT(Model *m, size_t *w, size_t *b, const char *prefix, int ci, int co, int k) {
    int64_t ws[4] = {ci, co, k, k}, bs[1] = {co};
    *w = add_w(m, INIT_KAIMING_UNIFORM, co * k * k, 4, ws, "%s.weight", prefix);
    *b = add_w(m, INIT_FAN_IN_BIAS, co * k * k, 1, bs, "%s.bias", prefix);
}

static void add_linear(Model *m, size_t *w, size_t *b, const char *prefix, int co, int ci) {
    int64_t ws[2] = {co, ci}, bs[1] = {co};
    *w = add_w(m, INIT_KAIMING_UNIFORM, ci, 2, ws, "%s.weight", prefix);
    *b = add_w(m, INIT_FAN_IN_BIAS, ci, 1, bs, "%s.bias", prefix);
}

static void add_norm(Model *m, size_t *w, size_t *b, const char *prefix, int c) {
    int64_t s[1] = {c};
    *w = add_w(m, INIT_ONES, 0, 1, s, "%s.weight", prefix);
    *b = add_w(m, INIT_ZEROS, 0, 1, s, "%s.bias", prefix);
}

static void add_block(Model *m, BlockDesc *bd, const char *prefix) {
    int d = bd->dim, w = bd->window;
    char p[PARAM_NAME_MAX];
    int64_t s1[1] = {d};
    bd->gamma = add_w(m, INIT_LAYER_SCALE, 0, 1, s1, "%s.gamma", prefix);
    snprintf(p, sizeof p, "%s.dwconv", prefix);
    add_conv(m, &bd->dw_w, &bd->dw_b, p, d, 1, 7);
    snprintf(p, sizeof p, "%s.norm", prefix);
    add_norm(m, &bd->norm_w, &bd->norm_b, p, d);
    snprintf(p, sizeof p, "%s.pwconv1", prefix);
    add_linear(m, &bd->fc1_w, &bd->fc1_b, p, 4 * d, d);
    snprintf(p, sizeof p, "%s.pwconv2", prefix);
    add_linear(m, &bd->fc2_w, &bd->fc2_b, p, d, 4 * d);
    snprintf(p, sizeof p, "%s.blocks_tr.norm1", prefix);
    add_norm(m, &bd->n1_w, &bd->n1_b, p, d);
    int64_t ts[2] = {(2 * w - 1) * (2 * w - 1), bd->heads};
    bd->table = add_w(m, INIT_TRUNC_NORMAL, 0, 2, ts, "%s.blocks_tr.attn.relative_position_bias_table", prefix);
    snprintf(p, sizeof p, "%s.blocks_tr.attn.qkv", prefix);
    add_linear(m, &bd->qkv_w, &bd->qkv_b, p, 3 * d, d);
    snprintf(p, sizeof p, "%s.blocks_tr.attn.proj", prefix);
    add_linear(m, &bd->proj_w, &bd->proj_b, p, d, d);
    snprintf(p, sizeof p, "%s.blocks_tr.dwconv", prefix);
    add_conv(m, &bd->dw2_w, &bd->dw2_b, p, d, 1, 7);
}

/* Stage resolution ≤ window: the window becomes the resolution and the stage never shifts
 * (clamped once, from the crop, as the released code does at construction). */
static void clamp_windows(Model *m) {
    for (int i = 0; i < 4; i++) {
        int res_h = m->net.crop[0] / (m->P << i), res_w = m->net.crop[1] / (m->P << i);
        int res = res_h < res_w ? res_h : res_w;
        int w = m->net.windows[i];
        if (res <= w) {
            m->stage_window[i] = res;
            m->stage_shift[i] = 0;
        } else {
            m->stage_window[i] = w;
            m->stage_shift[i] = w / 2;
        }
    }
}

static void describe_stage(Model *m, BlockDesc *blocks, int stage, const float *rates, int *next_id) {
    for (int j = 0; j < 3; j++) {
        BlockDesc *bd = &blocks[j];
        bd->dim = m->C << stage;
        bd->heads = m->net.heads[stage];
        bd->window = m->stage_window[stage];
        bd->shift = (j % 2 == 1) ? m->stage_shift[stage] : 0;
        bd->drop_rate = rates[j];
        bd->id = (*next_id)++;
    }
}

void model_build(Model *m, const NetConfig *net) {
    memset(m, 0, sizeof *m);
    m->net = *net;
    m->C = net->embed_dim;
    m->P = net->patch_size;
    m->K = net->classes;
    m->cin = net->in_channels;
    clamp_windows(m);
    char p[PARAM_NAME_MAX];

    /* stem: P=4 → in → C/2 → C; P=8 → in → C/4 → C/2 → C */
    m->n_stem = m->P == 4 ? 2 : 3;
    for (int i = 0; i < m->n_stem; i++) {
        StemBlockDesc *s = &m->stem[i];
        s->cout = m->C >> (m->n_stem - 1 - i);
        s->cin = i == 0 ? m->cin : m->stem[i - 1].cout;
        s->last = i == m->n_stem - 1;
        snprintf(p, sizeof p, "model_down.patch_embed.project_block.%d.conv1", i);
        add_conv(m, &s->conv1_w, &s->conv1_b, p, s->cout, s->cin, 3);
        snprintf(p, sizeof p, "model_down.patch_embed.project_block.%d.conv2", i);
        add_conv(m, &s->conv2_w, &s->conv2_b, p, s->cout, s->cout, 3);
        snprintf(p, sizeof p, "model_down.patch_embed.project_block.%d.norm1", i);
        add_norm(m, &s->norm1_w, &s->norm1_b, p, s->cout);
        if (!s->last) {
            snprintf(p, sizeof p, "model_down.patch_embed.project_block.%d.norm2", i);
            add_norm(m, &s->norm2_w, &s->norm2_b, p, s->cout);
        }
    }
    add_norm(m, &m->stem_norm_w, &m->stem_norm_b, "model_down.patch_embed.norm", m->C);

    /* drop-path rates: encoder linspace(0, r, 12); decoder linspace(0, r, 9) with
     * decoder.layers.i getting entries 3i .. 3i+2 (the 4C stage the top three). */
    float enc_rates[12], dec_rates[9];
    for (int i = 0; i < 12; i++) enc_rates[i] = (float)(net->drop_path_rate * i / 11.0);
    for (int i = 0; i < 9; i++) dec_rates[i] = (float)(net->drop_path_rate * i / 8.0);
    int next_id = 0;

    for (int i = 0; i < 4; i++) {
        describe_stage(m, m->enc[i], i, &enc_rates[3 * i], &next_id);
        for (int j = 0; j < 3; j++) {
            snprintf(p, sizeof p, "model_down.layers.%d.blocks.%d", i, j);
            add_block(m, &m->enc[i][j], p);
        }
        if (i < 3) {
            int d = m->C << i;
            snprintf(p, sizeof p, "model_down.layers.%d.downsample.reduction", i);
            add_conv(m, &m->down_w[i], &m->down_b[i], p, 2 * d, d, 3);
            snprintf(p, sizeof p, "model_down.layers.%d.downsample.norm", i);
            add_norm(m, &m->down_norm_w[i], &m->down_norm_b[i], p, d);
        }
    }
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "model_down.norm%d", i);
        add_norm(m, &m->skip_norm_w[i], &m->skip_norm_b[i], p, m->C << i);
    }

    for (int i = 0; i < 3; i++) {
        describe_stage(m, m->dec[i], i, &dec_rates[3 * i], &next_id);
        for (int j = 0; j < 3; j++) {
            snprintf(p, sizeof p, "decoder.layers.%d.blocks.%d", i, j);
            add_block(m, &m->dec[i][j], p);
        }
        int d = m->C << i;
        snprintf(p, sizeof p, "decoder.layers.%d.Upsample.norm", i);
        add_norm(m, &m->up_norm_w[i], &m->up_norm_b[i], p, 2 * d);
        snprintf(p, sizeof p, "decoder.layers.%d.Upsample.up", i);
        add_convT(m, &m->up_w[i], &m->up_b[i], p, 2 * d, d, 2);
    }

    for (int i = 0; i < 3; i++) {
        HeadDesc *h = &m->head[i];
        h->dim = m->C << i;
        h->has_project = m->P == 8;
        h->mid = h->has_project ? h->dim / 2 : h->dim;
        if (h->has_project) {
            snprintf(p, sizeof p, "final.%d.project_block.0.conv1", i);
            add_convT(m, &h->t_w, &h->t_b, p, h->dim, h->mid, 2);
            snprintf(p, sizeof p, "final.%d.project_block.0.conv2", i);
            add_conv(m, &h->c_w, &h->c_b, p, h->mid, h->mid, 3);
            snprintf(p, sizeof p, "final.%d.project_block.0.norm1", i);
            add_norm(m, &h->n1_w, &h->n1_b, p, h->mid);
            snprintf(p, sizeof p, "final.%d.project_block.0.norm2", i);
            add_norm(m, &h->n2_w, &h->n2_b, p, h->mid);
        }
        snprintf(p, sizeof p, "final.%d.up_final", i);
        add_convT(m, &h->up_w, &h->up_b, p, h->mid, m->K, 4);
    }
}

void model_free(Model *m) { param_table_free(&m->params); }

void model_init_params(const Model *m, float *params, uint64_t seed) {
    for (int t = 0; t < m->params.count; t++) {
        const ParamInfo *pi = &m->params.items[t];
        float *x = params + pi->offset;
        double bound = pi->fan_in > 0 ? 1.0 / sqrt((double)pi->fan_in) : 0.0;
        for (size_t i = 0; i < pi->numel; i++) {
            uint64_t key = rng_key(seed, (uint64_t)t, i);
            switch (pi->init) {
            case INIT_KAIMING_UNIFORM:
            case INIT_FAN_IN_BIAS: x[i] = (float)((2.0 * rng_uniform(key) - 1.0) * bound); break;
            case INIT_ONES: x[i] = 1.0f; break;
            case INIT_ZEROS: x[i] = 0.0f; break;
            case INIT_LAYER_SCALE: x[i] = 1e-6f; break;
            case INIT_TRUNC_NORMAL: {
                /* timm trunc_normal_(std=.02, a=-2, b=2): the bounds are absolute, ±100σ */
                double z = rng_normal(key);
                x[i] = (float)(0.02 * z);
                break;
            }
            }
        }
    }
}

void model_relative_position_index(int64_t *out, int w) {
    int n = w * w;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int dy = i / w - j / w + w - 1, dx = i % w - j % w + w - 1;
            out[(size_t)i * n + j] = (int64_t)dy * (2 * w - 1) + dx;
        }
}

void model_ds_weights(const Model *m, float w[3]) {
    if (!m->net.deep_supervision) {
        w[0] = 1.0f;
        w[1] = w[2] = 0.0f;
        return;
    }
    /* nnU-Net v1: 1/2^k, normalised to sum 1 */
    w[0] = (float)(1.0 / 1.75);
    w[1] = (float)(0.5 / 1.75);
    w[2] = (float)(0.25 / 1.75);
}

void model_print(const Model *m, void *file) {
    FILE *fp = file;
    const NetConfig *c = &m->net;
    fprintf(fp, "network: UNet-2022, preset %s (C = %d), patch size P = %d, %d -> %d classes\n", c->preset, m->C,
            m->P, m->cin, m->K);
    fprintf(fp, "crop: %d x %d, deep supervision: %s, drop path: %g\n", c->crop[0], c->crop[1],
            c->deep_supervision ? "on (4/7, 2/7, 1/7)" : "off", c->drop_path_rate);
    fprintf(fp, "stem: %d conv blocks -> %d x %d x %d\n", m->n_stem, c->crop[0] / m->P, c->crop[1] / m->P, m->C);
    fprintf(fp, "%-10s %6s %11s %6s %7s %6s  %s\n", "stage", "dim", "resolution", "heads", "window", "shift",
            "drop path (3 blocks)");
    for (int i = 0; i < 4; i++) {
        const BlockDesc *b = m->enc[i];
        fprintf(fp, "encoder %d  %6d %5d x %-4d %6d %7d %6d  %.3f %.3f %.3f\n", i, b->dim, c->crop[0] / (m->P << i),
                c->crop[1] / (m->P << i), b->heads, b->window, m->stage_shift[i], b[0].drop_rate, b[1].drop_rate,
                b[2].drop_rate);
    }
    for (int i = 2; i >= 0; i--) {
        const BlockDesc *b = m->dec[i];
        fprintf(fp, "decoder %d  %6d %5d x %-4d %6d %7d %6d  %.3f %.3f %.3f\n", i, b->dim, c->crop[0] / (m->P << i),
                c->crop[1] / (m->P << i), b->heads, b->window, m->stage_shift[i], b[0].drop_rate, b[1].drop_rate,
                b[2].drop_rate);
    }
    fprintf(fp, "heads: %s\n", m->P == 4 ? "ConvTranspose 4x4/4 (d -> classes)"
                                          : "ConvTranspose 2x2/2 -> GELU -> LN -> Conv3x3 -> GELU -> LN -> ConvTranspose 4x4/4");
    fprintf(fp, "parameters: %zu (%d tensors, %.1f MB fp32)\n", m->params.total, m->params.count,
            (double)m->params.total * 4 / 1e6);
}
