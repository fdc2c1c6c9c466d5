/* The per-element math of netc's runtime, written once for every backend:
 * the CPU backend (C11: runtime/cpu/ops.c, loss.c, runtime/optim.c, rng.c,
 * preprocess.c), the CUDA kernels (the runtime/cuda .cuh files, compiled by NVRTC)
 * and the emulator (the kernels compiled as C++ with NR_EMU defined).
 *
 * Every function is one sequence of float (or double) operations, so the
 * backends compute the same bits wherever the operations round alike: the
 * kernels are compiled with --fmad=false and C11 does not contract. What
 * can still differ is a libm call (expf, log, cos) against CUDA's.
 *
 * The header includes nothing: NVRTC has no system headers. Device code
 * gets its math functions built in; C and the emulator's C++ call the
 * compiler's builtins (libm's functions). Integer types are the plain C
 * ones (unsigned int is 32 bits, unsigned long long 64 on every target). */
#ifndef NR_MATH_H
#define NR_MATH_H

#if defined(__CUDACC__) || defined(__CUDACC_RTC__) || defined(NR_EMU)
#define NR_HD __host__ __device__ inline
#else
#define NR_HD static inline
#endif

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define NR_EXPF expf
#define NR_LOGF logf
#define NR_SQRTF sqrtf
#define NR_EXP exp
#define NR_LOG log
#define NR_SQRT sqrt
#define NR_COS cos
#define NR_FABS fabs
#else
#define NR_EXPF __builtin_expf
#define NR_LOGF __builtin_logf
#define NR_SQRTF __builtin_sqrtf
#define NR_EXP __builtin_exp
#define NR_LOG __builtin_log
#define NR_SQRT __builtin_sqrt
#define NR_COS __builtin_cos
#define NR_FABS __builtin_fabs
#endif

/* ---- bit patterns -----------------------------------------------------------
 * The CPU's selects work on bit patterns with integer masks, not float
 * compares: under the default -ftrapping-math GCC will not if-convert a
 * float compare (nor speculate the float arithmetic it guards), so a loop
 * with one would stay scalar. */

#if defined(__CUDA_ARCH__)
NR_HD int nr_bits_of(float f) { return __float_as_int(f); }
NR_HD float nr_float_of(int i) { return __int_as_float(i); }
#elif defined(__cplusplus)
NR_HD int nr_bits_of(float f)
{
    int i;
    __builtin_memcpy(&i, &f, sizeof i);
    return i;
}
NR_HD float nr_float_of(int i)
{
    float f;
    __builtin_memcpy(&f, &i, sizeof f);
    return f;
}
#else
typedef union {
    float f;
    int i;
} nr_float_bits;

NR_HD int nr_bits_of(float f)
{
    nr_float_bits b;
    b.f = f;
    return b.i;
}

NR_HD float nr_float_of(int i)
{
    nr_float_bits b;
    b.i = i;
    return b.f;
}
#endif

#define NR_SIGN_BIT (-0x7fffffff - 1)
#define NR_ABS_BITS 0x7fffffff

/* All ones when a < b, else 0. */
NR_HD int nr_mask_less(int a, int b) { return -(int)(a < b); }

NR_HD float nr_blend(int mask, float yes, float no)
{
    return nr_float_of((nr_bits_of(yes) & mask) | (nr_bits_of(no) & ~mask));
}

/* All ones when v > 0; for a NaN: when its sign bit is clear (a NaN with
 * the sign bit clear counts as positive, on every backend). */
NR_HD int nr_positive_mask(float v) { return nr_mask_less(0, nr_bits_of(v)); }

/* ---- activations and their derivatives -------------------------------------- */

/* e^z - 1 for z in [0, 18] (callers clamp), without the cancellation of
 * e^z - 1 near 0: z = k ln2 + r with |r| <= ln2/2; e^r - 1 is r times a
 * degree-7 Taylor polynomial (relative error below 2e-8), and
 * e^z - 1 = 2^k (e^r - 1) + (2^k - 1), whose two terms are exact for k <= 24
 * and cancel by at most a factor 1.5 (k = 1, r = -ln2/2). */
