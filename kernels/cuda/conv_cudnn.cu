// conv_cudnn.cu — 3x3 convolution, zero pad 1, stride 1 or 2, bias, through cuDNN.
//
// Layouts: activations are NHWC; cuDNN gets the weight preferably as an NHWC ("KRSC") filter,
// i.e. the permuted copy wp (Co, 3, 3, Ci) of the PyTorch weight (Co, Ci, 3, 3) — all-NHWC is the
// combination cuDNN's NHWC kernels are built for. The weight gradient comes back in that layout
// and is un-permuted while it is added into dw. Should cuDNN offer no fp32 algorithm for that
// combination, the shape falls back to the PyTorch (KCRS) filter as it is, with NHWC tensors
// (then dw accumulates directly, beta = 1).
//
// Algorithms are chosen once per shape (cudnnGet*_v7 heuristics, first supported choice whose
// workspace fits CONV_WS_LIMIT) and cached in the backend state; all ops share the backend's one
// workspace.
//
// Math type, by the backend's precision (CudaPrecision, cuda_internal.h):
//   FP32        CUDNN_FMA_MATH, and algorithms rated under a tensor-op math type are skipped:
//               plain fp32, no TF32, so the backend is comparable with the CPU reference
//               (should cuDNN have no such algorithm for a shape, that shape alone falls back
//               to TF32 with a warning rather than stopping training: conv_algo);
//   TF32, BF16  CUDNN_TENSOR_OP_MATH on the descriptor, so the heuristics also rate tensor-core
//               kernels (TF32, for fp32 data); no algorithm is skipped for its math type (except
//               one that would down-convert to fp16, see pick_algos). The heuristics rate
//               (algorithm, math type) pairs and cuDNN picks its kernel by both, so each
//               direction runs with the math type its algorithm was rated under, set on the
//               descriptor before that direction's workspace query and call.
// BF16 mode (Acts stored as bf16, act.cuh) runs this same fp32-data path: each call widens its
// bf16 operands to fp32 copies in the workspace (exact), convolves them in TF32 exactly as the
// TF32 mode does, and rounds the results back once: out = round(conv + b); din = round(din +
// conv), cuDNN writing the fp32 data gradient to scratch (beta = 0) and one kernel adding it into
// din. The weight and bias gradients are fp32 and accumulate directly, as in the other modes.
// TF32 loses nothing on the activations here (bf16's 7 mantissa bits fit in TF32's 10), so only
// the weights are rounded (to TF32). This is the simplest correct path: it reuses the fp32
// descriptors, the algorithm cache and its deterministic-backward preference unchanged, at the
// cost of the conversions' memory traffic and fp32 scratch on the few 3x3 convs of this network
// (stem and downsampling layers).
// Launches, every mode: the filter permutation, the widening copies and the bias broadcast go
// in one kernel before the cuDNN calls (k_conv_prep; the forward's cuDNN call adds into the
// broadcast bias, beta = 1: on the GPU the same single fp32 addition to the fp32 accumulator as a
// separate bias add; the emulator adds it to its double accumulator before rounding), the filter
// gradient's un-permutation and the din rounding in one kernel after them (k_conv_bwd_finish),
// the bias gradient is the one-launch column sum.
//
// Implementations (tune.h, TuneOp "conv3x3"; forward and backward choose together):
//   "tf32copy" the path above in every mode (plain fp32 FMA in fp32 mode, TF32 in tf32 mode,
//              TF32 on fp32 copies in bf16 mode): the reference;
//   "bf16"     bf16 mode only: native bf16 cuDNN (x, w, y CUDNN_DATA_BFLOAT16, fp32 compute,
//              tensor-op math), NHWC activations used in place (no widening copies); the fp32
//              weight converted once per call to a bf16 (KRSC or KCRS) copy; out = round(conv +
//              bf16(b)) (cuDNN adds into out, which the filter conversion's launch filled with the
//              bias in bf16, beta = 1: one rounding; autocast's bf16 bias); din accumulated by cuDNN
//              (beta = 1, one rounding); the filter
//              gradient comes back in bf16 (as under PyTorch autocast) and is added into the fp32
//              dw. Unavailable in fp32/tf32 modes (the table says so, the tuner skips it); a shape
//              cuDNN has no deterministic bf16 algorithms for runs "tf32copy".
// Algorithms: on a real GPU cuDNN times them on the actual shape (cudnnFind*Algorithm, once per
// shape and implementation; results fastest first), on the emulator its heuristics answer
// (cudnnGet*_v7, whose timings would mean nothing). Either way the filters below apply:
// workspace limit, math type, deterministic backward algorithms first.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act.cuh"
#include "tune.h"

