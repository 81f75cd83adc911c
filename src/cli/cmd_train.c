/* cmd_train.c — `unet2022 train CONFIG [section.key=value ...] [--resume auto|none|PATH]`
 *
 * The command: arguments, the config and its overrides, the transport and this rank's backend;
 * the run itself is the trainer module (src/train/trainer.h).
 * Exit statuses: 0 done, 1 usage, 2 bad input or runtime error, 75 stopped for requeue, 76 the NCCL
 * watchdog gave up on a lost peer (comm_nccl.h). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "backend.h"
#include "backend_select.h"
#include "comm.h"
#include "commands.h"
#include "config.h"
#ifdef UNET_HAVE_CUDA
#include "backend_cuda.h"
#ifdef UNET_HAVE_MPI
#include "comm_nccl.h"
#endif
#endif
#include "store_match.h"
#include "trainer.h"

static int fail(const char *err, int status) {
    fprintf(stderr, "unet2022: error: %s\n", err);
    return status;
}

/* The command line: CONFIG, section.key=value overrides and --resume, read against the shared
 * argument table; then the config with its overrides and what training needs of it. Returns
 * ARGS_CONTINUE, or the exit status (0 after --help, 1 usage, 2 bad config) with the message
 * printed. Runs before MPI starts: it decides the backend, which decides the transport. */
static int parse_args(Config *cfg, int argc, char **argv, const char **resume) {
    const char *cfg_path = NULL, *overrides[ARGS_MAX_OVERRIDES];
    int n_overrides = 0;
    *resume = "auto";
    const ArgPos pos[] = {{"CONFIG", &cfg_path, 1}};
    const ArgOpt opts[] = {
        OPT_STRING("--resume", resume, "auto|none|PATH",
                   "auto: the newest checkpoint of the run that verifies (default); none: start afresh;\n"
                   "PATH: that checkpoint"),
    };
    const ArgSpec spec = {"train",
                          "  trains CONFIG (resuming automatically from the run's checkpoints); exit status 0 done,\n"
                          "  1 usage, 2 bad input or runtime error, 75 stopped by SIGUSR1/SIGTERM for a requeue",
                          pos, ARGS_N(pos), opts, ARGS_N(opts), overrides, &n_overrides, NULL};
    int st = args_parse(&spec, argc, argv);
    if (st != ARGS_CONTINUE) return st;
    char err[2048];
    if (config_load(cfg, cfg_path, err, sizeof err) != 0) return fail(err, 2);
    for (int i = 0; i < n_overrides; i++)
        if (config_override(cfg, overrides[i], err, sizeof err) != 0) return fail(err, 2);
    if (config_check_backend(cfg, err, sizeof err) != 0) return fail(err, 2);
    if (!cfg->store[0]) {
        snprintf(err, sizeof err, "%s: train.store: required for training (the directory `unet2022 prepare` wrote; "
                 "set it in the config or as train.store=PATH)", cfg->path);
        return fail(err, 2);
    }
    /* The store decides the network's input and output: refused here, before any rank starts work,
     * with the overrides that fix it (silently retargeting the network would hide a wrong store). */
    if (store_match_check(cfg, err, sizeof err)) return fail(err, 2);
    if (!cfg->run_dir[0]) snprintf(cfg->run_dir, sizeof cfg->run_dir, "runs/%s", cfg->name);
#ifndef UNET_HAVE_CUDA
    if (strcmp(cfg->backend, "cpu") != 0)
        return fail("train.backend: 'cuda': this build has no CUDA backend (configure with -DUNET_WITH_CUDA=ON "
                    "where nvcc exists), or use cpu", 2);
#endif
    return ARGS_CONTINUE;
}

/* The transport follows the backend: NCCL all-reduces device memory (bootstrapped over MPI);
 * the CPU backend's buffers go through MPI. A process no launcher started is a single rank on
 * either backend and needs no MPI at all (a one-GPU run on a workstation). */
