#include "layers.h"
#include "util.h"
#include <limits.h>
#include <stdio.h>

#define INF 1e308
#define ARRAY_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

const char *const init_names[] = {
    "model", "pytorch", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", NULL
};
static const char *const pad_modes[] = { "zeros", "reflect", NULL };

void shape_format(const shape *s, char *buf, size_t n)
{
    if (s->rank == 3)
        snprintf(buf, n, "[N, %lld, %lld, %lld]", s->d[0], s->d[1], s->d[2]);
    else if (s->rank == 1)
        snprintf(buf, n, "[N, %lld]", s->d[0]);
    else
        snprintf(buf, n, "[N]");
}

long long count_mul(long long a, long long b)
{
    return a > 0 && b > LLONG_MAX / a ? LLONG_MAX : a * b;
}

long long count_add(long long a, long long b)
{
    return a > LLONG_MAX - b ? LLONG_MAX : a + b;
}

long long shape_elems(const shape *s)
{
    long long e = 1;
    for (int i = 0; i < s->rank; i++) e = count_mul(e, s->d[i]);
    return e;
}

/* ---- shape rules ------------------------------------------------------ */

static int need_image(const shape *in, shape_ctx *cx, const char *kind)
{
    if (in->rank == 3) return 0;
    char b[64];
    shape_format(in, b, sizeof b);
    diag *d = diag_add(cx->dl, DIAG_ERROR, cx->where,
                       "%s '%s' needs an image input [N, C, H, W], but its input is %s", kind, cx->name, b);
    diag_hint(d, "a %s cannot follow flatten or dense; move it before them", kind);
    return -1;
}

/* floor((size + 2*pad - k) / stride) + 1, or an error when the window does
 * not fit. */
static int window_out(long long size, long long k, long long stride, long long pad,
                      long long *out, shape_ctx *cx, const char *what, const shape *in)
{
    if (size + 2 * pad < k) {
        char b[64];
        shape_format(in, b, sizeof b);
        diag *d = diag_add(cx->dl, DIAG_ERROR, cx->where,
                           "%s '%s': kernel %lld is larger than its input %s%s", what, cx->name, k, b,
                           pad ? " with padding" : "");
        diag_hint(d, "use a smaller kernel, add padding, or remove a pooling layer before it");
        return -1;
    }
    *out = (size + 2 * pad - k) / stride + 1;
    return 0;
}

static int conv_infer(const resolved *o, const shape *in, shape *out, shape_ctx *cx)
{
    if (need_image(in, cx, "conv")) return -1;
    long long k = ropt_int(o, CONV_KERNEL), s = ropt_int(o, CONV_STRIDE), p = ropt_int(o, CONV_PADDING);
    if (window_out(in->d[1], k, s, p, &out->d[1], cx, "conv", in)) return -1;
    if (window_out(in->d[2], k, s, p, &out->d[2], cx, "conv", in)) return -1;
    /* The output is known from here on: the errors below keep it, so the
     * layers after this one are still checked. */
    out->rank = 3;
    out->d[0] = ropt_int(o, CONV_OUT);
    int rc = 0;
    if (ropt_given(o, CONV_IN) && ropt_int(o, CONV_IN) != in->d[0]) {
        diag *d = diag_add(cx->dl, DIAG_ERROR, o->v[CONV_IN].where,
                           "conv '%s' says in=%d channels, but its input has %lld",
                           cx->name, ropt_int(o, CONV_IN), in->d[0]);
        diag_hint(d, "the channel count comes from the layer before; fix 'in' or that layer's 'out'");
        rc = -1;
    }
    if (ropt_int(o, CONV_PADDING_MODE) == PAD_REFLECT && (p >= in->d[1] || p >= in->d[2])) {
        diag_add(cx->dl, DIAG_ERROR, o->v[CONV_PADDING].where,
                 "conv '%s': reflect padding %lld must be smaller than the input (%lldx%lld)",
                 cx->name, p, in->d[1], in->d[2]);
        rc = -1;
    }
    return rc;
}

static long long conv_params(const resolved *o, const shape *in, const shape *out)
{
    long long k = ropt_int(o, CONV_KERNEL);
    return count_add(count_mul(count_mul(out->d[0], in->d[0]), k * k), ropt_num(o, CONV_BIAS) ? out->d[0] : 0);
}