NR_HD float nr_expm1_small_range(float z)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float k = (z * 1.44269504088896341f + magic) - magic;
    float r = (z - k * 0.693145751953125f) - k * 1.42860682030941723e-6f;
    float p = 1.0f / 40320.0f;
    p = p * r + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    float two_k = nr_float_of(((int)k + 127) << 23);
    return two_k * (p * r) + (two_k - 1.0f);
}

/* tanh within a few ulp, branch-free so the CPU loop vectorizes:
 * tanh a = E / (E + 2) with E = e^(2a) - 1. glibc's tanhf is a scalar
 * call, and tanh is the activation of LeNet-5's wide early layers: it
 * would cost as much as the GEMMs. The kernels use it too, so both
 * backends compute the same bits. */
NR_HD float nr_tanh(float x)
{
    int xi = nr_bits_of(x), ai = xi & NR_ABS_BITS, nine = nr_bits_of(9.0f);
    /* |x| clamped to 9 (tanh 9 rounds to 1) by comparing bit patterns,
     * which order like the non-negative floats they encode */
    float em1 = nr_expm1_small_range(2.0f * nr_float_of(ai < nine ? ai : nine));
    float r = em1 / (em1 + 2.0f);
    r = nr_float_of(nr_bits_of(r) | (xi & NR_SIGN_BIT)); /* the sign of x */
    return nr_blend(nr_mask_less(0x7f800000, ai), x, r); /* NaN stays NaN */
}

/* relu: NaN (which fails x > 0) gives 0, as PyTorch's threshold does. */
NR_HD float nr_relu(float x) { return x > 0.0f ? x : 0.0f; }
NR_HD float nr_leaky_relu(float x, float slope) { return nr_blend(nr_positive_mask(x), x, x * slope); }
NR_HD float nr_sigmoid(float x) { return 1.0f / (1.0f + NR_EXPF(-x)); }

/* Derivatives times dy, from what the forward pass kept: the output y,
 * except for leaky relu, whose input x is kept (its output's sign is x's). */
NR_HD float nr_tanh_grad(float y, float dy) { return dy * (1.0f - y * y); }
NR_HD float nr_relu_grad(float y, float dy) { return nr_blend(nr_positive_mask(y), dy, 0.0f); }
NR_HD float nr_leaky_relu_grad(float x, float dy, float slope)
{
    return nr_blend(nr_positive_mask(x), dy, dy * slope);
}
NR_HD float nr_sigmoid_grad(float y, float dy) { return dy * y * (1.0f - y); }

/* Softmax (log_form 0) or log_softmax (1) of one column: C values stride
 * apart (the channels at one position of an NCHW tensor, or a row with
 * stride 1), in float. y may be x. */
NR_HD void nr_softmax_column(const float *x, float *y, int C, long long stride, int log_form)
{
    float mx = x[0];
    for (int c = 1; c < C; c++)
        if (x[c * stride] > mx) mx = x[c * stride];
    float sum = 0.0f;
    for (int c = 0; c < C; c++) sum += NR_EXPF(x[c * stride] - mx);
    if (log_form) {
        float lse = NR_LOGF(sum);
        for (int c = 0; c < C; c++) y[c * stride] = x[c * stride] - mx - lse;
    } else {
        for (int c = 0; c < C; c++) y[c * stride] = NR_EXPF(x[c * stride] - mx) / sum;
    }
}

/* Its gradient from its output y: dx = y * (dy - sum dy*y), or for
 * log_softmax dx = dy - exp(y) * sum dy. dx may be dy. */
