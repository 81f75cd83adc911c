/* cmd_predict.c — `unet2022 predict --weights W --input (NIfTI | DIR | STORE --split S) --output DIR`:
 * per-slice sliding-window inference (predict.c), volumes written as NIfTI in the input's
 * geometry (the input's header and affine; a store case's affine), optionally the softmax
 * probabilities (OUT/probs/CASE.nii.gz, float32, one channel per class along the 4th axis)
 * and PNG overlays of chosen slices (OUT/CASE_zNNN.png). */
#include <dirent.h>
#include <math.h>
#include <nifti1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "backend_select.h"
#include "check.h"
#include "checkpoint.h"
#include "clock.h"
#include "commands.h"
#include "config.h"
#include "import_common.h"
#include "model.h"
#include "nifti_volume.h"
#include "png_overlay.h"
#include "predict.h"
#include "safetensors.h"
#include "store.h"
#include "weights_io.h"

static const char *USAGE =
    "usage: unet2022 predict --weights W.safetensors [--config CONFIG] --input (FILE | DIR | STORE --split NAME)\n"
    "                        --output DIR [--step F] [--mirror] [--probs] [--overlay mid|Z,Z,...] [--gt DIR]\n"
    "                        [--norm none|zscore|ct:LO,HI,MEAN,SD] [--threads N]\n"
    "                        [--backend cpu|cuda] [--precision fp32|tf32|bf16] [--device D]\n"
    "  --weights W       weights (unet2022 init, PyTorch state_dict) or a training checkpoint\n"
    "  --config C        the network config; default: the checkpoint's stored config\n"
    "  --input           a NIfTI volume, a directory of them, or a slice store (with --split)\n"
    "  --step F          window step as a fraction of the crop (default: 0.2 at crop 320, 0.3 at 224,\n"
    "                    else 0.5, as the paper)\n"
    "  --mirror          mirror test-time augmentation (4 passes per window)\n"
    "  --probs           also write OUT/probs/CASE.nii.gz (float32 softmax, a channel per class)\n"
    "  --overlay S       PNG overlays of slices: 'mid' or z indices; --gt DIR adds the ground truth\n"
    "  --norm N          intensity normalisation of NIfTI input (store input is already normalised)\n"
    "  --backend B       cpu (default) or cuda; --precision: cuda's arithmetic (default bf16; fp32 for\n"
    "                    results equal to the CPU's up to rounding); --device: the GPU\n";

typedef struct {
    char name[256];
    char path[1024]; /* NIfTI input */
    int store_idx;   /* store input, else -1 */
} Case;

static int nifti_stem(const char *file, char *stem, size_t n) {
    size_t len = strlen(file);
    const char *exts[] = {".nii.gz", ".nii"};
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    len = strlen(base);
    for (int i = 0; i < 2; i++) {
        size_t e = strlen(exts[i]);
        if (len > e && !strcmp(base + len - e, exts[i]) && base[0] != '.') {
            snprintf(stem, n, "%.*s", (int)(len - e), base);
            return 1;
        }
    }
    return 0;
}

static int cmp_case(const void *a, const void *b) { return strcmp(((const Case *)a)->name, ((const Case *)b)->name); }

