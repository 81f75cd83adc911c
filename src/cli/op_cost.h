/* op_cost.h — the estimated work of one op call from its shapes, for `bench --profile`'s roofline
 * (op_profile.c): FLOPs, and the minimum bytes the op must move through device memory (every
 * input read once, every output written once, accumulated outputs read and written, Acts at the
 * backend's storage width, parameters and their gradients fp32). Nothing here runs on a device.
 *
 * opcost_<op> has the op's own parameter list (backend_ops.h) and sets opcost_result. They are
 * declared weak by op_profile.c, so an op added to backend_ops.h without a cost function here
 * still builds and profiles; its roofline columns then read "-". */
#ifndef UNET_OP_COST_H
#define UNET_OP_COST_H

typedef struct {
    double flops, bytes;
    int tensor; /* 1: matrix products a tensor core can run (GEMM, convolution, attention) */
} OpCost;

extern OpCost opcost_result;

/* The roofline of one H100 SXM, in one place (docs/performance.md), each overridable by an
 * environment variable of the same name (in the unit of the name: TFLOP/s, TB/s):
 *   UNET_ROOF_TENSOR_TFLOPS  dense bf16 tensor-core rate (989); the peak of tensor ops when Acts are bf16
 *   UNET_ROOF_FP32_TFLOPS    fp32 non-tensor rate (60); every other op, and every op in fp32/tf32 mode
 *   UNET_ROOF_HBM_TBPS       HBM3 bandwidth (3.35) */
#define ROOF_TENSOR_TFLOPS 989.0
#define ROOF_FP32_TFLOPS 60.0
#define ROOF_HBM_TBPS 3.35

#endif
