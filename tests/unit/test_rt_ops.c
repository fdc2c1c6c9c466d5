/* The CPU backend's layers and losses, checked against small double-precision
 * references written here as plainly as possible (naive loops straight from
 * PyTorch's definitions).
 *
 * How gradients are checked: the float kernels are what is under test, so
 * the float forward is compared with the double reference forward, and the
 * float backward with central differences of the double reference (h = 1e-6:
 * truncation error ~h^2 and rounding ~1e-16/h are both near 1e-9, far below
 * float precision). Differencing the float forward instead would need
 * h ~ 1e-2 and tolerances loose enough to hide real bugs. An element passes
 * when |got - want| <= RTOL |want| + ATOL max|want|: float32 accumulates a
 * few hundred products here, a relative error of some 1e-6 of the largest
 * terms, while a wrong formula is off by O(1). */
#include "cpu/dense_avx512.h"
#include "cpu/ops.h"
#include "nr_error.h"
#include "tap.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 2e-4
#define ATOL 2e-5
#define FD_STEP 1e-6
#define MAX_LAYERS 8
#define MAX_SHOWN 6

/* ---- data ------------------------------------------------------------------ */

static void fill_uniform(float *v, size_t count, uint32_t tag, float lo, float hi)
{
    nr_stream s = nr_stream_make(20240607, NR_RNG_TEST, tag, 0);
    for (size_t i = 0; i < count; i++) v[i] = lo + (hi - lo) * nr_uniform(s, i);
}

static void *must_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    return p;
}

static float *floats(size_t count) { return must_calloc(count, sizeof(float)); }
static double *doubles(size_t count) { return must_calloc(count, sizeof(double)); }

static double *to_double(const float *v, size_t count)
{
    double *d = doubles(count);
    for (size_t i = 0; i < count; i++) d[i] = v[i];
    return d;
}

/* 1 when every got[i] is within tolerance of want[i]; prints the first
 * mismatches otherwise, as TAP comments. */
static int close_enough(const char *what, const float *got, const double *want, size_t count, double rtol,
                        double atol)
{
    double scale = 0.0;
    for (size_t i = 0; i < count; i++)
        if (fabs(want[i]) > scale) scale = fabs(want[i]); /* fabs(NAN) > x is false */
    int bad = 0;
    for (size_t i = 0; i < count; i++) {
        if (isnan(want[i]) && isnan(got[i])) continue; /* unchecked (or NaN on both sides) */
        double err = fabs((double)got[i] - want[i]);
        if (err <= rtol * fabs(want[i]) + atol * scale) continue;
        if (bad < MAX_SHOWN) printf("# %s[%zu]: got %.9g want %.9g\n", what, i, (double)got[i], want[i]);
        bad++;
    }
    if (bad) printf("# %s: %d of %zu elements differ (largest |want| %g)\n", what, bad, count, scale);
    return bad == 0;
}

/* ---- layers ------------------------------------------------------------------- */

static nr_layer layer_of(nr_kind kind, int c, int h, int w)
{
    nr_layer L;
    memset(&L, 0, sizeof L);
    L.name = "test";
    L.kind = kind;
    L.in_rank = L.out_rank = h == 1 && w == 1 ? 1 : 3;
    L.in_c = L.out_c = c;
    L.in_h = L.out_h = h;
    L.in_w = L.out_w = w;
    L.eps = 1e-5f;
    L.momentum = 0.1f;
    L.slope = 0.2f;
    return L;
}

static int window_count(int size, int k, int s, int pad) { return (size + 2 * pad - k) / s + 1; }

static nr_layer conv_layer(int c, int h, int w, int oc, int k, int s, int pad, int reflect, int bias)
{
    nr_layer L = layer_of(NR_CONV, c, h, w);
    L.kernel = k, L.stride = s, L.padding = pad, L.reflect = reflect, L.bias = bias;
    L.out_c = oc;
    L.out_h = window_count(h, k, s, pad);
    L.out_w = window_count(w, k, s, pad);
    L.out_rank = 3;
    return L;
}

static nr_layer pool_layer(nr_kind kind, int c, int h, int w, int k, int s, int pad)
{
    nr_layer L = layer_of(kind, c, h, w);
    L.kernel = k, L.stride = s, L.padding = pad;
    L.out_h = window_count(h, k, s, pad);
    L.out_w = window_count(w, k, s, pad);
    return L;
}

static nr_layer dense_layer(int in, int out, int bias)
{
    nr_layer L = layer_of(NR_DENSE, in, 1, 1);
    L.out_c = out;
    L.bias = bias;
    return L;
}

static nr_layer bn_layer(int c, int h, int w, int affine)
{
    nr_layer L = layer_of(NR_BATCHNORM, c, h, w);
    L.affine = affine;
    return L;
}

static nr_layer flatten_layer(int c, int h, int w)
{
    nr_layer L = layer_of(NR_FLATTEN, c, h, w);
    L.out_rank = 1;
    L.out_c = c * h * w;
    L.out_h = L.out_w = 1;
    return L;
}

static size_t in_count(const nr_layer *L, int n) { return (size_t)n * L->in_c * L->in_h * L->in_w; }
static size_t out_count(const nr_layer *L, int n) { return (size_t)n * L->out_c * L->out_h * L->out_w; }

/* ---- double-precision references ------------------------------------------ */

/* Input pixel (i, j) of a conv's plane as padding defines it. */
static double conv_input(const nr_layer *L, const double *plane, int i, int j)
{
    int H = L->in_h, W = L->in_w;
    if (L->reflect) {
        if (i < 0) i = -i;
        if (i >= H) i = 2 * (H - 1) - i;
        if (j < 0) j = -j;
        if (j >= W) j = 2 * (W - 1) - j;
    } else if (i < 0 || i >= H || j < 0 || j >= W) {
        return 0.0;
    }
    return plane[i * W + j];
}

static void ref_conv(const nr_layer *L, int n, const double *x, const double *p, double *y)
{
    int C = L->in_c, O = L->out_c, k = L->kernel, HW = L->in_h * L->in_w;
    const double *bias = p + (size_t)O * C * k * k;
    for (int b = 0; b < n; b++)
        for (int o = 0; o < O; o++)
            for (int oh = 0; oh < L->out_h; oh++)
                for (int ow = 0; ow < L->out_w; ow++) {
                    double sum = L->bias ? bias[o] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++)
                                sum += p[((o * C + c) * k + ki) * k + kj] *
                                       conv_input(L, x + (size_t)(b * C + c) * HW, oh * L->stride - L->padding + ki,
                                                  ow * L->stride - L->padding + kj);
                    y[((size_t)(b * O + o) * L->out_h + oh) * L->out_w + ow] = sum;
                }
}

static void ref_dense(const nr_layer *L, int n, const double *x, const double *p, double *y)
{
    int I = L->in_c, O = L->out_c;
    for (int b = 0; b < n; b++)
        for (int o = 0; o < O; o++) {
            double sum = L->bias ? p[(size_t)O * I + o] : 0.0;
            for (int i = 0; i < I; i++) sum += p[(size_t)o * I + i] * x[(size_t)b * I + i];
            y[(size_t)b * O + o] = sum;
        }
}

/* Max over the window's pixels inside the image (padding is -inf); the
 * average divides by k*k (count_include_pad, floor mode). */
static void ref_pool(const nr_layer *L, int n, const double *x, double *y)
{
    int H = L->in_h, W = L->in_w, k = L->kernel;
    for (int plane = 0; plane < n * L->in_c; plane++)
        for (int oh = 0; oh < L->out_h; oh++)
            for (int ow = 0; ow < L->out_w; ow++) {
                double best = -INFINITY, sum = 0.0;
                for (int ki = 0; ki < k; ki++)
                    for (int kj = 0; kj < k; kj++) {
                        int i = oh * L->stride - L->padding + ki, j = ow * L->stride - L->padding + kj;
                        if (i < 0 || i >= H || j < 0 || j >= W) continue;
                        double v = x[(size_t)plane * H * W + i * W + j];
                        sum += v;
                        if (v > best) best = v;
                    }
                y[((size_t)plane * L->out_h + oh) * L->out_w + ow] = L->kind == NR_MAXPOOL ? best : sum / (k * k);
            }
}

static void ref_batchnorm(const nr_layer *L, int n, const double *x, const double *p, double *buf, int flags,
                          double *y)
{
    int C = L->in_c, hw = L->in_h * L->in_w;
    double count = (double)n * hw;
    for (int c = 0; c < C; c++) {
        double mean = buf[c], var = buf[C + c];
        if (flags & NR_TRAINING) {
            double sum = 0.0, sq = 0.0;
            for (int b = 0; b < n; b++)
                for (int i = 0; i < hw; i++) sum += x[((size_t)b * C + c) * hw + i];
            mean = sum / count;
            for (int b = 0; b < n; b++)
                for (int i = 0; i < hw; i++) {
                    double d = x[((size_t)b * C + c) * hw + i] - mean;
                    sq += d * d;
                }
            var = sq / count;
            if (flags & NR_UPDATE_STATS) {
                buf[c] = (1 - L->momentum) * buf[c] + L->momentum * mean;
                buf[C + c] = (1 - L->momentum) * buf[C + c] + L->momentum * sq / (count - 1);
            }
        }
        for (int b = 0; b < n; b++)
            for (int i = 0; i < hw; i++) {
                size_t at = ((size_t)b * C + c) * hw + i;
                double xhat = (x[at] - mean) / sqrt(var + (double)L->eps);
                y[at] = L->affine ? xhat * p[c] + p[C + c] : xhat;
            }
    }
}