static long long conv_macs(const resolved *o, const shape *in, const shape *out)
{
    long long k = ropt_int(o, CONV_KERNEL);
    return count_mul(count_mul(shape_elems(out), in->d[0]), k * k);
}

static long long flat_size(const shape *in, shape_ctx *cx)
{
    return in->rank == 3 && cx && cx->auto_flatten ? shape_elems(in) : in->d[0];
}

static int dense_infer(const resolved *o, const shape *in, shape *out, shape_ctx *cx)
{
    /* The output is known whatever the input: errors keep it. */
    out->rank = 1;
    out->d[0] = ropt_int(o, DENSE_OUT);
    if (in->rank == 3 && !cx->auto_flatten) {
        char b[64];
        shape_format(in, b, sizeof b);
        diag *d = diag_add(cx->dl, DIAG_ERROR, cx->where,
                           "dense '%s' needs a flat input [N, F], but its input is %s", cx->name, b);
        diag_hint(d, "insert 'flatten' before this layer (%lld features), or set auto_flatten = true "
                     "in the model", shape_elems(in));
        return -1;
    }
    long long f = flat_size(in, cx);
    if (ropt_given(o, DENSE_IN) && ropt_int(o, DENSE_IN) != f) {
        diag *d = diag_add(cx->dl, DIAG_ERROR, o->v[DENSE_IN].where,
                           "dense '%s' says in=%d features, but its input has %lld",
                           cx->name, ropt_int(o, DENSE_IN), f);
        diag_hint(d, "the feature count comes from the layer before; fix 'in' or that layer's 'out'");
        return -1;
    }
    return 0;
}

static long long dense_params(const resolved *o, const shape *in, const shape *out)
{
    long long f = in->rank == 3 ? shape_elems(in) : in->d[0];
    return count_add(count_mul(out->d[0], f), ropt_num(o, DENSE_BIAS) ? out->d[0] : 0);
}

static long long dense_macs(const resolved *o, const shape *in, const shape *out)
{
    (void)o;
    return count_mul(out->d[0], in->rank == 3 ? shape_elems(in) : in->d[0]);
}

static int pool_infer(const resolved *o, const shape *in, shape *out, shape_ctx *cx)
{
    const char *kind = layer_kind_of(o) == L_MAXPOOL ? "maxpool" : "avgpool";
    if (need_image(in, cx, kind)) return -1;
    long long k = ropt_int(o, POOL_KERNEL), p = ropt_int(o, POOL_PADDING);
    long long s = ropt_given(o, POOL_STRIDE) ? ropt_int(o, POOL_STRIDE) : k;
    if (window_out(in->d[1], k, s, p, &out->d[1], cx, kind, in)) return -1;
    if (window_out(in->d[2], k, s, p, &out->d[2], cx, kind, in)) return -1;
    out->rank = 3;
    out->d[0] = in->d[0];
    if (2 * p > k) {
        diag_add(cx->dl, DIAG_ERROR, o->v[POOL_PADDING].where,
                 "%s '%s': padding %lld must be at most half the kernel (%lld)", kind, cx->name, p, k);
        return -1;
    }
    return 0;
}

static int batchnorm_infer(const resolved *o, const shape *in, shape *out, shape_ctx *cx)
{
    layer_id id = layer_kind_of(o);
    *out = *in;  /* errors keep it: the layers after this one are still checked */
    int want = id == L_BATCHNORM1D ? 1 : id == L_BATCHNORM2D ? 3 : in->rank;
    if (in->rank != want) {
        char b[64];
        shape_format(in, b, sizeof b);
        diag *d = diag_add(cx->dl, DIAG_ERROR, cx->where, "%s '%s' needs %s input, but its input is %s",
                           layer_table[id].call.name, cx->name,
                           want == 1 ? "a flat [N, F]" : "an image [N, C, H, W]", b);
        diag_hint(d, "use %s here, or plain 'batchnorm', which follows its input",
                  in->rank == 1 ? "batchnorm1d" : "batchnorm2d");
        return -1;
    }
    if (ropt_given(o, BN_FEATURES) && ropt_int(o, BN_FEATURES) != in->d[0]) {
        diag *d = diag_add(cx->dl, DIAG_ERROR, o->v[BN_FEATURES].where,
                           "%s '%s' is for %d features, but its input has %lld %s",
                           layer_table[id].call.name, cx->name, ropt_int(o, BN_FEATURES), in->d[0],
                           in->rank == 3 ? "channels" : "features");
        diag_hint(d, "leave the count out and netc takes it from the input");
        return -1;
    }
    return 0;
}

