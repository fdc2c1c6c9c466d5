/* The CUDA backend layer by layer (see layers.h). Each function computes
 * the launch arguments the way runtime/cpu/ops.c, loss.c and
 * runtime/optim.c compute theirs, so the kernels receive the same scalars
 * the CPU code uses. Kernel arguments are passed as an array of pointers
 * to values whose types match the kernel's parameters exactly (int, long
 * long, float, 64-bit device pointers). */
#include "layers.h"
#include "../nr_math.h"
#include "../optim.h"
#include "../preprocess.h"
#include <math.h>
#include <string.h>

typedef long long i64;

static i64 in_size(const nr_layer *L) { return (i64)L->in_c * L->in_h * L->in_w; }
static i64 out_size(const nr_layer *L) { return (i64)L->out_c * L->out_h * L->out_w; }

/* ---- convolution ----------------------------------------------------------- */

typedef struct conv_args {
    int C, H, W, O, k, s, pad, reflect, OH, OW;
    i64 P, K;
} conv_args;

static conv_args conv_args_of(const nr_layer *L)
{
    conv_args a = { L->in_c, L->in_h, L->in_w, L->out_c, L->kernel, L->stride > 0 ? L->stride : 1, L->padding,
                    L->reflect != 0, L->out_h, L->out_w, 0, 0 };
    a.P = (i64)a.OH * a.OW;
    a.K = (i64)a.C * a.k * a.k;
    return a;
}

/* Scratch: cols [K, n*P] (reused for their gradient), then the GEMM
 * output or dy in GEMM layout [O, n*P]. */
size_t nr_gpu_layer_scratch_count(const nr_layer *L, int n)
{
    if (L->kind == NR_BATCHNORM) return 2 * (size_t)L->in_c;
    if (L->kind != NR_CONV) return 0;
    conv_args a = conv_args_of(L);
    return (size_t)(a.K + a.O) * (size_t)n * (size_t)a.P;
}

static int im2col(nr_gpu *g, nr_kernel_id k, conv_args *a, int n, nr_dptr src, nr_dptr dst, i64 work,
                  nr_error *e)
{
    void *args[] = { &src, &dst, &n, &a->C, &a->H, &a->W, &a->k, &a->s, &a->pad, &a->reflect, &a->OH, &a->OW };
    return nr_gpu_launch(g, k, work, args, e);
}

static int conv_forward(nr_gpu *g, const nr_layer *L, int n, nr_dptr x, nr_dptr y, nr_dptr params,
                        nr_dptr scratch, nr_error *e)
{
    conv_args a = conv_args_of(L);
    i64 cols_n = (i64)n * a.P;
    nr_dptr cols = scratch, out = scratch + (size_t)(a.K * cols_n) * sizeof(float);
    nr_dptr bias = L->bias ? params + (size_t)(a.O * a.K) * sizeof(float) : 0;
    if (im2col(g, NR_K_IM2COL, &a, n, x, cols, a.K * cols_n, e) != 0) return -1;
    if (nr_gpu_sgemm(g, 0, 0, a.O, (int)cols_n, (int)a.K, 1.0f, params, (int)a.K, cols, (int)cols_n, 0.0f, out,
                     (int)cols_n, e) != 0)
        return -1;
    void *args[] = { &out, &bias, &y, &n, &a.O, &a.P };
    return nr_gpu_launch(g, NR_K_CONV_SCATTER_BIAS, (i64)n * a.O * a.P, args, e);
}