static void ref_dropout(const nr_layer *L, int n, const double *x, int flags, nr_stream s, double *y)
{
    size_t per = in_count(L, 1);
    for (size_t i = 0; i < (size_t)n * per; i++) {
        int drop = (flags & NR_TRAINING) && nr_uniform(s, i) < L->p;
        y[i] = !(flags & NR_TRAINING) ? x[i] : drop ? 0.0 : x[i] / (1.0 - L->p);
    }
}

static double ref_activation(const nr_layer *L, double v)
{
    switch (L->kind) {
    case NR_TANH: return tanh(v);
    case NR_RELU: return v > 0 ? v : 0.0;
    case NR_LEAKY_RELU: return v > 0 ? v : L->slope * v;
    case NR_SIGMOID: return 1.0 / (1.0 + exp(-v));
    default: return v;
    }
}

/* Softmax and log_softmax over the channels at each position. */
static void ref_softmax(const nr_layer *L, int n, const double *x, double *y)
{
    int C = L->in_c, hw = L->in_h * L->in_w;
    for (int b = 0; b < n; b++)
        for (int q = 0; q < hw; q++) {
            double sum = 0.0;
            for (int c = 0; c < C; c++) sum += exp(x[((size_t)b * C + c) * hw + q]);
            for (int c = 0; c < C; c++) {
                size_t at = ((size_t)b * C + c) * hw + q;
                y[at] = L->kind == NR_SOFTMAX ? exp(x[at]) / sum : x[at] - log(sum);
            }
        }
}

static void ref_forward(const nr_layer *L, int n, const double *x, const double *p, double *buf, int flags,
                        nr_stream drop, double *y)
{
    switch (L->kind) {
    case NR_CONV: ref_conv(L, n, x, p, y); break;
    case NR_DENSE: ref_dense(L, n, x, p, y); break;
    case NR_MAXPOOL:
    case NR_AVGPOOL: ref_pool(L, n, x, y); break;
    case NR_BATCHNORM: ref_batchnorm(L, n, x, p, buf, flags, y); break;
    case NR_DROPOUT: ref_dropout(L, n, x, flags, drop, y); break;
    case NR_SOFTMAX:
    case NR_LOG_SOFTMAX: ref_softmax(L, n, x, y); break;
    default:
        for (size_t i = 0; i < in_count(L, n); i++) y[i] = ref_activation(L, x[i]);
        break;
    }
}

/* The target distribution of label smoothing, as the two forms define it. */
static double ref_target(const nr_loss *loss, int C, int j, int label)
{
    double e = loss->label_smoothing;
    if (loss->smoothing_other_classes) return j == label ? 1.0 - e : e / (C - 1);
    return (j == label ? 1.0 - e : 0.0) + e / C;
}

static double ref_loss(const nr_loss *loss, int n, int C, const double *x, const int *labels)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const double *row = x + (size_t)i * C;
        int y = labels[i];
        double sum = 0.0;
        for (int j = 0; j < C; j++) sum += exp(row[j]);
        for (int j = 0; j < C; j++) {
            double t = j == y;
            switch (loss->kind) {
            case NR_LOSS_CROSS_ENTROPY: total -= ref_target(loss, C, j, y) * (row[j] - log(sum)); break;
            case NR_LOSS_NLL: total -= ref_target(loss, C, j, y) * row[j]; break;
            case NR_LOSS_MSE: {
                double s = loss->mse_softmax ? exp(row[j]) / sum : row[j];
                total += (s - t) * (s - t) / C; /* the mean over all n*C elements */
                break;
            }
            case NR_LOSS_MULTI_MARGIN:
                if (j != y) total += pow(fmax(0.0, loss->margin - row[y] + row[j]), loss->p) / C;
                break;
            }
        }
    }
    return total / n;
}

/* ---- a chain of layers, optionally ending in a loss ------------------------------ */

typedef struct chain {
    int nl, n, flags;
    nr_layer L[MAX_LAYERS];
    nr_stream drop;
    float *x;
    float *params[MAX_LAYERS], *buffers[MAX_LAYERS];
    const nr_loss *loss; /* NULL: the objective is sum(r * output) */
    int classes;
    int *labels;
    double *r;
    size_t max_fd; /* at most about this many differences per tensor; 0: every element */
} chain;

static void chain_start(chain *ch, int n, int flags)
{
    memset(ch, 0, sizeof *ch);
    ch->n = n;
    ch->flags = flags;
    ch->drop = nr_stream_make(99, NR_RNG_DROPOUT, 3, 1);
    ch->max_fd = 400; /* every element of the small tensors */
}

/* Adds a layer with PyTorch's init; BatchNorm gets non-trivial gamma, beta
 * and running statistics so that no term of its formula hides behind 1 or 0. */
static void chain_add(chain *ch, nr_layer L)
{
    int i = ch->nl++;
    CU_ASSERT_FATAL(i < MAX_LAYERS);
    ch->L[i] = L;
    ch->params[i] = floats(nr_layer_param_count(&L));
    ch->buffers[i] = floats(nr_layer_buffer_count(&L));
    nr_layer_init(&L, ch->params[i], ch->buffers[i], 5, (uint32_t)i);
    if (L.kind == NR_BATCHNORM) {
        if (L.affine) {
            fill_uniform(ch->params[i], L.in_c, 100 + i, 0.5f, 1.5f);
            fill_uniform(ch->params[i] + L.in_c, L.in_c, 200 + i, -0.5f, 0.5f);
        }
        fill_uniform(ch->buffers[i], L.in_c, 300 + i, -0.3f, 0.3f);
        fill_uniform(ch->buffers[i] + L.in_c, L.in_c, 400 + i, 0.5f, 1.5f);
    }
}

/* Input, output weights and labels, once the layers are in. */
static void chain_data(chain *ch, float lo, float hi)
{
    const nr_layer *last = &ch->L[ch->nl - 1];
    ch->x = floats(in_count(&ch->L[0], ch->n));
    fill_uniform(ch->x, in_count(&ch->L[0], ch->n), 1, lo, hi);
    ch->r = doubles(out_count(last, ch->n));
    nr_stream s = nr_stream_make(7, NR_RNG_TEST, 2, 0);
    for (size_t i = 0; i < out_count(last, ch->n); i++) ch->r[i] = 2.0 * nr_uniform(s, i) - 1.0;
    ch->classes = last->out_c * last->out_h * last->out_w;
    ch->labels = must_calloc((size_t)ch->n, sizeof *ch->labels);
    for (int b = 0; b < ch->n; b++) ch->labels[b] = (int)nr_below(s, 1000000 + (uint64_t)b, (uint64_t)ch->classes);
}

static void chain_free(chain *ch)
{
    for (int i = 0; i < ch->nl; i++) {
        free(ch->params[i]);
        free(ch->buffers[i]);
    }
    free(ch->x);
    free(ch->r);
    free(ch->labels);
}

/* The double reference objective at (x, params); the output into out when not NULL. */
static double ref_objective(const chain *ch, const double *x, double *const *params, double *out)
{
    const double *in = x;
    double *owned = NULL, objective = 0.0;
    for (int i = 0; i < ch->nl; i++) {
        const nr_layer *L = &ch->L[i];
        double *y = doubles(out_count(L, ch->n));
        double *buf = to_double(ch->buffers[i], nr_layer_buffer_count(L));
        ref_forward(L, ch->n, in, params[i], buf, ch->flags, ch->drop, y);
        free(buf);
        free(owned);
        in = owned = y;
    }
    size_t count = out_count(&ch->L[ch->nl - 1], ch->n);
    if (out) memcpy(out, in, count * sizeof *out);
    if (ch->loss)
        objective = ref_loss(ch->loss, ch->n, ch->classes, in, ch->labels);
    else
        for (size_t i = 0; i < count; i++) objective += ch->r[i] * in[i];
    free(owned);
    return objective;
}

/* The float kernels: forward, loss (or the weighted sum), backward. dparams
 * and dx start as garbage to show that backward overwrites them. Buffers
 * are copies, so the chain's own stay as they were. */