NR_HD void nr_softmax_column_grad(const float *y, const float *dy, float *dx, int C, long long stride, int log_form)
{
    float dot = 0.0f;
    for (int c = 0; c < C; c++) dot += log_form ? dy[c * stride] : dy[c * stride] * y[c * stride];
    for (int c = 0; c < C; c++) {
        long long at = c * stride;
        dx[at] = log_form ? dy[at] - NR_EXPF(y[at]) * dot : y[at] * (dy[at] - dot);
    }
}

/* ---- BatchNorm's per-channel statistics -------------------------------------------- */

/* The running statistic after a batch: (1 - m) * running + m * batch, in double. */
NR_HD float nr_bn_running(float running, double m, double batch) { return (float)((1.0 - m) * running + m * batch); }

/* The running variance takes the unbiased estimate of count values (a
 * single value per channel has none: PyTorch refuses that case). */
NR_HD double nr_bn_unbiased(double var, long long count)
{
    return count > 1 ? var * (double)count / (double)(count - 1) : var;
}

/* 1 / sqrt(var + eps), in double, rounded once. */
NR_HD float nr_bn_invstd(double var, float eps) { return (float)(1.0 / NR_SQRT(var + (double)eps)); }

/* ---- dropout -------------------------------------------------------------------- */

/* The factor of a kept element, 1/(1-p) in float (0 when everything drops). */
NR_HD float nr_dropout_scale(float p) { return p >= 1.0f ? 0.0f : 1.0f / (1.0f - p); }

/* An element's factor from its uniform draw u: dropped when u < p. */
NR_HD float nr_dropout_factor(float u, float p, float scale) { return u < p ? 0.0f : scale; }

/* ---- padding ------------------------------------------------------------------- */

/* PyTorch's reflect padding: the edge pixel is not repeated. */
NR_HD int nr_reflect_index(int i, int n)
{
    if (i < 0) i = -i;
    if (i >= n) i = 2 * n - 2 - i;
    return i;
}

/* ---- Philox4x32-10 and the draws of runtime/rng.h ----------------------------------- */

/* What a stream is for; part of the counter so that purposes never share draws. */
typedef enum {
    NR_RNG_INIT = 1, NR_RNG_SHUFFLE, NR_RNG_SPLIT, NR_RNG_DROPOUT, NR_RNG_AUGMENT,
    NR_RNG_NOISE_TEST, NR_RNG_TEST   /* NR_RNG_TEST: tests' own inputs */
} nr_rng_purpose;

/* A stream: key = the seed, hi = purpose and two numbers telling uses
 * apart. Passed by value to kernels: the host's and the device's layout. */
typedef struct nr_stream {
    unsigned int key[2];
    unsigned int hi[2];
} nr_stream;

typedef struct nr_draw4 {
    unsigned int w[4];
} nr_draw4;

NR_HD unsigned int nr_mulhi32(unsigned int a, unsigned int b)
{
#if defined(__CUDA_ARCH__)
    return __umulhi(a, b);
#else
    return (unsigned int)(((unsigned long long)a * b) >> 32);
#endif
}

/* The high 64 bits of a * b. */
NR_HD unsigned long long nr_mulhi64(unsigned long long a, unsigned long long b)
{
#if defined(__CUDA_ARCH__)
    return __umul64hi(a, b);
#else
    __extension__ typedef unsigned __int128 nr_u128; /* GCC and Clang, C and C++ */
    return (unsigned long long)(((nr_u128)a * b) >> 64);
#endif
}

