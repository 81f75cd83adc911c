/* synth.c — see synth.h. Every random draw is rng_key(seed, case id, counter): a case does not
 * depend on how many other cases are generated or in which order. */
#include "synth.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <nifti1_io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fsutil.h"
#include "nifti_volume.h"
#include "rng.h"
#include "store_format.h"

const int synapse_train_ids[18] = {5, 6, 7, 9, 10, 21, 23, 24, 26, 27, 28, 30, 31, 33, 34, 37, 39, 40};
const int synapse_test_ids[12] = {1, 2, 3, 4, 8, 22, 25, 29, 32, 35, 36, 38};

#define SYNTH_VERSION 1
#define NORGANS 6
#define SS 4 /* in-plane supersampling for partial-volume edges */

typedef struct {
    int label;
    double cx, cy;          /* centre, fraction of the body half-axes from the body centre */
    double rx, ry;          /* radii, fraction of the body half-axes */
    double rot;             /* in-plane rotation */
    double z0, z1;          /* z extent, fraction of the depth */
    double drift_x, drift_y; /* centre moves this much (fraction) from z0 to z1 */
    double a2, p2, a3, p3;  /* angular harmonics of the outline */
    double hu, tex_amp, tex_fx, tex_fy, tex_ph;
} Organ;

typedef struct {
    uint64_t seed, id;
    uint64_t ctr;
} Draw;

static double U(Draw *d, double lo, double hi) { return lo + (hi - lo) * rng_uniform(rng_key(d->seed, d->id, d->ctr++)); }

/* Organ templates: label, centre, radii, z extent, HU (before per-case jitter). Positions in
 * image coordinates: +x = patient left (image right), +y = posterior (image down). */
static void draw_organs(Draw *d, Organ *o) {
    static const double T[NORGANS][9] = {
        /* label  cx     cy    rx    ry    z0    z1    hu   tex */
        {6, -0.38, -0.05, 0.42, 0.45, 0.35, 1.00, 62, 10},  /* liver (patient right) */
        {1, 0.52, 0.28, 0.20, 0.22, 0.55, 0.95, 52, 8},     /* spleen (left, posterior) */
        {2, -0.32, 0.42, 0.13, 0.18, 0.12, 0.60, 155, 25},  /* right kidney */
        {3, 0.32, 0.42, 0.13, 0.18, 0.18, 0.66, 155, 25},   /* left kidney */
        {7, 0.28, -0.28, 0.26, 0.20, 0.50, 0.92, 32, 12},   /* stomach */
        {8, 0.06, 0.30, 0.055, 0.055, 0.00, 1.00, 190, 6},  /* aorta */
    };
    for (int k = 0; k < NORGANS; k++) {
        Organ *g = &o[k];
        g->label = (int)T[k][0];
        g->cx = T[k][1] + U(d, -0.06, 0.06);
        g->cy = T[k][2] + U(d, -0.05, 0.05);
        double s = U(d, 0.8, 1.2);
        g->rx = T[k][3] * s * U(d, 0.9, 1.1);
        g->ry = T[k][4] * s * U(d, 0.9, 1.1);
        g->rot = g->label == 8 ? 0 : U(d, -0.4, 0.4);
        g->z0 = T[k][5] + (T[k][5] > 0 ? U(d, -0.08, 0.08) : 0);
        g->z1 = T[k][6] - (T[k][6] < 1 ? U(d, -0.05, 0.08) : 0);
        g->drift_x = U(d, -0.08, 0.08);
        g->drift_y = U(d, -0.08, 0.08);
        g->a2 = g->label == 8 ? 0 : U(d, 0.0, 0.18);
        g->p2 = U(d, 0, 6.283);
        g->a3 = g->label == 8 ? 0 : U(d, 0.0, 0.10);
        g->p3 = U(d, 0, 6.283);
        g->hu = T[k][7] + U(d, -12, 12);
        g->tex_amp = T[k][8] * U(d, 0.5, 1.5);
        g->tex_fx = U(d, 0.05, 0.25);
        g->tex_fy = U(d, 0.05, 0.25);
        g->tex_ph = U(d, 0, 6.283);
    }
}

/* Signed "inside-ness" of point (u, v) (body-normalised coordinates) at depth fraction t:
 * < 1 inside. The cross-section shrinks like an ellipsoid towards z0 and z1. */
static double organ_q(const Organ *g, double u, double v, double t) {
    if (t < g->z0 || t > g->z1) return 1e9;
    double tm = (t - g->z0) / (g->z1 - g->z0); /* 0..1 */
    double shrink = sqrt(fmax(0.0, 1.0 - (2 * tm - 1) * (2 * tm - 1)));
    if (g->z0 <= 0.0 && g->z1 >= 1.0) shrink = 1.0; /* tubes (aorta) run through */
    if (shrink < 0.15) return 1e9;
    double cx = g->cx + g->drift_x * tm, cy = g->cy + g->drift_y * tm;
    double dx = u - cx, dy = v - cy;
    double c = cos(g->rot), s = sin(g->rot);
    double a = (c * dx + s * dy) / g->rx, b = (-s * dx + c * dy) / g->ry;
    double th = atan2(b, a);
    double r = shrink * (1 + g->a2 * cos(2 * th + g->p2) + g->a3 * cos(3 * th + g->p3));
    return sqrt(a * a + b * b) / r;
}

