// loss.cu — nnU-Net v1 DC_and_CE_loss (soft Dice + CE) and label downsampling; formulas and
// the stats layout as kernels/cpu/loss.c. Forward: one thread per pixel writes its softmax and
// a row of per-pixel terms [p (K) | p·onehot (K) | onehot (K) | −log p_y]; the class sums are then
// deterministic column sums in double; the (tp, fp, fn) stats and the loss are computed from them
// on the device in double as the CPU backend does it, and a bad label is reported at the next host
// sync: the op never waits for the device. Backward derives its Dice coefficients from the stats on the device, so it
// never waits for the host. logits and dlogits are Acts (kernels templated on the
// storage type T, act.cuh); probs, stats and the per-pixel terms are float.
#include <stdlib.h>

#include "act.cuh"

#define DICE_SMOOTH 1e-5
#define DICE_EPS 1e-8
#define LOSS_MAX_K 64

template <typename T>
__global__ void k_softmax_terms(float *probs /* (N, K) */, float *terms /* (N, 3K+1) */, int *bad, const T *logits,
                                const int32_t *labels, size_t N, int K) {
    for (size_t n = blockIdx.x * (size_t)blockDim.x + threadIdx.x; n < N; n += (size_t)gridDim.x * blockDim.x) {
        const T *x = logits + n * K;
        float *p = probs + n * K;
        float *t = terms + n * (size_t)(3 * K + 1);
        int y = labels[n];
        if (y < 0 || y >= K) {
            atomicMax(bad, (int)(n < 0x7fffffff ? n : 0x7fffffff));
            y = 0;
        }
        float m = act_load(x);
        for (int c = 1; c < K; c++) {
            const float xc = act_load(x + c);
            m = xc > m ? xc : m;
        }
        float s = 0;
        for (int c = 0; c < K; c++) {
            p[c] = expf(act_load(x + c) - m);
            s += p[c];
        }
        float inv = 1.0f / s;
        for (int c = 0; c < K; c++) {
            p[c] *= inv;
            t[c] = p[c];
            t[K + c] = c == y ? p[c] : 0.0f;
            t[2 * K + c] = c == y ? 1.0f : 0.0f;
        }
        t[3 * K] = logf(s) - (act_load(x + y) - m);
    }
}

// stats = (tp, fp, fn) per class from the class sums [Σp | Σp·onehot | Σonehot | ...], the
// differences in double and one rounding to float, as kernels/cpu/loss.c. One thread per class.
__global__ void k_dice_stats(float *stats /* (3, K) */, const double *tot /* (3K+1) */, int K) {
    int c = threadIdx.x;
    if (c >= K) return;
    double tp = tot[K + c];
    stats[c] = (float)tp;
    stats[K + c] = (float)(tot[c] - tp);
    stats[2 * K + c] = (float)(tot[2 * K + c] - tp);
}

// loss = (total, dice term, CE term) from the class sums, in double as kernels/cpu/loss.c and in
// its class order; one thread (K ≤ 64 terms).
__global__ void k_dice_loss(float *loss /* (3) */, const double *tot /* (3K+1) */, size_t N, int K, float w_dice,
                            float w_ce) {
    const double *psum = tot, *tp = tot + K, *cnt = tot + 2 * K;
    double ce = tot[3 * K] / (double)N, dc_sum = 0;
    for (int c = 1; c < K; c++) { // c = 0 skipped: do_bg = False
        double fp = psum[c] - tp[c], fn = cnt[c] - tp[c];
        dc_sum += (2 * tp[c] + DICE_SMOOTH) / (2 * tp[c] + fp + fn + DICE_SMOOTH + DICE_EPS);
    }
    double dice = -dc_sum / (double)(K - 1);
    loss[0] = (float)((double)w_dice * dice + (double)w_ce * ce);
    loss[1] = (float)dice;
    loss[2] = (float)ce;
}

void cuda_label_report(CudaState *st) {
    int n = st->n_label_checks;
    st->n_label_checks = 0;
    for (int i = 0; i < n; i++) {
        int bad = st->label_bad[i];
        if (bad < 0) continue;
        int32_t lab = 0;
        CUDA_SYNC(cudaMemcpy(&lab, st->label_ptr[i] + bad, sizeof lab, cudaMemcpyDeviceToHost));
        die("dice_ce_forward: label %d at pixel %d is outside [0, %d)", (int)lab, bad, st->label_K[i]);
    }
}