#ifdef UNET_CUDA_EMULATOR
#define CONV_ALGOS_FWD cudnnGetConvolutionForwardAlgorithm_v7
#define CONV_ALGOS_BWD_DATA cudnnGetConvolutionBackwardDataAlgorithm_v7
#define CONV_ALGOS_BWD_FILTER cudnnGetConvolutionBackwardFilterAlgorithm_v7
#else // same arguments, same perf results, ranked by measured time
#define CONV_ALGOS_FWD cudnnFindConvolutionForwardAlgorithm
#define CONV_ALGOS_BWD_DATA cudnnFindConvolutionBackwardDataAlgorithm
#define CONV_ALGOS_BWD_FILTER cudnnFindConvolutionBackwardFilterAlgorithm
#endif

#define CONV_WS_LIMIT ((size_t)1 << 30)

typedef struct {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
} ConvDesc;

// math: the descriptor's math type, CUDNN_FMA_MATH (FP32 mode) or CUDNN_TENSOR_OP_MATH. bf16:
// x, w, y CUDNN_DATA_BFLOAT16 (the "bf16" implementation), else float; compute fp32 either way.
// variant CONV_VARIANT_DW7: the depthwise 7x7 (Ci = Co = C, filter (C, 1, 7, 7), pad 3, C groups).
static void conv_desc_create(ConvDesc *d, int B, int H, int W, int Ci, int Co, int stride, int filter_nchw,
                             cudnnMathType_t math, int variant) {
    const cudnnDataType_t dt = variant == CONV_VARIANT_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    const int dw7 = variant == CONV_VARIANT_DW7, k = dw7 ? 7 : 3, pad = dw7 ? 3 : 1;
    int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->y));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&d->w));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d->conv));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NHWC, dt, B, Ci, H, W));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NHWC, dt, B, Co, Ho, Wo));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(d->w, dt, filter_nchw ? CUDNN_TENSOR_NCHW : CUDNN_TENSOR_NHWC,
                                           Co, dw7 ? 1 : Ci, k, k));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d->conv, pad, pad, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT));
    if (dw7) CUDNN_CHECK(cudnnSetConvolutionGroupCount(d->conv, Ci));
    CUDNN_CHECK(cudnnSetConvolutionMathType(d->conv, math));
}

// The descriptor math type a shape's algorithms were chosen under.
static cudnnMathType_t base_math(int tensor_math) { return tensor_math ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH; }

// Tensor-op shapes: run the next workspace query / call under the math type its algorithm was
// rated with. FMA-only shapes leave the descriptor at CUDNN_FMA_MATH.
static void conv_use_math(const ConvAlgo *a, ConvDesc *d, cudnnMathType_t m) {
    if (a->tensor_math) CUDNN_CHECK(cudnnSetConvolutionMathType(d->conv, m));
}

static void conv_desc_destroy(ConvDesc *d) {
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(d->x));
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(d->y));
    CUDNN_CHECK(cudnnDestroyFilterDescriptor(d->w));
    CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(d->conv));
}

