/* cmd_predict.c — `unet2022 predict --weights W --input (NIfTI | DIR | STORE --split S) --output DIR`:
 * per-slice sliding-window inference (predict.c) over the cases of a volume source
 * (volume_source.h), each written as NIfTI in the input's geometry, optionally with its
 * probabilities and PNG overlays (predict_output.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "check.h"
#include "clock.h"
#include "commands.h"
#include "predict.h"
#include "predict_output.h"
#include "safetensors.h"
#include "session.h"
#include "volume_source.h"

typedef struct {
    const char *weights, *config, *input, *split, *out, *overlay, *gt_dir, *norm;
    const char *backend, *precision;
    double step; /* 0: the config's predict.step */
    int mirror, probs, threads, device;
} PredictArgs;

static const char *SUMMARY =
    "  sliding-window inference on NIfTI volumes (a file or a directory) or a slice store's split";
static const char *EPILOG =
    "The window step is the config's predict.step unless --step is given; each recipe sets its released\n"
    "value (0.2 at crop 320, 0.3 at 224, else nnU-Net's 0.5). --precision fp32 gives results equal to the\n"
    "CPU's up to rounding.\n";

static int parse(PredictArgs *a, int argc, char **argv) {
    const ArgOpt opts[] = {
        OPT_REQUIRED("--weights", &a->weights, "W", "weights (unet2022 init, PyTorch state_dict) or a training checkpoint"),
        OPT_STRING("--config", &a->config, "C", "the network config; default: the weights file's stored config"),
        OPT_REQUIRED("--input", &a->input, "IN", "a NIfTI volume, a directory of them, or a slice store (with --split)"),
        OPT_STRING("--split", &a->split, "NAME", "the store's split to predict"),
        OPT_REQUIRED("--output", &a->out, "DIR", "where the predictions go (OUT/CASE.nii.gz)"),
        OPT_POSITIVE("--step", &a->step, "F", "window step as a fraction of the crop (default: the config's predict.step)", 1),
        OPT_FLAG("--mirror", &a->mirror, "mirror test-time augmentation (4 passes per window)"),
        OPT_FLAG("--probs", &a->probs, "also write OUT/probs/CASE.nii.gz (float32 softmax, a channel per class)"),
        OPT_STRING("--overlay", &a->overlay, "S", "PNG overlays of slices: 'mid' or z indices; --gt DIR adds the ground truth"),
        OPT_STRING("--gt", &a->gt_dir, "DIR", "ground truth for the overlays (DIR/CASE.nii.gz)"),
        OPT_STRING("--norm", &a->norm, "N", "none|zscore|ct:LO,HI,MEAN,SD: normalisation of NIfTI input (a store's is\n"
                   "already normalised)"),
        OPT_INT("--threads", &a->threads, "N", "CPU threads (default: all cores)", 0, 65536),
        OPT_CHOICE("--backend", &a->backend, "cpu|cuda", "the backend (default cpu)"),
        OPT_CHOICE("--precision", &a->precision, "fp32|tf32|bf16", "cuda's arithmetic (default bf16)"),
        OPT_INT("--device", &a->device, "D", "the CUDA device (default 0)", 0, 1024),
    };
    const ArgSpec spec = {"predict", SUMMARY, NULL, 0, opts, ARGS_N(opts), NULL, NULL, EPILOG};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    if (!predict_norm_ok(a->norm))
        return args_error(&spec, "--norm: expected none, zscore or ct:LO,HI,MEAN,SD (SD > 0), got '%s'", a->norm);
    if (a->overlay && !predict_overlay_spec_ok(a->overlay))
        return args_error(&spec, "--overlay: expected 'mid' or slice indices, got '%s'", a->overlay);
    return ARGS_CONTINUE;
}

/* Test hook `predict --config C --dump-gaussian F`: the importance map alone (the tests compare
 * it with nnU-Net's), parsed on its own so the real options keep their required ones. */
static int dump_gaussian(int argc, char **argv) {
    const char *cfg_path = NULL, *path = NULL;
    const ArgOpt opts[] = {OPT_REQUIRED("--config", &cfg_path, "C", "the network config"),
                           OPT_REQUIRED("--dump-gaussian", &path, "F", "where the map goes (safetensors)")};
    const ArgSpec spec = {"predict", NULL, NULL, 0, opts, ARGS_N(opts), NULL, NULL, NULL};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    Session s;
    SessionOptions so = {.command = "predict", .config = cfg_path};
    if ((st = session_open(&s, &so)) != 0) return st;
    int h = s.cfg.net.crop[0], w = s.cfg.net.crop[1];
    float *g = xmalloc((size_t)h * w * sizeof(float));
    predict_gaussian(g, h, w, 1.0 / 8.0);
    StFile f;
    st_init(&f);
    int64_t shape[2] = {h, w};
    st_add(&f, "gaussian", ST_F32, 2, shape, g);
    char err[2048];
    int rc = st_write_file(&f, path, err, sizeof err);
    if (rc) fprintf(stderr, "unet2022: error: %s\n", err);
    st_free(&f);
    free(g);
    session_close(&s);
    return rc ? 2 : 0;
}

