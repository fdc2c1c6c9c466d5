/* The templates of the kernels netc emits per model (compiler/emit_cuda.c):
 * a group's constants are a struct G emitted per group, and each of the
 * model's kernels is a two-line extern "C" wrapper instantiating one of
 * these templates over it. The per-element math is runtime/nr_math.h's,
 * the CPU backend's own. netc --emit-cuda prepends this file (with what it
 * includes expanded, as the build embeds it) to the model's part. */
#ifndef NR_CUDA_FUSED_CUH
#define NR_CUDA_FUSED_CUH
#include "common.cuh"

/* ---- what every group's kernels share ------------------------------------------
 * A group's constants are a struct G (below, one per group); the kernels are
 * templates over it, instantiated once each by the extern "C" wrappers. */

enum { ACT_NONE, ACT_TANH, ACT_RELU, ACT_LEAKY, ACT_SIGMOID };
enum { POOL_NONE, POOL_MAX, POOL_AVG };
/* Where a group's pre-activation value comes from. */
enum { SRC_CONV,        /* computed here: the conv as an implicit GEMM */
       SRC_GEMM_CONV,   /* cuBLAS output of an im2col conv, [O, N*OH*OW] */
       SRC_GEMM_DENSE,  /* cuBLAS output of a dense layer, [N, O] */
       SRC_INPUT };     /* the group's input itself, NCHW */

/* The activations are runtime/nr_math.h's: the CPU backend's own functions. */
__device__ __forceinline__ float act_forward(int act, float x, float slope)
{
    switch (act) {
    case ACT_TANH: return nr_tanh(x);
    case ACT_RELU: return nr_relu(x);
    case ACT_LEAKY: return nr_leaky_relu(x, slope);
    case ACT_SIGMOID: return nr_sigmoid(x);
    default: return x;
    }
}

/* saved is the activation's output, except for leaky relu: its input. */
__device__ __forceinline__ float act_backward(int act, float saved, float dy, float slope)
{
    switch (act) {
    case ACT_TANH: return nr_tanh_grad(saved, dy);
    case ACT_RELU: return nr_relu_grad(saved, dy);
    case ACT_LEAKY: return nr_leaky_relu_grad(saved, dy, slope);
    case ACT_SIGMOID: return nr_sigmoid_grad(saved, dy);
    default: return dy;
    }
}

struct chain_args {
    const float *x;      /* SRC_CONV, SRC_INPUT: the group's input; SRC_GEMM_*: cuBLAS' output */
    const float *w, *b;  /* SRC_CONV: weights and bias (folded with BatchNorm at inference) */
    const float *bn;     /* BatchNorm: mean [O], 1/sqrt(var + eps) [O] */
    const float *gamma, *beta;
    float *saved;        /* training: what the backward pass needs (see SAVES), else NULL */
    float *mask;         /* training with dropout: the factor per output, else NULL (no dropout) */
    float *y;
    int n;
    nr_stream drop;
};

/* The group's value at (img, o, oh, ow) before BatchNorm and activation. */
template <class G> __device__ __forceinline__ float produce(const chain_args &a, i64 img, int o, int oh, int ow)
{
    constexpr int PLANE = G::OH * G::OW;
    if (G::SRC == SRC_CONV) {
        const float *xi = a.x + img * G::C * G::H * G::W;
        const float *wo = a.w + (i64)o * G::C * G::KS * G::KS;
        float sum = 0.0f;
#pragma unroll 1
        for (int c = 0; c < G::C; c++)
            for (int ki = 0; ki < G::KS; ki++) {
                int ih = oh * G::STRIDE - G::PAD + ki;
                if (G::REFLECT) ih = nr_reflect_index(ih, G::H);
                else if (ih < 0 || ih >= G::H) continue;
                for (int kj = 0; kj < G::KS; kj++) {
                    int iw = ow * G::STRIDE - G::PAD + kj;
                    if (G::REFLECT) iw = nr_reflect_index(iw, G::W);
                    else if (iw < 0 || iw >= G::W) continue;
                    sum += xi[((i64)c * G::H + ih) * G::W + iw] * wo[(c * G::KS + ki) * G::KS + kj];
                }
            }
        return G::BIAS ? sum + a.b[o] : sum;
    }
    if (G::SRC == SRC_GEMM_CONV) {
        float v = a.x[(i64)o * a.n * PLANE + img * PLANE + oh * G::OW + ow];
        return G::BIAS ? v + a.b[o] : v;
    }
    if (G::SRC == SRC_GEMM_DENSE) {
        float v = a.x[img * G::O + o];
        return G::BIAS ? v + a.b[o] : v;
    }
    return a.x[(img * G::O + o) * PLANE + oh * G::OW + ow];
}