static int conv_backward(nr_gpu *g, const nr_layer *L, int n, nr_dptr x, nr_dptr dy, nr_dptr dx,
                         nr_dptr params, nr_dptr dparams, nr_dptr scratch, nr_error *e)
{
    conv_args a = conv_args_of(L);
    i64 cols_n = (i64)n * a.P;
    nr_dptr cols = scratch, dyT = scratch + (size_t)(a.K * cols_n) * sizeof(float);
    void *gather[] = { &dy, &dyT, &n, &a.O, &a.P };
    if (nr_gpu_launch(g, NR_K_CONV_GATHER_DY, (i64)n * a.O * a.P, gather, e) != 0) return -1;
    if (L->bias) {
        nr_dptr db = dparams + (size_t)(a.O * a.K) * sizeof(float);
        void *sum[] = { &dyT, &db, &a.O, &cols_n };
        if (nr_gpu_launch_blocks(g, NR_K_ROW_SUM, (unsigned)a.O, sum, e) != 0) return -1;
    }
    if (im2col(g, NR_K_IM2COL, &a, n, x, cols, a.K * cols_n, e) != 0) return -1;
    /* dW [O, K] = dyT [O, nP] cols^T */
    if (nr_gpu_sgemm(g, 0, 1, a.O, (int)a.K, (int)cols_n, 1.0f, dyT, (int)cols_n, cols, (int)cols_n, 0.0f, dparams,
                     (int)a.K, e) != 0)
        return -1;
    if (!dx) return 0;
    /* dcols [K, nP] = W^T dyT, into the columns' place (no longer needed) */
    if (nr_gpu_sgemm(g, 1, 0, (int)a.K, (int)cols_n, a.O, 1.0f, params, (int)a.K, dyT, (int)cols_n, 0.0f, cols,
                     (int)cols_n, e) != 0)
        return -1;
    return im2col(g, NR_K_COL2IM, &a, n, cols, dx, (i64)n * a.C * a.H * a.W, e);
}

/* ---- dense ----------------------------------------------------------------- */

static int dense_forward(nr_gpu *g, const nr_layer *L, int n, nr_dptr x, nr_dptr y, nr_dptr params,
                         nr_error *e)
{
    int in = (int)in_size(L), out = (int)out_size(L);
    if (nr_gpu_sgemm(g, 0, 1, n, out, in, 1.0f, x, in, params, in, 0.0f, y, out, e) != 0) return -1;
    if (!L->bias) return 0;
    nr_dptr bias = params + (size_t)in * out * sizeof(float);
    void *args[] = { &y, &bias, &n, &out };
    return nr_gpu_launch(g, NR_K_BIAS_ADD_ROWS, (i64)n * out, args, e);
}

static int dense_backward(nr_gpu *g, const nr_layer *L, int n, nr_dptr x, nr_dptr dy, nr_dptr dx,
                          nr_dptr params, nr_dptr dparams, nr_error *e)
{
    int in = (int)in_size(L), out = (int)out_size(L);
    /* dW [out, in] = dy^T x */
    if (nr_gpu_sgemm(g, 1, 0, out, in, n, 1.0f, dy, out, x, in, 0.0f, dparams, in, e) != 0) return -1;
    if (L->bias) {
        nr_dptr db = dparams + (size_t)in * out * sizeof(float);
        void *args[] = { &dy, &db, &n, &out };
        if (nr_gpu_launch(g, NR_K_COL_SUM, out, args, e) != 0) return -1;
    }
    /* dx [n, in] = dy W */
    return dx ? nr_gpu_sgemm(g, 0, 0, n, in, out, 1.0f, dy, out, params, in, 0.0f, dx, in, e) : 0;
}

/* ---- pooling ----------------------------------------------------------------- */

static int pool(nr_gpu *g, const nr_layer *L, int n, nr_kernel_id k, nr_dptr a0, nr_dptr a1,
                nr_dptr a2, int backward, nr_error *e)
{
    i64 planes = (i64)n * L->in_c;
    int H = L->in_h, W = L->in_w, OH = L->out_h, OW = L->out_w, kk = L->kernel;
    int s = L->stride > 0 ? L->stride : L->kernel, pad = L->padding;
    i64 work = planes * (backward ? (i64)H * W : (i64)OH * OW);
    void *three[] = { &a0, &a1, &a2, &planes, &H, &W, &OH, &OW, &kk, &s, &pad };
    void *two[] = { &a0, &a1, &planes, &H, &W, &OH, &OW, &kk, &s, &pad };
    int has_arg = k == NR_K_MAXPOOL_FORWARD || k == NR_K_MAXPOOL_BACKWARD;
    return nr_gpu_launch(g, k, work, has_arg ? three : two, e);
}