// Whether an algorithm rated under math type m may run in this precision. FP32: FMA-only
// execution, since TF32/tensor-op variants would round the inputs to 10-bit mantissas. TF32 and
// BF16: anything but CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, which would down-convert fp32 data to
// fp16 (5 exponent bits: gradients could underflow or overflow); with TENSOR_OP_MATH on the
// descriptor cuDNN should not offer it, so this only guards against a surprise.
static int math_allowed(int fp32_only, cudnnMathType_t m) {
    if (fp32_only) return m != CUDNN_TENSOR_OP_MATH && m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    return m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// A layout combination cuDNN rejects outright is a reason to try the other filter layout, not
// an error; anything else is.
static int heuristics_ok(cudnnStatus_t s) {
    if (s == CUDNN_STATUS_NOT_SUPPORTED || s == CUDNN_STATUS_BAD_PARAM) return 0;
    CUDNN_CHECK(s);
    return 1;
}

// Fills a's three algorithms (and the math types they were rated under) for descriptor set d,
// whose math type is the precision's base_math; 0 when one direction has no usable algorithm.
// fp32_only: FP32 mode (see math_allowed).
static int pick_algos(cudnnHandle_t h, const ConvDesc *d, int fp32_only, ConvAlgo *a) {
    enum { MAXA = 16 };
    int got = 0, found = 0;
    cudnnConvolutionFwdAlgoPerf_t fp[MAXA];
    if (!heuristics_ok(CONV_ALGOS_FWD(h, d->x, d->w, d->conv, d->y, MAXA, &got, fp))) return 0;
    for (int i = 0; i < got && !found; i++)
        if (fp[i].status == CUDNN_STATUS_SUCCESS && fp[i].memory <= CONV_WS_LIMIT && math_allowed(fp32_only, fp[i].mathType))
            a->fwd = fp[i].algo, a->fwd_math = fp[i].mathType, found = 1;
    if (!found) return 0;
    found = 0;
    // Backward: deterministic algorithms first (some use atomics, whose order varies run to run;
    // a resumed run is bit-identical to an uninterrupted one only without them), any otherwise.
    a->nondeterministic = 0;
    cudnnConvolutionBwdDataAlgoPerf_t bp[MAXA];
    if (!heuristics_ok(CONV_ALGOS_BWD_DATA(h, d->w, d->y, d->conv, d->x, MAXA, &got, bp))) return 0;
    for (int det = 1; det >= 0 && !found; det--)
        for (int i = 0; i < got && !found; i++)
            if (bp[i].status == CUDNN_STATUS_SUCCESS && bp[i].memory <= CONV_WS_LIMIT &&
                math_allowed(fp32_only, bp[i].mathType) && (!det || bp[i].determinism == CUDNN_DETERMINISTIC))
                a->bwd_data = bp[i].algo, a->bwd_data_math = bp[i].mathType, a->nondeterministic |= !det, found = 1;
    if (!found) return 0;
    found = 0;
    cudnnConvolutionBwdFilterAlgoPerf_t wf[MAXA];
    if (!heuristics_ok(CONV_ALGOS_BWD_FILTER(h, d->x, d->y, d->conv, d->w, MAXA, &got, wf))) return 0;
    for (int det = 1; det >= 0 && !found; det--)
        for (int i = 0; i < got && !found; i++)
            if (wf[i].status == CUDNN_STATUS_SUCCESS && wf[i].memory <= CONV_WS_LIMIT &&
                math_allowed(fp32_only, wf[i].mathType) && (!det || wf[i].determinism == CUDNN_DETERMINISTIC))
                a->bwd_filter = wf[i].algo, a->bwd_filter_math = wf[i].mathType, a->nondeterministic |= !det,
                found = 1;
    return found;
}

// The cached algorithms (and filter layout) for this shape and variant (CONV_VARIANT_*), chosen
// on first use. The depthwise variant is fp32-exact or nothing: FMA math in every mode,
// deterministic backward algorithms only, else a->unsupported (its caller runs "direct"); the
// same for the bf16 variant (its caller runs "tf32copy").
static const ConvAlgo *conv_algo(Backend *be, int B, int H, int W, int Ci, int Co, int stride, int variant) {
    CudaState *st = cuda_state(be);
    for (int i = 0; i < st->n_algos; i++) {
        const ConvAlgo *a = &st->algos[i];
        if (a->B == B && a->H == H && a->W == W && a->Ci == Ci && a->Co == Co && a->stride == stride &&
            a->variant == variant)
            return a;
    }
    if (st->n_algos == st->cap_algos) {
        st->cap_algos = st->cap_algos ? 2 * st->cap_algos : 32;
        st->algos = (ConvAlgo *)realloc(st->algos, (size_t)st->cap_algos * sizeof(ConvAlgo));
        if (!st->algos) die("out of host memory");
    }
    ConvAlgo *a = &st->algos[st->n_algos];
    memset(a, 0, sizeof *a);
    a->B = B, a->H = H, a->W = W, a->Ci = Ci, a->Co = Co, a->stride = stride, a->variant = variant;
    const int bf16 = variant == CONV_VARIANT_BF16, dw7 = variant == CONV_VARIANT_DW7;
    // bf16 data: tensor ops always; the depthwise: FMA always (it must match fp32 in every mode)
    int ok = 0, fp32_only = (st->precision == CUDA_PREC_FP32 && !bf16) || dw7;
    for (int attempt = 0; attempt < 2 && !ok; attempt++) {
        if (attempt == 1) {
            if (!fp32_only || dw7) break;
            // FP32 mode, and cuDNN has only tensor-core kernels for this NHWC shape: training
            // must not stop over it, so this shape runs in TF32 and says so once (its fp32
            // comparison in gpu-check-ops will then need TF32's tolerance).
            fprintf(stderr, "unet2022: warning: cuDNN %zu offers no FMA-only (non-TF32) algorithm for conv3x3 B=%d "
                            "%dx%d %d->%d stride %d with NHWC tensors; this shape runs with TF32 tensor cores\n",
                    cudnnGetVersion(), B, H, W, Ci, Co, stride);
            fp32_only = 0;
        }
        a->tensor_math = !fp32_only;
        for (int nchw = 0; nchw <= 1 && !ok; nchw++) {
            ConvDesc d;
            conv_desc_create(&d, B, H, W, Ci, Co, stride, nchw, base_math(a->tensor_math), variant);
            ok = pick_algos(st->cudnn, &d, fp32_only, a);
            a->filter_nchw = nchw;
            conv_desc_destroy(&d);
        }
    }
    // not fatal for the alternatives: dwconv7 runs "direct", conv3x3's "bf16" runs "tf32copy" for
    // this shape (e.g. a 1-channel stem cuDNN has no bf16 kernel for, or only atomics backward)
    if ((dw7 || bf16) && (!ok || a->nondeterministic)) {
        a->unsupported = 1;
        st->n_algos++;
        return a;
    }
    CHECK(ok, "cuDNN %zu offers no algorithm for conv3x3 B=%d %dx%d %d->%d stride %d with NHWC %s tensors and "
              "either filter layout in precision mode %s, with TF32 tensor-op or FMA math",
          cudnnGetVersion(), B, H, W, Ci, Co, stride, bf16 ? "bf16" : "fp32", cuda_precision_name(st->precision));
    if (a->nondeterministic)
        fprintf(stderr, "unet2022: warning: cuDNN %zu offers only non-deterministic backward algorithms for conv3x3 "
                        "B=%d %dx%d %d->%d stride %d: runs are reproducible to rounding only\n",
                cudnnGetVersion(), B, H, W, Ci, Co, stride);
    st->n_algos++;
    return a;
}

// Everything a tf32copy direction needs before its cuDNN calls, in one launch (grid-stride over
// the four jobs in turn; a job with n = 0 is skipped): wp = the KRSC copy of w (t = kh*3 + kw,
// wp[co][t*Ci + ci] = w[co][ci][t]); x32 and y32 = the Acts x and y widened to fp32 (exact; BF16
// only); yb = the bias broadcast over the (nb / C, C) output, into which cuDNN then adds the
// convolution (beta = 1: alpha·acc + 1·b, the one fp32 addition the separate bias add made).
template <typename T>
__global__ void k_conv_prep(float *wp /* (Co, 9, Ci) */, const float *w /* (Co, Ci, 3, 3) */, int Ci, int Co,
                            size_t nw, float *x32, const T *x, size_t nx, float *y32, const T *y, size_t ny,
                            float *yb /* (nb / C, C) */, const float *b /* (C) */, size_t nb, int C) {
    const size_t n = nw + nx + ny + nb;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t j = i;
        if (j < nw) {
            int t = (int)(j % 9), ci = (int)(j / 9 % Ci), co = (int)(j / ((size_t)9 * Ci));
            wp[((size_t)co * 9 + t) * Ci + ci] = w[j];
            continue;
        }
        j -= nw;
        if (j < nx) {
            x32[j] = act_load(x + j);
            continue;
        }
        j -= nx;
        if (j < ny) {
            y32[j] = act_load(y + j);
            continue;
        }
        j -= ny;
        yb[j] = b[j % C];
    }
}

