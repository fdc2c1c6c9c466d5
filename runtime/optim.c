/* Optimizer updates and learning-rate schedules.
 *
 * Each update follows torch.optim's single-tensor code (PyTorch 1.13) one
 * float operation at a time: the scalar coefficients (1 - beta, the bias
 * corrections, -lr) are computed in double as Python does and rounded to
 * float once, and every tensor operation is a float operation in torch's
 * order, e.g. Adam's  w + (-step_size * m) / (sqrt(v) / sqrt(bc2) + eps); the
 * per-element updates are runtime/nr_math.h's, which the CUDA kernels share.
 * The remaining differences come from the hyperparameters being stored as
 * float (0.9f is not Python's 0.9), a few parts in 1e8 per step.
 *
 * Element-wise loops are independent per element, so splitting them over
 * threads cannot change the result; the one reduction (SAM's norm) sums
 * fixed blocks in a fixed order, so it does not depend on the thread count
 * either. */
#include "optim.h"
#include "nr_math.h"
#include "cpu/isa.h"
#include <math.h>
#include <string.h>

/* Below this many parameters a parallel region costs more than it saves:
 * at 61,706 (W5) and 78,658 (W6) the update on the calling thread alone was
 * as fast as on two on a quiet machine, and 5-15% faster in images/s with
 * another program busy on one of the two cores, where the region's closing
 * barrier waits for a descheduled thread (bench/RESULTS.md). Chunks are
 * handed out as threads come; each element's update is the same on any
 * thread. The `if` applies to `parallel` only: on the combined construct a
 * plain `if` also turns `simd` off when false, and the loop then ran
 * scalar, 10x slower (measured on Adam). */
#define NR_OPTIM_PAR_MIN (1 << 18)

#define NR_PI 3.14159265358979323846

#ifdef _OPENMP
#define NR_PAR_SIMD _Pragma("omp parallel for simd schedule(dynamic, 4096) if (parallel : n >= NR_OPTIM_PAR_MIN)")
#define NR_PAR_FOR _Pragma("omp parallel for schedule(static) if (n >= NR_OPTIM_PAR_MIN)")
#else
#define NR_PAR_SIMD
#define NR_PAR_FOR
#endif

size_t nr_optim_state_count(const nr_optim *o, size_t n)
{
    switch (o->kind) {
    case NR_SGD:
        return o->momentum != 0.0f ? n : 0;
    case NR_ADAM:
    case NR_ADAMW:
        return 2 * n;           /* exp_avg, then exp_avg_sq */
    case NR_RMSPROP:
        return o->momentum > 0.0f ? 2 * n : n;  /* square_avg, then the momentum buffer */
    }
    return 0;
}

/* ---- SGD ---------------------------------------------------------------- */

SIMD_CLONES static void sgd_plain(float lr, float wd, float *restrict w, const float *restrict g, size_t n)
{
    NR_PAR_SIMD
    for (size_t i = 0; i < n; i++) {
        float d = nr_decayed_grad(g[i], w[i], wd);
        w[i] = nr_sgd_apply(w[i], lr, d);
    }
}

/* torch clones the (decayed) gradient into the buffer on the first step.
 * Nesterov's step is d + mu * b, the plain one b: with (d_coef, b_coef) =
 * (1, mu) or (0, 1) one branch-free loop computes either exactly. */
SIMD_CLONES static void sgd_momentum_first(float lr, float wd, float d_coef, float b_coef, float *restrict w,
                                           const float *restrict g, float *restrict buf, size_t n)
{
    NR_PAR_SIMD
    for (size_t i = 0; i < n; i++) {
        float d = nr_decayed_grad(g[i], w[i], wd);
        buf[i] = d;
        w[i] = nr_sgd_apply(w[i], lr, nr_momentum_step(d_coef, d, b_coef, d));
    }
}

SIMD_CLONES static void sgd_momentum(float lr, float wd, float mu, float keep, float d_coef, float b_coef,
                                     float *restrict w, const float *restrict g, float *restrict buf, size_t n)
{
    NR_PAR_SIMD
    for (size_t i = 0; i < n; i++) {
        float d = nr_decayed_grad(g[i], w[i], wd);
        float b = nr_momentum_buffer(buf[i], mu, keep, d);
        buf[i] = b;
        w[i] = nr_sgd_apply(w[i], lr, nr_momentum_step(d_coef, d, b_coef, b));
    }
}