static long long batchnorm_params(const resolved *o, const shape *in, const shape *out)
{
    (void)out;
    return ropt_num(o, BN_AFFINE) ? 2 * in->d[0] : 0;
}

static int same_infer(const resolved *o, const shape *in, shape *out, shape_ctx *cx)
{
    (void)o; (void)cx;
    *out = *in;
    return 0;
}

static int flatten_infer(const resolved *o, const shape *in, shape *out, shape_ctx *cx)
{
    (void)o; (void)cx;
    out->rank = 1;
    out->d[0] = shape_elems(in);
    out->d[1] = out->d[2] = 0;
    return 0;
}

/* ---- the table -------------------------------------------------------- */

#define POS(n) (n)
#define KW (-1)

static const opt_def conv_opts[] = {
    [CONV_OUT] = { "out", OPT_INT, 0, NULL, 1, 1 << 20, NULL, 0, 0, NULL, POS(0), "output channels" },
    [CONV_KERNEL] = { "kernel", OPT_INT, 0, NULL, 1, 1024, NULL, 0, 0, NULL, POS(1), "kernel size (square)" },
    [CONV_STRIDE] = { "stride", OPT_INT, 1, "1", 1, 1024, NULL, 0, 0, NULL, KW, "step between windows" },
    [CONV_PADDING] = { "padding", OPT_INT, 0, "0", 0, 1024, NULL, 0, 0, NULL, KW, "pixels added on each side" },
    [CONV_PADDING_MODE] = { "padding_mode", OPT_ENUM, PAD_ZEROS, "zeros", 0, 0, pad_modes, 0, 0, NULL, KW,
                            "zeros, or reflect (mirror without repeating the edge pixel)" },
    [CONV_BIAS] = { "bias", OPT_BOOL, 1, "true", 0, 1, NULL, 0, 0, NULL, KW, "learn a bias per output channel" },
    [CONV_IN] = { "in", OPT_INT, 0, "from the input", 1, 1 << 20, NULL, 0, 0, NULL, KW,
                  "input channels; checked against the input when given" },
    [CONV_INIT] = { "init", OPT_ENUM, INIT_MODEL, "model", 0, 0, init_names, 0, 0, NULL, KW,
                    "weight initialisation" },
};

static const opt_def dense_opts[] = {
    [DENSE_OUT] = { "out", OPT_INT, 0, NULL, 1, 1 << 26, NULL, 0, 0, NULL, POS(0), "output features" },
    [DENSE_BIAS] = { "bias", OPT_BOOL, 1, "true", 0, 1, NULL, 0, 0, NULL, KW, "learn a bias per output" },
    [DENSE_IN] = { "in", OPT_INT, 0, "from the input", 1, 1 << 26, NULL, 0, 0, NULL, KW,
                   "input features; checked against the input when given" },
    [DENSE_INIT] = { "init", OPT_ENUM, INIT_MODEL, "model", 0, 0, init_names, 0, 0, NULL, KW,
                     "weight initialisation" },
};

static const opt_def pool_opts[] = {
    [POOL_KERNEL] = { "kernel", OPT_INT, 0, NULL, 1, 1024, NULL, 0, 0, NULL, POS(0), "window size (square)" },
    [POOL_STRIDE] = { "stride", OPT_INT, 0, "kernel", 1, 1024, NULL, 0, 0, NULL, POS(1), "step between windows" },
    [POOL_PADDING] = { "padding", OPT_INT, 0, "0", 0, 512, NULL, 0, 0, NULL, KW, "pixels added on each side" },
};

static const opt_def bn_opts[] = {
    [BN_FEATURES] = { "features", OPT_INT, 0, "from the input", 1, 1 << 26, NULL, 0, 0, NULL, POS(0),
                      "channels or features; checked against the input when given" },
    [BN_EPS] = { "eps", OPT_FLOAT, 1e-5, "1e-5", 0, 1, NULL, 0, 0, NULL, KW, "added to the variance" },
    [BN_MOMENTUM] = { "momentum", OPT_FLOAT, 0.1, "0.1", 0, 1, NULL, 0, 0, NULL, KW,
                      "running = (1-momentum)*running + momentum*batch" },
    [BN_AFFINE] = { "affine", OPT_BOOL, 1, "true", 0, 1, NULL, 0, 0, NULL, KW, "learn gamma and beta" },
};