/* One thread per output of the group: the producer's value at each position
 * of the pooling window, BatchNorm, activation (kept in saved for the
 * backward pass), the pooling, the dropout. */
template <class G> __device__ void chain_forward(const chain_args &a)
{
    constexpr int PLANE = G::OH * G::OW, OUT = G::PH * G::PW;
    constexpr int WIN = G::POOL == POOL_NONE ? 1 : G::PK;
    GRID_STRIDE(i, (i64)a.n * G::O * OUT) {
        int pw = (int)(i % G::PW), ph = (int)(i / G::PW % G::PH), o = (int)(i / OUT % G::O);
        i64 img = i / ((i64)OUT * G::O);
        float scale = 1.0f, shift = 0.0f;
        if (G::BN) {
            scale = G::BN_AFFINE ? a.gamma[o] * a.bn[G::O + o] : a.bn[G::O + o];
            shift = (G::BN_AFFINE ? a.beta[o] : 0.0f) - a.bn[o] * scale;
        }
        float acc = G::POOL == POOL_MAX ? __int_as_float(0xff800000) : 0.0f;
        for (int r = 0; r < WIN; r++)
            for (int c = 0; c < WIN; c++) {
                int oh = G::POOL == POOL_NONE ? ph : ph * G::PS - G::PP + r;
                int ow = G::POOL == POOL_NONE ? pw : pw * G::PS - G::PP + c;
                if (oh < 0 || oh >= G::OH || ow < 0 || ow >= G::OW) continue;
                float z = produce<G>(a, img, o, oh, ow);
                if (G::BN) z = z * scale + shift;
                float v = act_forward(G::ACT, z, G::SLOPE);
                if (G::SAVES && a.saved) a.saved[(img * G::O + o) * PLANE + oh * G::OW + ow] = G::ACT == ACT_LEAKY ? z : v;
                if (G::POOL == POOL_MAX) {
                    if (v > acc || v != v) acc = v;
                } else {
                    acc += v;
                }
            }
        if (G::POOL == POOL_AVG) {
            int hs = ph * G::PS - G::PP, ws = pw * G::PS - G::PP;
            int he = min(hs + G::PK, G::OH + G::PP), we = min(ws + G::PK, G::OW + G::PP);
            acc = acc / (float)((he - hs) * (we - ws));
        }
        if (G::DROP && a.mask) {
            float f = nr_dropout_factor(nr_stream_uniform(a.drop, (u64)i), G::DROP_P, nr_dropout_scale(G::DROP_P));
            a.mask[i] = f;
            acc = acc * f;
        }
        a.y[i] = acc;
    }
}

struct chain_grad_args {
    const float *dy;     /* gradient at the group's output */
    const float *saved;  /* as the forward pass left it (the input itself when SAVES is false) */
    const float *mask;   /* dropout factors, or NULL */
    float *dz;           /* gradient at the producer's output (or BatchNorm's), in the producer's layout */
    float *db;           /* dense producer without BatchNorm: its bias gradient, else NULL */
    int n;
};

/* The first and last outputs along one axis whose pooling window covers index h. */
__device__ __forceinline__ int first_covering(int h, int k, int s, int pad)
{
    int last = h + pad - k;
    return last < 0 ? 0 : last / s + 1;
}

__device__ __forceinline__ int last_covering(int h, int s, int pad, int limit) { return min((h + pad) / s, limit - 1); }