static void sgd_step(const nr_optim *o, float lr, long step, float *w, const float *g, float *state, size_t n)
{
    if (o->momentum == 0.0f) {
        sgd_plain(lr, o->weight_decay, w, g, n);
        return;
    }
    float d_coef = o->nesterov ? 1.0f : 0.0f, b_coef = o->nesterov ? o->momentum : 1.0f;
    if (step <= 1) {
        sgd_momentum_first(lr, o->weight_decay, d_coef, b_coef, w, g, state, n);
    } else {
        float keep = (float)(1.0 - (double)o->dampening);
        sgd_momentum(lr, o->weight_decay, o->momentum, keep, d_coef, b_coef, w, g, state, n);
    }
}

/* ---- Adam and AdamW ------------------------------------------------------- */

/* wd is 0 for AdamW, whose decay was applied to w beforehand. */
SIMD_CLONES static void adam_update(float wd, float b1, float one_minus_b1, float b2, float one_minus_b2,
                                    float neg_step_size, float bc2_sqrt, float eps, float *restrict w,
                                    const float *restrict g, float *restrict m, float *restrict v, size_t n)
{
    NR_PAR_SIMD
    for (size_t i = 0; i < n; i++) {
        float d = nr_decayed_grad(g[i], w[i], wd);
        float mi = nr_ema(m[i], b1, one_minus_b1, d);
        float vi = nr_ema_sq(v[i], b2, one_minus_b2, d);
        m[i] = mi;
        v[i] = vi;
        w[i] = nr_adam_apply(w[i], neg_step_size, mi, vi, bc2_sqrt, eps);
    }
}

SIMD_CLONES static void scale_weights(float factor, float *restrict w, size_t n)
{
    NR_PAR_SIMD
    for (size_t i = 0; i < n; i++) w[i] = w[i] * factor;
}

static void adam_step(const nr_optim *o, float lr, long step, float *w, const float *g, float *state, size_t n)
{
    float wd = o->weight_decay;
    if (o->kind == NR_ADAMW) {
        if (wd != 0.0f) scale_weights((float)(1.0 - (double)lr * wd), w, n);
        wd = 0.0f;
    }
    double t = step < 1 ? 1.0 : (double)step;
    double bc1 = 1.0 - pow((double)o->beta1, t);
    double bc2 = 1.0 - pow((double)o->beta2, t);
    float neg_step_size = (float)(-((double)lr / bc1));
    adam_update(wd, o->beta1, (float)(1.0 - (double)o->beta1), o->beta2, (float)(1.0 - (double)o->beta2),
                neg_step_size, (float)sqrt(bc2), o->eps, w, g, state, state + n, n);
}

/* ---- RMSprop -------------------------------------------------------------- */

SIMD_CLONES static void rmsprop_plain(float lr, float wd, float a, float one_minus_a, float eps, float *restrict w,
                                      const float *restrict g, float *restrict v, size_t n)
{
    NR_PAR_SIMD
    for (size_t i = 0; i < n; i++) {
        float d = nr_decayed_grad(g[i], w[i], wd);
        float vi = nr_ema_sq(v[i], a, one_minus_a, d);
        v[i] = vi;
        w[i] = nr_rmsprop_apply(w[i], lr, d, nr_rmsprop_avg(vi, eps));
    }
}

SIMD_CLONES static void rmsprop_momentum(float lr, float wd, float a, float one_minus_a, float eps, float mu,
                                         float *restrict w, const float *restrict g, float *restrict v,
                                         float *restrict buf, size_t n)
{
    NR_PAR_SIMD
    for (size_t i = 0; i < n; i++) {
        float d = nr_decayed_grad(g[i], w[i], wd);
        float vi = nr_ema_sq(v[i], a, one_minus_a, d);
        v[i] = vi;
        float b = nr_momentum_buffer(buf[i], mu, 1.0f, d / nr_rmsprop_avg(vi, eps));
        buf[i] = b;
        w[i] = nr_sgd_apply(w[i], lr, b);
    }
}

static void rmsprop_step(const nr_optim *o, float lr, float *w, const float *g, float *state, size_t n)
{
    float one_minus_a = (float)(1.0 - (double)o->alpha);
    if (o->momentum > 0.0f)
        rmsprop_momentum(lr, o->weight_decay, o->alpha, one_minus_a, o->eps, o->momentum, w, g, state, state + n, n);
    else
        rmsprop_plain(lr, o->weight_decay, o->alpha, one_minus_a, o->eps, w, g, state, n);
}