static double float_pass(const chain *ch, float *out, float *dx, float **dparams)
{
    float *act[MAX_LAYERS + 1], *grad[MAX_LAYERS + 1], *saved[MAX_LAYERS], *buffers[MAX_LAYERS];
    size_t scratch_count = 0;
    for (int i = 0; i < ch->nl; i++)
        if (nr_layer_scratch_count(&ch->L[i], ch->n) > scratch_count)
            scratch_count = nr_layer_scratch_count(&ch->L[i], ch->n);
    float *scratch = floats(scratch_count);
    act[0] = ch->x;
    for (int i = 0; i < ch->nl; i++) {
        const nr_layer *L = &ch->L[i];
        act[i + 1] = floats(out_count(L, ch->n));
        grad[i + 1] = floats(out_count(L, ch->n));
        saved[i] = floats(nr_layer_saved_count(L, ch->n));
        buffers[i] = floats(nr_layer_buffer_count(L));
        memcpy(buffers[i], ch->buffers[i], nr_layer_buffer_count(L) * sizeof(float));
        nr_cpu_forward(L, ch->n, act[i], act[i + 1], ch->params[i], buffers[i], saved[i], scratch, ch->flags,
                       ch->drop);
    }
    const nr_layer *last = &ch->L[ch->nl - 1];
    size_t count = out_count(last, ch->n);
    float *y = act[ch->nl], *dy = grad[ch->nl];
    double objective = 0.0;
    if (ch->loss) {
        objective = nr_loss_forward_backward(ch->loss, ch->n, ch->classes, y, ch->labels, dy, NULL);
    } else {
        for (size_t i = 0; i < count; i++) {
            objective += ch->r[i] * y[i];
            dy[i] = (float)ch->r[i];
        }
    }
    if (out) memcpy(out, y, count * sizeof *out);
    grad[0] = dx;
    for (int i = ch->nl - 1; i >= 0; i--) {
        const nr_layer *L = &ch->L[i];
        for (size_t j = 0; j < nr_layer_param_count(L); j++) dparams[i][j] = 12345.0f;
        if (grad[i])
            for (size_t j = 0; j < in_count(L, ch->n); j++) grad[i][j] = -777.0f;
        nr_cpu_backward(L, ch->n, act[i], act[i + 1], grad[i + 1], grad[i], ch->params[i], dparams[i], saved[i],
                        scratch);
    }
    for (int i = 0; i < ch->nl; i++) {
        free(act[i + 1]);
        free(grad[i + 1]);
        free(saved[i]);
        free(buffers[i]);
    }
    free(scratch);
    return objective;
}

/* Central differences of the reference objective w.r.t. v[j] for the
 * checked indices (every one, or max_fd spread over the tensor); the
 * unchecked entries of fd are NAN, and got's are set to NAN to match. */
static void finite_differences(const chain *ch, double *x, double **params, double *v, size_t count, double *fd,
                               float *got)
{
    size_t step = ch->max_fd && count > ch->max_fd ? count / ch->max_fd : 1;
    for (size_t j = 0; j < count; j++) {
        if (j % step != 0 && j != count - 1) {
            fd[j] = NAN;
            got[j] = NAN;
            continue;
        }
        double keep = v[j];
        v[j] = keep + FD_STEP;
        double plus = ref_objective(ch, x, params, NULL);
        v[j] = keep - FD_STEP;
        double minus = ref_objective(ch, x, params, NULL);
        v[j] = keep;
        fd[j] = (plus - minus) / (2 * FD_STEP);
    }
}

/* Forward output, objective, and the gradients w.r.t. the input and every
 * parameter: float kernels against the double reference. */
static int check_chain(const chain *ch, const char *what)
{
    const nr_layer *first = &ch->L[0], *last = &ch->L[ch->nl - 1];
    size_t nx = in_count(first, ch->n), ny = out_count(last, ch->n);
    float *out = floats(ny), *dx = floats(nx), *dparams[MAX_LAYERS];
    double *params[MAX_LAYERS];
    for (int i = 0; i < ch->nl; i++) {
        size_t np = nr_layer_param_count(&ch->L[i]);
        dparams[i] = floats(np);
        params[i] = to_double(ch->params[i], np);
    }
    double got_objective = float_pass(ch, out, dx, dparams);
    double *x = to_double(ch->x, nx), *want = doubles(ny);
    double want_objective = ref_objective(ch, x, params, want);
    char label[160];
    snprintf(label, sizeof label, "%s forward", what);
    int ok = close_enough(label, out, want, ny, 1e-5, 1e-5);
    if (fabs(got_objective - want_objective) > 1e-5 * (1.0 + fabs(want_objective))) {
        printf("# %s objective: got %.9g want %.9g\n", what, got_objective, want_objective);
        ok = 0;
    }
    double *fd = doubles(nx);
    finite_differences(ch, x, params, x, nx, fd, dx);
    snprintf(label, sizeof label, "%s dx", what);
    ok &= close_enough(label, dx, fd, nx, RTOL, ATOL);
    free(fd);
    for (int i = 0; i < ch->nl; i++) {
        size_t np = nr_layer_param_count(&ch->L[i]);
        if (np) {
            fd = doubles(np);
            finite_differences(ch, x, params, params[i], np, fd, dparams[i]);
            snprintf(label, sizeof label, "%s dparams of layer %d", what, i);
            ok &= close_enough(label, dparams[i], fd, np, RTOL, ATOL);
            free(fd);
        }
    }
    for (int i = 0; i < ch->nl; i++) {
        free(dparams[i]);
        free(params[i]);
    }
    free(x);
    free(want);
    free(out);
    free(dx);
    return ok;
}

/* One layer, objective sum(r * y), inputs in [-1, 1]. */
static int check_layer(nr_layer L, int n, int flags)
{
    chain ch;
    chain_start(&ch, n, flags);
    chain_add(&ch, L);
    chain_data(&ch, -1.0f, 1.0f);
    static const char *names[] = { "conv", "dense", "maxpool", "avgpool", "batchnorm", "dropout", "flatten",
                                   "tanh", "relu", "leaky_relu", "sigmoid", "softmax", "log_softmax" };
    char what[120];
    snprintf(what, sizeof what, "%s %dx%dx%d k%d s%d p%d%s%s flags %d", names[L.kind], L.in_c, L.in_h, L.in_w,
             L.kernel, L.stride, L.padding, L.reflect ? " reflect" : "", L.bias || L.affine ? " +params" : "", flags);
    int ok = check_chain(&ch, what);
    chain_free(&ch);
    return ok;
}

/* ---- gradient checks of every kind ------------------------------------------------ */

static const int TRAIN = NR_TRAINING | NR_UPDATE_STATS;

static void test_conv_gradients(void)
{
    CU_ASSERT(check_layer(conv_layer(2, 7, 7, 3, 3, 2, 1, 0, 1), 2, TRAIN));  /* stride 2, zero pad */
    CU_ASSERT(check_layer(conv_layer(2, 6, 5, 3, 3, 1, 0, 0, 0), 3, TRAIN));  /* no pad, no bias, H != W */
    CU_ASSERT(check_layer(conv_layer(3, 6, 6, 2, 5, 1, 2, 1, 1), 2, TRAIN));  /* reflect pad 2 */
    CU_ASSERT(check_layer(conv_layer(2, 7, 6, 4, 3, 2, 1, 1, 0), 2, TRAIN));  /* reflect, stride 2 */
    CU_ASSERT(check_layer(conv_layer(3, 5, 5, 4, 1, 1, 0, 0, 1), 2, TRAIN));  /* 1x1 */
    CU_ASSERT(check_layer(conv_layer(2, 5, 5, 6, 5, 1, 0, 0, 1), 5, TRAIN));  /* one output pixel */
    CU_ASSERT(check_layer(conv_layer(1, 9, 9, 2, 4, 3, 2, 0, 1), 1, TRAIN));  /* even k, stride 3 */
}

/* A layer whose im2col columns exceed one chunk per image: the batch is
 * then cut into several GEMMs per thread. Differences are sampled. */
static void test_conv_large_chunks(void)
{
    chain ch;
    chain_start(&ch, 3, TRAIN);
    chain_add(&ch, conv_layer(2, 64, 64, 3, 3, 1, 1, 0, 1));
    chain_data(&ch, -1.0f, 1.0f);
    ch.max_fd = 150;
    CU_ASSERT(check_chain(&ch, "conv 2x64x64 batch 3"));
    chain_free(&ch);
}

/* LeNet-5's first conv: forward keeps its im2col columns for backward as
 * one [K, n*P] matrix, which the threads fill and read in several chunks. */
static void test_conv_kept_columns(void)
{
    chain ch;
    chain_start(&ch, 13, TRAIN); /* chunks of 6 images: 2 or 3 chunks per thread */
    chain_add(&ch, conv_layer(1, 28, 28, 6, 5, 1, 2, 0, 1));
    chain_add(&ch, layer_of(NR_TANH, 6, 28, 28));
    chain_data(&ch, 0.0f, 1.0f);
    ch.max_fd = 60;
    size_t kept = nr_cpu_direct_conv(&ch.L[0]) ? 0 : (size_t)13 * 25 * 28 * 28; /* direct: nothing kept */
    CU_ASSERT(nr_layer_saved_count(&ch.L[0], 13) == kept);
    CU_ASSERT(check_chain(&ch, "conv 1x28x28 k5 p2 batch 13"));
    chain_free(&ch);
}

/* The shapes the direct kernels cut differently: rows of one partial strip
 * (expanded: 10, 8, 12 wide), of full strips (32) and of two strips (20 in
 * row mode would idle lanes, so expanded); output channels in uneven
 * blocks (17); even kernels; reflect padding with an input gradient. On a
 * CPU without AVX-512 (or NETC_CPU_KERNELS=generic) they check im2col + GEMM. */