extern "C" void cu_dice_ce_forward(Backend *be, float *loss, float *probs, float *stats, const Act *logits,
                                   const int32_t *labels, size_t N, int K, float w_dice, float w_ce) {
    CHECK(K >= 2, "dice_ce_forward: K = %d, need at least 2 classes (background + one)", K);
    CHECK(K <= LOSS_MAX_K, "dice_ce_forward: K = %d classes, the CUDA backend supports up to %d", K, LOSS_MAX_K);
    CHECK(N > 0, "dice_ce_forward: no pixels");
    CudaState *st = cuda_state(be);
    if (st->n_label_checks == CUDA_LABEL_CHECKS) { // every slot pending: wait and report now
        CUDA_SYNC(cudaStreamSynchronize(st->stream));
        cuda_label_report(st);
    }
    const int C = 3 * K + 1;
    size_t rows;
    int nchunk = cuda_colsum_chunks(N, 1024, &rows);
    size_t terms_bytes = (N * C * sizeof(float) + 255) / 256 * 256;
    size_t part_bytes = ((size_t)nchunk * C * sizeof(double) + 255) / 256 * 256;
    char *ws = (char *)cuda_workspace(be, terms_bytes + part_bytes + (C + 1) * sizeof(double) + 64);
    float *terms = (float *)ws;                                  /* (N, 3K+1) */
    double *part = (double *)(ws + terms_bytes);                 /* (nchunk, 3K+1) */
    double *tot = (double *)(ws + terms_bytes + part_bytes);     /* (3K+1) */
    int *bad = (int *)(tot + C);                                 /* (1) */
    CUDA_WORK(cudaMemsetAsync(bad, 0xff, sizeof(int), st->stream)); // −1: no bad label
    cudaStream_t s = st->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_softmax_terms<T><<<cuda_grid(N), 256, 0, s>>>(probs, terms, bad, (const T *)logits, labels, N,
                                                                     K));
    CUDA_CHECK_LAUNCH();
    cuda_colsum_ordered(be, NULL, tot, part, terms, N, C, rows, nchunk);
    k_dice_stats<<<1, LOSS_MAX_K, 0, s>>>(stats, tot, K);
    CUDA_CHECK_LAUNCH();
    k_dice_loss<<<1, 1, 0, s>>>(loss, tot, N, K, w_dice, w_ce);
    CUDA_CHECK_LAUNCH();
    // The label check is read at the backend's next host sync (cuda_label_report), not waited for.
    const int slot = st->n_label_checks++;
    st->label_ptr[slot] = labels;
    st->label_K[slot] = K;
    CUDA_WORK(cudaMemcpyAsync(&st->label_bad[slot], bad, sizeof(int), cudaMemcpyDeviceToHost, st->stream));
}

typedef struct {
    float gb[LOSS_MAX_K], gy[LOSS_MAX_K];
} DiceCoef;

// The Dice gradient's per-class coefficients from the saved stats, on the device so that the
// backward pass never waits for the host; double arithmetic as kernels/cpu/loss.c (no sum of
// products here, so FMA contraction cannot change a rounding). One thread per class.
__global__ void k_dice_coef(DiceCoef *co, const float *stats /* (3, K) */, int K, float w_dice) {
    int c = threadIdx.x;
    if (c >= K) return;
    if (c == 0) {
        co->gb[0] = co->gy[0] = 0;
        return;
    }
    const double wd = -(double)w_dice / (double)(K - 1);
    double tp = stats[c], fp = stats[K + c], fn = stats[2 * K + c];
    double num = 2 * tp + DICE_SMOOTH, den = 2 * tp + fp + fn + DICE_SMOOTH + DICE_EPS;
    co->gb[c] = (float)(wd * -num / (den * den));
    co->gy[c] = (float)(wd * 2.0 / den);
}