/* ---- batchnorm ----------------------------------------------------------------- */

static int batchnorm_forward(nr_gpu *g, const nr_layer *L, int n, nr_dptr x, nr_dptr y, nr_dptr params,
                             nr_dptr buffers, nr_dptr saved, int flags, nr_error *e)
{
    int C = L->in_c;
    i64 hw = (i64)L->in_h * L->in_w;
    int training = (flags & NR_TRAINING) != 0, update = training && (flags & NR_UPDATE_STATS);
    float eps = L->eps, momentum = L->momentum;
    nr_dptr rm = buffers, rv = buffers + (size_t)C * sizeof(float);
    nr_dptr gamma = L->affine ? params : 0, beta = L->affine ? params + (size_t)C * sizeof(float) : 0;
    void *stats[] = { &x, &saved, &rm, &rv, &n, &C, &hw, &eps, &momentum, &training, &update };
    if (nr_gpu_launch_blocks(g, NR_K_BN_STATS, (unsigned)C, stats, e) != 0) return -1;
    void *norm[] = { &x, &y, &saved, &gamma, &beta, &n, &C, &hw };
    return nr_gpu_launch(g, NR_K_BN_NORMALIZE, (i64)n * C * hw, norm, e);
}

static int batchnorm_backward(nr_gpu *g, const nr_layer *L, int n, nr_dptr x, nr_dptr dy, nr_dptr dx,
                              nr_dptr params, nr_dptr dparams, nr_dptr saved, nr_dptr scratch,
                              nr_error *e)
{
    int C = L->in_c;
    i64 hw = (i64)L->in_h * L->in_w;
    nr_dptr dp = L->affine ? dparams : 0, gamma = L->affine ? params : 0, coef = scratch;
    void *reduce[] = { &x, &dy, &saved, &dp, &coef, &n, &C, &hw };
    if (nr_gpu_launch_blocks(g, NR_K_BN_BACKWARD_REDUCE, (unsigned)C, reduce, e) != 0) return -1;
    if (!dx) return 0;
    void *args[] = { &x, &dy, &dx, &saved, &gamma, &coef, &n, &C, &hw };
    return nr_gpu_launch(g, NR_K_BN_BACKWARD_DX, (i64)n * C * hw, args, e);
}

/* ---- dropout --------------------------------------------------------------------- */

static int dropout_forward(nr_gpu *g, const nr_layer *L, int n, nr_dptr x, nr_dptr y, nr_dptr saved,
                           int flags, const nr_gpu_draws *d, nr_error *e)
{
    i64 total = (i64)n * in_size(L);
    int active = (flags & NR_TRAINING) && L->p > 0.0f;
    float p = L->p, keep = nr_dropout_scale(L->p);
    uint64_t seed = d->seed;
    uint32_t purpose = NR_RNG_DROPOUT, layer = d->layer, pass = d->pass;
    nr_dptr vars = d->vars;
    if (active && !vars) return nr_fail(e, "layer %s: dropout in training needs the step's values", L->name);
    void *args[] = { &x, &y, &saved, &total, &p, &keep, &active, &seed, &purpose, &layer, &pass, &vars };
    return nr_gpu_launch(g, NR_K_DROPOUT_FORWARD, total, args, e);
}

/* ---- activations and softmax -------------------------------------------------------- */

static int activation_forward(nr_gpu *g, const nr_layer *L, i64 total, nr_dptr x, nr_dptr y, nr_error *e)
{
    float slope = L->slope;
    void *args[] = { &x, &y, &total, &slope };
    nr_kernel_id k = L->kind == NR_TANH ? NR_K_TANH_FORWARD
                     : L->kind == NR_RELU ? NR_K_RELU_FORWARD
                     : L->kind == NR_LEAKY_RELU ? NR_K_LEAKY_RELU_FORWARD
                                                : NR_K_SIGMOID_FORWARD;
    return nr_gpu_launch(g, k, total, args, e);
}