static void test_conv_direct_shapes(void)
{
    static const struct {
        int c, h, w, oc, k, pad, reflect, n;
    } shapes[] = {
        { 6, 14, 14, 16, 5, 0, 0, 3 }, /* LeNet-5's conv2 */
        { 3, 32, 32, 6, 5, 2, 1, 2 },  /* CIFAR HW02's conv1 */
        { 16, 8, 8, 32, 3, 1, 0, 2 },  /* its conv3 */
        { 2, 9, 20, 17, 3, 1, 0, 2 },
        { 2, 14, 14, 3, 3, 1, 1, 2 },  /* reflect, rows of 14 (row mode), dx folded */
        { 2, 12, 12, 5, 3, 1, 1, 2 },  /* reflect, expanded */
        { 2, 7, 7, 3, 2, 1, 0, 3 },
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        chain ch;
        chain_start(&ch, shapes[i].n, TRAIN);
        chain_add(&ch, conv_layer(shapes[i].c, shapes[i].h, shapes[i].w, shapes[i].oc, shapes[i].k, 1, shapes[i].pad,
                                  shapes[i].reflect, 1));
        chain_data(&ch, -1.0f, 1.0f);
        ch.max_fd = 80;
        char what[96];
        snprintf(what, sizeof what, "conv %dx%dx%d -> %d k%d p%d%s", shapes[i].c, shapes[i].h, shapes[i].w,
                 shapes[i].oc, shapes[i].k, shapes[i].pad, shapes[i].reflect ? " reflect" : "");
        CU_ASSERT(check_chain(&ch, what));
        chain_free(&ch);
    }
}

/* On a CPU with AVX-512 the direct convolutions and the dense kernels must
 * be the ones in use (the checks would otherwise test only the fallback). */
static void test_conv_direct_chosen(void)
{
    nr_layer stride1 = conv_layer(6, 14, 14, 16, 5, 1, 0, 0, 1), stride2 = conv_layer(2, 7, 7, 3, 3, 2, 1, 0, 1);
    const char *choice = getenv("NETC_CPU_KERNELS");
    int generic = choice && strcmp(choice, "generic") == 0;
#if defined(__x86_64__) && defined(__GNUC__)
    int avx512 = __builtin_cpu_supports("avx512f");
#else
    int avx512 = 0;
#endif
    printf("# direct convolutions: %s\n",
           avx512 && !generic ? "in use" : generic ? "off (NETC_CPU_KERNELS=generic)" : "no AVX-512");
    CU_ASSERT_EQUAL(nr_cpu_direct_conv(&stride1), avx512 && !generic);
    CU_ASSERT_FALSE(nr_cpu_direct_conv(&stride2));
    CU_ASSERT_EQUAL(nr_dense_avx512_usable(), avx512 && !generic);
}

static void test_dense_gradients(void)
{
    CU_ASSERT(check_layer(dense_layer(7, 5, 1), 4, TRAIN));
    CU_ASSERT(check_layer(dense_layer(6, 3, 0), 3, TRAIN));
    CU_ASSERT(check_layer(dense_layer(300, 40, 1), 9, TRAIN)); /* big enough to run threaded */
}

static void test_pool_gradients(void)
{
    nr_kind kinds[] = { NR_MAXPOOL, NR_AVGPOOL };
    for (int i = 0; i < 2; i++) {
        CU_ASSERT(check_layer(pool_layer(kinds[i], 2, 7, 7, 3, 2, 1), 2, TRAIN)); /* pad, stride != kernel */
        CU_ASSERT(check_layer(pool_layer(kinds[i], 3, 6, 6, 2, 2, 0), 2, TRAIN));
        CU_ASSERT(check_layer(pool_layer(kinds[i], 1, 5, 6, 3, 1, 1), 2, TRAIN)); /* overlapping windows */
        CU_ASSERT(check_layer(pool_layer(kinds[i], 2, 7, 7, 2, 3, 0), 2, TRAIN)); /* gaps between windows */
    }
}

static void test_batchnorm_gradients(void)
{
    int modes[] = { TRAIN, NR_TRAINING, 0 };
    for (int m = 0; m < 3; m++)
        for (int affine = 0; affine < 2; affine++) {
            CU_ASSERT(check_layer(bn_layer(5, 1, 1, affine), 6, modes[m]));
            CU_ASSERT(check_layer(bn_layer(4, 3, 5, affine), 3, modes[m]));
        }
}

static void test_dropout_gradients(void)
{
    nr_layer L = layer_of(NR_DROPOUT, 3, 4, 4);
    L.p = 0.4f;
    CU_ASSERT(check_layer(L, 3, TRAIN));
    CU_ASSERT(check_layer(L, 3, 0));
    nr_layer flat = layer_of(NR_DROPOUT, 20, 1, 1);
    flat.p = 0.5f;
    CU_ASSERT(check_layer(flat, 4, TRAIN));
}

static void test_activation_gradients(void)
{
    nr_kind kinds[] = { NR_TANH, NR_RELU, NR_LEAKY_RELU, NR_SIGMOID, NR_SOFTMAX, NR_LOG_SOFTMAX };
    for (int i = 0; i < 6; i++) {
        CU_ASSERT(check_layer(layer_of(kinds[i], 9, 1, 1), 4, TRAIN));
        CU_ASSERT(check_layer(layer_of(kinds[i], 3, 4, 5), 2, TRAIN)); /* softmax: over channels per pixel */
    }
    CU_ASSERT(check_layer(flatten_layer(3, 4, 5), 2, TRAIN));
}

/* ---- losses ---------------------------------------------------------------- */

static int check_loss(nr_loss loss, const char *what)
{
    chain ch;
    chain_start(&ch, 6, TRAIN);
    chain_add(&ch, layer_of(NR_RELU, 7, 1, 1)); /* logits pass through: inputs are positive */
    chain_data(&ch, 0.05f, 2.5f);
    ch.loss = &loss;
    int ok = check_chain(&ch, what);
    int correct = -1;
    double l = nr_loss_forward_backward(&loss, ch.n, ch.classes, ch.x, ch.labels, NULL, &correct);
    int want = 0;
    for (int b = 0; b < ch.n; b++) {
        int best = 0;
        for (int j = 1; j < ch.classes; j++)
            if (ch.x[b * ch.classes + j] > ch.x[b * ch.classes + best]) best = j;
        want += best == ch.labels[b];
    }
    if (correct != want || !isfinite(l)) {
        printf("# %s: correct %d want %d, loss %g\n", what, correct, want, l);
        ok = 0;
    }
    chain_free(&ch);
    return ok;
}

static void test_loss_gradients(void)
{
    nr_loss ce = { NR_LOSS_CROSS_ENTROPY, 0, 0, 0, 0, 0 };
    CU_ASSERT(check_loss(ce, "cross_entropy"));
    ce.label_smoothing = 0.1f;
    CU_ASSERT(check_loss(ce, "cross_entropy smoothing e/C"));
    ce.smoothing_other_classes = 1;
    CU_ASSERT(check_loss(ce, "cross_entropy smoothing e/(C-1)"));
    nr_loss nll = { NR_LOSS_NLL, 0, 0, 0, 0, 0 };
    CU_ASSERT(check_loss(nll, "nll"));
    nll.label_smoothing = 0.2f;
    CU_ASSERT(check_loss(nll, "nll smoothing"));
    nr_loss mse = { NR_LOSS_MSE, 0, 0, 0, 0, 0 };
    CU_ASSERT(check_loss(mse, "mse"));
    mse.mse_softmax = 1;
    CU_ASSERT(check_loss(mse, "mse softmax"));
    nr_loss mm = { NR_LOSS_MULTI_MARGIN, 0, 0, 0, 1.0f, 1 };
    CU_ASSERT(check_loss(mm, "multi_margin p1"));
    mm.p = 2;
    CU_ASSERT(check_loss(mm, "multi_margin p2"));
    mm.margin = 0.5f;
    CU_ASSERT(check_loss(mm, "multi_margin p2 margin 0.5"));
}