/* The activation's value (what the pooling saw) from saved. */
template <class G> __device__ __forceinline__ float pooled_value(const float *saved, i64 at)
{
    return G::ACT == ACT_LEAKY ? act_forward(ACT_LEAKY, saved[at], G::SLOPE) : saved[at];
}

/* The gradient reaching pre-pool position (img, o, oh, ow) from the windows that cover it. */
template <class G> __device__ __forceinline__ float pool_backward(const chain_grad_args &a, i64 img, int o, int oh, int ow)
{
    constexpr int PLANE = G::OH * G::OW;
    const float *plane = a.saved + (img * G::O + o) * PLANE;
    i64 out_base = (img * G::O + o) * G::PH * G::PW;
    if (G::PK == G::PS && G::PP == 0 && G::POOL == POOL_MAX) {
        /* windows side by side (the usual case): the one window, found by a division */
        int ph = oh / G::PS, pw = ow / G::PS;
        if (ph >= G::PH || pw >= G::PW) return 0.0f;
        i64 oi = out_base + ph * G::PW + pw;
        float best = __int_as_float(0xff800000);
        int best_at = -1;
#pragma unroll
        for (int r = 0; r < G::PK; r++)
#pragma unroll
            for (int c = 0; c < G::PK; c++) {
                int at = (ph * G::PS + r) * G::OW + pw * G::PS + c;
                float v = pooled_value<G>(plane, at);
                if (v > best || v != v) {
                    best = v;
                    best_at = at;
                }
            }
        if (best_at != oh * G::OW + ow) return 0.0f;
        return a.mask ? a.dy[oi] * a.mask[oi] : a.dy[oi];
    }
    int ph0 = first_covering(oh, G::PK, G::PS, G::PP), ph1 = last_covering(oh, G::PS, G::PP, G::PH);
    int pw0 = first_covering(ow, G::PK, G::PS, G::PP), pw1 = last_covering(ow, G::PS, G::PP, G::PW);
    float sum = 0.0f;
    for (int ph = ph0; ph <= ph1; ph++)
        for (int pw = pw0; pw <= pw1; pw++) {
            i64 oi = out_base + ph * G::PW + pw;
            float d = a.mask ? a.dy[oi] * a.mask[oi] : a.dy[oi];
            int hs = ph * G::PS - G::PP, ws = pw * G::PS - G::PP;
            if (G::POOL == POOL_AVG) {
                int he = min(hs + G::PK, G::OH + G::PP), we = min(ws + G::PK, G::OW + G::PP);
                sum += d / (float)((he - hs) * (we - ws));
                continue;
            }
            /* max: the first maximum of the window (NaN wins) takes the gradient */
            float best = __int_as_float(0xff800000);
            int best_at = -1;
            for (int r = max(hs, 0); r < min(hs + G::PK, G::OH); r++)
                for (int c = max(ws, 0); c < min(ws + G::PK, G::OW); c++) {
                    float v = pooled_value<G>(plane, r * G::OW + c);
                    if (v > best || v != v) {
                        best = v;
                        best_at = r * G::OW + c;
                    }
                }
            if (best_at == oh * G::OW + ow) sum += d;
        }
    return sum;
}

/* One thread per producer position (o, oh, ow), the batch in order: the
 * mirror of chain_forward down to the producer's output, and a dense
 * layer's bias gradient summed in the CPU's row order. */
template <class G> __device__ void chain_backward(const chain_grad_args &a)
{
    constexpr int PLANE = G::OH * G::OW;
    GRID_STRIDE(t, (i64)G::O * PLANE) {
        int o = (int)(t / PLANE), p = (int)(t % PLANE), oh = p / G::OW, ow = p % G::OW;
        float bias_grad = 0.0f;
        for (int img = 0; img < a.n; img++) {
            i64 at = ((i64)img * G::O + o) * PLANE + p;
            float g = G::POOL == POOL_NONE ? (a.mask ? a.dy[at] * a.mask[at] : a.dy[at])
                                           : pool_backward<G>(a, img, o, oh, ow);
            if (G::ACT != ACT_NONE) g = act_backward(G::ACT, a.saved[at], g, G::SLOPE);
            if (G::WRITES_DZ) {
                i64 to = G::SRC == SRC_GEMM_CONV && !G::BN ? (i64)o * a.n * PLANE + (i64)img * PLANE + p : at;
                a.dz[to] = g;
            }
            bias_grad += g;
        }
        if (a.db) a.db[o] = bias_grad;
    }
}

