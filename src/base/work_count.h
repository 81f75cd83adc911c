/* work_count.h — what a device backend queued and how often the host waited for it, counted by the
 * layer that calls the CUDA libraries (src/base/cuda_check.h's macros), so that `unet2022 bench
 * --backend cuda` can print launches_per_step and host_syncs_per_step on a real GPU as well as on
 * the emulator (which counts the same things inside its runtime, tests/cuda_emu, and bench
 * compares the two there).
 *
 * launches: kernel launches (CUDA_CHECK_LAUNCH after every <<<...>>>), library calls that queue
 *           work (cuBLAS GEMMs, cuDNN convolutions, NCCL collectives), and queued memsets and
 *           copies (CUDA_WORK, CUBLAS_WORK, CUDNN_WORK, NCCL_WORK).
 * syncs:    every wait of the host for the device: stream, event and device synchronisation and
 *           synchronous copies (CUDA_SYNC). A pinned-scalar read is counted by the sync it needs.
 * graph_launches: replays of a captured step (cudaGraphLaunch, CUDA_GRAPH_LAUNCH); the work
 *           items a replay runs are added to launches (as eagerly: launches counts work executed)
 *           and to replayed, so the calls the host itself made are launches - replayed +
 *           graph_launches. Work recorded by a capture is not counted until it is replayed.
 * Plain counters, no atomics: the backend is driven from one host thread. */
#ifndef UNET_WORK_COUNT_H
#define UNET_WORK_COUNT_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    unsigned long long launches, syncs, graph_launches, replayed;
} WorkCount;

extern WorkCount unet_work_count;

#ifdef __cplusplus
}
#endif

#endif
