/* backend_ops.h — the op reference: every compute op of the Backend interface (backend.h),
 * written down once, with the shape of every tensor it takes.
 *
 * UNET_BACKEND_OPS(X) expands X(name, (parameters), (arguments)) once per op, in this order:
 *   name          the struct Backend member; the backends define cpu_<name> (kernels/cpu) and
 *                 cu_<name> (kernels/cuda)
 *   (parameters)  the parameter list: outputs first, then inputs, then sizes; a comment gives
 *                 each tensor's shape (the conventions, e.g. that backward ops accumulate, are
 *                 in backend.h)
 *   (arguments)   the same names as an argument list, for wrappers that pass a call on
 * Derived from it, so that an op is listed nowhere else: the struct Backend members (backend.h),
 * the CPU and CUDA declarations (kernels/cpu/cpu_ops.h, kernels/cuda/cuda_internal.h), both
 * dispatch tables (backend_cpu.c, backend_cuda.cu) and bench --profile's timing wrappers
 * (op_profile.c). A new op is one entry here plus its two definitions.
 *
 * The list is one macro, so only block comments may appear in it: a line comment would swallow
 * the rest of the macro. It must stay valid C11, CUDA C++ (nvcc) and the CPU emulator's C++
 * (tests/cuda_emu), which all read it through backend.h. */
#ifndef UNET_BACKEND_OPS_H
#define UNET_BACKEND_OPS_H