static const opt_def dropout_opts[] = {
    [DROPOUT_P] = { "p", OPT_FLOAT, 0.5, "0.5", 0, 1, NULL, 0, 0, NULL, POS(0),
                    "probability of zeroing an element during training", 1 },
};

static const opt_def leaky_opts[] = {
    [LEAKY_SLOPE] = { "slope", OPT_FLOAT, 0.01, "0.01", 0, INF, NULL, 0, 0, NULL, POS(0),
                      "slope for negative inputs" },
};

static const char *const conv_aliases[] = { "conv2d", NULL };
static const char *const dense_aliases[] = { "linear", NULL };
static const char *const maxpool_aliases[] = { "maxpool2d", NULL };
static const char *const avgpool_aliases[] = { "avgpool2d", NULL };

#define OPTS(a) a, ARRAY_LEN(a)
#define NOOPTS NULL, 0

const layer_row layer_table[L_COUNT] = {
    [L_CONV] = { { "conv", conv_aliases, OPTS(conv_opts), "2-D convolution" },
                 conv_infer, conv_params, conv_macs, 0, 0, NR_CONV },
    [L_DENSE] = { { "dense", dense_aliases, OPTS(dense_opts), "fully connected layer" },
                  dense_infer, dense_params, dense_macs, 0, 0, NR_DENSE },
    [L_MAXPOOL] = { { "maxpool", maxpool_aliases, OPTS(pool_opts), "max pooling" },
                    pool_infer, NULL, NULL, 0, 0, NR_MAXPOOL },
    [L_AVGPOOL] = { { "avgpool", avgpool_aliases, OPTS(pool_opts), "average pooling (padding counted)" },
                    pool_infer, NULL, NULL, 0, 0, NR_AVGPOOL },
    [L_BATCHNORM] = { { "batchnorm", NULL, OPTS(bn_opts), "batch normalisation of its input's rank" },
                      batchnorm_infer, batchnorm_params, NULL, 0, 1, NR_BATCHNORM },
    [L_BATCHNORM1D] = { { "batchnorm1d", NULL, OPTS(bn_opts), "batch normalisation of [N, F]" },
                        batchnorm_infer, batchnorm_params, NULL, 0, 1, NR_BATCHNORM },
    [L_BATCHNORM2D] = { { "batchnorm2d", NULL, OPTS(bn_opts), "batch normalisation of [N, C, H, W]" },
                        batchnorm_infer, batchnorm_params, NULL, 0, 1, NR_BATCHNORM },
    [L_DROPOUT] = { { "dropout", NULL, OPTS(dropout_opts), "zeroes elements while training, scales by 1/(1-p)" },
                    same_infer, NULL, NULL, 0, 0, NR_DROPOUT },
    [L_FLATTEN] = { { "flatten", NULL, NOOPTS, "[N, C, H, W] to [N, C*H*W]" },
                    flatten_infer, NULL, NULL, 0, 0, NR_FLATTEN },
    [L_TANH] = { { "tanh", NULL, NOOPTS, "hyperbolic tangent" }, same_infer, NULL, NULL, 1, 0, NR_TANH },
    [L_RELU] = { { "relu", NULL, NOOPTS, "max(x, 0)" }, same_infer, NULL, NULL, 1, 0, NR_RELU },
    [L_LEAKY_RELU] = { { "leaky_relu", NULL, OPTS(leaky_opts), "x, or slope*x below 0" },
                       same_infer, NULL, NULL, 1, 0, NR_LEAKY_RELU },
    [L_SIGMOID] = { { "sigmoid", NULL, NOOPTS, "1/(1+exp(-x))" }, same_infer, NULL, NULL, 1, 0, NR_SIGMOID },
    [L_SOFTMAX] = { { "softmax", NULL, NOOPTS, "softmax over features (dim 1)" },
                    same_infer, NULL, NULL, 1, 0, NR_SOFTMAX },
    [L_LOG_SOFTMAX] = { { "log_softmax", NULL, NOOPTS, "log of softmax over features (dim 1)" },
                        same_infer, NULL, NULL, 1, 0, NR_LOG_SOFTMAX },
};

const call_table layer_calls = { "layer kind", layer_table, sizeof layer_table[0], L_COUNT };