/* Philox4x32-10 of counter (c0, c1, c2, c3) under key (k0, k1). */
NR_HD nr_draw4 nr_philox4x32_10(unsigned int k0, unsigned int k1, unsigned int c0, unsigned int c1,
                                unsigned int c2, unsigned int c3)
{
    for (int round = 0; round < 10; round++) {
        unsigned int hi0 = nr_mulhi32(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        unsigned int hi1 = nr_mulhi32(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    nr_draw4 d;
    d.w[0] = c0;
    d.w[1] = c1;
    d.w[2] = c2;
    d.w[3] = c3;
    return d;
}

/* The stream for `purpose` (nr_stream_make): purpose in the top byte of
 * hi[1], a and b fill the rest. */
NR_HD nr_stream nr_stream_of(unsigned long long seed, unsigned int purpose, unsigned int a, unsigned int b)
{
    nr_stream s;
    s.key[0] = (unsigned int)seed;
    s.key[1] = (unsigned int)(seed >> 32);
    s.hi[0] = a;
    s.hi[1] = (purpose << 24) ^ b;
    return s;
}

/* Draw i of a stream: Philox(key = seed, counter = (i, hi)). */
NR_HD nr_draw4 nr_stream_draw(nr_stream s, unsigned long long i)
{
    return nr_philox4x32_10(s.key[0], s.key[1], (unsigned int)i, (unsigned int)(i >> 32), s.hi[0], s.hi[1]);
}

/* Uniform in [0, 1) from word 0 of draw i (24 bits). */
NR_HD float nr_stream_uniform(nr_stream s, unsigned long long i)
{
    return (float)(nr_stream_draw(s, i).w[0] >> 8) * (1.0f / 16777216.0f);
}

/* Standard normal from words 0 and 1 of draw i (Box-Muller in double);
 * u1 is in (0, 1] so the log is finite. */
NR_HD float nr_stream_normal(nr_stream s, unsigned long long i)
{
    nr_draw4 d = nr_stream_draw(s, i);
    double u1 = ((double)d.w[0] + 1.0) / 4294967296.0;
    double u2 = (double)d.w[1] / 4294967296.0;
    return (float)(NR_SQRT(-2.0 * NR_LOG(u1)) * NR_COS(6.283185307179586476925 * u2));
}

/* Uniform integer in [0, n) from words 0 and 1 of draw i (64-bit multiply-shift). */
NR_HD unsigned long long nr_stream_below(nr_stream s, unsigned long long i, unsigned long long n)
{
    nr_draw4 d = nr_stream_draw(s, i);
    return nr_mulhi64(((unsigned long long)d.w[1] << 32) | d.w[0], n);
}

/* ---- data: what runtime/preprocess.c and the GPU's batch kernels compute ------------ */

/* Which of nnorm per-channel values channel ch takes (one value serves every channel). */
NR_HD int nr_norm_index(int nnorm, int ch)
{
    int k = ch < nnorm ? ch : nnorm - 1;
    return k > 3 ? 3 : k;
}

/* Normalize: (x - mean) / std, subtraction then division as torchvision's sub_().div_(). */
NR_HD float nr_normalized(float x, float mean, float std) { return (x - mean) / std; }

/* x + std * z (z a standard normal draw), clamped to [lo, hi] when clamp. */
NR_HD float nr_noisy(float x, float z, float std, int clamp, float lo, float hi)
{
    float v = x + z * std;
    return clamp ? (v < lo ? lo : v > hi ? hi : v) : v;
}

/* Top-left corner of a size-long window in a padded dimension of `len`,
 * uniform over the valid positions (torchvision's randint(0, len - size + 1)).
 * A window larger than the padded image (the front end does not allow it)
 * gets the image at a uniformly random place inside it: a negative corner. */
NR_HD int nr_window_start(int len, int size, nr_stream s, unsigned long long draw)
{
    int spare = len >= size ? len - size : size - len;
    int r = (int)nr_stream_below(s, draw, (unsigned long long)spare + 1);
    return len >= size ? r : -r;
}

/* ---- the losses, one row (sample) at a time -----------------------------------------
 * PyTorch's semantics, reduction 'mean' applied by the caller (the row
 * functions take `scale`, 1/n, for the gradient). Sums run in double; the
 * gradient is written as float. */

/* The loss's options (nr_loss of runtime/netrt.h, field for field; also
 * the phase-1 loss kernel's argument). kind: nr_loss_kind's values. */
typedef struct nr_loss_args {
    int kind;
    float label_smoothing;        /* cross_entropy */
    int smoothing_other_classes;  /* 1-e on the true class, e/(C-1) elsewhere */
    int mse_softmax;              /* mse: softmax the outputs first */
    float margin;                 /* multi_margin */
    int p;                        /* multi_margin: 1 or 2 */
} nr_loss_args;

/* log(sum_j exp(x_j)) of one row, shifted by the maximum so exp cannot overflow. */
NR_HD double nr_log_sum_exp(const float *x, int classes)
{
    double mx = x[0];
    for (int j = 1; j < classes; j++)
        if (x[j] > mx) mx = x[j];
    double sum = 0.0;
    for (int j = 0; j < classes; j++) sum += NR_EXP(x[j] - mx);
    return mx + NR_LOG(sum);
}

/* The target distribution of label smoothing e: PyTorch's form puts
 * (1-e) + e/C on the label and e/C elsewhere; the SAM reference's form puts
 * 1-e on the label and e/(C-1) elsewhere. */
NR_HD double nr_smoothed_target(const nr_loss_args *a, int classes, int j, int label)
{
    double e = a->label_smoothing;
    if (a->smoothing_other_classes && classes > 1) return j == label ? 1.0 - e : e / (classes - 1);
    return (j == label ? 1.0 - e : 0.0) + e / classes;
}

/* -sum_j q_j logp_j for one row. Cross-entropy takes logits (logp =
 * x - lse, gradient softmax - q); NLL takes log-probabilities (logp = x,
 * gradient -q). */
NR_HD double nr_cross_entropy_row(const nr_loss_args *a, int classes, const float *x, int label, int from_logits,
                                  float *grad, double scale)
{
    double lse = from_logits ? nr_log_sum_exp(x, classes) : 0.0;
    double l = 0.0;
    for (int j = 0; j < classes; j++) {
        double logp = x[j] - lse;
        double q = nr_smoothed_target(a, classes, j, label);
        l -= q * logp;
        if (grad) grad[j] = (float)(scale * ((from_logits ? NR_EXP(logp) : 0.0) - q));
    }
    return l;
}

/* mean_j (s_j - onehot_j)^2 for one row, s = softmax(x) or x (PyTorch
 * averages MSE over all n*classes elements, hence the 1/classes here). */
NR_HD double nr_mse_row(const nr_loss_args *a, int classes, const float *x, int label, float *grad, double scale)
{
    scale = scale / classes;
    double lse = a->mse_softmax ? nr_log_sum_exp(x, classes) : 0.0;
    double l = 0.0, dot = 0.0; /* dot = sum_k g_k s_k, for the softmax's Jacobian */
    for (int j = 0; j < classes; j++) {
        double s = a->mse_softmax ? NR_EXP(x[j] - lse) : x[j];
        double d = s - (j == label);
        l += d * d;
        dot += 2.0 * d * s;
    }
    if (grad)
        for (int j = 0; j < classes; j++) {
            double s = a->mse_softmax ? NR_EXP(x[j] - lse) : x[j];
            double g = 2.0 * (s - (j == label));
            grad[j] = (float)(scale * (a->mse_softmax ? s * (g - dot) : g));
        }
    return l / classes;
}

/* sum_{j != y} max(0, margin - x_y + x_j)^p / C. */
NR_HD double nr_multi_margin_row(const nr_loss_args *a, int classes, const float *x, int label, float *grad,
                                 double scale)
{
    double l = 0.0, dlabel = 0.0;
    for (int j = 0; j < classes; j++) {
        if (grad) grad[j] = 0.0f;
        if (j == label) continue;
        double z = (double)a->margin - x[label] + x[j];
        if (z <= 0.0) continue;
        double term = a->p == 2 ? z * z : z;
        double dz = a->p == 2 ? 2.0 * z : 1.0;
        l += term / classes;
        if (grad) grad[j] = (float)(scale * dz / classes);
        dlabel -= dz / classes;
    }
    if (grad) grad[label] = (float)(scale * dlabel);
    return l;
}

/* The row's loss by kind (nr_loss_kind: cross-entropy 0, NLL 1, MSE 2,
 * multi-margin 3), its gradient times scale into grad unless NULL; NaN for
 * an unknown kind. */
NR_HD double nr_loss_row(const nr_loss_args *a, int classes, const float *x, int label, float *grad, double scale)
{
    switch (a->kind) {
    case 0: return nr_cross_entropy_row(a, classes, x, label, 1, grad, scale);
    case 1: return nr_cross_entropy_row(a, classes, x, label, 0, grad, scale);
    case 2: return nr_mse_row(a, classes, x, label, grad, scale);
    case 3: return nr_multi_margin_row(a, classes, x, label, grad, scale);
    default: return NR_LOG(-1.0); /* NaN */
    }
}

/* The first index of the row's maximum (NaN never wins: it fails >). */
NR_HD int nr_argmax_row(const float *x, int classes)
{
    int best = 0;
    for (int j = 1; j < classes; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

/* ---- optimizers: one parameter's update ------------------------------------------
 * torch.optim's single-tensor code (PyTorch 1.13) one float operation at a
 * time; the scalar coefficients (1 - beta, the bias corrections, -lr) are
 * computed by the caller in double and rounded to float once. */

/* The gradient with (coupled) weight decay. */
NR_HD float nr_decayed_grad(float g, float w, float wd) { return g + wd * w; }

/* A plain step: w - lr * d, as torch's add(d, alpha=-lr). */
NR_HD float nr_sgd_apply(float w, float lr, float d) { return w + (-lr) * d; }

/* The momentum buffer after the first step (torch clones d on the first). */
NR_HD float nr_momentum_buffer(float buf, float mu, float keep, float d) { return buf * mu + keep * d; }

/* Nesterov's step is d + mu * b, the plain one b: with (d_coef, b_coef) =
 * (1, mu) or (0, 1) one branch-free expression computes either exactly. */
NR_HD float nr_momentum_step(float d_coef, float d, float b_coef, float b) { return d_coef * d + b_coef * b; }

/* Adam's (and RMSprop's square average's) exponential moving averages. */
NR_HD float nr_ema(float m, float beta, float one_minus_beta, float d) { return m * beta + one_minus_beta * d; }
NR_HD float nr_ema_sq(float v, float beta, float one_minus_beta, float d) { return v * beta + one_minus_beta * d * d; }

/* Adam's update: w + (-step_size * m) / (sqrt(v) / sqrt(bc2) + eps). */
NR_HD float nr_adam_apply(float w, float neg_step_size, float m, float v, float bc2_sqrt, float eps)
{
    float denom = NR_SQRTF(v) / bc2_sqrt + eps;
    return w + neg_step_size * m / denom;
}

/* RMSprop's denominator sqrt(square_avg) + eps. */
NR_HD float nr_rmsprop_avg(float v, float eps) { return NR_SQRTF(v) + eps; }

/* RMSprop's step without momentum, in the CPU's order: (-lr * d) / avg. */
NR_HD float nr_rmsprop_apply(float w, float lr, float d, float avg) { return w + (-lr) * d / avg; }

/* SAM's norm term of one parameter: (|w| if adaptive else 1) * g, in double. */
NR_HD double nr_sam_term(int adaptive, float w, float g) { return adaptive ? NR_FABS((double)w) * g : (double)g; }

/* SAM's ascent scale rho / (norm + 1e-12). */
NR_HD float nr_sam_scale(float rho, double norm) { return (float)((double)rho / (norm + 1e-12)); }

/* SAM's ascent w + e: e = w^2 * g * scale (adaptive: w_coef 1) or g * scale
 * (w_coef 0); the factor 1 * w^2 + 0 or 0 * w^2 + 1 is exact and keeps the
 * CPU loop branch-free. */
NR_HD float nr_sam_ascended(float w, float w_coef, float g, float scale)
{
    float factor = w_coef * (w * w) + (1.0f - w_coef);
    return w + factor * g * scale;
}

#endif