static int activation_backward(nr_gpu *g, const nr_layer *L, i64 total, nr_dptr x, nr_dptr y,
                               nr_dptr dy, nr_dptr dx, nr_error *e)
{
    float slope = L->slope;
    /* leaky_relu's derivative reads x, the others y */
    nr_dptr in = L->kind == NR_LEAKY_RELU ? x : y;
    void *args[] = { &in, &dy, &dx, &total, &slope };
    nr_kernel_id k = L->kind == NR_TANH ? NR_K_TANH_BACKWARD
                     : L->kind == NR_RELU ? NR_K_RELU_BACKWARD
                     : L->kind == NR_LEAKY_RELU ? NR_K_LEAKY_RELU_BACKWARD
                                                : NR_K_SIGMOID_BACKWARD;
    return nr_gpu_launch(g, k, total, args, e);
}

static int softmax(nr_gpu *g, const nr_layer *L, int n, nr_kernel_id k, void *a0, void *a1, void *a2, nr_error *e)
{
    int C = L->in_c, log_form = L->kind == NR_LOG_SOFTMAX;
    i64 hw = (i64)L->in_h * L->in_w;
    void *fwd[] = { a0, a1, &n, &C, &hw, &log_form };
    void *bwd[] = { a0, a1, a2, &n, &C, &hw, &log_form };
    return nr_gpu_launch(g, k, (i64)n * hw, k == NR_K_SOFTMAX_FORWARD ? fwd : bwd, e);
}

/* ---- the interface ---------------------------------------------------------------------- */

int nr_gpu_forward(nr_gpu *g, const nr_layer *L, int n, nr_dptr x, nr_dptr y, nr_dptr params,
                   nr_dptr buffers, nr_dptr saved, nr_dptr scratch, int flags, const nr_gpu_draws *dropout,
                   nr_error *e)
{
    if (n <= 0) return 0;
    i64 total = (i64)n * in_size(L);
    switch (L->kind) {
    case NR_CONV: return conv_forward(g, L, n, x, y, params, scratch, e);
    case NR_DENSE: return dense_forward(g, L, n, x, y, params, e);
    case NR_MAXPOOL: return pool(g, L, n, NR_K_MAXPOOL_FORWARD, x, y, saved, 0, e);
    case NR_AVGPOOL: return pool(g, L, n, NR_K_AVGPOOL_FORWARD, x, y, 0, 0, e);
    case NR_BATCHNORM: return batchnorm_forward(g, L, n, x, y, params, buffers, saved, flags, e);
    case NR_DROPOUT: return dropout_forward(g, L, n, x, y, saved, flags, dropout, e);
    case NR_FLATTEN: return nr_gpu_copy(g, y, x, (size_t)total * sizeof(float), e);
    case NR_SOFTMAX:
    case NR_LOG_SOFTMAX: return softmax(g, L, n, NR_K_SOFTMAX_FORWARD, &x, &y, NULL, e);
    case NR_TANH:
    case NR_RELU:
    case NR_LEAKY_RELU:
    case NR_SIGMOID: return activation_forward(g, L, total, x, y, e);
    case NR_KIND_COUNT: break;
    }
    return nr_fail(e, "layer %s: unknown kind %d", L->name ? L->name : "?", (int)L->kind);
}