static void make_case(uint64_t seed, int id, int W, int H, int D, int16_t *img /* (D, H, W) */,
                      uint8_t *lab /* (D, H, W) */) {
    Draw d = {seed, (uint64_t)id, 0};
    Organ org[NORGANS];
    draw_organs(&d, org);
    double bx = U(&d, 0.40, 0.46) * W, by = U(&d, 0.30, 0.36) * H; /* body half-axes, px */
    double fat = U(&d, 0.06, 0.12);                                  /* fat ring thickness, fraction */
    double tissue_hu = U(&d, 20, 45), fat_hu = U(&d, -110, -80), noise = U(&d, 8, 22);
    double spine_r = U(&d, 0.10, 0.13), spine_y = U(&d, 0.62, 0.72);
    double air_frac = U(&d, 0.25, 0.45); /* stomach air pocket: anterior part */
    uint64_t noise_stream = (uint64_t)id * 1000003u + 17;
    for (int z = 0; z < D; z++) {
        double t = (z + 0.5) / D;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double frac[NORGANS] = {0}, hu = 0;
                int body_hits = 0;
                for (int sy = 0; sy < SS; sy++)
                    for (int sx = 0; sx < SS; sx++) {
                        double px = x + (sx + 0.5) / SS - W / 2.0, py = y + (sy + 0.5) / SS - H / 2.0;
                        double u = px / bx, v = py / by; /* body-normalised */
                        double rb = sqrt(u * u + v * v);
                        double val;
                        if (rb > 1) {
                            val = -1000;
                        } else {
                            body_hits++;
                            val = rb > 1 - fat ? fat_hu : tissue_hu + 6 * sin(0.9 * px + 0.4 * py);
                            /* spine: cortical ring and cancellous core, not labelled */
                            double sr = sqrt(u * u + (v - spine_y) * (v - spine_y)) / spine_r;
                            if (sr < 1) val = sr > 0.75 ? 700 : 250;
                            for (int k = 0; k < NORGANS; k++) {
                                const Organ *g = &org[k];
                                double q = organ_q(g, u, v, t);
                                if (q < 1) {
                                    frac[k] += 1.0 / (SS * SS);
                                    val = g->hu + g->tex_amp * sin(g->tex_fx * px + g->tex_fy * py + g->tex_ph + 0.3 * z);
                                    if (g->label == 2 || g->label == 3) {
                                        if (q < 0.55) val = g->hu - 110; /* medulla / pelvis */
                                    } else if (g->label == 7) {
                                        /* air pocket anterior, wall rim slightly brighter */
                                        double vv = (v - g->cy) / g->ry;
                                        if (q < 0.85 && vv < -1 + 2 * air_frac) val = -600;
                                        else if (q > 0.85) val = g->hu + 25;
                                    }
                                }
                            }
                        }
                        hu += val;
                    }
                hu /= SS * SS;
                hu += noise * rng_normal(rng_key(seed, noise_stream, ((uint64_t)z * H + y) * W + x));
                if (hu < -1024) hu = -1024;
                if (hu > 3000) hu = 3000;
                size_t i = ((size_t)z * H + y) * W + x;
                img[i] = (int16_t)lrint(hu);
                /* The organ painted last wins where organs overlap, as in the intensities;
                 * a voxel belongs to it when at least half the voxel is inside. */
                int l = 0;
                for (int k = 0; k < NORGANS; k++)
                    if (frac[k] >= 0.5) l = org[k].label;
                lab[i] = (uint8_t)(body_hits ? l : 0);
            }
    }
}

/* Removes a phantom tree: only img/, label/ and our two files; anything else stays. */
static void rm_phantom(const char *dir) {
    char p[PATH_MAX + 128];
    snprintf(p, sizeof p, "%s/img", dir);
    fsu_rm_dir_files(p);
    snprintf(p, sizeof p, "%s/label", dir);
    fsu_rm_dir_files(p);
    snprintf(p, sizeof p, "%s/phantom.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/split.txt", dir);
    unlink(p);
    rmdir(dir);
}