/* ---- BatchNorm in training: statistics, then the normalize in chain_forward ----- */

/* One block per channel (bn_channel_stats, common.cuh). */
template <class G> __device__ void bn_stats(const float *x, float *saved, float *running_mean, float *running_var,
                                            int n, int training, int update)
{
    constexpr int PLANE = G::OH * G::OW;
    __shared__ double shared[NR_CUDA_BLOCK];
    i64 count = (i64)n * PLANE;
    for (int c = blockIdx.x; c < G::O; c += gridDim.x)
        bn_channel_stats<int>(x, c, G::O, PLANE, count, G::BN_EPS, G::BN_MOMENTUM, training, update, saved,
                              running_mean, running_var, shared);
}

/* One block per channel (bn_channel_grad_sums, common.cuh): the affine
 * gradients (dparams: dgamma [O], dbeta [O], or NULL) and the two means dx needs. */
template <class G> __device__ void bn_reduce(const float *x, const float *dy, const float *saved, float *dparams,
                                             float *coef, int n)
{
    constexpr int PLANE = G::OH * G::OW;
    __shared__ double shared[NR_CUDA_BLOCK];
    i64 count = (i64)n * PLANE;
    for (int c = blockIdx.x; c < G::O; c += gridDim.x) {
        double sum_dy, sum_dy_xhat;
        bn_channel_grad_sums(x, dy, saved, c, G::O, PLANE, count, shared, &sum_dy, &sum_dy_xhat);
        if (threadIdx.x == 0) {
            if (dparams) {
                dparams[c] = (float)sum_dy_xhat;
                dparams[G::O + c] = (float)sum_dy;
            }
            coef[c] = (float)(sum_dy / (double)count);
            coef[G::O + c] = (float)(sum_dy_xhat / (double)count);
        }
    }
}

/* One thread per (channel, position), the batch in order: dx in the
 * producer's layout, and a dense producer's bias gradient (db, or NULL). */
template <class G> __device__ void bn_dx(const float *x, const float *dy, float *dx, const float *saved,
                                         const float *gamma, const float *coef, float *db, int n)
{
    constexpr int PLANE = G::OH * G::OW;
    GRID_STRIDE(t, (i64)G::O * PLANE) {
        int c = (int)(t / PLANE), p = (int)(t % PLANE);
        float mean = saved[c], invstd = saved[G::O + c];
        float k = (G::BN_AFFINE ? gamma[c] : 1.0f) * invstd;
        float bias_grad = 0.0f;
        for (int img = 0; img < n; img++) {
            i64 at = ((i64)img * G::O + c) * PLANE + p;
            float xhat = (x[at] - mean) * invstd;
            float g = k * (dy[at] - coef[c] - xhat * coef[G::O + c]);
            dx[G::SRC == SRC_GEMM_CONV ? (i64)c * n * PLANE + (i64)img * PLANE + p : at] = g;
            bias_grad += g;
        }
        if (db) db[c] = bias_grad;
    }
}

/* Inference: BatchNorm folded into the producer, w' = w * s, b' = (b - mean) * s + beta
 * with s = gamma / sqrt(running_var + eps). One thread per output channel. */
template <class G> __device__ void bn_fold(const float *w, const float *b, const float *gamma, const float *beta,
                                           const float *running_mean, const float *running_var, float *wf, float *bf)
{
    GRID_STRIDE(o, (i64)G::O) {
        float s = nr_bn_invstd((double)running_var[o], G::BN_EPS);
        if (G::BN_AFFINE) s = gamma[o] * s;
        for (i64 k = 0; k < G::FAN_IN; k++) wf[o * G::FAN_IN + k] = w[o * G::FAN_IN + k] * s;
        bf[o] = ((G::BIAS ? b[o] : 0.0f) - running_mean[o]) * s + (G::BN_AFFINE ? beta[o] : 0.0f);
    }
}