int nr_gpu_backward(nr_gpu *g, const nr_layer *L, int n, nr_dptr x, nr_dptr y, nr_dptr dy,
                    nr_dptr dx, nr_dptr params, nr_dptr dparams, nr_dptr saved, nr_dptr scratch,
                    nr_error *e)
{
    if (n <= 0) return 0;
    i64 total = (i64)n * in_size(L);
    switch (L->kind) {
    case NR_CONV: return conv_backward(g, L, n, x, dy, dx, params, dparams, scratch, e);
    case NR_DENSE: return dense_backward(g, L, n, x, dy, dx, params, dparams, e);
    case NR_BATCHNORM: return batchnorm_backward(g, L, n, x, dy, dx, params, dparams, saved, scratch, e);
    default: break;
    }
    if (!dx) return 0; /* the remaining kinds have no parameters */
    switch (L->kind) {
    case NR_MAXPOOL: return pool(g, L, n, NR_K_MAXPOOL_BACKWARD, dy, saved, dx, 1, e);
    case NR_AVGPOOL: return pool(g, L, n, NR_K_AVGPOOL_BACKWARD, dy, dx, 0, 1, e);
    case NR_DROPOUT: {
        void *args[] = { &dy, &dx, &saved, &total };
        return nr_gpu_launch(g, NR_K_DROPOUT_BACKWARD, total, args, e);
    }
    case NR_FLATTEN: return nr_gpu_copy(g, dx, dy, (size_t)total * sizeof(float), e);
    case NR_SOFTMAX:
    case NR_LOG_SOFTMAX: return softmax(g, L, n, NR_K_SOFTMAX_BACKWARD, &y, &dy, &dx, e);
    case NR_TANH:
    case NR_RELU:
    case NR_LEAKY_RELU:
    case NR_SIGMOID: return activation_backward(g, L, total, x, y, dy, dx, e);
    default: break;
    }
    return nr_fail(e, "layer %s: unknown kind %d", L->name ? L->name : "?", (int)L->kind);
}

/* ---- loss --------------------------------------------------------------------------------- */

int nr_gpu_loss(nr_gpu *g, const nr_loss *loss, int n, int classes, nr_dptr logits, nr_dptr labels,
                nr_dptr dlogits, nr_dptr results, nr_dptr vars, nr_error *e)
{
    nr_loss_args a = { (int)loss->kind, loss->label_smoothing, loss->smoothing_other_classes, loss->mse_softmax,
                       loss->margin, loss->p };
    void *args[] = { &a, &n, &classes, &logits, &labels, &dlogits, &results, &vars };
    return nr_gpu_launch_blocks(g, NR_K_LOSS, 1, args, e);
}

int nr_gpu_loss_result(nr_gpu *g, nr_dptr results, long slot, double *loss, int *correct, nr_error *e)
{
    unsigned char bytes[NR_LOSS_RESULT_BYTES];
    if (nr_gpu_download(g, bytes, results + (size_t)slot * NR_LOSS_RESULT_BYTES, sizeof bytes, e) != 0) return -1;
    memcpy(loss, bytes, sizeof *loss);
    memcpy(correct, bytes + sizeof(double), sizeof *correct);
    return 0;
}

/* ---- batches ------------------------------------------------------------------------------- */

static void copy_aug_op(const nr_aug_op *op, nr_gpu_aug_op *g)
{
    g->kind = op->kind == NR_AUG_ROTATE ? NR_GPU_AUG_ROTATE
              : op->kind == NR_AUG_HFLIP ? NR_GPU_AUG_HFLIP
              : op->kind == NR_AUG_CROP  ? NR_GPU_AUG_CROP
                                         : NR_GPU_AUG_NOISE;
    g->degrees = op->degrees;
    g->bilinear = op->bilinear;
    g->fill = op->fill;
    g->p = op->p;
    g->size = op->size;
    g->padding = op->padding;
    g->std = op->std;
    g->clamp = op->clamp;
    g->lo = op->lo;
    g->hi = op->hi;
    g->after_normalize = op->after_normalize;
}