static Comm *create_comm(const Config *cfg, int *argc, char ***argv) {
#if defined(UNET_HAVE_CUDA) && defined(UNET_HAVE_MPI)
    if (!strcmp(cfg->backend, "cuda") && comm_launched_by_mpi()) return comm_nccl_create_timeout(argc, argv, cfg->comm_timeout_s);
#else
    (void)cfg;
#endif
    return comm_create(argc, argv);
}

/* CPU threads per rank: the config's, or the node's cores shared between its ranks. */
static int rank_threads(const Config *cfg, const Comm *comm) {
    if (cfg->threads > 0) return cfg->threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = (int)(cores / (comm->local_size > 0 ? comm->local_size : 1));
    return threads < 1 ? 1 : threads;
}

#ifdef UNET_HAVE_CUDA
/* The ranks' kernel choices are rank 0's (backend_cuda_tuning_agree): a host broadcast. */
static void tune_agree(void *ctx, int *impl) {
    Comm *comm = ctx;
    comm->broadcast(comm, impl, sizeof *impl, 0);
}
#endif

/* This rank's backend on its device, with its share of the node's cores; 2 with err if none. */
static int create_backend(Backend **out, const Config *cfg, Comm *comm, char *err, size_t err_len) {
    *out = backend_select(cfg->backend, config_precision(cfg), backend_local_device(comm->local_rank),
                          rank_threads(cfg, comm), err, err_len);
    if (!*out) return 2;
#ifdef UNET_HAVE_CUDA
    /* The kernel choices made on the card live in the run directory: a resumed run makes the same. */
    if (!strcmp(cfg->backend, "cuda")) {
        char cache[sizeof cfg->run_dir + 16];
        snprintf(cache, sizeof cache, "%s/kernels.tsv", cfg->run_dir);
        if (backend_cuda_set_tuning(*out, cache, cfg->kernels, err, err_len) != 0) return 2;
        if (comm->rank != 0) backend_cuda_tuning_read_only(*out); /* rank 0 writes the run directory */
        backend_cuda_tuning_agree(*out, comm->rank, comm->size, tune_agree, comm);
    }
#endif
    return 0;
}

/* The trainer on this rank's backend; batches land in pinned memory on CUDA (fast,
 * asynchronous-capable copies). */
static Trainer *create_trainer(const Config *cfg, Comm *comm, Backend *be, const char *resume) {
    TrainerOptions o = {.cfg = cfg, .resume = resume, .comm = comm, .be = be};
#ifdef UNET_HAVE_CUDA
    if (!strcmp(cfg->backend, "cuda")) {
        o.host_alloc = cuda_pinned_alloc;
        o.host_free = cuda_pinned_free;
    }
#endif
    return trainer_create(&o);
}

int cmd_train(int argc, char **argv) {
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[2048] = "";
    const char *resume;
    Backend *be = NULL;
    Trainer *t = NULL;
    int rc = parse_args(&cfg, argc, argv, &resume); /* before MPI: needs the backend */
    if (rc != ARGS_CONTINUE) return rc;
    rc = 0;
    Comm *comm = create_comm(&cfg, &argc, &argv);
    if (cfg.batch_size < comm->size) {
        snprintf(err, sizeof err, "train.batch_size %d is smaller than the %d ranks", cfg.batch_size, comm->size);
        rc = 2;
    }
    if (rc == 0) {
        if (comm->rank == 0) {
            printf("resolved config (%s):\n", cfg.path);
            config_print(&cfg, stdout);
            fflush(stdout);
        }
        rc = create_backend(&be, &cfg, comm, err, sizeof err);
    }
    if (rc == 0) {
        t = create_trainer(&cfg, comm, be, resume);
        rc = trainer_run(t, err, sizeof err); /* TRAINER_* are exit statuses */
    }
    if (rc != 0 && rc != UNET_EXIT_REQUEUE) fail(err, rc);
    if (rc == 2 && comm->size > 1) comm->abort_all(comm, rc); /* peers may sit in a collective */
    trainer_destroy(t);
    if (be) be->destroy(be);
    comm->destroy(comm);
    return rc;
}