// After the backward's cuDNN calls, in one launch: dw += the KRSC gradient dwp un-permuted (nw
// elements, 0: none) and, in BF16, din = round(din + dx) with dx cuDNN's fp32 data gradient (nin
// elements, 0: none; one rounding).
__global__ void k_conv_bwd_finish(float *dw /* (Co, Ci, 3, 3) */, const float *dwp /* (Co, 9, Ci) */, int Ci,
                                  size_t nw, bf16 *din, const float *dx, size_t nin) {
    const size_t n = nw + nin;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        if (i < nw) {
            int t = (int)(i % 9), ci = (int)(i / 9 % Ci), co = (int)(i / ((size_t)9 * Ci));
            dw[i] += dwp[((size_t)co * 9 + t) * Ci + ci];
        } else {
            act_store(din + (i - nw), act_load(din + (i - nw)) + dx[i - nw]);
        }
    }
}

static size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// variant: CONV_VARIANT_F32, or CONV_VARIANT_DW7 (Ci = Co = C, stride 1: the output is H x W;
// its (C, 1, 7, 7) filter is the same bytes in either layout, so it is never permuted).
static void conv_tf32copy_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H,
                                  int W, int Ci, int Co, int stride, int variant) {
    int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
    size_t nout = (size_t)B * Ho * Wo * Co, nin = (size_t)B * H * W * Ci;
    if (!nout) return;
    CudaState *st = cuda_state(be);
    int bf = cuda_act_is_bf16(be);
    const ConvAlgo *a = conv_algo(be, B, H, W, Ci, Co, stride, variant);
    ConvDesc d;
    conv_desc_create(&d, B, H, W, Ci, Co, stride, a->filter_nchw, base_math(a->tensor_math), variant);
    // filter elements; whether cuDNN's filter is a permuted (KRSC) copy of PyTorch's KCRS
    const size_t nw = variant == CONV_VARIANT_DW7 ? (size_t)Co * 49 : (size_t)Co * Ci * 9;
    const int permute = !a->filter_nchw && variant != CONV_VARIANT_DW7;
    conv_use_math(a, &d, a->fwd_math);
    size_t ws_bytes = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(st->cudnn, d.x, d.w, d.conv, d.y, a->fwd, &ws_bytes));
    // workspace: [permuted filter][BF16: fp32 copy of in][BF16: fp32 conv output][cuDNN's]
    size_t wp_bytes = align256((size_t)nw * sizeof(float));
    size_t x_bytes = bf ? align256(nin * sizeof(float)) : 0, y_bytes = bf ? align256(nout * sizeof(float)) : 0;
    char *ws = (char *)cuda_workspace(be, wp_bytes + x_bytes + y_bytes + ws_bytes + 256);
    float *x32 = bf ? (float *)(ws + wp_bytes) : NULL;
    float *y = bf ? (float *)(ws + wp_bytes + x_bytes) : (float *)out; // cuDNN's fp32 output
    void *lib = ws + wp_bytes + x_bytes + y_bytes;
    // one launch: the permuted filter, the fp32 copy of in, y = the bias (cuDNN adds into it)
    const size_t pw = permute ? (size_t)Co * Ci * 9 : 0, px = bf ? nin : 0, pb = b ? nout : 0;
    if (pw + px + pb) {
        CUDA_ACT_DISPATCH(be, T,
                          k_conv_prep<T><<<cuda_grid(pw + px + pb), 256, 0, st->stream>>>(
                              (float *)ws, w, Ci, Co, pw, x32, (const T *)in, px, NULL, (const T *)NULL, 0, y, b,
                              pb, Co));
        CUDA_CHECK_LAUNCH();
    }
    const float *x = bf ? x32 : (const float *)in, *filt = permute ? (const float *)ws : w;
    const float one = 1.0f, zero = 0.0f;
    CUDNN_WORK(cudnnConvolutionForward(st->cudnn, &one, d.x, x, d.w, filt, d.conv, a->fwd, lib, ws_bytes,
                                        b ? &one : &zero, d.y, y));
    if (bf) cu_act_from_f32(be, out, y, nout); // the one rounding of conv + b to bf16
    conv_desc_destroy(&d);
}

