/* trainer.c — the training run (trainer.h).
 *
 * The loop: loader → forward → deep-supervision loss (Dice statistics summed over ranks) →
 * backward → gradient all-reduce (sum: each rank's gradient is its share of the global loss's)
 * → clip at 12 → Adam. Epochs are full shuffled passes over the training slices. Rank 0 logs,
 * validates into an EMA pseudo-Dice, and writes checkpoints atomically; SIGUSR1/SIGTERM stop
 * the run at a step boundary with a checkpoint (TRAINER_STOPPED). */
#include "trainer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "checkpoint.h"
#include "clock.h"
#include "fsutil.h"
#include "grad_sync.h"
#include "model.h"
#include "optimizer.h"
#include "progress_plot.h"
#include "run_log.h"
#include "step_graph.h"
#include "stop_signal.h"
#include "store.h"
#include "train_feed.h"
#include "validate.h"
#include "weights_warm.h"

struct Trainer {
    Config cfg;
    TrainerOptions opt; /* its cfg points at the copy above */
    char *config_yaml;  /* resolved config as YAML, stored in checkpoints */
    char ckpt_dir[600];
    Comm *comm;
    Backend *be;        /* the caller's; everything allocated on it is released here */
    Model model;
    Store *store;
    TrainFeed *feed;
    ModelActs *acts;
    float *params, *grads, *image;   /* backend memory */
    int32_t *labels;                 /* backend memory */
    Adam adam;
    GradSync *gsync; /* several ranks: the gradient all-reduce, bucketed and overlapped */
    int gsync_said;
    StepGraph graph; /* train.cuda_graph: the step captured once and replayed */
    PassOptions pass;
    TrainState st;
    RunLog log;
    ProgressPlot plot; /* rank 0: RUN_DIR/progress.png after each validation */
    int b_local;
};

