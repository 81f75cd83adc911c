/* backend_select.h — the command-line choice of backend (`--backend cpu|cuda [--precision P]
 * [--device D]`) as one function, for every command that computes (bench, predict). */
#ifndef UNET_BACKEND_SELECT_H
#define UNET_BACKEND_SELECT_H

#include <stddef.h>

#include "backend.h"

/* backend: "cpu" or "cuda"; precision: NULL for the backend's default (cuda: bf16, cpu: fp32),
 * else fp32|tf32|bf16 (the CPU backend only computes fp32); device: the CUDA device; threads:
 * CPU threads (<= 0: OpenMP's default). Returns NULL with a message in err naming the option
 * when the choice is impossible (unknown name, no CUDA in this build, no visible device); the
 * message names the backend/precision/device, the caller the command. */
Backend *backend_select(const char *backend, const char *precision, int device, int threads, char *err,
                        size_t err_len);

/* The CUDA device of a rank: its local rank modulo the visible devices (jobs/rank.sh usually leaves
 * each rank one; comm/comm_nccl.c binds NCCL by the same rule). 0 without CUDA or devices. */
int backend_local_device(int local_rank);

#endif