/* ---- convolution: parameter and input gradients -------------------------------- */

/* Implicit GEMM: one block per weight (o, c, ki, kj), then one per bias; the
 * sum over the batch and the output plane in double. dz is NCHW. */
template <class G> __device__ void conv_param_grad(const float *x, const float *dz, float *dw, float *db, int n)
{
    constexpr int PLANE = G::OH * G::OW, NW = G::O * G::C * G::KS * G::KS;
    __shared__ double shared[NR_CUDA_BLOCK];
    for (int j = blockIdx.x; j < NW + (G::BIAS ? G::O : 0); j += gridDim.x) {
        double sum = 0.0;
        i64 count = (i64)n * PLANE;
        if (j < NW) {
            int kj = j % G::KS, ki = j / G::KS % G::KS, c = j / (G::KS * G::KS) % G::C, o = j / (G::KS * G::KS * G::C);
            for (i64 e = threadIdx.x; e < count; e += NR_CUDA_BLOCK) {
                i64 img = e / PLANE;
                int p = (int)(e % PLANE), oh = p / G::OW, ow = p % G::OW;
                int ih = oh * G::STRIDE - G::PAD + ki, iw = ow * G::STRIDE - G::PAD + kj;
                if (G::REFLECT) {
                    ih = nr_reflect_index(ih, G::H);
                    iw = nr_reflect_index(iw, G::W);
                } else if (ih < 0 || ih >= G::H || iw < 0 || iw >= G::W) {
                    continue;
                }
                sum += (double)dz[(img * G::O + o) * PLANE + p] * x[((img * G::C + c) * G::H + ih) * G::W + iw];
            }
            sum = block_sum(sum, shared);
            if (threadIdx.x == 0) dw[j] = (float)sum;
        } else {
            int o = j - NW;
            for (i64 e = threadIdx.x; e < count; e += NR_CUDA_BLOCK) sum += dz[(e / PLANE * G::O + o) * PLANE + e % PLANE];
            sum = block_sum(sum, shared);
            if (threadIdx.x == 0) db[o] = (float)sum;
        }
    }
}

/* The t-th padded position (t = 0, 1, 2) that reads input index h: h itself
 * and, under reflect padding, its two mirror images; else out of range. */
__device__ __forceinline__ int source_position(int t, int h, int n, bool reflect)
{
    if (t == 0) return h;
    if (!reflect) return -(1 << 30);
    if (t == 1) return h > 0 ? -h : -(1 << 30);
    return h < n - 1 ? 2 * n - 2 - h : -(1 << 30);
}

/* Output index o with o*s - pad + kidx == pos, or -1. */
__device__ __forceinline__ int output_index(int pos, int pad, int kidx, int s, int limit)
{
    int num = pos + pad - kidx;
    if (num < 0 || num % s) return -1;
    int o = num / s;
    return o < limit ? o : -1;
}

/* dx gathered per input element (no atomics, a fixed order). dz is NCHW for
 * the implicit GEMM, else the columns' gradient [C*KS*KS, N*OH*OW] (col2im). */
template <class G> __device__ void conv_input_grad(const float *dz, const float *w, float *dx, int n)
{
    constexpr int PLANE = G::OH * G::OW;
    constexpr int MIRRORS = G::REFLECT ? 3 : 1;
    GRID_STRIDE(i, (i64)n * G::C * G::H * G::W) {
        int iw = (int)(i % G::W), ih = (int)(i / G::W % G::H), c = (int)(i / (G::W * G::H) % G::C);
        i64 img = i / ((i64)G::W * G::H * G::C);
        float sum = 0.0f;
        for (int ki = 0; ki < G::KS; ki++)
            for (int th = 0; th < MIRRORS; th++) {
                int oh = output_index(source_position(th, ih, G::H, G::REFLECT), G::PAD, ki, G::STRIDE, G::OH);
                if (oh < 0) continue;
                for (int kj = 0; kj < G::KS; kj++)
                    for (int tw = 0; tw < MIRRORS; tw++) {
                        int ow = output_index(source_position(tw, iw, G::W, G::REFLECT), G::PAD, kj, G::STRIDE, G::OW);
                        if (ow < 0) continue;
                        int p = oh * G::OW + ow;
                        if (G::SRC == SRC_CONV) {
#pragma unroll 1
                            for (int o = 0; o < G::O; o++)
                                sum += dz[(img * G::O + o) * PLANE + p] * w[((o * G::C + c) * G::KS + ki) * G::KS + kj];
                        } else {
                            i64 row = ((i64)c * G::KS + ki) * G::KS + kj;
                            sum += dz[row * n * PLANE + img * PLANE + p];
                        }
                    }
            }
        dx[i] = sum;
    }
}