int nr_gpu_batch_desc_of(const nr_program *p, uint64_t seed, nr_gpu_batch_desc *d, nr_error *e)
{
    const nr_data_spec *ds = &p->data;
    const nr_noise_test *nt = &p->noise;
    memset(d, 0, sizeof *d);
    if (p->augment.nops > NR_GPU_MAX_AUG_OPS)
        return nr_fail(e, "%d augmentation ops: the GPU takes at most %d", p->augment.nops, NR_GPU_MAX_AUG_OPS);
    d->c = ds->channels;
    d->h = ds->height;
    d->w = ds->width;
    d->nnorm = ds->nnorm;
    memcpy(d->mean, ds->mean, sizeof d->mean);
    memcpy(d->std, ds->std, sizeof d->std);
    d->nops = p->augment.nops;
    for (int j = 0; j < d->nops; j++) copy_aug_op(&p->augment.ops[j], &d->ops[j]);
    size_t half = nr_preprocess_scratch(ds, &p->augment) / 2, image = (size_t)d->c * d->h * d->w;
    d->scratch = (int)(half > image ? half : image);
    d->augment_purpose = NR_RNG_AUGMENT;
    d->noise_purpose = NR_RNG_NOISE_TEST;
    d->seed = seed;
    d->noise_seed = nt->seed;
    d->noise_before_normalize = nt->before_normalize;
    d->noise_clamp = nt->clamp;
    d->noise_same = nt->same_noise;
    d->noise_lo = nt->lo;
    d->noise_hi = nt->hi;
    d->noise_nnorm = nt->nnorm;
    memcpy(d->noise_mean, nt->norm_mean, sizeof d->noise_mean);
    memcpy(d->noise_std, nt->norm_std, sizeof d->noise_std);
    return 0;
}

int nr_gpu_gather_train(nr_gpu *g, const nr_gpu_batch_desc *d, nr_dptr pixels, nr_dptr set_labels, nr_dptr image,
                        nr_dptr stream_a, nr_dptr augment, int n, nr_dptr scratch, nr_dptr x, nr_dptr labels,
                        nr_error *e)
{
    nr_gpu_batch_desc desc = *d;
    void *args[] = { &desc, &pixels, &set_labels, &image, &stream_a, &augment, &n, &scratch, &x, &labels };
    /* A block per image: the ops run one after another over its pixels. */
    return nr_gpu_launch_blocks(g, NR_K_GATHER_TRAIN, (unsigned)(n > 0 ? n : 1), args, e);
}

int nr_gpu_gather_eval(nr_gpu *g, const nr_gpu_batch_desc *d, nr_dptr pixels, nr_dptr set_labels, nr_dptr idx,
                       long long first, int n, int level, float noise_std, nr_dptr x, nr_dptr labels, nr_error *e)
{
    nr_gpu_batch_desc desc = *d;
    void *args[] = { &desc, &pixels, &set_labels, &idx, &first, &n, &level, &noise_std, &x, &labels };
    return nr_gpu_launch(g, NR_K_GATHER_EVAL, (long long)n * d->c * d->h * d->w, args, e);
}

/* ---- optimizers ------------------------------------------------------------------------------ */

void nr_gpu_step_vars(const nr_optim *o, float lr, long step, long slot, nr_step_vars *v)
{
    memset(v, 0, sizeof *v);
    v->step = step - 1;
    v->slot = slot;
    v->lr = lr;
    v->sgd_mode = o->momentum == 0.0f ? 0 : step <= 1 ? 1 : 2;
    /* Adam's, as optim.c computes them: in double, rounded once. */
    double t = step < 1 ? 1.0 : (double)step;
    double bc1 = 1.0 - pow((double)o->beta1, t), bc2 = 1.0 - pow((double)o->beta2, t);
    v->adam_decay_factor = (float)(1.0 - (double)lr * o->weight_decay);
    v->adam_neg_step_size = (float)(-((double)lr / bc1));
    v->adam_bc2_sqrt = (float)sqrt(bc2);
}

static int sgd_step(nr_gpu *g, const nr_optim *o, nr_dptr vars, nr_dptr w, nr_dptr grad, nr_dptr state, i64 n,
                    nr_error *e)
{
    float wd = o->weight_decay, mu = o->momentum;
    float keep = (float)(1.0 - (double)o->dampening);
    float d_coef = o->nesterov ? 1.0f : 0.0f, b_coef = o->nesterov ? o->momentum : 1.0f;
    nr_dptr buf = o->momentum != 0.0f ? state : 0;
    void *args[] = { &w, &grad, &buf, &n, &vars, &wd, &mu, &keep, &d_coef, &b_coef };
    return nr_gpu_launch(g, NR_K_SGD_STEP, n, args, e);
}

