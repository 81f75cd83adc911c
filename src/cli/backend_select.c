/* backend_select.c — see backend_select.h. */
#include "backend_select.h"

#include <string.h>

#include "check.h"
#ifdef UNET_HAVE_CUDA
#include "backend_cuda.h"
#endif

static int known_precision(const char *p) { return !strcmp(p, "fp32") || !strcmp(p, "tf32") || !strcmp(p, "bf16"); }

Backend *backend_select(const char *backend, const char *precision, int device, int threads, char *err,
                        size_t err_len) {
    if (precision && !known_precision(precision))
        return error_at(err, err_len, "precision '%s': expected fp32, tf32 or bf16", precision), NULL;
    if (!strcmp(backend, "cpu")) {
        if (precision && strcmp(precision, "fp32") != 0)
            return error_at(err, err_len, "precision %s: the CPU backend computes fp32 only (use the cuda backend)",
                            precision),
                   NULL;
        return backend_cpu_create(threads);
    }
    if (strcmp(backend, "cuda") != 0) return error_at(err, err_len, "backend '%s': expected cpu or cuda", backend), NULL;
#ifdef UNET_HAVE_CUDA
    int n = cuda_device_count();
    if (n == 0) return error_at(err, err_len, "backend cuda: no CUDA device visible"), NULL;
    if (device < 0 || device >= n)
        return error_at(err, err_len, "CUDA device %d: this process sees %d CUDA device(s)", device, n), NULL;
    return backend_cuda_create(device, precision ? precision : "bf16");
#else
    (void)device;
    return error_at(err, err_len, "backend cuda: this build has no CUDA backend (build with nvcc present)"), NULL;
#endif
}

int backend_local_device(int local_rank) {
#ifdef UNET_HAVE_CUDA
    int n = cuda_device_count();
    return n > 0 ? local_rank % n : 0;
#else
    (void)local_rank;
    return 0;
#endif
}
