/* cmd_train.c — `unet2022 train CONFIG [section.key=value ...] [--resume auto|none|PATH]`
 *
 * The command: arguments, the config and its overrides, the transport and this rank's backend;
 * the run itself is the trainer module (src/train/trainer.h).
 * Exit statuses: 0 done, 1 usage, 2 bad input or runtime error, 75 stopped for requeue, 76 the NCCL
 * watchdog gave up on a lost peer (comm_nccl.h). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
#include "trainer.h"

static int parse_args(Config *cfg, int argc, char **argv, const char **resume, char *err, size_t err_len) {
    const char *cfg_path = NULL;
    *resume = "auto";
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--resume") && i + 1 < argc) *resume = argv[++i];
        else if (argv[i][0] != '-' && !strchr(argv[i], '=') && !cfg_path) cfg_path = argv[i];
        else if (strchr(argv[i], '=')) continue; /* overrides, applied after loading */
        else return snprintf(err, err_len, "unknown argument '%s'", argv[i]), 1;
    }
    if (!cfg_path) return snprintf(err, err_len, "no config given"), 1;
    if (config_load(cfg, cfg_path, err, err_len) != 0) return 2;
    for (int i = 0; i < argc; i++)
        if (strchr(argv[i], '=') && argv[i][0] != '-' && config_override(cfg, argv[i], err, err_len) != 0) return 2;
    if (config_check_backend(cfg, err, err_len) != 0) return 2;
    if (!cfg->store[0])
        return snprintf(err, err_len, "%s: train.store: required for training (the directory `unet2022 prepare` wrote; "
                        "set it in the config or as train.store=PATH)", cfg->path), 2;
    if (!cfg->run_dir[0]) snprintf(cfg->run_dir, sizeof cfg->run_dir, "runs/%s", cfg->name);
#ifndef UNET_HAVE_CUDA
    if (strcmp(cfg->backend, "cpu") != 0)
        return snprintf(err, err_len, "train.backend: 'cuda': this build has no CUDA backend (configure with "
                        "-DUNET_WITH_CUDA=ON where nvcc exists), or use cpu"), 2;
#endif
    return 0;
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

/* This rank's backend on its device, with its share of the node's cores; 2 with err if none. */
static int create_backend(Backend **out, const Config *cfg, const Comm *comm, char *err, size_t err_len) {
    *out = backend_select(cfg->backend, config_precision(cfg), backend_local_device(comm->local_rank),
                          rank_threads(cfg, comm), err, err_len);
    return *out ? 0 : 2;
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
    int rc = parse_args(&cfg, argc, argv, &resume, err, sizeof err); /* before MPI: needs the backend */
    Comm *comm = create_comm(&cfg, &argc, &argv);
    if (rc == 0 && cfg.batch_size < comm->size) {
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
    if (rc != 0 && rc != UNET_EXIT_REQUEUE) {
        fprintf(stderr, "unet2022: error: %s%s\n", err,
                rc == 1 ? "\nusage: unet2022 train CONFIG [section.key=value ...] [--resume auto|none|PATH]" : "");
    }
    if (rc == 2 && comm->size > 1) comm->abort_all(comm, rc); /* peers may sit in a collective */
    trainer_destroy(t);
    if (be) be->destroy(be);
    comm->destroy(comm);
    return rc;
}