void nr_optim_step(const nr_optim *o, float lr, long step, float *w, const float *g, float *state, size_t n)
{
    switch (o->kind) {
    case NR_SGD:
        sgd_step(o, lr, step, w, g, state, n);
        break;
    case NR_ADAM:
    case NR_ADAMW:
        adam_step(o, lr, step, w, g, state, n);
        break;
    case NR_RMSPROP:
        rmsprop_step(o, lr, w, g, state, n);
        break;
    }
}

/* ---- SAM ------------------------------------------------------------------- */

/* Fixed blocks make the norm's summation order a function of n alone. */
#define NR_SAM_BLOCKS 64

static double block_sum_squares(int adaptive, const float *restrict w, const float *restrict g, size_t lo,
                                size_t hi)
{
    double s = 0.0;
    for (size_t i = lo; i < hi; i++) {
        double x = nr_sam_term(adaptive, w[i], g[i]);
        s += x * x;
    }
    return s;
}

static double sam_norm(int adaptive, const float *w, const float *g, size_t n)
{
    double partial[NR_SAM_BLOCKS];
    size_t per = (n + NR_SAM_BLOCKS - 1) / NR_SAM_BLOCKS;
    NR_PAR_FOR
    for (int b = 0; b < NR_SAM_BLOCKS; b++) {
        size_t lo = (size_t)b * per, hi = lo + per;
        if (lo > n) lo = n;
        if (hi > n) hi = n;
        partial[b] = block_sum_squares(adaptive, w, g, lo, hi);
    }
    double total = 0.0;
    for (int b = 0; b < NR_SAM_BLOCKS; b++) total += partial[b];
    return sqrt(total);
}

/* e = w^2 * g * scale (adaptive: w_coef 1) or g * scale (w_coef 0): see nr_sam_ascended. */
SIMD_CLONES static void sam_ascend(float w_coef, float scale, float *restrict w, const float *restrict g,
                                   float *restrict saved, size_t n)
{
    NR_PAR_SIMD
    for (size_t i = 0; i < n; i++) {
        float wi = w[i];
        saved[i] = wi;
        w[i] = nr_sam_ascended(wi, w_coef, g[i], scale);
    }
}

/* `e` keeps the weights from before the ascent rather than the step: in
 * float, (w + e) - e is not always w (a step much larger than a weight
 * swallows the weight's low bits), and SAM's reference implementation
 * restores the saved weights exactly. */
double nr_sam_perturb(const nr_optim *o, float *w, const float *g, float *e, size_t n)
{
    int adaptive = o->sam_adaptive != 0;
    double norm = sam_norm(adaptive, w, g, n);
    float scale = nr_sam_scale(o->sam_rho, norm);
    sam_ascend(adaptive ? 1.0f : 0.0f, scale, w, g, e, n);
    return norm;
}

void nr_sam_restore(float *w, const float *e, size_t n)
{
    if (n) memmove(w, e, n * sizeof *w);
}

/* ---- schedules ------------------------------------------------------------- */

/* Milestone of a fraction of the run. The fractions are stored as float, so
 * 0.7f * 10 is 6.9999998 and a plain floor would move the milestone one
 * step early: products within float's precision of an integer count as
 * that integer. */
static long fraction_milestone(float f, long total)
{
    double x = (double)f * (double)total;
    return (long)floor(x + 1e-9 + 1e-6 * fabs(x));
}

static int milestones_reached(const nr_schedule *s, long t, long total)
{
    int k = 0;
    if (s->milestones) {
        for (int i = 0; i < s->nmilestones; i++)
            if (s->milestones[i] <= t) k++;
    } else if (s->fractions) {
        for (int i = 0; i < s->nfractions; i++)
            if (fraction_milestone(s->fractions[i], total) <= t) k++;
    }
    return k;
}

double nr_schedule_lr(const nr_schedule *s, double lr0, int epoch, long iteration, int epochs,
                      long iters_per_epoch)
{
    long t = s->per_iteration ? iteration : epoch;
    long total = s->per_iteration ? (long)epochs * iters_per_epoch : epochs;
    switch (s->kind) {
    case NR_SCHED_CONSTANT:
        return lr0;
    case NR_SCHED_STEP:
        if (s->step <= 0) return lr0;
        return lr0 * pow((double)s->gamma, (double)(t / s->step));
    case NR_SCHED_MULTISTEP:
        return lr0 * pow((double)s->gamma, (double)milestones_reached(s, t, total));
    case NR_SCHED_COSINE: {
        long T = s->t_max > 0 ? s->t_max : total;
        if (T <= 0) return lr0;
        double eta_min = s->eta_min;
        return eta_min + (lr0 - eta_min) * (1.0 + cos(NR_PI * (double)t / (double)T)) / 2.0;
    }
    }
    return lr0;
}