/* im2col for cuBLAS: cols [C*KS*KS, N*OH*OW], row (c, ki, kj), column (img, oh, ow). */
template <class G> __device__ void conv_im2col(const float *x, float *cols, int n)
{
    constexpr int PLANE = G::OH * G::OW;
    i64 ld = (i64)n * PLANE;
    GRID_STRIDE(i, (i64)G::C * G::KS * G::KS * ld) {
        i64 row = i / ld, col = i % ld;
        i64 img = col / PLANE;
        int p = (int)(col % PLANE), oh = p / G::OW, ow = p % G::OW;
        int kj = (int)(row % G::KS), ki = (int)(row / G::KS % G::KS), c = (int)(row / (G::KS * G::KS));
        int ih = oh * G::STRIDE - G::PAD + ki, iw = ow * G::STRIDE - G::PAD + kj;
        float v = 0.0f;
        if (G::REFLECT)
            v = x[((img * G::C + c) * G::H + nr_reflect_index(ih, G::H)) * G::W + nr_reflect_index(iw, G::W)];
        else if (ih >= 0 && ih < G::H && iw >= 0 && iw < G::W)
            v = x[((img * G::C + c) * G::H + ih) * G::W + iw];
        cols[i] = v;
    }
}

/* The bias gradient of an im2col conv: row sums of dz [O, N*OH*OW], one block per row. */
template <class G> __device__ void conv_bias_grad_rows(const float *dz, float *db, int n)
{
    __shared__ double shared[NR_CUDA_BLOCK];
    i64 cols = (i64)n * G::OH * G::OW;
    for (int o = blockIdx.x; o < G::O; o += gridDim.x) {
        double sum = 0.0;
        for (i64 j = threadIdx.x; j < cols; j += NR_CUDA_BLOCK) sum += dz[(i64)o * cols + j];
        sum = block_sum(sum, shared);
        if (threadIdx.x == 0) db[o] = (float)sum;
    }
}

/* ---- softmax and log_softmax over channels (inside the model) ------------------- */

template <class G> __device__ void softmax_forward(const float *x, float *y, int n)
{
    constexpr int PLANE = G::OH * G::OW;
    GRID_STRIDE(i, (i64)n * PLANE) {
        i64 base = i / PLANE * G::O * PLANE + i % PLANE;
        nr_softmax_column(x + base, y + base, G::O, PLANE, G::LOG);
    }
}

template <class G> __device__ void softmax_backward(const float *y, const float *dy, float *dx, int n)
{
    constexpr int PLANE = G::OH * G::OW;
    GRID_STRIDE(i, (i64)n * PLANE) {
        i64 base = i / PLANE * G::O * PLANE + i % PLANE;
        nr_softmax_column_grad(y + base, dy + base, dx + base, G::O, PLANE, G::LOG);
    }
}

/* ---- the loss: softmax, loss, its gradient and the accuracy in one kernel ----------
 * One block of NR_CUDA_BLOCK threads, a sample per thread at a time, each row in
 * double as runtime/cpu/loss.c computes it. The last dense layer's bias is
 * added here (and its gradient summed here) when the model ends with it. */

/* nr_loss_kind's values (runtime/netrt.h), as nr_loss_row reads them. */
enum { LOSS_CROSS_ENTROPY, LOSS_NLL, LOSS_MSE, LOSS_MULTI_MARGIN };