static int adam_step(nr_gpu *g, const nr_optim *o, nr_dptr vars, nr_dptr w, nr_dptr grad, nr_dptr state, i64 n,
                     nr_error *e)
{
    float wd = o->weight_decay;
    int decoupled = o->kind == NR_ADAMW && wd != 0.0f;
    if (o->kind == NR_ADAMW) wd = 0.0f;
    float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    float one_minus_b1 = (float)(1.0 - (double)o->beta1), one_minus_b2 = (float)(1.0 - (double)o->beta2);
    nr_dptr m = state, v = state + (size_t)n * sizeof(float);
    void *args[] = { &w, &grad, &m, &v, &n, &decoupled, &vars, &wd, &b1, &one_minus_b1, &b2, &one_minus_b2, &eps };
    return nr_gpu_launch(g, NR_K_ADAM_STEP, n, args, e);
}

static int rmsprop_step(nr_gpu *g, const nr_optim *o, nr_dptr vars, nr_dptr w, nr_dptr grad, nr_dptr state, i64 n,
                        nr_error *e)
{
    float wd = o->weight_decay, a = o->alpha, eps = o->eps, mu = o->momentum;
    float one_minus_a = (float)(1.0 - (double)o->alpha);
    nr_dptr v = state, buf = o->momentum > 0.0f ? state + (size_t)n * sizeof(float) : 0;
    void *args[] = { &w, &grad, &v, &buf, &n, &vars, &wd, &a, &one_minus_a, &eps, &mu };
    return nr_gpu_launch(g, NR_K_RMSPROP_STEP, n, args, e);
}

int nr_gpu_optim_step(nr_gpu *g, const nr_optim *o, nr_dptr vars, nr_dptr w, nr_dptr grad, nr_dptr state,
                      size_t n, nr_error *e)
{
    if (n == 0) return 0;
    switch (o->kind) {
    case NR_SGD: return sgd_step(g, o, vars, w, grad, state, (i64)n, e);
    case NR_ADAM:
    case NR_ADAMW: return adam_step(g, o, vars, w, grad, state, (i64)n, e);
    case NR_RMSPROP: return rmsprop_step(g, o, vars, w, grad, state, (i64)n, e);
    }
    return nr_fail(e, "unknown optimizer %d", (int)o->kind);
}

/* ---- SAM ------------------------------------------------------------------------------------------ */

int nr_gpu_sam_perturb(nr_gpu *g, const nr_optim *o, nr_dptr w, nr_dptr grad, nr_dptr saved,
                       nr_dptr scratch, size_t n, nr_error *e)
{
    i64 count = (i64)n;
    int adaptive = o->sam_adaptive != 0, nparts = NR_GPU_SAM_PARTS;
    float rho = o->sam_rho, w_coef = adaptive ? 1.0f : 0.0f;
    nr_dptr partial = scratch, norm = scratch + NR_GPU_SAM_NORM_OFFSET, scale = norm + sizeof(double);
    void *sumsq[] = { &w, &grad, &partial, &count, &adaptive };
    if (nr_gpu_launch_blocks(g, NR_K_SAM_SUMSQ, NR_GPU_SAM_PARTS, sumsq, e) != 0) return -1;
    void *finish[] = { &partial, &nparts, &rho, &norm, &scale };
    if (nr_gpu_launch_blocks(g, NR_K_SAM_FINISH, 1, finish, e) != 0) return -1;
    void *ascend[] = { &w, &grad, &saved, &scale, &count, &w_coef };
    return nr_gpu_launch(g, NR_K_SAM_ASCEND, count, ascend, e);
}

int nr_gpu_sam_restore(nr_gpu *g, nr_dptr w, nr_dptr saved, size_t n, nr_error *e)
{
    i64 count = (i64)n;
    void *args[] = { &saved, &w, &count };
    return nr_gpu_launch(g, NR_K_COPY, count, args, e);
}