static void conv_tf32copy_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in,
                                   const float *w, int B, int H, int W, int Ci, int Co, int stride, int variant) {
    int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
    size_t M = (size_t)B * Ho * Wo, nin = (size_t)B * H * W * Ci;
    if (!M) return;
    CudaState *st = cuda_state(be);
    int bf = cuda_act_is_bf16(be);
    if (db) cuda_colsum_acc(be, db, dout, M, Co); // before the workspace is carved below
    const ConvAlgo *a = conv_algo(be, B, H, W, Ci, Co, stride, variant);
    ConvDesc d;
    conv_desc_create(&d, B, H, W, Ci, Co, stride, a->filter_nchw, base_math(a->tensor_math), variant);
    // filter elements; whether cuDNN's filter is a permuted (KRSC) copy of PyTorch's KCRS
    const size_t nw = variant == CONV_VARIANT_DW7 ? (size_t)Co * 49 : (size_t)Co * Ci * 9;
    const int permute = !a->filter_nchw && variant != CONV_VARIANT_DW7;
    size_t wsd = 0, wsf = 0;
    if (din) {
        conv_use_math(a, &d, a->bwd_data_math);
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(st->cudnn, d.w, d.y, d.conv, d.x, a->bwd_data, &wsd));
    }
    conv_use_math(a, &d, a->bwd_filter_math);
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(st->cudnn, d.x, d.y, d.conv, d.w, a->bwd_filter, &wsf));
    // workspace: [permuted filter][its gradient][BF16: fp32 copy of in, later the fp32 data
    // gradient][BF16: fp32 copy of dout][cuDNN's]
    size_t wp_bytes = align256((size_t)nw * sizeof(float));
    size_t x_bytes = bf ? align256(nin * sizeof(float)) : 0, y_bytes = bf ? align256(M * Co * sizeof(float)) : 0;
    size_t lib_bytes = wsd > wsf ? wsd : wsf;
    char *ws = (char *)cuda_workspace(be, 2 * wp_bytes + x_bytes + y_bytes + lib_bytes + 256);
    float *wp = (float *)ws, *dwp = (float *)(ws + wp_bytes);
    float *x32 = bf ? (float *)(ws + 2 * wp_bytes) : NULL, *dy32 = bf ? (float *)(ws + 2 * wp_bytes + x_bytes) : NULL;
    void *lib = ws + 2 * wp_bytes + x_bytes + y_bytes;
    // one launch: the permuted filter (for the data gradient), the fp32 copies of in and dout
    const size_t pw = din && permute ? (size_t)Co * Ci * 9 : 0, px = bf ? nin : 0, py = bf ? M * Co : 0;
    if (pw + px + py) {
        CUDA_ACT_DISPATCH(be, T,
                          k_conv_prep<T><<<cuda_grid(pw + px + py), 256, 0, st->stream>>>(
                              wp, w, Ci, Co, pw, x32, (const T *)in, px, dy32, (const T *)dout, py, NULL, NULL, 0,
                              Co));
        CUDA_CHECK_LAUNCH();
    }
    const float *x = bf ? x32 : (const float *)in, *dy = bf ? dy32 : (const float *)dout;
    const float one = 1.0f, zero = 0.0f;
    // (the descriptor holds bwd_filter_math from the workspace query above). PyTorch's layout (or
    // the depthwise filter): cuDNN adds into dw directly; else dwp = the weight gradient in the
    // KRSC layout (overwritten), added into dw un-permuted by the finish below.
    CUDNN_WORK(cudnnConvolutionBackwardFilter(st->cudnn, &one, d.x, x, d.y, dy, d.conv, a->bwd_filter, lib, wsf,
                                               permute ? &zero : &one, d.w, permute ? dwp : dw));
    if (din) {
        conv_use_math(a, &d, a->bwd_data_math);
        if (!bf) { // beta = 1: cuDNN adds into din, as the backend contract asks.
            CUDNN_WORK(cudnnConvolutionBackwardData(st->cudnn, &one, d.w, permute ? wp : w, d.y, dy, d.conv,
                                                     a->bwd_data, lib, wsd, &one, d.x, (float *)din));
        } else { // the fp32 data gradient overwrites in's copy (the filter gradient, queued before, is done with it)
            CUDNN_WORK(cudnnConvolutionBackwardData(st->cudnn, &one, d.w, permute ? wp : w, d.y, dy, d.conv,
                                                     a->bwd_data, lib, wsd, &zero, d.x, x32));
        }
    }
    // one launch: dw += dwp un-permuted; BF16: din = round(din + dx)
    const size_t fw = permute ? (size_t)Co * Ci * 9 : 0, fx = bf && din ? nin : 0;
    if (fw + fx) {
        k_conv_bwd_finish<<<cuda_grid(fw + fx), 256, 0, st->stream>>>(dw, dwp, Ci, fw, (bf16 *)din, x32, fx);
        CUDA_CHECK_LAUNCH();
    }
    conv_desc_destroy(&d);
}