struct loss_args {
    const float *z;      /* the last dense layer's cuBLAS output, or the model's output */
    const float *b;      /* that layer's bias, or NULL */
    float *out;          /* the model's output (written when the loss computes it) */
    float *dz;           /* gradient at z, or NULL (evaluation) */
    float *db;           /* gradient of b, or NULL */
    const int *labels;
    int n;
    double *totals;      /* += loss sum, correct count, bad labels: read once per epoch */
    float *step_loss;    /* the step's mean loss, or NULL */
};

/* The loss's options as runtime/nr_math.h's row functions take them. */
template <class L> __device__ __forceinline__ nr_loss_args loss_options()
{
    nr_loss_args o;
    o.kind = L::KIND;
    o.label_smoothing = L::SMOOTHING;
    o.smoothing_other_classes = L::SMOOTH_OTHER;
    o.mse_softmax = L::MSE_SOFTMAX;
    o.margin = L::MARGIN;
    o.p = L::P;
    return o;
}

template <class L> __device__ void loss_step(const loss_args &a)
{
    __shared__ double shared[NR_CUDA_BLOCK];
    constexpr int K = L::CLASSES;
    const nr_loss_args opts = loss_options<L>();
    double total = 0.0, correct = 0.0, bad = 0.0, scale = 1.0 / a.n;
    for (int i = threadIdx.x; i < a.n; i += NR_CUDA_BLOCK) {
        const float *x = a.z + (i64)i * K;
        if (L::COMPUTES_OUT) {
            float *y = a.out + (i64)i * K;
            for (int j = 0; j < K; j++) y[j] = L::BIAS ? x[j] + a.b[j] : x[j];
            if (L::SOFTMAX) nr_softmax_column(y, y, K, 1, L::SOFTMAX == 2); /* the model's final (log_)softmax */
            x = y;
        }
        float *g = a.dz ? a.dz + (i64)i * K : 0;
        int label = a.labels[i];
        if (label < 0 || label >= K) {
            bad += 1.0;
            continue;
        }
        correct += nr_argmax_row(x, K) == label;
        total += nr_loss_row(&opts, K, x, label, g, scale);
        if (g && L::SOFTMAX) nr_softmax_column_grad(x, g, g, K, 1, L::SOFTMAX == 2); /* back through it, in place */
    }
    if (L::BIAS && a.db) { /* the bias gradient: column sums in row order, as the CPU */
        __syncthreads();
        for (int j = threadIdx.x; j < K; j += NR_CUDA_BLOCK) {
            float sum = 0.0f;
            for (int i = 0; i < a.n; i++) sum += a.dz[(i64)i * K + j];
            a.db[j] = sum;
        }
    }
    total = block_sum(total, shared);
    correct = block_sum(correct, shared);
    bad = block_sum(bad, shared);
    if (threadIdx.x == 0) {
        a.totals[0] += total;
        a.totals[1] += correct;
        a.totals[2] += bad;
        if (a.step_loss) a.step_loss[0] = bad > 0.0 ? __int_as_float(0x7fc00000) : (float)(total * scale);
    }
}

/* ---- the optimizer: one kernel over the flat parameter buffer --------------------
 * What changes from step to step (the scheduled learning rate, Adam's bias
 * corrections) is read from device memory, so a captured step replays as is;
 * the host fills it as runtime/optim.c computes it, in double rounded once. */

struct step_scalars {
    float lr;
    float neg_step_size;   /* Adam: -lr / (1 - beta1^t) */
    float bc2_sqrt;        /* Adam: sqrt(1 - beta2^t) */
    float decay_factor;    /* AdamW: 1 - lr * weight_decay */
    int first;             /* SGD with momentum: the first step (buf = d) */
};

