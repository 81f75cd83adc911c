/* device_info.h — what CUDA devices this process can see (compiled whenever nvcc is
 * present, so the CUDA toolchain is exercised on every build, GPU or not). */
#ifndef UNET_DEVICE_INFO_H
#define UNET_DEVICE_INFO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices (0 when there is no driver or no GPU); writes a one-line
 * description of each device (or of why there is none) into desc. */
int cuda_describe_devices(char *desc, size_t desc_len);

#ifdef __cplusplus
}
#endif

#endif