/* Values worked out by hand (and matching PyTorch's documentation examples). */
static void test_loss_values(void)
{
    int label0 = 0, label3 = 3;
    float uniform[3] = { 0, 0, 0 };
    nr_loss ce = { NR_LOSS_CROSS_ENTROPY, 0, 0, 0, 0, 0 };
    CU_ASSERT_DOUBLE_EQUAL(nr_loss_forward_backward(&ce, 1, 3, uniform, &label0, NULL, NULL), log(3.0), 1e-7);
    /* logits 2,1,0, label 0: log-probabilities -0.4076059, -1.4076059, -2.4076059 */
    float logits[3] = { 2, 1, 0 };
    ce.label_smoothing = 0.3f; /* targets 0.8, 0.1, 0.1 */
    CU_ASSERT_DOUBLE_EQUAL(nr_loss_forward_backward(&ce, 1, 3, logits, &label0, NULL, NULL), 0.7076059, 1e-6);
    ce.smoothing_other_classes = 1; /* targets 0.7, 0.15, 0.15 */
    CU_ASSERT_DOUBLE_EQUAL(nr_loss_forward_backward(&ce, 1, 3, logits, &label0, NULL, NULL), 0.8576059, 1e-6);
    float margins[4] = { 0.1f, 0.2f, 0.4f, 0.8f }; /* torch.nn.MultiMarginLoss's example: 0.3250 */
    nr_loss mm = { NR_LOSS_MULTI_MARGIN, 0, 0, 0, 1.0f, 1 };
    CU_ASSERT_DOUBLE_EQUAL(nr_loss_forward_backward(&mm, 1, 4, margins, &label3, NULL, NULL), 0.325, 1e-6);
    float two[2] = { 0, 0 };
    nr_loss mse = { NR_LOSS_MSE, 0, 0, 1, 0, 0 }; /* softmax 0.5, 0.5 against 1, 0 */
    CU_ASSERT_DOUBLE_EQUAL(nr_loss_forward_backward(&mse, 1, 2, two, &label0, NULL, NULL), 0.25, 1e-7);
    mse.mse_softmax = 0; /* (0-1)^2 and 0^2 over 2 elements */
    CU_ASSERT_DOUBLE_EQUAL(nr_loss_forward_backward(&mse, 1, 2, two, &label0, NULL, NULL), 0.5, 1e-7);
    nr_loss nll = { NR_LOSS_NLL, 0, 0, 0, 0, 0 };
    float logp[6] = { -0.5f, -1.0f, -2.0f, -3.0f, -0.25f, -4.0f };
    int labels[2] = { 1, 2 }, correct = -1;
    float grad[6];
    CU_ASSERT_DOUBLE_EQUAL(nr_loss_forward_backward(&nll, 2, 3, logp, labels, grad, &correct), (1.0 + 4.0) / 2,
                           1e-7);
    CU_ASSERT_EQUAL(correct, 0);
    CU_ASSERT_DOUBLE_EQUAL(grad[1], -0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(grad[0], 0.0, 1e-7);
    int bad = 3;
    CU_ASSERT(isnan(nr_loss_forward_backward(&ce, 1, 3, logits, &bad, NULL, NULL)));
}

/* ---- combinations ------------------------------------------------------------ */

static void test_chain_conv_bn_relu_pool_dense(void)
{
    nr_loss ce = { NR_LOSS_CROSS_ENTROPY, 0.1f, 0, 0, 0, 0 };
    chain ch;
    chain_start(&ch, 4, TRAIN);
    chain_add(&ch, conv_layer(2, 6, 6, 3, 3, 1, 1, 0, 1));
    chain_add(&ch, bn_layer(3, 6, 6, 1));
    chain_add(&ch, layer_of(NR_RELU, 3, 6, 6));
    chain_add(&ch, pool_layer(NR_MAXPOOL, 3, 6, 6, 2, 2, 0));
    chain_add(&ch, flatten_layer(3, 3, 3));
    chain_add(&ch, dense_layer(27, 5, 1));
    chain_data(&ch, -1.0f, 1.0f);
    ch.loss = &ce;
    CU_ASSERT(check_chain(&ch, "conv-bn-relu-maxpool-flatten-dense-ce"));
    chain_free(&ch);
}

static void test_chain_lenet_like(void)
{
    nr_loss nll = { NR_LOSS_NLL, 0, 0, 0, 0, 0 };
    chain ch;
    chain_start(&ch, 3, TRAIN);
    chain_add(&ch, conv_layer(1, 8, 8, 2, 3, 1, 1, 1, 1)); /* reflect */
    chain_add(&ch, layer_of(NR_TANH, 2, 8, 8));
    chain_add(&ch, pool_layer(NR_AVGPOOL, 2, 8, 8, 2, 2, 0));
    chain_add(&ch, conv_layer(2, 4, 4, 3, 3, 1, 0, 0, 1));
    chain_add(&ch, flatten_layer(3, 2, 2));
    chain_add(&ch, dense_layer(12, 4, 1));
    chain_add(&ch, layer_of(NR_LOG_SOFTMAX, 4, 1, 1));
    chain_data(&ch, 0.0f, 1.0f);
    ch.loss = &nll;
    CU_ASSERT(check_chain(&ch, "lenet-like tanh-avgpool-log_softmax-nll"));
    chain_free(&ch);
}

static void test_chain_dropout_mse(void)
{
    nr_loss mse = { NR_LOSS_MSE, 0, 0, 1, 0, 0 };
    nr_layer drop = layer_of(NR_DROPOUT, 8, 1, 1);
    drop.p = 0.3f;
    chain ch;
    chain_start(&ch, 5, TRAIN);
    chain_add(&ch, dense_layer(6, 8, 1));
    chain_add(&ch, bn_layer(8, 1, 1, 1));
    chain_add(&ch, layer_of(NR_LEAKY_RELU, 8, 1, 1));
    chain_add(&ch, drop);
    chain_add(&ch, dense_layer(8, 4, 0));
    chain_data(&ch, -1.0f, 1.0f);
    ch.loss = &mse;
    CU_ASSERT(check_chain(&ch, "dense-bn1d-leaky-dropout-dense-mse"));
    chain_free(&ch);
}

/* ---- forward values by hand --------------------------------------------------------- */

/* Forward of one layer with its own buffers; returns the output (caller frees). */
static float *run_forward(const nr_layer *L, int n, const float *x, const float *params, float *buffers, int flags,
                          nr_stream drop)
{
    float *y = floats(out_count(L, n)), *saved = floats(nr_layer_saved_count(L, n));
    float *scratch = floats(nr_layer_scratch_count(L, n));
    nr_cpu_forward(L, n, x, y, params, buffers, saved, scratch, flags, drop);
    free(saved);
    free(scratch);
    return y;
}

/* The dense layer's products (AVX-512 kernels where the CPU has them, else
 * BLAS) against sums in double, on shapes that cut every kernel tile: rows
 * and columns by fours, vectors of 16 and their partial last one, inputs
 * shorter and longer than a vector; bias on and off; no dx for the first
 * layer. Tolerance atol + rtol * (sum of the terms' magnitudes). */
static int dense_matches(int n, int in, int out, int bias, int with_dx)
{
    nr_layer L = dense_layer(in, out, bias);
    size_t np = nr_layer_param_count(&L);
    float *x = floats((size_t)n * in), *p = floats(np), *dy = floats((size_t)n * out);
    float *dx = floats((size_t)n * in), *dp = floats(np);
    fill_uniform(x, (size_t)n * in, 1, -1.0f, 1.0f);
    fill_uniform(p, np, 2, -1.0f, 1.0f);
    fill_uniform(dy, (size_t)n * out, 3, -1.0f, 1.0f);
    nr_stream none = nr_stream_make(0, NR_RNG_DROPOUT, 0, 0);
    float *y = run_forward(&L, n, x, p, NULL, NR_TRAINING, none);
    float *scratch = floats(nr_layer_scratch_count(&L, n) + 1);
    nr_cpu_backward(&L, n, x, y, dy, with_dx ? dx : NULL, p, dp, NULL, scratch);
    const double atol = 1e-6, rtol = 1e-6;
    int bad = 0;
    /* check(got, sum, magnitude): one element against its sum in double */
#define CHECK_ONE(what, i, j, got, sum, mag)                                                                    \
    if (fabs((got) - (sum)) > atol + rtol * (mag) && bad++ < 3)                                                  \
        fprintf(stderr, "# dense n%d in%d out%d: %s[%d][%d] = %.9g, expected %.9g\n", n, in, out, what, i, j,      \
                (double)(got), (sum));
    for (int b = 0; b < n; b++)
        for (int o = 0; o < out; o++) {
            double sum = bias ? p[(size_t)in * out + o] : 0.0, mag = fabs(sum);
            for (int k = 0; k < in; k++) {
                sum += (double)x[(size_t)b * in + k] * p[(size_t)o * in + k];
                mag += fabs((double)x[(size_t)b * in + k] * p[(size_t)o * in + k]);
            }
            CHECK_ONE("y", b, o, y[(size_t)b * out + o], sum, mag);
        }
    for (int o = 0; o < out; o++)
        for (int k = 0; k < in; k++) {
            double sum = 0.0, mag = 0.0;
            for (int b = 0; b < n; b++) {
                sum += (double)dy[(size_t)b * out + o] * x[(size_t)b * in + k];
                mag += fabs((double)dy[(size_t)b * out + o] * x[(size_t)b * in + k]);
            }
            CHECK_ONE("dw", o, k, dp[(size_t)o * in + k], sum, mag);
        }
    for (int b = 0; b < n && with_dx; b++)
        for (int k = 0; k < in; k++) {
            double sum = 0.0, mag = 0.0;
            for (int o = 0; o < out; o++) {
                sum += (double)dy[(size_t)b * out + o] * p[(size_t)o * in + k];
                mag += fabs((double)dy[(size_t)b * out + o] * p[(size_t)o * in + k]);
            }
            CHECK_ONE("dx", b, k, dx[(size_t)b * in + k], sum, mag);
        }
#undef CHECK_ONE
    free(x), free(p), free(dy), free(dx), free(dp), free(y), free(scratch);
    return bad == 0;
}

static void test_dense_products(void)
{
    static const int ns[] = { 1, 3, 4, 5, 13 }, ins[] = { 1, 15, 16, 17, 84, 400 };
    static const int outs[] = { 1, 10, 63, 64, 65, 120 };
    int cases = 0, passed = 0;
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof ins / sizeof *ins; b++)
            for (size_t c = 0; c < sizeof outs / sizeof *outs; c++, cases++)
                passed += dense_matches(ns[a], ins[b], outs[c], (int)(c % 2), (int)(b % 2 == 0));
    CU_ASSERT_EQUAL(passed, cases);
    printf("# dense products: %s\n", nr_dense_avx512_usable() ? "AVX-512 kernels" : "BLAS");
}