template <typename T>
__global__ void k_dice_ce_bwd(T *dlogits, const float *probs, const int32_t *labels, size_t N, int K,
                              const DiceCoef *cop, float ce_scale, float dloss) {
    const DiceCoef &co = *cop;
    for (size_t n = blockIdx.x * (size_t)blockDim.x + threadIdx.x; n < N; n += (size_t)gridDim.x * blockDim.x) {
        const float *p = probs + n * K;
        T *d = dlogits + n * K;
        int y = labels[n];
        if (y < 0 || y >= K) continue; // reported by the forward pass
        float dot = 0;
        for (int c = 0; c < K; c++) dot += p[c] * co.gb[c];
        dot += p[y] * co.gy[y];
        for (int c = 0; c < K; c++) {
            float g = co.gb[c] + (c == y ? co.gy[c] : 0.0f);
            float ce = ce_scale * (p[c] - (c == y ? 1.0f : 0.0f));
            act_store(d + c, act_load(d + c) + dloss * (p[c] * (g - dot) + ce));
        }
    }
}

extern "C" void cu_dice_ce_backward(Backend *be, Act *dlogits, const float *probs, const float *stats,
                                    const int32_t *labels, size_t N, int K, float w_dice, float w_ce, float dloss) {
    CHECK(K >= 2 && K <= LOSS_MAX_K, "dice_ce_backward: K = %d outside [2, %d]", K, LOSS_MAX_K);
    if (!N) return;
    CudaState *st = cuda_state(be);
    DiceCoef *co = (DiceCoef *)cuda_workspace(be, sizeof(DiceCoef));
    k_dice_coef<<<1, LOSS_MAX_K, 0, st->stream>>>(co, stats, K, w_dice);
    CUDA_CHECK_LAUNCH();
    const float ce_scale = (float)((double)w_ce / (double)N);
    cudaStream_t stream = st->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_dice_ce_bwd<T><<<cuda_grid(N), 256, 0, stream>>>((T *)dlogits, probs, labels, N, K, co, ce_scale,
                                                                        dloss));
    CUDA_CHECK_LAUNCH();
}

__global__ void k_downsample(int32_t *out, const int32_t *in, int B, int H, int W, int f) {
    int Ho = H / f, Wo = W / f, o = f / 2;
    size_t n = (size_t)B * Ho * Wo;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        int x = (int)(i % Wo), y = (int)(i / Wo % Ho), b = (int)(i / ((size_t)Wo * Ho));
        out[i] = in[((size_t)b * H + (size_t)y * f + o) * W + (size_t)x * f + o];
    }
}

extern "C" void cu_downsample_labels(Backend *be, int32_t *out, const int32_t *in, int B, int H, int W, int f) {
    CHECK(f >= 1, "downsample_labels: factor %d < 1", f);
    size_t n = (size_t)B * (H / f) * (W / f);
    if (!n) return;
    k_downsample<<<cuda_grid(n), 256, 0, cuda_state(be)->stream>>>(out, in, B, H, W, f);
    CUDA_CHECK_LAUNCH();
}

// The deep-supervision total on the device (one thread: n_out <= 3 outputs of K <= 1024 classes), so
// the loss is formed without the host reading the statistics; kernels/cpu/loss.c is the reference.
__global__ void k_loss_total(float *out, const float *stats, int n_out, int K, float w_dice, float w_ce, float lw0,
                             float lw1, float lw2) {
    const float lw[3] = {lw0, lw1, lw2};
    const float *terms = stats + (size_t)n_out * 3 * (size_t)K;
    double total = 0.0;
    for (int k = 0; k < n_out; k++) {
        const float *s = stats + (size_t)k * 3 * (size_t)K;
        double dc_sum = 0;
        for (int c = 1; c < K; c++) {
            double tp = s[c], fp = s[K + c], fn = s[2 * K + c];
            dc_sum += (2 * tp + DICE_SMOOTH) / (2 * tp + fp + fn + DICE_SMOOTH + DICE_EPS);
        }
        double dice = -dc_sum / (K - 1), ce = (double)terms[3 * k + 2];
        total += lw[k] * (w_dice * dice + w_ce * ce);
        if (k == 0) {
            out[1] = (float)dice;
            out[2] = (float)ce;
        }
    }
    out[0] = (float)total;
}

extern "C" void cu_loss_total(Backend *be, float *out, const float *stats, int n_out, int K, float w_dice, float w_ce,
                              float lw0, float lw1, float lw2) {
    CHECK(n_out >= 1 && n_out <= 3 && K >= 2, "loss_total: %d outputs of %d classes", n_out, K);
    k_loss_total<<<1, 1, 0, cuda_state(be)->stream>>>(out, stats, n_out, K, w_dice, w_ce, lw0, lw1, lw2);
    CUDA_CHECK_LAUNCH();
}
