/* check_modes.h — the modes of `unet2022-check` (tests/check/main.c), the test harness kept out
 * of the product binary: each drives the library's code for a test and returns the process exit
 * status (0 pass, 1 usage error, 2 bad input or runtime error, 3 a check failed, 77 skipped). */
#ifndef UNET_CHECK_MODES_H
#define UNET_CHECK_MODES_H

/* gpu-check-ops: the CUDA backend against the CPU reference (gpu_check_ops.c; only with
 * UNET_HAVE_CUDA, main.c answers "skipped" otherwise). */
int cmd_gpu_check_ops(int argc, char **argv);
/* augment-apply: one augmentation transform with fixed parameters (augment_apply.c). */
int cmd_augment_apply(int argc, char **argv);
/* optest: one backend op's forward and backward on tensors from a PyTorch test (optest.c). */
int cmd_optest(int argc, char **argv);

#endif