static void test_conv_by_hand(void)
{
    nr_stream none = nr_stream_make(0, NR_RNG_DROPOUT, 0, 0);
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)i; /* x[i][j] = 4i + j */
    /* 3x3 kernel [[1,0,0],[0,2,0],[0,0,-1]], bias 0.5: out = x[i][j] + 2 x[i+1][j+1] - x[i+2][j+2] + 0.5 */
    float p[10] = { 1, 0, 0, 0, 2, 0, 0, 0, -1, 0.5f };
    nr_layer L = conv_layer(1, 4, 4, 1, 3, 1, 0, 0, 1);
    float *y = run_forward(&L, 1, x, p, NULL, 0, none);
    float want[4] = { 0 + 10 - 10 + 0.5f, 1 + 12 - 11 + 0.5f, 4 + 18 - 14 + 0.5f, 5 + 20 - 15 + 0.5f };
    for (int i = 0; i < 4; i++) CU_ASSERT_DOUBLE_EQUAL(y[i], want[i], 1e-6);
    free(y);
    /* all-ones 3x3, stride 2, zero pad 1: window sums of the padded image */
    float ones[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
    L = conv_layer(1, 4, 4, 1, 3, 2, 1, 0, 0);
    y = run_forward(&L, 1, x, ones, NULL, 0, none);
    float sums[4] = { 0 + 1 + 4 + 5, 1 + 2 + 3 + 5 + 6 + 7, 4 + 5 + 8 + 9 + 12 + 13, 5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15 };
    for (int i = 0; i < 4; i++) CU_ASSERT_DOUBLE_EQUAL(y[i], sums[i], 1e-5);
    free(y);
    /* reflect pad 1 with a kernel that picks its top-left tap: out[i][j] = padded[i][j],
     * row -1 reflects to row 1 (the edge is not repeated) */
    float corner[9] = { 1, 0, 0, 0, 0, 0, 0, 0, 0 };
    L = conv_layer(1, 4, 4, 1, 3, 1, 1, 1, 0);
    y = run_forward(&L, 1, x, corner, NULL, 0, none);
    float reflected[4] = { 5, 4, 5, 6 }; /* padded row -1 = x row 1: (x[1][1], x[1][0], x[1][1], x[1][2]) */
    for (int i = 0; i < 4; i++) CU_ASSERT_DOUBLE_EQUAL(y[i], reflected[i], 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(y[4], 1, 1e-6); /* row 0, column -1 reflects to column 1 */
    free(y);
}

static void test_pool_by_hand(void)
{
    nr_stream none = nr_stream_make(0, NR_RNG_DROPOUT, 0, 0);
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    nr_layer L = pool_layer(NR_MAXPOOL, 1, 4, 4, 3, 2, 1);
    float *y = run_forward(&L, 1, x, NULL, NULL, 0, none);
    float want_max[4] = { 5, 7, 13, 15 };
    for (int i = 0; i < 4; i++) CU_ASSERT_DOUBLE_EQUAL(y[i], want_max[i], 0);
    free(y);
    /* count_include_pad: every window divides by 9, padding included */
    L.kind = NR_AVGPOOL;
    y = run_forward(&L, 1, x, NULL, NULL, 0, none);
    float want_avg[4] = { 10.0f / 9, 24.0f / 9, 51.0f / 9, 90.0f / 9 };
    for (int i = 0; i < 4; i++) CU_ASSERT_DOUBLE_EQUAL(y[i], want_avg[i], 1e-6);
    free(y);
    /* ties: the first maximum takes the whole gradient */
    float flat[4] = { 3, 3, 3, 3 }, dy = 1.0f, dx[4], saved[1], one;
    L = pool_layer(NR_MAXPOOL, 1, 2, 2, 2, 2, 0);
    nr_cpu_forward(&L, 1, flat, &one, NULL, NULL, saved, NULL, 0, none);
    nr_cpu_backward(&L, 1, flat, &one, &dy, dx, NULL, NULL, saved, NULL);
    CU_ASSERT(dx[0] == 1.0f && dx[1] == 0.0f && dx[2] == 0.0f && dx[3] == 0.0f);
}

/* 2x2 max pooling, stride 2, as the kernels cut it (rows of 18 outputs: a
 * vector of 16 and 2 more; rows of 7): every window against the scan rule
 * (first maximum in row order, a NaN wins, all -inf leaves no argmax), with
 * ties, NaNs and -inf windows placed across the rows. */
static void test_maxpool2_rows(void)
{
    nr_stream none = nr_stream_make(0, NR_RNG_DROPOUT, 0, 0);
    static const int widths[] = { 36, 14 };
    for (int wi = 0; wi < 2; wi++) {
        int H = 6, W = widths[wi], OW = W / 2, OH = H / 2;
        nr_layer L = pool_layer(NR_MAXPOOL, 2, H, W, 2, 2, 0);
        float *x = floats((size_t)2 * H * W), *y = floats((size_t)2 * OH * OW), *arg = floats((size_t)2 * OH * OW);
        for (int i = 0; i < 2 * H * W; i++) x[i] = (float)((i * 37) % 11) - 5.0f; /* many ties */
        x[3] = NAN, x[W + 2] = NAN;                                              /* one window, two NaNs */
        x[2 * W + 20 % W] = NAN;
        for (int i = 0; i < 2; i++) x[4 * W + 4 + i] = x[5 * W + 4 + i] = -INFINITY; /* an all -inf window */
        nr_cpu_forward(&L, 1, x, y, NULL, NULL, arg, NULL, 0, none);
        int ok = 1;
        for (int c = 0; c < 2; c++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    const float *plane = x + (size_t)c * H * W;
                    float best = -INFINITY;
                    int at = -1;
                    for (int i = 2 * oh; i < 2 * oh + 2; i++)
                        for (int j = 2 * ow; j < 2 * ow + 2; j++)
                            if (plane[i * W + j] > best || isnan(plane[i * W + j]))
                                best = plane[i * W + j], at = i * W + j;
                    size_t o = ((size_t)c * OH + oh) * OW + ow;
                    int same = isnan(best) ? isnan(y[o]) : y[o] == best;
                    if (!same || arg[o] != (float)at) {
                        if (ok)
                            printf("# width %d: channel %d window (%d, %d): got %g at %g, want %g at %d\n", W, c,
                                   oh, ow, y[o], arg[o], best, at);
                        ok = 0;
                    }
                }
        CU_ASSERT(ok);
        free(x);
        free(y);
        free(arg);
    }
}

/* The fused relu -> 2x2 max pooling pair (and BatchNorm -> relu -> max
 * pooling) gives, bit for bit, what the layers give one after the other:
 * output, argmax and input gradient, on values with negatives, zeros of
 * both signs, ties and a NaN. */
static void test_relu_maxpool_fused(void)
{
    nr_stream none = nr_stream_make(0, NR_RNG_DROPOUT, 0, 0);
    int C = 3, H = 6, W = 36, n = 2;
    nr_layer relu = layer_of(NR_RELU, C, H, W), pool = pool_layer(NR_MAXPOOL, C, H, W, 2, 2, 0);
    CU_ASSERT(nr_cpu_relu_maxpool_fusable(&relu, &pool));
    nr_layer odd = pool_layer(NR_MAXPOOL, C, 7, 7, 2, 2, 0);
    CU_ASSERT_FALSE(nr_cpu_relu_maxpool_fusable(&relu, &odd)); /* floor mode leaves a row out */
    size_t in = (size_t)n * C * H * W, out = in / 4;
    float *x = floats(in), *r = floats(in), *y1 = floats(out), *a1 = floats(out), *y2 = floats(out),
          *a2 = floats(out), *dy = floats(out), *dr = floats(in), *dx1 = floats(in), *dx2 = floats(in);
    uint32_t state = 12345; /* an LCG: values in -4 .. 2 by halves, many ties, windows all <= 0 */
    for (size_t i = 0; i < in; i++) {
        state = state * 1664525u + 1013904223u;
        x[i] = (float)((int)((state >> 16) % 13) - 8) * 0.5f;
    }
    x[5] = -0.0f, x[40] = NAN, x[41] = 2.0f;
    for (size_t i = 0; i < out; i++) dy[i] = i % 7 == 3 ? -0.0f : (float)((int)(i % 5) - 2) + 0.25f;
    nr_cpu_forward(&relu, n, x, r, NULL, NULL, NULL, NULL, 0, none);
    nr_cpu_forward(&pool, n, r, y1, NULL, NULL, a1, NULL, 0, none);
    nr_cpu_backward(&pool, n, r, y1, dy, dr, NULL, NULL, a1, NULL);
    nr_cpu_backward(&relu, n, x, r, dr, dx1, NULL, NULL, NULL, NULL);
    nr_cpu_relu_maxpool_forward(&pool, n, x, y2, a2);
    nr_cpu_relu_maxpool_backward(&pool, n, y2, dy, dx2, a2);
    CU_ASSERT(memcmp(y1, y2, out * sizeof *y1) == 0);
    CU_ASSERT(memcmp(a1, a2, out * sizeof *a1) == 0);
    CU_ASSERT(memcmp(dx1, dx2, in * sizeof *dx1) == 0);
    /* With a BatchNorm apply before them (gamma, beta, mean and 1/std per
     * channel; the training flag after them), in one pass too. */
    nr_layer bn = bn_layer(C, H, W, 1);
    float params[6] = { 1.1f, -0.37f, 0.77f, 0.13f, -1.3f, 0.07f }; /* products that round (no FMA) */
    float saved[7] = { 0.31f, -0.73f, 0.11f, 2.3f, 0.57f, 1.29f, 1 };
    float *t = floats(in);
    nr_bn_apply(&bn, n, x, t, params, saved);
    nr_cpu_forward(&relu, n, t, r, NULL, NULL, NULL, NULL, 0, none);
    nr_cpu_forward(&pool, n, r, y1, NULL, NULL, a1, NULL, 0, none);
    nr_cpu_bn_relu_maxpool_forward(&bn, params, saved, &pool, n, x, y2, a2);
    CU_ASSERT(memcmp(y1, y2, out * sizeof *y1) == 0);
    CU_ASSERT(memcmp(a1, a2, out * sizeof *a1) == 0);
    /* Backward: BatchNorm's sums and dx from the pooling's dy, as from
     * the relu's dx that the layers' backward gives. */
    nr_cpu_backward(&pool, n, r, y1, dy, dr, NULL, NULL, a1, NULL);
    nr_cpu_backward(&relu, n, t, r, dr, dx1, NULL, NULL, NULL, NULL);
    double sums1[6], sums2[6];
    nr_pooled_grad g = { y2, dy, a2 };
    float *plane = floats(nr_bn_fused_scratch(&bn)), *bx1 = floats(in), *bx2 = floats(in);
    nr_bn_grad_sums(&bn, n, x, dx1, saved, sums1);
    nr_bn_fused_grad_sums(&bn, &pool, n, x, &g, saved, sums2, plane);
    CU_ASSERT(memcmp(sums1, sums2, sizeof sums1) == 0);
    nr_bn_grad_apply(&bn, n, 4 * in, x, dx1, bx1, params, saved, sums1);
    nr_bn_fused_grad_apply(&bn, &pool, n, 4 * in, x, &g, bx2, params, saved, sums2, plane);
    CU_ASSERT(memcmp(bx1, bx2, in * sizeof *bx1) == 0);
    free(t);
    free(plane);
    free(bx1);
    free(bx2);
    float *all[] = { x, r, y1, a1, y2, a2, dy, dr, dx1, dx2 };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

/* Running statistics: (1-m) running + m batch, the variance unbiased. */
static void test_batchnorm_running_stats(void)
{
    nr_stream none = nr_stream_make(0, NR_RNG_DROPOUT, 0, 0);
    nr_layer L = bn_layer(1, 1, 1, 1);
    float params[2], buffers[2], x[4] = { 1, 2, 3, 4 };
    nr_layer_init(&L, params, buffers, 1, 0);
    CU_ASSERT(params[0] == 1.0f && params[1] == 0.0f && buffers[0] == 0.0f && buffers[1] == 1.0f);
    float *y = run_forward(&L, 4, x, params, buffers, TRAIN, none);
    CU_ASSERT_DOUBLE_EQUAL(buffers[0], 0.25, 1e-7);               /* 0.1 * 2.5 */
    CU_ASSERT_DOUBLE_EQUAL(buffers[1], 0.9 + 0.1 * 5.0 / 3, 1e-6); /* unbiased 5/3, not biased 1.25 */
    /* normalized with the biased variance 1.25 */
    CU_ASSERT_DOUBLE_EQUAL(y[0], -1.5 / sqrt(1.25 + 1e-5), 1e-6);
    free(y);
    /* NR_TRAINING alone (SAM's second pass) and eval leave the statistics alone */
    y = run_forward(&L, 4, x, params, buffers, NR_TRAINING, none);
    free(y);
    y = run_forward(&L, 4, x, params, buffers, 0, none);
    CU_ASSERT_DOUBLE_EQUAL(buffers[0], 0.25, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(buffers[1], 0.9 + 0.1 * 5.0 / 3, 1e-6);
    /* eval normalizes with the running statistics */
    CU_ASSERT_DOUBLE_EQUAL(y[3], (4 - 0.25) / sqrt(buffers[1] + 1e-5), 1e-5);
    free(y);
}

static void test_dropout_rate_and_scale(void)
{
    nr_layer L = layer_of(NR_DROPOUT, 4, 50, 50);
    L.p = 0.3f;
    int n = 10;
    size_t total = in_count(&L, n), per = in_count(&L, 1);
    float *x = floats(total);
    fill_uniform(x, total, 9, 0.5f, 1.5f); /* never zero */
    nr_stream s = nr_stream_make(42, NR_RNG_DROPOUT, 1, 2);
    float *y = run_forward(&L, n, x, NULL, NULL, TRAIN, s);
    size_t dropped = 0, wrong = 0;
    for (size_t i = 0; i < total; i++) {
        int drop = nr_uniform(s, (uint64_t)(i / per) * per + i % per) < L.p;
        dropped += y[i] == 0.0f;
        if (drop ? y[i] != 0.0f : fabsf(y[i] - x[i] / 0.7f) > 1e-6f * x[i]) wrong++;
    }
    double rate = (double)dropped / total; /* binomial sd 0.0014 */
    CU_ASSERT(fabs(rate - 0.3) < 0.01);
    CU_ASSERT_EQUAL(wrong, 0);
    if (wrong || fabs(rate - 0.3) >= 0.01) printf("# dropout: rate %g, %zu elements off the rule\n", rate, wrong);
    /* the same stream draws the same mask; another stream another one */
    float *again = run_forward(&L, n, x, NULL, NULL, TRAIN, s);
    CU_ASSERT(memcmp(again, y, total * sizeof *y) == 0);
    float *other = run_forward(&L, n, x, NULL, NULL, TRAIN, nr_stream_make(42, NR_RNG_DROPOUT, 2, 2));
    CU_ASSERT(memcmp(other, y, total * sizeof *y) != 0);
    float *eval = run_forward(&L, n, x, NULL, NULL, 0, s);
    CU_ASSERT(memcmp(eval, x, total * sizeof *x) == 0);
    free(x);
    free(y);
    free(again);
    free(other);
    free(eval);
}

/* The vectorized tanh against libm's double tanh over the whole range. */
static void test_tanh_accuracy(void)
{
    nr_stream none = nr_stream_make(0, NR_RNG_DROPOUT, 0, 0);
    int count = 200001;
    nr_layer L = layer_of(NR_TANH, count, 1, 1);
    float *x = floats((size_t)count);
    for (int i = 0; i < count; i++) x[i] = -12.0f + 24.0f * i / (count - 1);
    x[0] = 1e-30f, x[1] = -3e-39f, x[2] = 0.0f, x[3] = -0.0f, x[4] = 5e-4f, x[5] = 0.6249f;
    float *y = run_forward(&L, 1, x, NULL, NULL, 0, none);
    double worst = 0.0;
    int at = 0;
    for (int i = 0; i < count; i++) {
        double want = tanh((double)x[i]);
        double err = want == 0.0 ? fabs(y[i]) : fabs(y[i] - want) / fabs(want);
        if (err > worst) worst = err, at = i;
    }
    if (worst > 4e-7) printf("# tanh: relative error %g at x = %.9g (got %.9g)\n", worst, x[at], (double)y[at]);
    CU_ASSERT(worst <= 4e-7); /* about 3 ulp */
    CU_ASSERT(signbit(y[3]) && y[2] == 0.0f);
    free(y);
    float special[4] = { INFINITY, -INFINITY, NAN, 20.0f };
    L.in_c = L.out_c = 4;
    y = run_forward(&L, 1, special, NULL, NULL, 0, none);
    CU_ASSERT(y[0] == 1.0f && y[1] == -1.0f && isnan(y[2]) && y[3] == 1.0f);
    free(y);
    free(x);
}

/* ---- initialization ------------------------------------------------------------- */

typedef struct moments {
    double mean, var, min, max;
} moments;

static moments moments_of(const float *v, size_t count)
{
    moments m = { 0, 0, INFINITY, -INFINITY };
    for (size_t i = 0; i < count; i++) {
        m.mean += v[i];
        if (v[i] < m.min) m.min = v[i];
        if (v[i] > m.max) m.max = v[i];
    }
    m.mean /= count;
    for (size_t i = 0; i < count; i++) m.var += (v[i] - m.mean) * (v[i] - m.mean);
    m.var /= count;
    return m;
}

/* Weights of dense 784->512 (fan_in 784, fan_out 512) under each init. */
static void test_init_statistics(void)
{
    nr_layer L = dense_layer(784, 512, 1);
    size_t nw = 784 * 512;
    float *p = floats(nr_layer_param_count(&L));
    struct {
        nr_init init;
        double bound_or_std;
        int normal;
    } cases[] = {
        { NR_INIT_PYTORCH, 1 / sqrt(784.0), 0 },
        { NR_INIT_XAVIER_UNIFORM, sqrt(6.0 / (784 + 512)), 0 },
        { NR_INIT_XAVIER_NORMAL, sqrt(2.0 / (784 + 512)), 1 },
        { NR_INIT_KAIMING_UNIFORM, sqrt(6.0 / 784), 0 },
        { NR_INIT_KAIMING_NORMAL, sqrt(2.0 / 784), 1 },
    };
    for (int c = 0; c < 5; c++) {
        L.init = cases[c].init;
        nr_layer_init(&L, p, NULL, 3, 1);
        moments w = moments_of(p, nw), b = moments_of(p + nw, 512);
        double s = cases[c].bound_or_std, want_var = cases[c].normal ? s * s : s * s / 3;
        CU_ASSERT(fabs(w.mean) < 0.01 * s);
        CU_ASSERT(fabs(w.var / want_var - 1) < 0.02);
        if (cases[c].normal) {
            CU_ASSERT(w.max > 3.5 * s && w.min < -3.5 * s); /* tails of 400k normal draws */
        } else {
            CU_ASSERT(w.max <= s && w.min >= -s && w.max > 0.999 * s && w.min < -0.999 * s);
        }
        /* the bias keeps PyTorch's default whatever the weight init */
        CU_ASSERT(b.max <= 1 / sqrt(784.0) && b.min >= -1 / sqrt(784.0) && b.max - b.min > 1.5 / sqrt(784.0));
        if (fabs(w.var / want_var - 1) >= 0.02) printf("# init %d: variance %g want %g\n", c, w.var, want_var);
    }
    free(p);
}

static void test_init_conv_fans_and_streams(void)
{
    nr_layer L = conv_layer(16, 8, 8, 32, 3, 1, 1, 0, 1); /* fan_in 144, fan_out 288 */
    size_t np = nr_layer_param_count(&L), nw = 32 * 16 * 9;
    CU_ASSERT_EQUAL(np, nw + 32);
    float *a = floats(np), *b = floats(np);
    nr_layer_init(&L, a, NULL, 11, 4);
    /* weight j is draw j of stream (seed, INIT, layer, 0), bias j of (seed, INIT, layer, 1) */
    nr_stream ws = nr_stream_make(11, NR_RNG_INIT, 4, 0), bs = nr_stream_make(11, NR_RNG_INIT, 4, 1);
    float bound = (float)(1 / sqrt(144.0));
    int off = 0;
    for (size_t j = 0; j < nw; j++) off += fabsf(a[j] - (-bound + 2 * bound * nr_uniform(ws, j))) > 1e-7f;
    for (size_t j = 0; j < 32; j++) off += fabsf(a[nw + j] - (-bound + 2 * bound * nr_uniform(bs, j))) > 1e-7f;
    CU_ASSERT_EQUAL(off, 0);
    nr_layer_init(&L, b, NULL, 11, 4);
    CU_ASSERT(memcmp(a, b, np * sizeof *a) == 0); /* same seed, same init */
    nr_layer_init(&L, b, NULL, 11, 5);
    CU_ASSERT(memcmp(a, b, np * sizeof *a) != 0);
    nr_layer_init(&L, b, NULL, 12, 4);
    CU_ASSERT(memcmp(a, b, np * sizeof *a) != 0);
    L.init = NR_INIT_XAVIER_UNIFORM;
    nr_layer_init(&L, b, NULL, 11, 4);
    moments w = moments_of(b, nw);
    double xb = sqrt(6.0 / (144 + 288));
    CU_ASSERT(w.max <= xb && w.min >= -xb && w.max > 0.99 * xb);
    free(a);
    free(b);
}

static void test_counts(void)
{
    nr_layer conv = conv_layer(6, 14, 14, 16, 5, 1, 0, 0, 1);
    CU_ASSERT_EQUAL(nr_layer_param_count(&conv), 2416); /* LeNet-5's conv2 */
    conv.bias = 0;
    CU_ASSERT_EQUAL(nr_layer_param_count(&conv), 2400);
    nr_layer dense = dense_layer(120, 84, 1);
    CU_ASSERT_EQUAL(nr_layer_param_count(&dense), 10164);
    nr_layer bn = bn_layer(6, 28, 28, 1);
    CU_ASSERT_EQUAL(nr_layer_param_count(&bn), 12);
    CU_ASSERT_EQUAL(nr_layer_buffer_count(&bn), 12);
    bn.affine = 0;
    CU_ASSERT_EQUAL(nr_layer_param_count(&bn), 0);
    CU_ASSERT_EQUAL(nr_layer_buffer_count(&bn), 12);
    nr_layer pool = pool_layer(NR_MAXPOOL, 6, 28, 28, 2, 2, 0);
    CU_ASSERT_EQUAL(nr_layer_saved_count(&pool, 10), 10 * 6 * 14 * 14);
    CU_ASSERT_EQUAL(nr_layer_param_count(&pool), 0);
    /* scratch never shrinks with the batch: sized for the largest, good for smaller ones */
    CU_ASSERT(nr_layer_scratch_count(&conv, 100) >= nr_layer_scratch_count(&conv, 7));
    CU_ASSERT(nr_layer_scratch_count(&conv, 7) > 0);
    CU_ASSERT_EQUAL(nr_layer_scratch_count(&dense, 100), 0);
}

/* Different thread counts split the batch differently: same numbers up to
 * rounding, and the first layer's backward without dx gives the same dW. */
static void test_threads_and_no_dx(void)
{
    chain ch;
    chain_start(&ch, 9, TRAIN);
    chain_add(&ch, conv_layer(3, 20, 20, 8, 3, 1, 1, 0, 1)); /* work enough for threads */
    chain_data(&ch, -1.0f, 1.0f);
    size_t ny = out_count(&ch.L[0], ch.n), np = nr_layer_param_count(&ch.L[0]), nx = in_count(&ch.L[0], ch.n);
    float *out1 = floats(ny), *dx1 = floats(nx), *dp1 = floats(np), *out3 = floats(ny), *dx3 = floats(nx);
    float *dp3 = floats(np), *dp_nodx = floats(np);
    double *want = doubles(ny + nx + np);
    nr_cpu_set_threads(1);
    float_pass(&ch, out1, dx1, &dp1);
    nr_cpu_set_threads(2);
    float_pass(&ch, out3, NULL, &dp_nodx);
    float_pass(&ch, out3, dx3, &dp3);
    for (size_t i = 0; i < ny; i++) want[i] = out1[i];
    CU_ASSERT(close_enough("threads 1 vs 2 forward", out3, want, ny, 1e-6, 1e-6));
    for (size_t i = 0; i < nx; i++) want[i] = dx1[i];
    CU_ASSERT(close_enough("threads 1 vs 2 dx", dx3, want, nx, 1e-6, 1e-6));
    for (size_t i = 0; i < np; i++) want[i] = dp1[i];
    CU_ASSERT(close_enough("threads 1 vs 2 dW", dp3, want, np, 1e-5, 1e-6));
    CU_ASSERT(memcmp(dp3, dp_nodx, np * sizeof *dp3) == 0);
    nr_cpu_set_threads(0);
    free(out1), free(dx1), free(dp1), free(out3), free(dx3), free(dp3), free(dp_nodx), free(want);
    chain_free(&ch);
}

int main(void)
{
    static CU_TestInfo gradients[] = {
        { "conv: stride, zero and reflect padding, bias on/off", test_conv_gradients },
        { "conv: several im2col chunks per thread", test_conv_large_chunks },
        { "conv: columns kept from forward, several chunks", test_conv_kept_columns },
        { "conv: direct kernels, every way of cutting a plane", test_conv_direct_shapes },
        { "conv and dense: AVX-512 kernels chosen where the CPU has AVX-512", test_conv_direct_chosen },
        { "dense: bias on/off", test_dense_gradients },
        { "dense: products against sums in double on every tile shape", test_dense_products },
        { "max/avg pooling: padding, stride != kernel", test_pool_gradients },
        { "batchnorm: rank 1 and 3, train/eval, affine on/off", test_batchnorm_gradients },
        { "dropout: train and eval", test_dropout_gradients },
        { "activations, softmax, log_softmax, flatten", test_activation_gradients },
        { "losses: every kind and option", test_loss_gradients },
        { "chain: conv-bn-relu-maxpool-dense-ce", test_chain_conv_bn_relu_pool_dense },
        { "chain: lenet-like to nll", test_chain_lenet_like },
        { "chain: dense-bn-leaky-dropout-mse", test_chain_dropout_mse },
        CU_TEST_INFO_NULL,
    };
    static CU_TestInfo values[] = {
        { "conv by hand (3x3 on 4x4, stride, reflect)", test_conv_by_hand },
        { "pooling by hand (padding, count_include_pad, ties)", test_pool_by_hand },
        { "2x2 max pooling rows: ties, NaN, -inf, partial vectors", test_maxpool2_rows },
        { "(BatchNorm ->) relu -> 2x2 max pooling fused: the same bits as the layers", test_relu_maxpool_fused },
        { "batchnorm running statistics", test_batchnorm_running_stats },
        { "dropout rate, scale, determinism", test_dropout_rate_and_scale },
        { "tanh accuracy", test_tanh_accuracy },
        { "loss values by hand", test_loss_values },
        { "init statistics of every scheme", test_init_statistics },
        { "init fans, streams, determinism", test_init_conv_fans_and_streams },
        { "parameter, buffer, saved and scratch counts", test_counts },
        { "thread counts agree; backward without dx", test_threads_and_no_dx },
        CU_TEST_INFO_NULL,
    };
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    if (tap_add_suite("rt_ops gradients", gradients) || tap_add_suite("rt_ops values", values)) {
        CU_cleanup_registry();
        return 1;
    }
    return tap_run_all();
}
