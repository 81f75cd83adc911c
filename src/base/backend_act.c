/* backend_act.c — host <-> backend copies of Act arrays (see backend.h). */
#include "backend.h"

void backend_upload_act(Backend *be, Act *dst, const float *src_host, size_t n) {
    float *staging = be->alloc(be, n * sizeof(float)); /* (n) */
    be->upload(be, staging, src_host, n * sizeof(float));
    be->act_from_f32(be, dst, staging, n);
    be->synchronize(be);
    be->release(be, staging);
}

void backend_download_act(Backend *be, float *dst_host, const Act *src, size_t n) {
    float *staging = be->alloc(be, n * sizeof(float)); /* (n) */
    be->act_to_f32(be, staging, src, n);
    be->download(be, dst_host, staging, n * sizeof(float));
    be->release(be, staging);
}
