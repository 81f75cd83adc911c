// device_info.cu — see device_info.h.
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nccl.h>
#include <stdio.h>

#include "device_info.h"

extern "C" int cuda_describe_devices(char *desc, size_t desc_len) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        // No driver / no GPU is a normal state for CPU machines, not an error.
        snprintf(desc, desc_len, "no CUDA device (%s)", cudaGetErrorString(err));
        return 0;
    }
    size_t used = 0;
    for (int i = 0; i < count && used < desc_len; i++) {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
        used += (size_t)snprintf(desc + used, desc_len - used, "%s%d: %s, %.0f GiB, sm_%d%d", i ? "; " : "", i,
                                 prop.name, (double)prop.totalGlobalMem / (1 << 30), prop.major, prop.minor);
    }
    int nccl = 0;
    ncclGetVersion(&nccl);
    if (used < desc_len)
        snprintf(desc + used, desc_len - used, " (cuDNN %zu, NCCL %d)", cudnnGetVersion(), nccl);
    return count;
}