int synth_write(const char *out_dir, const SynthOptions *o, char *err, size_t err_len) {
    if (o->cases < 2 || o->cases > 30) return error_at(err, err_len, "synth: --cases %d (expected 2..30)", o->cases);
    if (o->min_size < 32 || o->max_size < o->min_size || o->max_size > 1024 || o->min_depth < 4 ||
        o->max_depth < o->min_depth)
        return error_at(err, err_len, "synth: bad size range %d..%d x depth %d..%d", o->min_size, o->max_size,
                         o->min_depth, o->max_depth);
    char out[PATH_MAX], tmp[PATH_MAX + 32], p[PATH_MAX + 64];
    snprintf(out, sizeof out, "%s", out_dir);
    size_t L = strlen(out);
    while (L > 1 && out[L - 1] == '/') out[--L] = 0;
    struct stat st;
    if (stat(out, &st) == 0) {
        snprintf(p, sizeof p, "%s/phantom.json", out);
        if (!o->force) return error_at(err, err_len, "%s already exists (pass --force to replace it)", out);
        if (access(p, F_OK) != 0)
            return error_at(err, err_len, "%s exists and is not a phantom dataset (no phantom.json); not replacing it", out);
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    rm_phantom(tmp);
    if (fsu_mkdir_parents(tmp) != 0 || mkdir(tmp, 0755) != 0)
        return error_at(err, err_len, "%s: cannot create: %s", tmp, strerror(errno));
    snprintf(p, sizeof p, "%s/img", tmp);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/label", tmp);
    mkdir(p, 0755);

    int ntrain = o->cases - o->cases / 3;
    if (ntrain > 18) ntrain = 18;
    int ntest = o->cases - ntrain;
    FILE *split = NULL;
    snprintf(p, sizeof p, "%s/split.txt", tmp);
    split = fopen(p, "w");
    if (!split) {
        error_at(err, err_len, "%s: cannot write: %s", p, strerror(errno));
        goto fail;
    }
    fprintf(split, "# unet2022 synth: one case per line, `<split> <case number>`\n");
    for (int c = 0; c < ntrain + ntest; c++) {
        int id = c < ntrain ? synapse_train_ids[c] : synapse_test_ids[c - ntrain];
        fprintf(split, "%s %d\n", c < ntrain ? "train" : "test", id);
        Draw d = {o->seed, (uint64_t)id + 1000000, 0};
        int steps = (o->max_size - o->min_size) / 8 + 1;
        int W = o->min_size + 8 * (int)floor(U(&d, 0, steps - 1e-9));
        int H = o->min_size + 8 * (int)floor(U(&d, 0, steps - 1e-9));
        int D = o->min_depth + (int)floor(U(&d, 0, o->max_depth - o->min_depth + 1 - 1e-9));
        double sp[3];
        sp[0] = sp[1] = 380.0 / W * U(&d, 0.9, 1.1); /* a ~35 cm field of view */
        sp[2] = sp[0] * U(&d, 1.3, 2.0); /* anisotropic, thicker slices than pixels */
        /* BTCV-like orientation: x and y flipped (LPS storage seen from RAS). */
        double aff[16] = {-sp[0], 0, 0, sp[0] * W / 2, 0, -sp[1], 0, sp[1] * H / 2 + U(&d, -20, 20),
                          0, 0, sp[2], -sp[2] * D + U(&d, -50, 50), 0, 0, 0, 1};
        int16_t *img = xmalloc((size_t)W * H * D * sizeof *img);
        uint8_t *lab = xmalloc((size_t)W * H * D);
        make_case(o->seed, id, W, H, D, img, lab);
        char ip[PATH_MAX + 64], lp[PATH_MAX + 64];
        snprintf(ip, sizeof ip, "%s/img/img%04d.nii.gz", tmp, id);
        snprintf(lp, sizeof lp, "%s/label/label%04d.nii.gz", tmp, id);
        NiftiVolume grid;
        nifti_volume_from_affine(&grid, ip, W, H, D, sp, aff);
        int rc = nifti_volume_write_like(&grid, ip, img, 1, DT_INT16, err, err_len);
        if (rc == 0) rc = nifti_volume_write_like(&grid, lp, lab, 1, DT_UINT8, err, err_len);
        nifti_volume_close(&grid);
        free(img);
        free(lab);
        if (rc) goto fail;
    }
    if (fflush(split) != 0 || fsync(fileno(split)) != 0) {
        error_at(err, err_len, "%s/split.txt: write failed", tmp);
        goto fail;
    }
    fclose(split);
    split = NULL;
    snprintf(p, sizeof p, "%s/phantom.json", tmp);
    FILE *fp = fopen(p, "w");
    if (!fp || fprintf(fp,
                       "{\n  \"generator\": \"unet2022 synth\",\n  \"version\": %d,\n  \"seed\": %llu,\n"
                       "  \"cases\": %d,\n  \"train\": %d,\n  \"test\": %d,\n  \"size\": [%d, %d],\n"
                       "  \"depth\": [%d, %d]\n}\n",
                       SYNTH_VERSION, (unsigned long long)o->seed, o->cases, ntrain, ntest, o->min_size, o->max_size,
                       o->min_depth, o->max_depth) < 0 ||
        fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        if (fp) fclose(fp);
        error_at(err, err_len, "%s: write failed", p);
        goto fail;
    }
    fclose(fp);
    if (stat(out, &st) == 0) rm_phantom(out);
    if (rename(tmp, out) != 0) {
        error_at(err, err_len, "cannot rename %s to %s: %s", tmp, out, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    if (split) fclose(split);
    rm_phantom(tmp);
    return -1;
}