static void say(const Trainer *t, const char *fmt, ...) UNET_PRINTF(2, 3);
static void say(const Trainer *t, const char *fmt, ...) {
    if (t->comm && t->comm->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static char *config_yaml_text(const Config *cfg) {
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    CHECK(mem, "open_memstream failed");
    config_print(cfg, mem);
    fclose(mem);
    return text;
}

/* ---- collective helpers: every rank takes part, rank 0's decision is everyone's ---- */

/* The loss statistics' sum, ordered on the backend's queue (no host wait: NCCL's stream waits
 * for the producer and the queue for NCCL; MPI on host memory completes in allreduce_wait). */
typedef struct {
    Comm *comm;
    void *queue;
} QueuedSum;
static void sum_f32(void *ctx, float *buf, size_t n) {
    QueuedSum *q = (QueuedSum *)ctx;
    q->comm->allreduce_start(q->comm, &buf, &n, 1, q->queue);
    q->comm->allreduce_wait(q->comm, q->queue);
}

static int any_rank(Comm *c, int flag) {
    double v = flag ? 1.0 : 0.0;
    c->allreduce_sum_f64(c, &v, 1);
    return v > 0;
}

/* ---- checkpoints (rank 0 writes; all ranks wait so none runs ahead of a failed write) ---- */

static int save_checkpoint(Trainer *t, const char *path, char *err, size_t err_len) {
    int rc = 0;
    if (t->comm->rank == 0) {
        size_t n = t->model.params.total;
        float *p = xmalloc(n * sizeof(float)), *m = xmalloc(n * sizeof(float)), *v = xmalloc(n * sizeof(float));
        t->be->download(t->be, p, t->params, n * sizeof(float));
        t->be->download(t->be, m, t->adam.m, n * sizeof(float));
        t->be->download(t->be, v, t->adam.v, n * sizeof(float));
        TrainState st = t->st;
        st.world_size = t->comm->size;
        rc = checkpoint_save(path, &t->model, p, m, v, &st, t->config_yaml, err, err_len);
        free(p), free(m), free(v);
        if (rc == 0 && strstr(path, "/ckpt-")) checkpoint_prune(t->ckpt_dir, t->cfg.keep_last);
    }
    if (any_rank(t->comm, rc != 0)) {
        if (rc == 0) snprintf(err, err_len, "checkpoint write failed on rank 0");
        return -1;
    }
    return 0;
}

static int save_step_checkpoint(Trainer *t, char *err, size_t err_len) {
    char path[1024];
    checkpoint_path(path, sizeof path, t->ckpt_dir, t->st.step);
    if (save_checkpoint(t, path, err, err_len) != 0) return -1;
    say(t, "checkpoint: %s\n", path);
    return 0;
}

/* A checkpoint's stored config against this run's: every key the settings table keeps fixed
 * across a resume must match. Old checkpoints lacking newer keys load with their defaults. */
static int check_resumable(const Trainer *t, const char *path, const char *yaml, char *err, size_t err_len) {
    Config old;
    char cerr[1024], name[1100], diff[1200];
    snprintf(name, sizeof name, "%s (stored config)", path);
    if (config_load_text(&old, yaml, name, cerr, sizeof cerr) != 0) return snprintf(err, err_len, "%s", cerr), -1;
    if (config_resume_diff(&old, &t->cfg, diff, sizeof diff) == 0) return 0;
    snprintf(err, err_len,
             "%s was written by a run with a different configuration (%s); resume it with its own config or start a "
             "new run_dir",
             path, diff);
    return -1;
}

/* Loads weights, moments and state from a checkpoint (every rank reads the same file). */
static int resume_from(Trainer *t, const char *path, char *err, size_t err_len) {
    size_t n = t->model.params.total;
    float *p = xmalloc(n * sizeof(float)), *m = xmalloc(n * sizeof(float)), *v = xmalloc(n * sizeof(float));
    char *yaml = NULL;
    int rc = checkpoint_load(path, &t->model, p, m, v, &t->st, &yaml, err, err_len);
    if (rc == 0) rc = check_resumable(t, path, yaml, err, err_len);
    if (rc == 0) {
        t->be->upload(t->be, t->params, p, n * sizeof(float));
        t->be->upload(t->be, t->adam.m, m, n * sizeof(float));
        t->be->upload(t->be, t->adam.v, v, n * sizeof(float));
        t->adam.step = (int)t->st.step;
    }
    free(yaml), free(p), free(m), free(v);
    return rc;
}

/* ---- setup ---- */

static int check_store(const Trainer *t, char *err, size_t err_len) {
    const Config *c = &t->cfg;
    if (store_num_classes(t->store) != c->net.classes)
        return snprintf(err, err_len, "%s: the store has %d classes but network.classes is %d", c->store,
                        store_num_classes(t->store), c->net.classes), -1;
    for (int i = 0; i < store_num_cases(t->store); i++)
        if (store_case(t->store, i)->channels != c->net.in_channels)
            return snprintf(err, err_len, "%s: case %s has %d channels but network.in_channels is %d", c->store,
                            store_case(t->store, i)->name, store_case(t->store, i)->channels, c->net.in_channels), -1;
    return 0;
}

/* The store's split names with their case counts, "train (18 cases), test (12 cases)". */
static void list_splits(const Store *s, char *out, size_t n) {
    size_t k = 0;
    out[0] = '\0';
    for (int i = 0; i < store_num_cases(s) && k < n; i++) {
        const char *name = store_case(s, i)->split;
        int seen = 0, count = 0;
        for (int j = 0; j < i && !seen; j++) seen = !strcmp(store_case(s, j)->split, name);
        if (seen) continue;
        for (int j = i; j < store_num_cases(s); j++) count += !strcmp(store_case(s, j)->split, name);
        k += (size_t)snprintf(out + k, n - k, "%s%s (%d case%s)", k ? ", " : "", name, count, count == 1 ? "" : "s");
    }
    if (!out[0]) snprintf(out, n, "none");
}

/* The splits the config names must exist before anything runs: a missing validation split
 * used to fail only after the first epoch, whose checkpoint was then never written. The
 * validation split is checked when validation runs at all. */
static int check_splits(const Trainer *t, char *err, size_t err_len) {
    const Config *c = &t->cfg;
    const char *keys[2] = {"train.train_split", "train.val_split"}, *names[2] = {c->train_split, c->val_split};
    int *idx = xmalloc((size_t)(store_num_cases(t->store) + 1) * sizeof(int));
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (i == 1 && c->val_every <= 0 && !c->val_at_start) continue;
        if (store_split(t->store, names[i], idx, store_num_cases(t->store)) > 0) continue;
        char splits[1024];
        list_splits(t->store, splits, sizeof splits);
        snprintf(err, err_len, "%s: %s = '%s': the store has no such split; its splits: %s", c->store, keys[i],
                 names[i], splits);
        rc = -1;
    }
    free(idx);
    return rc;
}

/* Steps per epoch as the loader will count them: ceil(train split slices / global batch). */
static uint64_t store_steps_per_epoch(const Trainer *t, long long *slices) {
    int n = store_num_cases(t->store);
    int *idx = xmalloc((size_t)(n + 1) * sizeof(int));
    int k = store_split(t->store, t->cfg.train_split, idx, n);
    *slices = 0;
    for (int i = 0; i < k; i++) *slices += store_case(t->store, idx[i])->depth;
    free(idx);
    return (uint64_t)((*slices + t->cfg.batch_size - 1) / t->cfg.batch_size);
}

/* A resumed position must be one this store and batch size can produce: epoch_step below the
 * steps per epoch, and step = epoch x steps per epoch + epoch_step (every checkpoint is written
 * with that identity). A checkpoint that breaks it (damaged metadata, or a store prepared again
 * with other slices) used to make the loop spin without training, logging or seeing signals. */
static int check_position(const Trainer *t, const char *path, char *err, size_t err_len) {
    long long slices;
    uint64_t spe = store_steps_per_epoch(t, &slices);
    const TrainState *st = &t->st;
    const char *why = "the checkpoint is damaged, or the store was prepared again with other slices; resume from "
                      "another checkpoint or start a new run_dir";
    if (spe == 0) return 0; /* start_feed reports an empty split */
    if (st->epoch_step >= spe)
        return snprintf(err, err_len, "%s: epoch_step = %" PRIu64 " is not below the %" PRIu64 " steps per epoch "
                        "(split '%s' of %s: %lld slices, global batch %d): %s", path, st->epoch_step, spe,
                        t->cfg.train_split, t->cfg.store, slices, t->cfg.batch_size, why), -1;
    if (st->epoch > st->step / spe || st->step - st->epoch * spe != st->epoch_step)
        return snprintf(err, err_len, "%s: step = %" PRIu64 " does not match epoch = %" PRIu64 " and epoch_step = %"
                        PRIu64 " at %" PRIu64 " steps per epoch (split '%s' of %s: %lld slices, global batch %d): %s",
                        path, st->step, st->epoch, st->epoch_step, spe, t->cfg.train_split, t->cfg.store, slices,
                        t->cfg.batch_size, why), -1;
    if (st->step > (uint64_t)INT32_MAX) /* Adam's step counter is an int */
        return snprintf(err, err_len, "%s: step = %" PRIu64 " is out of range: %s", path, st->step, why), -1;
    if (st->seed != (uint64_t)t->cfg.seed)
        return snprintf(err, err_len, "%s: seed = %" PRIu64 " but its stored config has train.seed %ld: the "
                        "checkpoint is damaged", path, st->seed, t->cfg.seed), -1;
    return 0;
}

/* Rank 0 creates RUN_DIR/checkpoints and clears what killed writers left there. */
static int prepare_run_dir(Trainer *t, char *err, size_t err_len) {
    snprintf(t->ckpt_dir, sizeof t->ckpt_dir, "%s/checkpoints", t->cfg.run_dir);
    int mk = t->comm->rank == 0 ? fsu_mkdir_p(t->ckpt_dir) : 0;
    if (any_rank(t->comm, mk != 0))
        return snprintf(err, err_len, "%s: cannot create: %s", t->ckpt_dir, strerror(errno)), -1;
    if (t->comm->rank == 0) checkpoint_remove_stale_temporaries(t->ckpt_dir);
    return 0;
}

/* Weights, moments and position from the checkpoint `resume` names ("auto": the newest intact
 * one, if any), else fresh weights from the seed. */
static int start_weights(Trainer *t, const char *resume, char *err, size_t err_len) {
    char path[1024] = "";
    if (!strcmp(resume, "auto")) {
        if (checkpoint_find_latest(t->ckpt_dir, path, sizeof path) != 0) path[0] = '\0';
    } else if (strcmp(resume, "none") != 0) {
        snprintf(path, sizeof path, "%s", resume);
    }
    if (path[0]) {
        if (resume_from(t, path, err, err_len) != 0 || check_position(t, path, err, err_len) != 0) return -1;
        say(t, "resume: %s (step %" PRIu64 ", epoch %" PRIu64 ", written by %d rank(s), now %d)\n", path, t->st.step,
            t->st.epoch, t->st.world_size, t->comm->size);
        if (t->cfg.init_weights[0]) /* the checkpoint already holds what the warm start gave step 0 */
            say(t, "init_weights: %s ignored: resuming a checkpoint takes precedence\n", t->cfg.init_weights);
        return 0;
    }
    size_t n = t->model.params.total;
    float *host = xmalloc(n * sizeof(float));
    model_init_params(&t->model, host, (uint64_t)t->cfg.seed);
    /* Every rank reads the same file, so the ranks start from the same weights. */
    FILE *report = t->comm->rank == 0 ? stdout : NULL;
    if (t->cfg.init_weights[0] && weights_warm_start(&t->model, host, t->cfg.init_weights, t->cfg.init_key_map,
                                                     report, NULL, err, err_len) != 0) {
        free(host);
        return -1;
    }
    t->be->upload(t->be, t->params, host, n * sizeof(float));
    free(host);
    say(t, "start: fresh weights (seed %ld)%s\n", t->cfg.seed, t->cfg.init_weights[0] ? ", warm-started" : "");
    fflush(stdout);
    return 0;
}

/* The loader from the resume position on, and the batch and activation buffers it fills. */
static int start_feed(Trainer *t, char *err, size_t err_len) {
    const Config *c = &t->cfg;
    TrainFeedStart fs = {.rank = t->comm->rank, .world = t->comm->size, .global_batch = c->batch_size,
                         .epoch = t->st.epoch, .epoch_step = t->st.epoch_step,
                         .alloc = t->opt.host_alloc, .free = t->opt.host_free};
    if (train_feed_create(&t->feed, c, t->store, &fs, err, err_len) != 0) return -1;
    if (train_feed_steps_per_epoch(t->feed) < 1)
        return snprintf(err, err_len, "%s: split '%s' has fewer slices than one global batch (%d)", c->store,
                        c->train_split, c->batch_size), -1;
    t->b_local = train_feed_local_batch(t->feed);
    size_t pix = (size_t)t->b_local * c->net.crop[0] * c->net.crop[1];
    t->image = t->be->alloc(t->be, pix * c->net.in_channels * sizeof(float));
    t->labels = t->be->alloc(t->be, pix * sizeof(int32_t));
    t->acts = model_acts_create(&t->model, t->be, t->b_local, c->net.crop[0], c->net.crop[1], 0);
    return 0;
}

static int setup(Trainer *t, char *err, size_t err_len) {
    const Config *c = &t->cfg;
    if (store_open(&t->store, c->store, err, err_len) != 0) return -1;
    if (check_store(t, err, err_len) != 0 || check_splits(t, err, err_len) != 0) return -1;
    model_build(&t->model, &c->net);
    t->config_yaml = config_yaml_text(c);
    if (prepare_run_dir(t, err, err_len) != 0) return -1;

    size_t n = t->model.params.total;
    t->params = t->be->alloc(t->be, n * sizeof(float));
    t->grads = t->be->alloc(t->be, n * sizeof(float));
    adam_create(&t->adam, t->be, n, c->lr);
    if (t->comm->size > 1)
        t->gsync = grad_sync_create(t->comm, t->be, &t->model.params, t->grads, (size_t)(c->grad_bucket_mb * (1 << 20)));
    t->st = (TrainState){.seed = (uint64_t)c->seed, .best_metric = -1, .ema_metric = -1};
    if (start_weights(t, t->opt.resume, err, err_len) != 0 || start_feed(t, err, err_len) != 0) return -1;
    if (step_graph_init(&t->graph, t->be, t->comm, c->cuda_graph, err, err_len) != 0) return -1;
    if (t->graph.enabled) say(t, "cuda graph: the step is captured after the first one and replayed\n");
    if (t->comm->rank == 0 && run_log_open(&t->log, c->run_dir, err, err_len) != 0) return -1;
    progress_plot_init(&t->plot, c->run_dir);
    return 0;
}

static void teardown(Trainer *t) {
    step_graph_destroy(&t->graph);
    grad_sync_destroy(t->gsync);
    if (t->feed) train_feed_destroy(t->feed);
    if (t->acts) model_acts_free(t->acts);
    if (t->be) {
        if (t->params) {
            t->be->release(t->be, t->params);
            t->be->release(t->be, t->grads);
            adam_destroy(&t->adam, t->be);
        }
        if (t->image) {
            t->be->release(t->be, t->image);
            t->be->release(t->be, t->labels);
        }
    }
    if (t->store) store_close(t->store);
    if (t->model.params.items) model_free(&t->model);
    progress_plot_finish(&t->plot, 10); /* pid 0 (nothing to wait for) off rank 0 */
    run_log_close(&t->log);
    free(t->config_yaml);
}

/* ---- the loop ---- */

/* Queues one step's work (step_graph_run: eagerly or recorded): every per-step value it reads
 * is in memory that train_step filled first (the batch and labels, uploaded by train_step itself;
 * the drop-path and Adam staging), so a replay of the recording computes what this would. */
static void queue_step(void *ctx) {
    Trainer *t = ctx;
    t->be->lockstep = 1; /* every rank queues these same ops now (Backend.lockstep) */
    QueuedSum qs = {t->comm, t->be->queue};
    LossReduce reduce = {sum_f32, &qs, t->cfg.batch_size};
    t->be->zero(t->be, t->grads, t->model.params.total * sizeof(float));
    model_forward(&t->model, t->be, t->acts, t->params, t->image, &t->pass, NULL); /* no fp32 logits: the loss reads the Acts */
    /* the loss is queued, never read here: its scalars come back with the norm at the step's end */
    model_loss_queue(&t->model, t->be, t->acts, t->labels, adam_loss_slot(&t->adam), t->comm->size > 1 ? &reduce : NULL);
    if (t->gsync) { /* buckets are all-reduced as soon as backward has finished them */
        grad_sync_begin(t->gsync);
        GradsReady ready = {grad_sync_ready, t->gsync};
        model_backward(&t->model, t->be, t->acts, t->params, t->grads, &ready);
        grad_sync_end(t->gsync);
    } else {
        model_backward(&t->model, t->be, t->acts, t->params, t->grads, NULL);
    }
    adam_queue_step(&t->adam, t->be, t->params, t->grads);
    t->be->lockstep = 0;
}

static int train_step(Trainer *t, float *loss_out, double *norm_out, char *err, size_t err_len) {
    const float *img;
    const int32_t *lab;
    const Config *c = &t->cfg;
    if (train_feed_next(t->feed, &img, &lab, err, err_len) != 0) return -1;
    size_t pix = (size_t)t->b_local * c->net.crop[0] * c->net.crop[1];
    /* The batch goes up by copies queued before the step, outside any recording: they read the
     * loader's (pinned) slot where it lies, valid until the next train_feed_next, which comes
     * after this step's scalars were read. A recorded step would fix the copy's source address,
     * and the slots change from step to step. */
    t->be->upload_async(t->be, t->image, img, pix * c->net.in_channels * sizeof(float));
    t->be->upload_async(t->be, t->labels, lab, pix * sizeof(int32_t));
    t->pass = (PassOptions){.training = 1, .seed = t->st.seed, .step = t->st.step,
                            .sample_offset = train_feed_sample_offset(t->feed)};
    /* the step's host-side values into their staging (a replay runs no model or optimiser code) */
    model_draw_step(&t->model, t->acts, &t->pass);
    adam_next_step(&t->adam);
    step_graph_run(&t->graph, queue_step, t);
    if (t->gsync && !t->gsync_said) { /* the first pass planned the buckets */
        say(t, "gradient all-reduce: %d bucket(s) of <= %g MiB, started during backward from the next step on\n",
            grad_sync_bucket_count(t->gsync), c->grad_bucket_mb);
        t->gsync_said = 1;
    }
    float loss3[3];
    *norm_out = adam_step_scalars(&t->adam, t->be, loss3); /* the step's one host sync */
    *loss_out = loss3[0];
    if (!isfinite(*loss_out)) {
        snprintf(err, err_len, "step %" PRIu64 ": the loss is %f; stopping (last checkpoint is intact)", t->st.step,
                 *loss_out);
        return -1;
    }
    t->st.step++;
    t->st.epoch_step++;
    return 0;
}

/* baseline: the untrained network, reported but kept out of the EMA and the best checkpoint */
static int validate_epoch(Trainer *t, int baseline, char *err, size_t err_len) {
    ValResult vr;
    const Config *c = &t->cfg;
    if (validate_pseudo_dice(&vr, &t->model, t->be, t->acts, t->b_local, t->params, t->store, c->val_split,
                             c->val_max_slices, t->comm, err, err_len) != 0)
        return -1;
    if (!baseline)
        t->st.ema_metric = t->st.ema_metric < 0 ? vr.mean_fg : c->ema_alpha * t->st.ema_metric + (1 - c->ema_alpha) * vr.mean_fg;
    say(t, "validation%s (%ld slices): pseudo-Dice %.4f, EMA %.4f; per class:", baseline ? " before training" : "",
        vr.slices, vr.mean_fg, t->st.ema_metric);
    for (int k = 1; k < c->net.classes; k++) say(t, " %s %.3f", store_class_name(t->store, k), vr.dice[k]);
    say(t, "\n");
    if (t->comm->rank == 0) {
        char json[8192];
        size_t k = (size_t)snprintf(json, sizeof json,
                                    "{\"kind\":\"%s\",\"step\":%" PRIu64 ",\"epoch\":%" PRIu64
                                    ",\"pseudo_dice\":%.6f,\"ema\":%.6f,\"slices\":%ld,\"dice\":{",
                                    baseline ? "val_baseline" : "val", t->st.step, t->st.epoch, vr.mean_fg, t->st.ema_metric, vr.slices);
        for (int j = 1; j < c->net.classes && k < sizeof json - 64; j++)
            k += (size_t)snprintf(json + k, sizeof json - k, "%s\"%s\":%.6f", j > 1 ? "," : "",
                                  store_class_name(t->store, j), vr.dice[j]);
        snprintf(json + k, sizeof json - k, "}}");
        run_log_json(&t->log, json);
        progress_plot_update(&t->plot);
    }
    if (!baseline && t->st.ema_metric > t->st.best_metric) {
        t->st.best_metric = t->st.ema_metric;
        char path[1024];
        snprintf(path, sizeof path, "%s/best.safetensors", t->ckpt_dir);
        if (save_checkpoint(t, path, err, err_len) != 0) return -1;
        say(t, "best: %s (EMA pseudo-Dice %.4f)\n", path, t->st.best_metric);
    }
    return 0;
}

/* Rank 0: the progress bar, and a metrics line every log_every steps. */
static void log_step(Trainer *t, long spe, float loss, double norm) {
    const Config *c = &t->cfg;
    run_log_step(&t->log, (long)t->st.epoch, (long)t->st.epoch_step, spe, loss);
    if (c->log_every <= 0 || t->st.step % (uint64_t)c->log_every != 0) return;
    char json[256];
    snprintf(json, sizeof json,
             "{\"kind\":\"step\",\"step\":%" PRIu64 ",\"epoch\":%" PRIu64 ",\"loss\":%.9g,\"grad_norm\":%.9g,\"lr\":%g}",
             t->st.step, t->st.epoch, loss, norm, c->lr);
    run_log_json(&t->log, json);
}

/* Rank 0: the epoch's line on stdout and in metrics.jsonl (t->st.epoch already counts it). */
static void log_epoch(Trainer *t, double mean_loss, double images_per_s, double wait_share, double seconds) {
    const Config *c = &t->cfg;
    if (t->log.tty) printf("\n");
    printf("epoch %" PRIu64 "/%d: loss %.4f, %.1f images/s, data wait %.0f%%, lr %g\n", t->st.epoch, c->epochs,
           mean_loss, images_per_s, 100 * wait_share, c->lr);
    char json[512];
    snprintf(json, sizeof json,
             "{\"kind\":\"epoch\",\"epoch\":%" PRIu64 ",\"step\":%" PRIu64
             ",\"loss\":%.6f,\"lr\":%g,\"images_per_s\":%.3f,\"data_wait_share\":%.4f,\"seconds\":%.3f}",
             t->st.epoch, t->st.step, mean_loss, c->lr, images_per_s, wait_share, seconds);
    run_log_json(&t->log, json);
}

/* How this process launched its steps (train.cuda_graph), for the log and the tests. */
static void say_graph(const Trainer *t) {
    const StepGraph *g = &t->graph;
    if (g->captures || g->replays)
        say(t, "cuda graph: %ld step(s) replayed, %ld capture(s), %ld step(s) eager\n", g->replays, g->captures,
            g->eager_steps);
}

static int run(Trainer *t, char *err, size_t err_len) {
    const Config *c = &t->cfg;
    long spe = train_feed_steps_per_epoch(t->feed);
    say(t, "train: %d rank(s) x %d samples = global batch %d, %ld steps per epoch, %d epochs, run dir %s\n",
        t->comm->size, t->b_local, c->batch_size, spe, c->epochs, c->run_dir);
    if (c->val_at_start && t->st.step == 0 && validate_epoch(t, 1, err, err_len) != 0) return TRAINER_FAILED;
    double t_epoch = monotonic_seconds(), loss_sum = 0;
    long loss_n = 0;
    int done_already = c->max_steps > 0 && t->st.step >= (uint64_t)c->max_steps;
    while (!done_already && t->st.epoch < (uint64_t)c->epochs) {
        int stop_sig = 0, at_limit = 0;
        /* check_position keeps the position inside the epoch; were it ever past the end, the
         * inner loop would take no step and this loop would spin: refuse instead */
        if (t->st.epoch_step > (uint64_t)spe) {
            snprintf(err, err_len, "internal: data position %" PRIu64 " past the epoch's %ld steps", t->st.epoch_step, spe);
            return TRAINER_FAILED;
        }
        while (t->st.epoch_step < (uint64_t)spe) {
            float loss;
            double norm;
            if (train_step(t, &loss, &norm, err, err_len) != 0) return TRAINER_FAILED;
            loss_sum += loss;
            loss_n++;
            if (t->comm->rank == 0) log_step(t, spe, loss, norm);
            at_limit = c->max_steps > 0 && t->st.step >= (uint64_t)c->max_steps;
            stop_sig = any_rank(t->comm, stop_requested() != 0);
            int periodic = c->checkpoint_every > 0 && t->st.step % (uint64_t)c->checkpoint_every == 0;
            if (t->st.epoch_step == (uint64_t)spe) break; /* epoch end handles its own checkpoint */
            if (stop_sig || at_limit || periodic) {
                if (save_step_checkpoint(t, err, err_len) != 0) return TRAINER_FAILED;
            }
            if (stop_sig || at_limit) break;
        }
        if (t->st.epoch_step == (uint64_t)spe) { /* the epoch is complete */
            double wait_s, sps, dt = monotonic_seconds() - t_epoch;
            train_feed_stats(t->feed, &wait_s, &sps);
            t->st.epoch++;
            t->st.epoch_step = 0;
            if (t->comm->rank == 0) log_epoch(t, loss_sum / (loss_n ? loss_n : 1), (double)loss_n * c->batch_size / dt,
                                              wait_s / dt, dt);
            loss_sum = 0;
            loss_n = 0;
            if (c->val_every > 0 && t->st.epoch % (uint64_t)c->val_every == 0 && validate_epoch(t, 0, err, err_len) != 0)
                return TRAINER_FAILED;
            at_limit = at_limit || (c->max_steps > 0 && t->st.step >= (uint64_t)c->max_steps);
            stop_sig = stop_sig || any_rank(t->comm, stop_requested() != 0);
            if (save_step_checkpoint(t, err, err_len) != 0) return TRAINER_FAILED;
            t_epoch = monotonic_seconds();
        }
        if (stop_sig) {
            say_graph(t);
            say(t, "stopped by signal at step %" PRIu64 "; checkpoint written; exit %d (requeue)\n", t->st.step,
                UNET_EXIT_REQUEUE);
            return TRAINER_STOPPED;
        }
        if (at_limit) break;
    }
    say_graph(t);
    say(t, "done: step %" PRIu64 ", epoch %" PRIu64 "; checkpoints in %s, metrics in %s/metrics.jsonl\n", t->st.step,
        t->st.epoch, t->ckpt_dir, c->run_dir);
    return 0;
}

Trainer *trainer_create(const TrainerOptions *opt) {
    Trainer *t = xcalloc(1, sizeof *t);
    t->cfg = *opt->cfg;
    t->opt = *opt;
    t->opt.cfg = &t->cfg;
    t->comm = opt->comm;
    t->be = opt->be;
    return t;
}

int trainer_run(Trainer *t, char *err, size_t err_len) {
    /* before setup: a stop asked for while the store opens or a checkpoint loads is kept and
     * honoured at the first step boundary (checkpoint, exit 75), not a kill by the default action */
    stop_signal_install();
    return setup(t, err, err_len) == 0 ? run(t, err, err_len) : TRAINER_FAILED;
}

void trainer_destroy(Trainer *t) {
    if (!t) return;
    teardown(t);
    free(t);
}