/* Loads the config (file, or the weights file's "config" metadata) and the weights. */
static int load_model(Model *m, float **params, const char *wpath, const char *cfg_path, char *err, size_t err_len) {
    StFile f;
    if (st_read(&f, wpath, err, err_len) != 0) return -1;
    int is_ckpt = st_meta_get(&f, "unet2022_checkpoint") != NULL;
    if (is_ckpt && checkpoint_verify(wpath, err, err_len) != 0) {
        st_free(&f);
        return -1;
    }
    Config cfg;
    if (cfg_path) {
        if (config_load(&cfg, cfg_path, err, err_len) != 0) {
            st_free(&f);
            return -1;
        }
    } else {
        const char *yaml = st_meta_get(&f, "config");
        if (!yaml) {
            snprintf(err, err_len, "%s: no stored config (metadata 'config'): give the network's config with --config", wpath);
            st_free(&f);
            return -1;
        }
        char name[1100];
        snprintf(name, sizeof name, "%s (stored config)", wpath);
        if (config_load_text(&cfg, yaml, name, err, err_len) != 0) {
            st_free(&f);
            return -1;
        }
    }
    model_build(m, &cfg.net);
    *params = xcalloc(m->params.total, sizeof(float));
    /* a checkpoint also holds the Adam moments: load only the network's tensors */
    StFile view = f;
    StTensor *kept = xmalloc((size_t)(f.n_tensors ? f.n_tensors : 1) * sizeof(StTensor));
    view.n_tensors = 0;
    for (int i = 0; i < f.n_tensors; i++)
        if (!is_ckpt || strncmp(f.tensors[i].name, "adam.", 5) != 0) kept[view.n_tensors++] = f.tensors[i];
    view.tensors = kept;
    int rc = weights_load_st(m, *params, &view, err, err_len);
    free(kept);
    st_free(&f);
    return rc;
}

static void normalise(float *img /* (n) */, size_t n, const char *norm) {
    if (!strcmp(norm, "none")) return;
    double lo = -INFINITY, hi = INFINITY, mean = 0, sd = 1;
    if (!strncmp(norm, "ct:", 3)) {
        sscanf(norm + 3, "%lf,%lf,%lf,%lf", &lo, &hi, &mean, &sd);
    } else { /* zscore over the whole case */
        double s = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) s += img[i], s2 += (double)img[i] * img[i];
        mean = s / n;
        sd = sqrt(fmax(s2 / n - mean * mean, 0)) + 1e-8;
    }
    for (size_t i = 0; i < n; i++) {
        double v = img[i] < lo ? lo : img[i] > hi ? hi : img[i];
        img[i] = (float)((v - mean) / sd);
    }
}