#define UNET_BACKEND_OPS(X)                                                                                           \
    /* ---- element type conversion, backend memory to backend memory (n elements) ----                               \
     * act_from_f32 rounds to nearest even when Acts are bf16; act_to_f32 is exact. */                                \
    X(act_from_f32, (Backend *be, Act *out /* (n) */, const float *in /* (n) */, size_t n), (be, out, in, n))         \
    X(act_to_f32, (Backend *be, float *out /* (n) */, const Act *in /* (n) */, size_t n), (be, out, in, n))           \
                                                                                                                      \
    /* ---- 3x3 convolution, zero pad 1, stride 1 or 2, with bias ----                                                \
     * Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1 */                                                        \
    X(conv3x3_forward,                                                                                                \
      (Backend *be,                                                                                                   \
       Act *out,        /* (B, Ho, Wo, Co) */                                                                         \
       const Act *in,   /* (B, H, W, Ci) */                                                                           \
       const float *w,  /* (Co, Ci, 3, 3) */                                                                          \
       const float *b,  /* (Co) */                                                                                    \
       int B, int H, int W, int Ci, int Co, int stride),                                                              \
      (be, out, in, w, b, B, H, W, Ci, Co, stride))                                                                   \
    X(conv3x3_backward,                                                                                               \
      (Backend *be,                                                                                                   \
       Act *din,        /* (B, H, W, Ci) or NULL */                                                                   \
       float *dw,       /* (Co, Ci, 3, 3) */                                                                          \
       float *db,       /* (Co) */                                                                                    \
       const Act *dout, /* (B, Ho, Wo, Co) */                                                                         \
       const Act *in,   /* (B, H, W, Ci) */                                                                           \
       const float *w,  /* (Co, Ci, 3, 3) */                                                                          \
       int B, int H, int W, int Ci, int Co, int stride),                                                              \
      (be, din, dw, db, dout, in, w, B, H, W, Ci, Co, stride))                                                        \
                                                                                                                      \
    /* ---- depthwise 7x7 convolution, zero pad 3, stride 1, with bias ---- */                                        \
    X(dwconv7_forward,                                                                                                \
      (Backend *be,                                                                                                   \
       Act *out,        /* (B, H, W, C) */                                                                            \
       const Act *in,   /* (B, H, W, C) */                                                                            \
       const float *w,  /* (C, 1, 7, 7) */                                                                            \
       const float *b,  /* (C) */                                                                                     \
       int B, int H, int W, int C),                                                                                   \
      (be, out, in, w, b, B, H, W, C))                                                                                \
    /* out += the same convolution (bias included): dwconv7_forward into a temporary, then                            \
     * add(out, out, tmp) — what the CPU backend does, so its results are that sequence's bit for                     \
     * bit; the CUDA backend adds the fp32 conv to out before its one rounding (in fp32 mode the                      \
     * same bits as the sequence, in bf16 one rounding fewer) */                                                      \
    X(dwconv7_forward_add,                                                                                            \
      (Backend *be,                                                                                                   \
       Act *out,        /* (B, H, W, C) read and written */                                                           \
       const Act *in,   /* (B, H, W, C) */                                                                            \
       const float *w,  /* (C, 1, 7, 7) */                                                                            \
       const float *b,  /* (C) */                                                                                     \
       int B, int H, int W, int C),                                                                                   \
      (be, out, in, w, b, B, H, W, C))                                                                                \
    X(dwconv7_backward,                                                                                               \
      (Backend *be,                                                                                                   \
       Act *din,        /* (B, H, W, C) or NULL */                                                                    \
       float *dw,       /* (C, 1, 7, 7) */                                                                            \
       float *db,       /* (C) */                                                                                     \
       const Act *dout, /* (B, H, W, C) */                                                                            \
       const Act *in,   /* (B, H, W, C) */                                                                            \
       const float *w,  /* (C, 1, 7, 7) */                                                                            \
       int B, int H, int W, int C),                                                                                   \
      (be, din, dw, db, dout, in, w, B, H, W, C))                                                                     \
    /* dwconv7_forward(out, in, w, b), then layernorm_forward(ln, mean, rstd, out, g, beta, B*H*W, C, eps):           \
     * the ConvNeXt half's start; out (LayerNorm's input), ln, mean, rstd are all written, as the                     \
     * two ops write them (the backward reads them). The CPU backend runs exactly those two ops. */                   \
    X(dwconv7_layernorm_forward,                                                                                      \
      (Backend *be,                                                                                                   \
       Act *out,          /* (B, H, W, C) the convolution */                                                          \
       Act *ln,           /* (B, H, W, C) LayerNorm of out */                                                         \
       float *mean,       /* (B*H*W) saved for backward */                                                            \
       float *rstd,       /* (B*H*W) saved for backward */                                                            \
       const Act *in,     /* (B, H, W, C) */                                                                          \
       const float *w,    /* (C, 1, 7, 7) */                                                                          \
       const float *b,    /* (C) */                                                                                   \
       const float *g,    /* (C) LayerNorm weight */                                                                  \
       const float *beta, /* (C) LayerNorm bias */                                                                    \
       int B, int H, int W, int C, float eps),                                                                        \
      (be, out, ln, mean, rstd, in, w, b, g, beta, B, H, W, C, eps))                                                  \
                                                                                                                      \
    /* ---- transposed convolution with kernel == stride == k (2 or 4), bias ----                                     \
     * Non-overlapping: out[b, h*k+i, w*k+j, co] = b[co] + sum_ci in[b,h,w,ci] * w[ci,co,i,j] */                      \
    X(convT_forward,                                                                                                  \
      (Backend *be,                                                                                                   \
       Act *out,        /* (B, H*k, W*k, Co) */                                                                       \
       const Act *in,   /* (B, H, W, Ci) */                                                                           \
       const float *w,  /* (Ci, Co, k, k) */                                                                          \
       const float *b,  /* (Co) */                                                                                    \
       int B, int H, int W, int Ci, int Co, int k),                                                                   \
      (be, out, in, w, b, B, H, W, Ci, Co, k))                                                                        \
    /* out = the same transposed convolution + skip (the decoder's upsampling plus its skip                           \
     * connection; out must not alias skip): convT_forward into out, then add(out, out, skip) —                       \
     * what the CPU backend does, so its results are the convT_forward + add sequence's bit for                       \
     * bit; the CUDA backend adds skip in the scatter before its one rounding (in fp32 mode the                       \
     * same bits as the sequence, in bf16 one rounding fewer) */                                                      \
    X(convT_forward_add,                                                                                              \
      (Backend *be,                                                                                                   \
       Act *out,        /* (B, H*k, W*k, Co) */                                                                       \
       const Act *in,   /* (B, H, W, Ci) */                                                                           \
       const Act *skip, /* (B, H*k, W*k, Co) */                                                                       \
       const float *w,  /* (Ci, Co, k, k) */                                                                          \
       const float *b,  /* (Co) */                                                                                    \
       int B, int H, int W, int Ci, int Co, int k),                                                                   \
      (be, out, in, skip, w, b, B, H, W, Ci, Co, k))                                                                  \
    X(convT_backward,                                                                                                 \
      (Backend *be,                                                                                                   \
       Act *din,        /* (B, H, W, Ci) or NULL */                                                                   \
       float *dw,       /* (Ci, Co, k, k) */                                                                          \
       float *db,       /* (Co) */                                                                                    \
       const Act *dout, /* (B, H*k, W*k, Co) */                                                                       \
       const Act *in,   /* (B, H, W, Ci) */                                                                           \
       const float *w,  /* (Ci, Co, k, k) */                                                                          \
       int B, int H, int W, int Ci, int Co, int k),                                                                   \
      (be, din, dw, db, dout, in, w, B, H, W, Ci, Co, k))                                                             \
                                                                                                                      \
    /* ---- linear: out = in · wᵀ + b (b may be NULL) ----                                                            \
     * linear_backward: din, dw += (as every backward op); db (when not NULL) is OVERWRITTEN,                         \
     * db = Σ_rows dout: each linear's bias has exactly one writer per backward pass, so the                          \
     * CUDA backend can take it from the dW GEMM's epilogue. The CPU backend writes zero + the                        \
     * accumulating sum, the accumulating op's bits wherever db held 0. */                                            \
    X(linear_forward,                                                                                                 \
      (Backend *be,                                                                                                   \
       Act *out,        /* (N, Co) */                                                                                 \
       const Act *in,   /* (N, Ci) */                                                                                 \
       const float *w,  /* (Co, Ci) */                                                                                \
       const float *b,  /* (Co) or NULL */                                                                            \
       size_t N, int Ci, int Co),                                                                                     \
      (be, out, in, w, b, N, Ci, Co))                                                                                 \
    X(linear_backward,                                                                                                \
      (Backend *be,                                                                                                   \
       Act *din,        /* (N, Ci) or NULL */                                                                         \
       float *dw,       /* (Co, Ci) */                                                                                \
       float *db,       /* (Co) or NULL */                                                                            \
       const Act *dout, /* (N, Co) */                                                                                 \
       const Act *in,   /* (N, Ci) */                                                                                 \
       const float *w,  /* (Co, Ci) */                                                                                \
       size_t N, int Ci, int Co),                                                                                     \
      (be, din, dw, db, dout, in, w, N, Ci, Co))                                                                      \
                                                                                                                      \
    /* ---- LayerNorm over the last (channel) dim, biased variance as PyTorch ---- */                                 \
    X(layernorm_forward,                                                                                              \
      (Backend *be,                                                                                                   \
       Act *out,           /* (N, C) */                                                                               \
       float *mean,        /* (N) saved for backward */                                                               \
       float *rstd,        /* (N) saved for backward */                                                               \
       const Act *in,      /* (N, C) */                                                                               \
       const float *g,     /* (C) */                                                                                  \
       const float *b,     /* (C) */                                                                                  \
       size_t N, int C, float eps),                                                                                   \
      (be, out, mean, rstd, in, g, b, N, C, eps))                                                                     \
    X(layernorm_backward,                                                                                             \
      (Backend *be,                                                                                                   \
       Act *din,           /* (N, C) or NULL */                                                                       \
       float *dg,          /* (C) */                                                                                  \
       float *db,          /* (C) */                                                                                  \
       const Act *dout,    /* (N, C) */                                                                               \
       const Act *in,      /* (N, C) */                                                                               \
       const float *mean,  /* (N) */                                                                                  \
       const float *rstd,  /* (N) */                                                                                  \
       const float *g,     /* (C) */                                                                                  \
       size_t N, int C),                                                                                              \
      (be, din, dg, db, dout, in, mean, rstd, g, N, C))                                                               \
                                                                                                                      \
    /* ---- exact (erf) GELU ---- */                                                                                  \
    X(gelu_forward, (Backend *be, Act *out /* (n) */, const Act *in /* (n) */, size_t n), (be, out, in, n))           \
    X(gelu_backward, (Backend *be, Act *din /* (n) */, const Act *dout /* (n) */, const Act *in /* (n) */, size_t n), \
      (be, din, dout, in, n))                                                                                         \
                                                                                                                      \
    /* ---- GELU, then LayerNorm of its output (the stem and head conv pairs, the down path) ----                     \
     * gelu_layernorm_forward: ge = GELU(in), stored (layernorm_backward_gelu reads it), then                         \
     * out, mean, rstd = layernorm_forward of ge: gelu_forward then layernorm_forward, which the CPU                  \
     * backend runs; the CUDA backend does both in one pass, the statistics read from ge as stored                    \
     * (bf16: rounded, as the sequence's LayerNorm reads it).                                                         \
     * layernorm_backward_gelu: din += (layernorm_backward's din term) · GELU'(in), dg, db += as                      \
     * layernorm_backward (ge, mean, rstd, g: its in, mean, rstd, g): the sequence                                    \
     * layernorm_backward into a zeroed temporary, then gelu_backward(din, temporary, in), which the                  \
     * CPU backend runs, so its results are that sequence's bit for bit; the CUDA backend keeps the                   \
     * LayerNorm term in fp32 (in fp32 mode the sequence's float operations, in bf16 one rounding                     \
     * fewer). din NULL: only dg, db. */                                                                              \
    X(gelu_layernorm_forward,                                                                                         \
      (Backend *be, Act *out /* (N, C) */, Act *ge /* (N, C) */, float *mean /* (N) */, float *rstd /* (N) */,        \
       const Act *in /* (N, C) */, const float *g /* (C) */, const float *b /* (C) */, size_t N, int C, float eps),   \
      (be, out, ge, mean, rstd, in, g, b, N, C, eps))                                                                 \
    X(layernorm_backward_gelu,                                                                                        \
      (Backend *be, Act *din /* (N, C) or NULL */, float *dg /* (C) */, float *db /* (C) */,                          \
       const Act *dout /* (N, C) */, const Act *ge /* (N, C) */, const Act *in /* (N, C) */,                          \
       const float *mean /* (N) */, const float *rstd /* (N) */, const float *g /* (C) */, size_t N, int C),          \
      (be, din, dg, db, dout, ge, in, mean, rstd, g, N, C))                                                           \
                                                                                                                      \
    /* ---- zero-pad to (Hp, Wp) at the bottom/right, then cyclic roll by (-s, -s) ----                               \
     * out[b, y, x, c] = padded[b, (y + s) % Hp, (x + s) % Wp, c], padded = 0 outside (H, W) */                       \
    X(pad_roll_forward,                                                                                               \
      (Backend *be,                                                                                                   \
       Act *out,        /* (B, Hp, Wp, C) */                                                                          \
       const Act *in,   /* (B, H, W, C) */                                                                            \
       int B, int H, int W, int C, int Hp, int Wp, int shift),                                                        \
      (be, out, in, B, H, W, C, Hp, Wp, shift))                                                                       \
    X(pad_roll_backward,                                                                                              \
      (Backend *be,                                                                                                   \
       Act *din,        /* (B, H, W, C) */                                                                            \
       const Act *dout, /* (B, Hp, Wp, C) */                                                                          \
       int B, int H, int W, int C, int Hp, int Wp, int shift),                                                        \
      (be, din, dout, B, H, W, C, Hp, Wp, shift))                                                                     \
    /* ---- the inverse: roll by (+s, +s), then crop to (H, W) ---- */                                                \
    X(roll_crop_forward,                                                                                              \
      (Backend *be,                                                                                                   \
       Act *out,        /* (B, H, W, C) */                                                                            \
       const Act *in,   /* (B, Hp, Wp, C) */                                                                          \
       int B, int H, int W, int C, int Hp, int Wp, int shift),                                                        \
      (be, out, in, B, H, W, C, Hp, Wp, shift))                                                                       \
    X(roll_crop_backward,                                                                                             \
      (Backend *be,                                                                                                   \
       Act *din,        /* (B, Hp, Wp, C) */                                                                          \
       const Act *dout, /* (B, H, W, C) */                                                                            \
       int B, int H, int W, int C, int Hp, int Wp, int shift),                                                        \
      (be, din, dout, B, H, W, C, Hp, Wp, shift))                                                                     \
                                                                                                                      \
    /* ---- windowed multi-head self-attention (Swin) on an already padded+rolled map ----                            \
     * Windows are the w×w tiles of the (Hp, Wp) map, in row-major window order, tokens in                            \
     * row-major order inside a window (Swin's window_partition). qkv channel layout per                              \
     * token is PyTorch's reshape(3, heads, head_dim): c = t*C + h*hd + j, t in {q,k,v}.                              \
     * attn = softmax(q·kᵀ·hd^-0.5 + table[rel_index, h] + mask), mask = Swin's shift mask                            \
     * (−100 between regions cut at (0:-w), (-w:-s), (-s:) per axis), only when shift > 0.                            \
     * out[token, h*hd + j] = sum_k attn[q, k] v[k, h*hd + j] */                                                      \
    X(window_attention_forward,                                                                                       \
      (Backend *be,                                                                                                   \
       Act *out,            /* (B, Hp, Wp, C) */                                                                      \
       Act *probs,          /* (B, nWin, heads, w*w, w*w) saved softmax */                                            \
       const Act *qkv,      /* (B, Hp, Wp, 3C) */                                                                     \
       const float *table,  /* ((2w-1)^2, heads) */                                                                   \
       int B, int Hp, int Wp, int C, int heads, int window, int shift),                                               \
      (be, out, probs, qkv, table, B, Hp, Wp, C, heads, window, shift))                                               \
    X(window_attention_backward,                                                                                      \
      (Backend *be,                                                                                                   \
       Act *dqkv,           /* (B, Hp, Wp, 3C) */                                                                     \
       float *dtable,       /* ((2w-1)^2, heads) */                                                                   \
       const Act *dout,     /* (B, Hp, Wp, C) */                                                                      \
       const Act *qkv,      /* (B, Hp, Wp, 3C) */                                                                     \
       const Act *probs,    /* (B, nWin, heads, w*w, w*w) */                                                          \
       int B, int Hp, int Wp, int C, int heads, int window, int shift),                                               \
      (be, dqkv, dtable, dout, qkv, probs, B, Hp, Wp, C, heads, window, shift))                                       \
                                                                                                                      \
    /* ---- elementwise ---- */                                                                                       \
    /* out = a + b; out may alias a or b */                                                                           \
    X(add, (Backend *be, Act *out /* (n) */, const Act *a /* (n) */, const Act *b /* (n) */, size_t n),               \
      (be, out, a, b, n))                                                                                             \
    /* dst += src */                                                                                                  \
    X(accumulate, (Backend *be, Act *dst /* (n) */, const Act *src /* (n) */, size_t n), (be, dst, src, n))           \
    /* layer scale: out[n, c] = gamma[c] * in[n, c] */                                                                \
    X(channel_scale_forward,                                                                                          \
      (Backend *be, Act *out /* (N, C) */, const Act *in /* (N, C) */, const float *gamma /* (C) */, size_t N,        \
       int C),                                                                                                        \
      (be, out, in, gamma, N, C))                                                                                     \
    X(channel_scale_backward,                                                                                         \
      (Backend *be, Act *din /* (N, C) */, float *dgamma /* (C) */, const Act *dout /* (N, C) */,                     \
       const Act *in /* (N, C) */, const float *gamma /* (C) */, size_t N, int C),                                    \
      (be, din, dgamma, dout, in, gamma, N, C))                                                                       \
    /* drop path: out[b, :] = in[b, :] * scale[b], scale (0 or 1/keep) drawn by the caller into                       \
     * backend memory (each step's draw is read where a captured step reads it) */                                    \
    X(sample_scale_forward,                                                                                           \
      (Backend *be, Act *out /* (B, per) */, const Act *in /* (B, per) */, const float *scale /* (B) */, int B,       \
       size_t per),                                                                                                   \
      (be, out, in, scale, B, per))                                                                                   \
    X(sample_scale_backward,                                                                                          \
      (Backend *be, Act *din /* (B, per) */, const Act *dout /* (B, per) */, const float *scale /* (B) */, int B,     \
       size_t per),                                                                                                   \
      (be, din, dout, scale, B, per))                                                                                 \
    /* ---- fused residual branch (layer scale, drop path, residual add [, the next LayerNorm]) ----                  \
     * N = B*per/C rows, sample b owns rows [b*per/C, (b+1)*per/C). gamma NULL: no layer scale;                      \
     * scale NULL: no drop path (else 0 or 1/keep per sample, BACKEND memory, so that a captured                      \
     * step reads each step's draw: model_draw_step writes it, a queued copy uploads it).                             \
     * out = res + s_b * (gamma_c * y): the float operations of channel_scale_forward,                               \
     * sample_scale_forward and add in that order, so the CPU result is theirs bit for bit. */                       \
    X(residual_forward,                                                                                               \
      (Backend *be, Act *out /* (N, C) */, const Act *res /* (N, C) */, const Act *y /* (N, C) */,                    \
       const float *gamma /* (C) or NULL */, const float *scale /* (B) or NULL */, int B, size_t per, int C),         \
      (be, out, res, y, gamma, scale, B, per, C))                                                                     \
    /* residual_forward, then layernorm_forward(ln, mean, rstd, out, g, b, N, C, eps) */                              \
    X(residual_layernorm_forward,                                                                                     \
      (Backend *be, Act *out /* (N, C) */, Act *ln /* (N, C) */, float *mean /* (N) */, float *rstd /* (N) */,        \
       const Act *res /* (N, C) */, const Act *y /* (N, C) */, const float *gamma /* (C) or NULL */,                  \
       const float *scale /* (B) or NULL */, const float *g /* (C) */, const float *b /* (C) */, int B,               \
       size_t per, int C, float eps),                                                                                 \
      (be, out, ln, mean, rstd, res, y, gamma, scale, g, b, B, per, C, eps))                                          \
    /* The branch's backward. dres += dout (dres NULL: skipped); dy = gamma_c * (s_b * dout), OVERWRITTEN            \
     * (= the zero + sample_scale_backward + zero + channel_scale_backward sequence: a dropped                        \
     * sample's dy is +0; gamma NULL: dy = s_b * dout); dgamma += sum_n (s_b * dout) * y                              \
     * (y and dgamma only with gamma). */                                                                             \
    X(residual_backward,                                                                                              \
      (Backend *be, Act *dres /* (N, C) or NULL */, Act *dy /* (N, C) */, float *dgamma /* (C) or NULL */,            \
       const Act *dout /* (N, C) */, const Act *y /* (N, C) or NULL */, const float *gamma /* (C) or NULL */,         \
       const float *scale /* (B) or NULL */, int B, size_t per, int C),                                               \
      (be, dres, dy, dgamma, dout, y, gamma, scale, B, per, C))                                                       \
    /* layernorm_backward whose input gradient starts from dres instead of accumulating:                             \
     * din = dres + (layernorm_backward's din term), OVERWRITTEN (din may be dres; dres NULL: 0 +                    \
     * the term, i.e. the zero + layernorm_backward sequence); dg, db += */                                          \
    X(layernorm_backward_residual,                                                                                    \
      (Backend *be, Act *din /* (N, C) */, float *dg /* (C) */, float *db /* (C) */, const Act *dres /* (N, C) or NULL */,    \
       const Act *dout /* (N, C) */, const Act *in /* (N, C) */, const float *mean /* (N) */,                         \
       const float *rstd /* (N) */, const float *g /* (C) */, size_t N, int C),                                       \
      (be, din, dg, db, dres, dout, in, mean, rstd, g, N, C))                                                         \
    /* layernorm_backward_residual whose din feeds only a residual_backward (the PI block's                           \
     * x1 = res + s_b * (gamma * y), then LayerNorm): with d = dres + LayerNorm's input gradient                      \
     * (of dout, in, mean, rstd, g): dx += d; dy = gamma_c * (s_b * d), OVERWRITTEN; dgamma +=                        \
     * sum_n (s_b * d) * y; dg, db += as layernorm_backward_residual. That is                                         \
     * layernorm_backward_residual(d, dg, db, dres, dout, in, mean, rstd, g, N, C) into a temporary                   \
     * d, then residual_backward(dx, dy, dgamma, d, y, gamma, scale, B, per, C), N = B*per/C: the                     \
     * CPU backend does exactly that (d in dy). dx and dres are required; gamma, scale, y, dgamma,                    \
     * dg, db as in those ops. d is never stored, so in bf16 it is not rounded to bf16 (one                           \
     * rounding fewer than the two ops). */                                                                           \
    X(layernorm_backward_residual_branch,                                                                             \
      (Backend *be, Act *dx /* (N, C) */, Act *dy /* (N, C) */, float *dg /* (C) */, float *db /* (C) */,             \
       float *dgamma /* (C) or NULL */, const Act *dres /* (N, C) */, const Act *dout /* (N, C) */,                   \
       const Act *in /* (N, C) */, const float *mean /* (N) */, const float *rstd /* (N) */,                          \
       const float *g /* (C) */, const Act *y /* (N, C) or NULL */, const float *gamma /* (C) or NULL */,             \
       const float *scale /* (B) or NULL */, int B, size_t per, int C),                                               \
      (be, dx, dy, dg, db, dgamma, dres, dout, in, mean, rstd, g, y, gamma, scale, B, per, C))                        \
    /* ---- first writers: the backward ops above, with din OVERWRITTEN instead of accumulated ----                   \
     * (parameter gradients still accumulate; linear_backward_first's db is overwritten, as                           \
     * linear_backward's). For a buffer the op writes first, instead of a zero + the accumulating                     \
     * op; the CPU backend does exactly that zero + op, so its results are the accumulating                           \
     * sequence's bit for bit. */                                                                                     \
    X(linear_backward_first,                                                                                          \
      (Backend *be, Act *din /* (N, Ci) */, float *dw /* (Co, Ci) */, float *db /* (Co) or NULL */,                   \
       const Act *dout /* (N, Co) */, const Act *in /* (N, Ci) */, const float *w /* (Co, Ci) */, size_t N, int Ci,   \
       int Co),                                                                                                       \
      (be, din, dw, db, dout, in, w, N, Ci, Co))                                                                      \
    X(dwconv7_backward_first,                                                                                         \
      (Backend *be, Act *din /* (B, H, W, C) */, float *dw /* (C, 1, 7, 7) */, float *db /* (C) */,                   \
       const Act *dout /* (B, H, W, C) */, const Act *in /* (B, H, W, C) */, const float *w /* (C, 1, 7, 7) */,       \
       int B, int H, int W, int C),                                                                                   \
      (be, din, dw, db, dout, in, w, B, H, W, C))                                                                     \
    /* dqkv overwritten: every (token, channel) of it, since q, k and v each get a gradient */                        \
    X(window_attention_backward_first,                                                                                \
      (Backend *be, Act *dqkv /* (B, Hp, Wp, 3C) */, float *dtable /* ((2w-1)^2, heads) */,                           \
       const Act *dout /* (B, Hp, Wp, C) */, const Act *qkv /* (B, Hp, Wp, 3C) */,                                    \
       const Act *probs /* (B, nWin, heads, w*w, w*w) */, int B, int Hp, int Wp, int C, int heads, int window,        \
       int shift),                                                                                                    \
      (be, dqkv, dtable, dout, qkv, probs, B, Hp, Wp, C, heads, window, shift))                                       \
    /* din overwritten everywhere: roll_crop_backward_first's padding positions (cropped away in the                  \
     * forward) get +0 */                                                                                             \
    X(pad_roll_backward_first,                                                                                        \
      (Backend *be, Act *din /* (B, H, W, C) */, const Act *dout /* (B, Hp, Wp, C) */, int B, int H, int W, int C,    \
       int Hp, int Wp, int shift),                                                                                    \
      (be, din, dout, B, H, W, C, Hp, Wp, shift))                                                                     \
    X(roll_crop_backward_first,                                                                                       \
      (Backend *be, Act *din /* (B, Hp, Wp, C) */, const Act *dout /* (B, H, W, C) */, int B, int H, int W, int C,    \
       int Hp, int Wp, int shift),                                                                                    \
      (be, din, dout, B, H, W, C, Hp, Wp, shift))                                                                     \
    /* ---- fused MLP ops (the PI block's fc1 → GELU) ----                                                            \
     * linear_gelu_forward: pre = in · wᵀ + b (saved for backward), out = GELU(pre): linear_forward                    \
     * then gelu_forward (the CPU backend does exactly those two); the CUDA backend runs the GEMM                     \
     * without the bias prefill and one kernel adds the bias, stores pre and applies GELU.                            \
     * gelu_backward_bias_first: din = dout · GELU'(pre) OVERWRITTEN and db += Σ_rows din (the                        \
     * bias gradient linear_backward would take from din): zero + gelu_backward, then the column                      \
     * sum, in one pass; the linear's backward then runs with db = NULL. */                                           \
    X(linear_gelu_forward,                                                                                            \
      (Backend *be, Act *out /* (N, Co) */, Act *pre /* (N, Co) */, const Act *in /* (N, Ci) */,                      \
       const float *w /* (Co, Ci) */, const float *b /* (Co) */, size_t N, int Ci, int Co),                           \
      (be, out, pre, in, w, b, N, Ci, Co))                                                                            \
    X(gelu_backward_bias_first,                                                                                       \
      (Backend *be, Act *din /* (N, C) */, float *db /* (C) */, const Act *dout /* (N, C) */,                         \
       const Act *pre /* (N, C) */, size_t N, int C),                                                                 \
      (be, din, db, dout, pre, N, C))                                                                                 \
    /* ---- the flat parameter buffer the following passes take their weights from ----                              \
     * A backend may keep a copy in its GEMM operand type (CUDA bf16 mode: one rounding pass                          \
     * instead of one per linear call; the same rounding, so the same results). The copy is                           \
     * current only until params change: call it again after every update (model_forward                             \
     * does, every pass). The CPU backend does nothing. */                                                            \
    X(weights_prepare, (Backend *be, const float *params /* (n) */, size_t n), (be, params, n))                       \
                                                                                                                      \
    /* ---- loss: w_dice * SoftDice + w_ce * CrossEntropy (nnU-Net v1 DC_and_CE_loss) ----                            \
     * Soft Dice on softmax probabilities, batch dice (sums over all N pixels), background                            \
     * (class 0) excluded, smooth 1e-5, dc = (2tp + smooth) / (2tp + fp + fn + smooth + 1e-8),                        \
     * dice term = -mean_c dc. CE = mean over N pixels of -log softmax[label].                                        \
     * loss[0] = total, [1] = dice term, [2] = CE term (unweighted), in backend memory (no host wait:                \
     * the caller reads it back with the stats). A label outside [0, K) is fatal (on the CUDA                         \
     * backend at its next host sync).                                                                               \
     * stats keeps (tp, fp, fn) per class for backward. */                                                            \
    X(dice_ce_forward,                                                                                                \
      (Backend *be,                                                                                                   \
       float *loss,            /* (3) */                                                                              \
       float *probs,           /* (N, K) saved softmax */                                                             \
       float *stats,           /* (3, K) */                                                                           \
       const Act *logits,      /* (N, K) */                                                                           \
       const int32_t *labels,  /* (N) values in [0, K) */                                                             \
       size_t N, int K, float w_dice, float w_ce),                                                                    \
      (be, loss, probs, stats, logits, labels, N, K, w_dice, w_ce))                                                   \
    /* dlogits += dloss * d(total)/d(logits) */                                                                       \
    X(dice_ce_backward,                                                                                               \
      (Backend *be,                                                                                                   \
       Act *dlogits,           /* (N, K) */                                                                           \
       const float *probs,     /* (N, K) */                                                                           \
       const float *stats,     /* (3, K) */                                                                           \
       const int32_t *labels,  /* (N) */                                                                              \
       size_t N, int K, float w_dice, float w_ce, float dloss),                                                       \
      (be, dlogits, probs, stats, labels, N, K, w_dice, w_ce, dloss))                                                 \
    /* The deep-supervision total from the (already rank-summed) statistics block of model_acts.c:                    \
     * stats (n_out, 3, K) then terms (n_out, 3) whose [2] is each output's CE term. In double, as the                 \
     * host did it: dice_k = -mean_{c>=1} (2tp + 1e-5) / (2tp + fp + fn + 1e-5 + 1e-8),                            \
     * total = sum_k lw_k (w_dice dice_k + w_ce ce_k); out = (total, dice_0, ce_0) rounded to float,                   \
     * in backend memory (read back with the step's other scalars: no host wait here). */                            \
    X(loss_total,                                                                                                     \
      (Backend *be, float *out /* (3) */, const float *stats /* (n_out, 3, K) + (n_out, 3) */, int n_out, int K,      \
       float w_dice, float w_ce, float lw0, float lw1, float lw2),                                                    \
      (be, out, stats, n_out, K, w_dice, w_ce, lw0, lw1, lw2))                                                        \
    /* nearest downsampling of a label map by an integer factor f, picking the pixel at                               \
     * (y*f + f/2, x*f + f/2) (nnU-Net's order-0 resize at exact factors) */                                          \
    X(downsample_labels,                                                                                              \
      (Backend *be, int32_t *out /* (B, H/f, W/f) */, const int32_t *in /* (B, H, W) */, int B, int H, int W,         \
       int f),                                                                                                        \
      (be, out, in, B, H, W, f))                                                                                      \
                                                                                                                      \
    /* ---- optimiser ---- */                                                                                         \
    /* out = Σ x², into backend memory (no host round trip: the clip reads it on the device) */                      \
    X(sum_squares, (Backend *be, double *out /* (1) */, const float *x /* (n) */, size_t n), (be, out, x, n))         \
    /* x *= s */                                                                                                      \
    X(scale, (Backend *be, float *x /* (n) */, float s, size_t n), (be, x, s, n))                                     \
    /* global-norm clipping (torch.nn.utils.clip_grad_norm_) from a sum of squares in backend                         \
     * memory: norm = sqrt(sumsq); coef = max_norm / (norm + 1e-6) in double; x *= (float)coef                        \
     * when coef < 1. norm (backend memory) is written for the caller to read at the step's end. */                   \
    X(clip_by_norm,                                                                                                   \
      (Backend *be, float *x /* (n) */, double *norm /* (1) */, const double *sumsq /* (1) */, double max_norm,       \
       size_t n),                                                                                                     \
      (be, x, norm, sumsq, max_norm, n))                                                                              \
    /* PyTorch Adam (no weight decay, no amsgrad), step counts from 1. Hyper-parameters are                           \
     * doubles because PyTorch computes 1 - beta and the bias corrections from Python floats:                         \
     * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;                                                                     \
     * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)                                                    \
     * The step's terms come from BACKEND memory (coef (2): adam_coefs() of adam_coefs.h, uploaded                    \
     * by a queued copy), so that a captured step reads each step's own t. */                                         \
    X(adam_update,                                                                                                    \
      (Backend *be, float *param /* (n) */, float *m /* (n) */, float *v /* (n) */, const float *grad /* (n) */,      \
       size_t n, double beta1, double beta2, double eps, const float *coef /* (2) */),                                \
      (be, param, m, v, grad, n, beta1, beta2, eps, coef))

#endif