static int make_dir(const char *path) {
    struct stat st;
    return mkdir(path, 0755) == 0 || (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) ? 0 : -1;
}

/* Overlays with the ground truth: the store's labels, or --gt DIR/CASE.nii.gz when on the grid. */
static int overlays(const PredictArgs *a, const VolumeCase *c, const float *vol, const int32_t *lab,
                    const int32_t *pred, char *err, size_t err_len) {
    int32_t *owned = NULL;
    if (!lab && a->gt_dir) {
        NiftiVolume gv;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s.nii.gz", a->gt_dir, c->name);
        if (nifti_volume_open(&gv, path, err, err_len) == 0) {
            if (nifti_volume_same_geometry(&gv, &c->geom, err, err_len) != 0 ||
                nifti_volume_read_labels(&gv, &owned, err, err_len) != 0)
                fprintf(stderr, "predict: case %s: no ground truth in the overlay: %s\n", c->name, err);
            nifti_volume_close(&gv);
        }
    }
    int rc = predict_write_overlays(a->out, c->name, a->overlay, vol, lab ? lab : owned, pred, c->nz, c->ny, c->nx,
                                    err, err_len);
    free(owned);
    return rc == -2 ? 1 : rc ? 2 : 0;
}

/* One case: read, predict, write. Returns the exit status so far (0, 1 or 2). */
static int predict_case(const PredictArgs *a, Predictor *pr, const VolumeSource *src, const VolumeCase *c) {
    char err[2048];
    const int K = pr->K, C = pr->cin, D = c->nz, H = c->ny, W = c->nx;
    if (c->channels != C)
        return fprintf(stderr, "unet2022: error: case %s: %s has %d channel(s), the network takes %d\n", c->name,
                       c->path, c->channels, C), 2;
    const Store *store = volume_source_store(src);
    float *vol = NULL;
    int32_t *lab = NULL; /* the store's labels, for the overlays */
    if (volume_case_read(src, c, &vol, store && a->overlay ? &lab : NULL, err, sizeof err) != 0)
        return fprintf(stderr, "unet2022: error: case %s: %s\n", c->name, err), 2;
    size_t vox = (size_t)D * H * W;
    if (!store)
        for (int ch = 0; ch < C; ch++) predict_normalise(vol + ch * vox, vox, a->norm);
    float *probs = xmalloc((size_t)K * vox * sizeof(float));
    int32_t *pred = xmalloc(vox * sizeof(int32_t));
    double t0 = monotonic_seconds();
    predict_volume(pr, probs, pred, vol, D, H, W);
    double secs = monotonic_seconds() - t0;
    int rc = predict_write_volumes(&c->geom, a->out, c->name, pred, a->probs ? probs : NULL, K, err, sizeof err) ? 2 : 0;
    if (rc == 0 && a->overlay) rc = overlays(a, c, vol, lab, pred, err, sizeof err);
    if (rc) fprintf(stderr, "unet2022: error: case %s: %s\n", c->name, err);
    else printf("predict: %s (%dx%dx%d, %d classes) %.2f s -> %s/%s.nii.gz\n", c->name, W, H, D, K, secs, a->out, c->name);
    free(vol), free(lab), free(probs), free(pred);
    return rc;
}

static int predict_all(const PredictArgs *a, Session *s, VolumeSource *src) {
    Predictor pr;
    predictor_init(&pr, &s->model, s->be, s->params, a->step > 0 ? a->step : s->cfg.predict_step, a->mirror);
    VolumeCase c;
    char err[2048];
    int rc = 0, got;
    while (rc == 0 && (got = volume_source_next(src, &c, err, sizeof err)) != 0) {
        if (got < 0) {
            fprintf(stderr, "unet2022: error: %s\n", err);
            rc = 2;
            break;
        }
        rc = predict_case(a, &pr, src, &c);
        volume_case_close(&c);
    }
    predictor_free(&pr);
    return rc;
}

int cmd_predict(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--dump-gaussian")) return dump_gaussian(argc, argv);
    PredictArgs a = {.norm = "none", .backend = "cpu"};
    int st = parse(&a, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    Session s;
    SessionOptions so = {.command = "predict", .config = a.config, .weights = a.weights, .backend = a.backend,
                         .precision = a.precision, .device = a.device, .threads = a.threads};
    if ((st = session_open(&s, &so)) != 0) return st;
    VolumeSource *src = NULL;
    char err[2048], probs_dir[1200];
    snprintf(probs_dir, sizeof probs_dir, "%s/probs", a.out);
    int rc = volume_source_open(&src, a.input, a.split, err, sizeof err);
    if (rc != 0) fprintf(stderr, "unet2022: error: --input: %s\n", err), rc = rc == VS_ERROR ? 2 : 1;
    else if (make_dir(a.out) != 0 || (a.probs && make_dir(probs_dir) != 0))
        fprintf(stderr, "unet2022: error: --output %s: cannot create the directory\n", a.out), rc = 2;
    else rc = predict_all(&a, &s, src);
    volume_source_close(src);
    session_close(&s);
    return rc;
}