int cmd_predict(int argc, char **argv) {
    const char *wpath = NULL, *cfg_path = NULL, *input = NULL, *split = NULL, *out = NULL, *overlay = NULL;
    const char *gt_dir = NULL, *norm = "none", *dump_gauss = NULL;
    double step = -1;
    const char *backend = "cpu", *precision = NULL;
    int mirror = 0, probs = 0, threads = 0, device = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--weights") && has) wpath = argv[++i];
        else if (!strcmp(a, "--config") && has) cfg_path = argv[++i];
        else if (!strcmp(a, "--input") && has) input = argv[++i];
        else if (!strcmp(a, "--split") && has) split = argv[++i];
        else if (!strcmp(a, "--output") && has) out = argv[++i];
        else if (!strcmp(a, "--overlay") && has) overlay = argv[++i];
        else if (!strcmp(a, "--gt") && has) gt_dir = argv[++i];
        else if (!strcmp(a, "--norm") && has) norm = argv[++i];
        else if (!strcmp(a, "--step") && has) step = atof(argv[++i]);
        else if (!strcmp(a, "--threads") && has) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--backend") && has) backend = argv[++i];
        else if (!strcmp(a, "--precision") && has) precision = argv[++i];
        else if (!strcmp(a, "--device") && has) device = atoi(argv[++i]);
        else if (!strcmp(a, "--dump-gaussian") && has) dump_gauss = argv[++i]; /* test hook */
        else if (!strcmp(a, "--mirror")) mirror = 1;
        else if (!strcmp(a, "--probs")) probs = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else {
            fprintf(stderr, "unet2022: error: predict: unexpected argument '%s'\n%s", a, USAGE);
            return 1;
        }
    }
    char err[2048];
    if (dump_gauss && cfg_path) { /* the importance map alone, for the tests */
        Config cfg;
        if (config_load(&cfg, cfg_path, err, sizeof err) != 0) {
            fprintf(stderr, "unet2022: error: %s\n", err);
            return 2;
        }
        float *g = xmalloc((size_t)cfg.net.crop[0] * cfg.net.crop[1] * sizeof(float));
        predict_gaussian(g, cfg.net.crop[0], cfg.net.crop[1], 1.0 / 8.0);
        StFile f;
        st_init(&f);
        int64_t shape[2] = {cfg.net.crop[0], cfg.net.crop[1]};
        st_add(&f, "gaussian", ST_F32, 2, shape, g);
        int rc = st_write_file(&f, dump_gauss, err, sizeof err);
        st_free(&f);
        free(g);
        if (rc) fprintf(stderr, "unet2022: error: %s\n", err);
        return rc ? 2 : 0;
    }
    if (!wpath || !input || !out) {
        fputs(USAGE, stderr);
        return 1;
    }
    if (!strcmp(norm, "none") || !strcmp(norm, "zscore")) {
    } else {
        double a, b, c, d;
        if (strncmp(norm, "ct:", 3) != 0 || sscanf(norm + 3, "%lf,%lf,%lf,%lf", &a, &b, &c, &d) != 4 || !(d > 0)) {
            fprintf(stderr, "unet2022: error: --norm '%s': expected none, zscore or ct:LO,HI,MEAN,SD (SD > 0)\n", norm);
            return 1;
        }
    }
    /* before anything is read or written: an impossible backend is a usage error */
    Backend *be = backend_select(backend, precision, device, threads, err, sizeof err);
    if (!be) {
        fprintf(stderr, "unet2022: error: predict: %s\n", err);
        return 1;
    }
    Model m;
    float *params = NULL;
    if (load_model(&m, &params, wpath, cfg_path, err, sizeof err) != 0) {
        fprintf(stderr, "unet2022: error: %s\n", err);
        return 2;
    }
    if (step <= 0) step = m.net.crop[0] >= 320 ? 0.2 : m.net.crop[0] == 224 ? 0.3 : 0.5;
    if (!(step > 0 && step <= 1)) {
        fprintf(stderr, "unet2022: error: --step %g: expected a fraction in (0, 1]\n", step);
        return 1;
    }

    /* the cases */
    Case *cases = NULL;
    int n_cases = 0;
    Store *store = NULL;
    struct stat st;
    char manifest[1200];
    snprintf(manifest, sizeof manifest, "%s/manifest.json", input);
    if (split || stat(manifest, &st) == 0) {
        if (!split) {
            fprintf(stderr, "unet2022: error: --input %s is a slice store: name the split with --split\n", input);
            return 1;
        }
        if (store_open(&store, input, err, sizeof err) != 0) {
            fprintf(stderr, "unet2022: error: %s\n", err);
            return 2;
        }
        int n = store_num_cases(store);
        int *idx = xmalloc((size_t)(n ? n : 1) * sizeof(int));
        n_cases = store_split(store, split, idx, n);
        cases = xcalloc((size_t)(n_cases ? n_cases : 1), sizeof(Case));
        for (int i = 0; i < n_cases; i++) {
            snprintf(cases[i].name, sizeof cases[i].name, "%s", store_case(store, idx[i])->name);
            cases[i].store_idx = idx[i];
        }
        free(idx);
    } else if (stat(input, &st) == 0 && S_ISDIR(st.st_mode)) {
        DIR *d = opendir(input);
        struct dirent *e;
        int cap = 0;
        while (d && (e = readdir(d))) {
            char stem[256];
            if (!nifti_stem(e->d_name, stem, sizeof stem)) continue;
            if (n_cases == cap) cap = cap ? 2 * cap : 32, cases = realloc(cases, (size_t)cap * sizeof(Case));
            CHECK(cases, "out of memory");
            snprintf(cases[n_cases].name, sizeof cases[n_cases].name, "%s", stem);
            snprintf(cases[n_cases].path, sizeof cases[n_cases].path, "%s/%s", input, e->d_name);
            cases[n_cases++].store_idx = -1;
        }
        if (d) closedir(d);
        if (n_cases) qsort(cases, (size_t)n_cases, sizeof(Case), cmp_case);
    } else {
        cases = xcalloc(1, sizeof(Case));
        if (!nifti_stem(input, cases[0].name, sizeof cases[0].name)) {
            fprintf(stderr, "unet2022: error: --input %s: not a .nii/.nii.gz file, a directory or a slice store\n", input);
            return 1;
        }
        snprintf(cases[0].path, sizeof cases[0].path, "%s", input);
        cases[0].store_idx = -1;
        n_cases = 1;
    }
    if (n_cases == 0) {
        fprintf(stderr, "unet2022: error: --input %s: no cases found\n", input);
        return 2;
    }
    char probs_dir[1200];
    snprintf(probs_dir, sizeof probs_dir, "%s/probs", out);
    if ((mkdir(out, 0755) != 0 && (stat(out, &st) != 0 || !S_ISDIR(st.st_mode))) ||
        (probs && mkdir(probs_dir, 0755) != 0 && (stat(probs_dir, &st) != 0 || !S_ISDIR(st.st_mode)))) {
        fprintf(stderr, "unet2022: error: --output %s: cannot create the directory\n", out);
        return 2;
    }

    Predictor pr;
    predictor_init(&pr, &m, be, params, step, mirror);
    const int K = m.K, C = m.cin;
    int rc = 0;
    for (int ci = 0; ci < n_cases && rc == 0; ci++) {
        Case *cs = &cases[ci];
        NiftiVolume ref;
        float *vol = NULL; /* (C, D, H, W) NIfTI input */
        int D, H, W;
        if (cs->store_idx >= 0) {
            const StoreCase *sc = store_case(store, cs->store_idx);
            if (sc->channels != C) {
                fprintf(stderr, "unet2022: error: case %s: %d channels, the network takes %d\n", cs->name, sc->channels, C);
                rc = 2;
                break;
            }
            D = sc->depth, H = sc->height, W = sc->width;
            nifti_volume_from_affine(&ref, cs->name, W, H, D, sc->spacing, sc->affine);
        } else {
            if (nifti_volume_open(&ref, cs->path, err, sizeof err) != 0 ||
                nifti_volume_read_float(&ref, &vol, err, sizeof err) != 0) {
                fprintf(stderr, "unet2022: error: case %s: %s\n", cs->name, err);
                rc = 2;
                break;
            }
            if (ref.nt != C) {
                fprintf(stderr, "unet2022: error: case %s: %s has %d channel(s), the network takes %d\n", cs->name,
                        cs->path, ref.nt, C);
                rc = 2;
                nifti_volume_close(&ref);
                free(vol);
                break;
            }
            D = ref.nz, H = ref.ny, W = ref.nx;
            /* NaN or infinite input would spread through the normalisation and every window that
             * sees it: rejected as `prepare` rejects it */
            if (imp_check_finite(cs->path, vol, W, H, D, C, err, sizeof err) != 0) {
                fprintf(stderr, "unet2022: error: case %s: %s\n", cs->name, err);
                rc = 2;
                nifti_volume_close(&ref);
                free(vol);
                break;
            }
            for (int c = 0; c < C; c++) normalise(vol + (size_t)c * D * H * W, (size_t)D * H * W, norm);
        }
        size_t plane = (size_t)H * W, vox = plane * D;
        float *pv = xmalloc((size_t)K * vox * sizeof(float));          /* (K, D, H, W) */
        float *sp = xmalloc((size_t)K * plane * sizeof(float));        /* (K, H, W) */
        float *img = xmalloc((size_t)C * plane * sizeof(float));       /* (C, H, W) */
        int32_t *lab = xmalloc(vox * sizeof(int32_t));                 /* (D, H, W) store labels */
        int32_t *pred = xmalloc(vox * sizeof(int32_t));                /* (D, H, W) */
        double t0 = monotonic_seconds();
        for (int z = 0; z < D && rc == 0; z++) {
            if (cs->store_idx >= 0) {
                if (store_read_slice(store, cs->store_idx, z, img, lab + plane * z, err, sizeof err) != 0) {
                    fprintf(stderr, "unet2022: error: case %s: %s\n", cs->name, err);
                    rc = 2;
                    break;
                }
            } else {
                for (int c = 0; c < C; c++) memcpy(img + c * plane, vol + ((size_t)c * D + z) * plane, plane * sizeof(float));
            }
            predict_slice(&pr, sp, img, H, W);
            for (int k = 0; k < K; k++) memcpy(pv + ((size_t)k * D + z) * plane, sp + k * plane, plane * sizeof(float));
            for (size_t i = 0; i < plane; i++) {
                int best = 0;
                for (int k = 1; k < K; k++)
                    if (sp[k * plane + i] > sp[best * plane + i]) best = k;
                pred[plane * z + i] = best;
            }
        }
        double t_predict = monotonic_seconds() - t0;
        char path[1400];
        if (rc == 0) {
            /* labels as uint8 (int16 beyond 255 classes), in the input's geometry */
            void *buf = K <= 256 ? xmalloc(vox) : xmalloc(vox * 2);
            for (size_t i = 0; i < vox; i++) {
                if (K <= 256) ((uint8_t *)buf)[i] = (uint8_t)pred[i];
                else ((int16_t *)buf)[i] = (int16_t)pred[i];
            }
            snprintf(path, sizeof path, "%s/%s.nii.gz", out, cs->name);
            if (nifti_volume_write_like(&ref, path, buf, 1, K <= 256 ? DT_UINT8 : DT_INT16, err, sizeof err) != 0) rc = 2;
            free(buf);
            if (rc == 0 && probs) {
                snprintf(path, sizeof path, "%s/%s.nii.gz", probs_dir, cs->name);
                if (nifti_volume_write_like(&ref, path, pv, K, DT_FLOAT32, err, sizeof err) != 0) rc = 2;
            }
            if (rc != 0) fprintf(stderr, "unet2022: error: case %s: %s\n", cs->name, err);
        }
        if (rc == 0 && overlay) {
            /* ground truth for the overlays: the store's labels, or --gt DIR/CASE.nii.gz */
            int32_t *gt = cs->store_idx >= 0 ? lab : NULL, *gt_owned = NULL;
            if (!gt && gt_dir) {
                NiftiVolume gv;
                snprintf(path, sizeof path, "%s/%s.nii.gz", gt_dir, cs->name);
                if (nifti_volume_open(&gv, path, err, sizeof err) == 0) {
                    if (nifti_volume_same_geometry(&gv, &ref, err, sizeof err) == 0 &&
                        nifti_volume_read_labels(&gv, &gt_owned, err, sizeof err) == 0)
                        gt = gt_owned;
                    else fprintf(stderr, "predict: case %s: no ground truth in the overlay: %s\n", cs->name, err);
                    nifti_volume_close(&gv);
                }
            }
            const char *p = overlay;
            while (*p && rc == 0) {
                int z;
                if (!strncmp(p, "mid", 3)) z = D / 2, p += 3;
                else z = (int)strtol(p, (char **)&p, 10);
                if (*p == ',') p++;
                else if (*p) {
                    fprintf(stderr, "unet2022: error: --overlay '%s': expected 'mid' or slice indices\n", overlay);
                    rc = 1;
                    break;
                }
                if (z < 0 || z >= D) {
                    fprintf(stderr, "unet2022: error: --overlay: slice %d outside case %s (0..%d)\n", z, cs->name, D - 1);
                    rc = 1;
                    break;
                }
                const float *im = cs->store_idx >= 0 ? NULL : vol + (size_t)z * plane;
                if (!im) {
                    store_read_slice(store, cs->store_idx, z, img, lab + plane * z, err, sizeof err);
                    im = img;
                }
                snprintf(path, sizeof path, "%s/%s_z%03d.png", out, cs->name, z);
                if (png_overlay_write(path, im, gt ? gt + plane * z : NULL, pred + plane * z, H, W, err, sizeof err) != 0) {
                    fprintf(stderr, "unet2022: error: case %s: %s\n", cs->name, err);
                    rc = 2;
                }
            }
            free(gt_owned);
        }
        if (rc == 0)
            printf("predict: %s (%dx%dx%d, %d classes) %.2f s -> %s/%s.nii.gz\n", cs->name, W, H, D, K,
                   t_predict, out, cs->name);
        free(pv);
        free(sp);
        free(img);
        free(lab);
        free(pred);
        free(vol);
        nifti_volume_close(&ref);
    }
    predictor_free(&pr);
    be->destroy(be);
    free(params);
    model_free(&m);
    free(cases);
    if (store) store_close(store);
    return rc;
}
