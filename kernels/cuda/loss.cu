// loss.cu — nnU-Net v1 DC_and_CE_loss (soft Dice + CE) and label downsampling; formulas and
// the stats layout as kernels/cpu/loss.c. Forward, one launch: one thread per pixel writes its
// softmax and a row of per-pixel terms [p (K) | p·onehot (K) | onehot (K) | −log p_y]; the class
// sums are then deterministic column sums in double (fixed chunks, partials summed in chunk order
// by the block that finishes last, last_block.cuh); that block computes the (tp, fp, fn) stats
// and the loss from them in double as the CPU backend does it, and a bad label is reported at the
// next host sync (one queued copy into a pinned slot): the op never waits for the device.
// Backward, one launch: every block derives the Dice coefficients from the stats itself, so it
// never waits for the host. logits and dlogits are Acts (kernels templated on the storage type T,
// act.cuh); probs, stats and the per-pixel terms are float.
#include <stdlib.h>

#include "act.cuh"
#include "last_block.cuh"

#define DICE_SMOOTH 1e-5
#define DICE_EPS 1e-8
#define LOSS_MAX_K 64

// The forward in one launch. Block k owns the fixed chunk of pixels [k*rows, (k+1)*rows): its
// threads write each pixel's softmax and its row of terms, then thread c sums column c of the
// chunk's terms in pixel order, in double, into the block's partial row; the row's extra column
// holds the chunk's largest bad pixel index (−1: none; a double holds it exactly). The block that
// arrives last (last_block.cuh) sums the rows in chunk order — the column sums cuda_colsum_acc's
// chunking gives, the same bits — and derives the stats, the loss and the bad pixel from them.
template <typename T>
__global__ void k_dice_ce_fwd(float *loss /* (3) */, float *stats /* (3, K) */, float *probs /* (N, K) */,
                              float *terms /* (N, 3K+1) */, double *part /* (nchunk, 3K+2) */, int *bad /* (1) */,
                              unsigned *arrivals, const T *logits /* (N, K) */, const int32_t *labels /* (N) */,
                              size_t N, int K, size_t rows, float w_dice, float w_ce) {
    __shared__ int sbad;
    __shared__ double tot[3 * LOSS_MAX_K + 1];
    const int C = 3 * K + 1;
    const size_t r0 = blockIdx.x * rows, r1 = r0 + rows < N ? r0 + rows : N;
    if (threadIdx.x == 0) sbad = -1;
    __syncthreads();
    for (size_t n = r0 + threadIdx.x; n < r1; n += blockDim.x) {
        const T *x = logits + n * K;
        float *p = probs + n * K;
        float *t = terms + n * (size_t)C;
        int y = labels[n];
        if (y < 0 || y >= K) {
            atomicMax(&sbad, (int)(n < 0x7fffffff ? n : 0x7fffffff)); // the largest: independent of order
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
    __syncthreads(); // the chunk's terms (global, written by this block) are visible to all its threads
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        double acc = 0;
        for (size_t r = r0; r < r1; r++) acc += (double)terms[r * C + c];
        part[(size_t)blockIdx.x * (C + 1) + c] = acc;
    }
    if (threadIdx.x == 0) part[(size_t)blockIdx.x * (C + 1) + C] = (double)sbad;
    if (!cuda_last_block(arrivals)) return;
    for (int c = threadIdx.x; c <= C; c += blockDim.x) {
        double acc = 0, mx = -1;
        for (int k = 0; k < (int)gridDim.x; k++) {
            const double v = cuda_load_cg(part + (size_t)k * (C + 1) + c);
            if (c < C) acc += v;
            else mx = v > mx ? v : mx;
        }
        if (c < C) tot[c] = acc;
        else *bad = (int)mx; // the largest bad pixel, −1 if none: read at the next host sync
    }
    __syncthreads();
    // stats = (tp, fp, fn) per class from the class sums [Σp | Σp·onehot | Σonehot | ...], the
    // differences in double and one rounding to float, as kernels/cpu/loss.c.
    for (int c = threadIdx.x; c < K; c += blockDim.x) {
        double tp = tot[K + c];
        stats[c] = (float)tp;
        stats[K + c] = (float)(tot[c] - tp);
        stats[2 * K + c] = (float)(tot[2 * K + c] - tp);
    }
    // loss = (total, dice term, CE term), in double as kernels/cpu/loss.c and in its class order;
    // one thread (K ≤ 64 terms).
    if (threadIdx.x == 0) {
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
    size_t part_bytes = ((size_t)nchunk * (C + 1) * sizeof(double) + 255) / 256 * 256;
    char *ws = (char *)cuda_workspace(be, terms_bytes + part_bytes + sizeof(int));
    float *terms = (float *)ws;                   /* (N, 3K+1) */
    double *part = (double *)(ws + terms_bytes);  /* (nchunk, 3K+2) */
    int *bad = (int *)(ws + terms_bytes + part_bytes); /* (1) */
    cudaStream_t s = st->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_dice_ce_fwd<T><<<nchunk, 256, 0, s>>>(loss, stats, probs, terms, part, bad, st->arrivals,
                                                             (const T *)logits, labels, N, K, rows, w_dice, w_ce));
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

// The Dice gradient's per-class coefficients from the saved stats, computed by every block into
// its shared memory (a few dozen floats: cheaper than a launch), so that the backward is one
// launch and never waits for the host; double arithmetic as kernels/cpu/loss.c (no sum of
// products here, so FMA contraction cannot change a rounding). Then one thread per pixel.
template <typename T>
__global__ void k_dice_ce_bwd(T *dlogits /* (N, K) */, const float *probs /* (N, K) */,
                              const int32_t *labels /* (N) */, const float *stats /* (3, K) */, size_t N, int K,
                              float w_dice, float ce_scale, float dloss) {
    __shared__ DiceCoef co;
    for (int c = threadIdx.x; c < K; c += blockDim.x) {
        if (c == 0) {
            co.gb[0] = co.gy[0] = 0;
            continue;
        }
        const double wd = -(double)w_dice / (double)(K - 1);
        double tp = stats[c], fp = stats[K + c], fn = stats[2 * K + c];
        double num = 2 * tp + DICE_SMOOTH, den = 2 * tp + fp + fn + DICE_SMOOTH + DICE_EPS;
        co.gb[c] = (float)(wd * -num / (den * den));
        co.gy[c] = (float)(wd * 2.0 / den);
    }
    __syncthreads();
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
    const float ce_scale = (float)((double)w_ce / (double)N);
    cudaStream_t stream = cuda_state(be)->stream;
    CUDA_ACT_DISPATCH(be, T,
                      k_dice_ce_bwd<T><<<cuda_grid(N), 256, 0, stream>>>((T *)dlogits, probs, labels, stats, N, K,
                                                                        w_dice, ce_scale, dloss));
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