// ---- "bf16": native bf16 cuDNN ---------------------------------------------------------------

// wb = bf16(w) in the filter layout cuDNN was given: KRSC (wb[co][t][ci], permute) or PyTorch's
// KCRS as it is. t = kh*3 + kw. Forward: also yb = bf16(b) broadcast over the (nb / C, C) output
// (nb = 0: none), into which cuDNN adds the convolution (beta = 1), as autocast's bf16 bias.
__global__ void k_conv_filter_bf16(bf16 *wb, const float *w, int Ci, int Co, int permute, bf16 *yb, const float *b,
                                   size_t nb, int C) {
    const size_t nw = (size_t)Co * Ci * 9, n = nw + nb;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        if (i >= nw) {
            yb[i - nw] = __float2bfloat16(b[(i - nw) % C]);
            continue;
        }
        int t = (int)(i % 9), ci = (int)(i / 9 % Ci), co = (int)(i / ((size_t)9 * Ci));
        wb[permute ? ((size_t)co * 9 + t) * Ci + ci : i] = __float2bfloat16(w[i]);
    }
}

// dw[co][ci][t] += dwb (cuDNN's bf16 filter gradient in the layout it was given).
__global__ void k_conv_dw_acc_bf16(float *dw, const bf16 *dwb, int Ci, int Co, int permute) {
    size_t n = (size_t)Co * Ci * 9;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int t = (int)(i % 9), ci = (int)(i / 9 % Ci), co = (int)(i / ((size_t)9 * Ci));
        dw[i] += __bfloat162float(dwb[permute ? ((size_t)co * 9 + t) * Ci + ci : i]);
    }
}