/* SAM, ascent part 1: per-block sums of squares of (|w| if adaptive else 1) * g. */
template <class O> __device__ void sam_sumsq(const float *w, const float *g, double *partial)
{
    __shared__ double shared[NR_CUDA_BLOCK];
    double s = 0.0;
    GRID_STRIDE(i, O::PARAMS) {
        double x = nr_sam_term(O::SAM_ADAPTIVE, w[i], g[i]);
        s += x * x;
    }
    s = block_sum(s, shared);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* Part 2: every block sums the partials (same order, same norm), then
 * saved = w; w += (w^2 if adaptive else 1) * g * rho / (norm + 1e-12). */
template <class O> __device__ void sam_ascend(float *w, const float *g, float *saved, const double *partial, int nparts)
{
    __shared__ double shared[NR_CUDA_BLOCK];
    double s = 0.0;
    for (int j = threadIdx.x; j < nparts; j += NR_CUDA_BLOCK) s += partial[j];
    s = block_sum(s, shared);
    float scale = nr_sam_scale(O::SAM_RHO, sqrt(s));
    GRID_STRIDE(i, O::PARAMS) {
        float wi = w[i];
        saved[i] = wi;
        w[i] = nr_sam_ascended(wi, O::SAM_ADAPTIVE ? 1.0f : 0.0f, g[i], scale);
    }
}

/* The updates, runtime/optim.c's element by element. SAM's step starts
 * from the weights saved before the ascent (the ascent is undone). */

template <class O> __device__ __forceinline__ float start_weight(const float *w, const float *saved, i64 i)
{
    return O::SAM ? saved[i] : w[i];
}

/* SGD; state: the momentum buffer (with momentum). */
template <class O> __device__ void sgd_update(float *w, const float *g, float *state, const float *saved,
                                              const step_scalars *sc)
{
    const float lr = sc->lr;
    GRID_STRIDE(i, O::PARAMS) {
        float wi = start_weight<O>(w, saved, i);
        float d = nr_decayed_grad(g[i], wi, O::WEIGHT_DECAY);
        if (O::MOMENTUM == 0.0f) {
            w[i] = nr_sgd_apply(wi, lr, d);
            continue;
        }
        float buf = sc->first ? d : nr_momentum_buffer(state[i], O::MOMENTUM, 1.0f - O::DAMPENING, d);
        state[i] = buf;
        w[i] = nr_sgd_apply(wi, lr, O::NESTEROV ? nr_momentum_step(1.0f, d, O::MOMENTUM, buf)
                                                : nr_momentum_step(0.0f, d, 1.0f, buf));
    }
}

/* Adam (DECOUPLED false) and AdamW; state: exp_avg, then exp_avg_sq. */
template <class O, bool DECOUPLED> __device__ void adam_update(float *w, const float *g, float *state,
                                                               const float *saved, const step_scalars *sc)
{
    float *m = state, *v = state + O::PARAMS;
    GRID_STRIDE(i, O::PARAMS) {
        float wi = start_weight<O>(w, saved, i);
        if (DECOUPLED) wi = wi * sc->decay_factor;
        float d = nr_decayed_grad(g[i], wi, DECOUPLED ? 0.0f : O::WEIGHT_DECAY);
        float mi = nr_ema(m[i], O::BETA1, 1.0f - O::BETA1, d);
        float vi = nr_ema_sq(v[i], O::BETA2, 1.0f - O::BETA2, d);
        m[i] = mi;
        v[i] = vi;
        w[i] = nr_adam_apply(wi, sc->neg_step_size, mi, vi, sc->bc2_sqrt, O::EPS);
    }
}

/* RMSprop; state: square_avg, then the momentum buffer (with momentum). */
template <class O> __device__ void rmsprop_update(float *w, const float *g, float *state, const float *saved,
                                                  const step_scalars *sc)
{
    const float lr = sc->lr;
    float *v = state, *buf = state + O::PARAMS;
    GRID_STRIDE(i, O::PARAMS) {
        float wi = start_weight<O>(w, saved, i);
        float d = nr_decayed_grad(g[i], wi, O::WEIGHT_DECAY);
        float vi = nr_ema_sq(v[i], O::ALPHA, 1.0f - O::ALPHA, d);
        v[i] = vi;
        float avg = nr_rmsprop_avg(vi, O::EPS);
        if (O::MOMENTUM > 0.0f) {
            float b = nr_momentum_buffer(buf[i], O::MOMENTUM, 1.0f, d / avg);
            buf[i] = b;
            w[i] = nr_sgd_apply(wi, lr, b);
        } else {
            w[i] = nr_rmsprop_apply(wi, lr, d, avg);
        }
    }
}

#endif