static void conv_bf16_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B, int H,
                              int W, int Ci, int Co, int stride) {
    int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
    size_t nout = (size_t)B * Ho * Wo * Co;
    CudaState *st = cuda_state(be);
    const ConvAlgo *a = conv_algo(be, B, H, W, Ci, Co, stride, CONV_VARIANT_BF16);
    if (a->unsupported) { // no (deterministic) bf16 algorithm set for this shape
        conv_tf32copy_forward(be, out, in, w, b, B, H, W, Ci, Co, stride, CONV_VARIANT_F32);
        return;
    }
    ConvDesc d;
    conv_desc_create(&d, B, H, W, Ci, Co, stride, a->filter_nchw, base_math(a->tensor_math), CONV_VARIANT_BF16);
    conv_use_math(a, &d, a->fwd_math);
    size_t ws_bytes = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(st->cudnn, d.x, d.w, d.conv, d.y, a->fwd, &ws_bytes));
    // workspace: [bf16 filter][cuDNN's]
    size_t wb_bytes = align256((size_t)Co * Ci * 9 * sizeof(bf16));
    char *ws = (char *)cuda_workspace(be, wb_bytes + ws_bytes + 256);
    // one launch: the bf16 filter and out = bf16(b); cuDNN adds the convolution into out (beta = 1)
    const size_t nb = b ? nout : 0;
    k_conv_filter_bf16<<<cuda_grid((size_t)Co * Ci * 9 + nb), 256, 0, st->stream>>>((bf16 *)ws, w, Ci, Co,
                                                                                    !a->filter_nchw, (bf16 *)out, b,
                                                                                    nb, Co);
    CUDA_CHECK_LAUNCH();
    const float one = 1.0f, zero = 0.0f;
    CUDNN_WORK(cudnnConvolutionForward(st->cudnn, &one, d.x, in, d.w, ws, d.conv, a->fwd, ws + wb_bytes, ws_bytes,
                                        b ? &one : &zero, d.y, out));
    conv_desc_destroy(&d);
}

static void conv_bf16_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in,
                               const float *w, int B, int H, int W, int Ci, int Co, int stride) {
    int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
    size_t M = (size_t)B * Ho * Wo;
    CudaState *st = cuda_state(be);
    if (conv_algo(be, B, H, W, Ci, Co, stride, CONV_VARIANT_BF16)->unsupported) {
        conv_tf32copy_backward(be, din, dw, db, dout, in, w, B, H, W, Ci, Co, stride, CONV_VARIANT_F32);
        return;
    }
    cuda_colsum_acc(be, db, dout, M, Co); // before the workspace is carved below
    const ConvAlgo *a = conv_algo(be, B, H, W, Ci, Co, stride, CONV_VARIANT_BF16);
    ConvDesc d;
    conv_desc_create(&d, B, H, W, Ci, Co, stride, a->filter_nchw, base_math(a->tensor_math), CONV_VARIANT_BF16);
    size_t wsd = 0, wsf = 0;
    if (din) {
        conv_use_math(a, &d, a->bwd_data_math);
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(st->cudnn, d.w, d.y, d.conv, d.x, a->bwd_data, &wsd));
    }
    conv_use_math(a, &d, a->bwd_filter_math);
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(st->cudnn, d.x, d.y, d.conv, d.w, a->bwd_filter, &wsf));
    // workspace: [bf16 filter][its bf16 gradient][cuDNN's]
    size_t wb_bytes = align256((size_t)Co * Ci * 9 * sizeof(bf16));
    size_t lib_bytes = wsd > wsf ? wsd : wsf;
    char *ws = (char *)cuda_workspace(be, 2 * wb_bytes + lib_bytes + 256);
    bf16 *wb = (bf16 *)ws, *dwb = (bf16 *)(ws + wb_bytes);
    void *lib = ws + 2 * wb_bytes;
    const float one = 1.0f, zero = 0.0f;
    // (the descriptor holds bwd_filter_math from the workspace query above)
    CUDNN_WORK(cudnnConvolutionBackwardFilter(st->cudnn, &one, d.x, in, d.y, dout, d.conv, a->bwd_filter, lib, wsf,
                                               &zero, d.w, dwb));
    k_conv_dw_acc_bf16<<<cuda_grid((size_t)Co * Ci * 9), 256, 0, st->stream>>>(dw, dwb, Ci, Co, !a->filter_nchw);
    CUDA_CHECK_LAUNCH();
    if (din) {
        k_conv_filter_bf16<<<cuda_grid((size_t)Co * Ci * 9), 256, 0, st->stream>>>(wb, w, Ci, Co, !a->filter_nchw,
                                                                                   NULL, NULL, 0, Co);
        CUDA_CHECK_LAUNCH();
        conv_use_math(a, &d, a->bwd_data_math);
        // beta = 1: cuDNN adds into din (fp32 blend, one rounding), as the backend contract asks
        CUDNN_WORK(cudnnConvolutionBackwardData(st->cudnn, &one, d.w, wb, d.y, dout, d.conv, a->bwd_data, lib, wsd,
                                                 &one, d.x, din));
    }
    conv_desc_destroy(&d);
}

// ---- the choice ------------------------------------------------------------------------------

enum { CONV_TF32COPY, CONV_BF16 };
static const char *const CONV_NAMES[] = {"tf32copy", "bf16"};
static int conv_available(Backend *be, int impl) { return impl != CONV_BF16 || cuda_act_is_bf16(be); }
extern "C" const TuneOp TUNE_CONV3X3 = {"conv3x3", 2, CONV_NAMES, conv_available};

// Timing: implementation i's forward into the real output, which the forward overwrites
// afterwards (each implementation's backward runs the same kind of cuDNN calls on the same data
// types, so the forward ranks them).
typedef struct {
    Backend *be;
    Act *out;
    const Act *in;
    const float *w, *b;
    int B, H, W, Ci, Co, stride;
} ConvTune;

static void conv_tune_run(void *ctx, int impl) {
    ConvTune *t = (ConvTune *)ctx;
    if (impl == CONV_BF16) conv_bf16_forward(t->be, t->out, t->in, t->w, t->b, t->B, t->H, t->W, t->Ci, t->Co, t->stride);
    else
        conv_tf32copy_forward(t->be, t->out, t->in, t->w, t->b, t->B, t->H, t->W, t->Ci, t->Co, t->stride,
                              CONV_VARIANT_F32);
}

// The backward asks with t->out = NULL: the forward has chosen by then, so it is never timed there.
static int conv_pick(Backend *be, ConvTune *t) {
    char key[96];
    snprintf(key, sizeof key, "B%d H%d W%d %d>%d s%d", t->B, t->H, t->W, t->Ci, t->Co, t->stride);
    return cuda_tune_pick(be, &TUNE_CONV3X3, key, t->out ? conv_tune_run : NULL, t);
}

extern "C" void cu_conv3x3_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B,
                                   int H, int W, int Ci, int Co, int stride) {
    CHECK(stride == 1 || stride == 2, "conv3x3: stride %d not supported", stride);
    int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
    if (!((size_t)B * Ho * Wo * Co)) return;
    ConvTune t = {be, out, in, w, b, B, H, W, Ci, Co, stride};
    if (conv_pick(be, &t) == CONV_BF16) conv_bf16_forward(be, out, in, w, b, B, H, W, Ci, Co, stride);
    else conv_tf32copy_forward(be, out, in, w, b, B, H, W, Ci, Co, stride, CONV_VARIANT_F32);
}

extern "C" void cu_conv3x3_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout, const Act *in,
                                    const float *w, int B, int H, int W, int Ci, int Co, int stride) {
    CHECK(stride == 1 || stride == 2, "conv3x3: stride %d not supported", stride);
    int Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;
    if (!((size_t)B * Ho * Wo)) return;
    ConvTune t = {be, NULL, in, w, NULL, B, H, W, Ci, Co, stride};
    if (conv_pick(be, &t) == CONV_BF16) conv_bf16_backward(be, din, dw, db, dout, in, w, B, H, W, Ci, Co, stride);
    else conv_tf32copy_backward(be, din, dw, db, dout, in, w, B, H, W, Ci, Co, stride, CONV_VARIANT_F32);
}

// ---- dwconv7's "cudnn" implementation ---------------------------------------------------------

int cuda_dwconv7_cudnn_forward(Backend *be, Act *out, const Act *in, const float *w, const float *b, int B,
                                          int H, int W, int C) {
    if (conv_algo(be, B, H, W, C, C, 1, CONV_VARIANT_DW7)->unsupported) return 0;
    conv_tf32copy_forward(be, out, in, w, b, B, H, W, C, C, 1, CONV_VARIANT_DW7);
    return 1;
}

int cuda_dwconv7_cudnn_backward(Backend *be, Act *din, float *dw, float *db, const Act *dout,
                                           const Act *in, const float *w, int B, int H, int W, int C) {
    if (conv_algo(be, B, H, W, C, C, 1, CONV_VARIANT_DW7)->unsupported) return 0;
    conv_tf32copy_backward(be, din, dw, db, dout, in, w, B, H, W, C, C, 1, CONV_VARIANT_DW7);
    return 1;
}
