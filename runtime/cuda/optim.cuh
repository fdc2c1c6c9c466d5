#include "common.cuh"

/* ---- optimizers: one kernel per optimizer over the flat parameter buffer --------
 * The scalar coefficients come from the host, computed in double and
 * rounded once exactly as runtime/optim.c does; each float operation here
 * is one of optim.c's, in its order. Those that change every step (lr, the
 * bias corrections, SGD's first-step mode) are read from the step's
 * nr_step_vars in device memory. */

/* mode 0: no momentum; 1: first step with momentum (buf = d); 2: later steps.
 * Nesterov is (d_coef, b_coef) = (1, mu), plain momentum (0, 1). */
extern "C" __global__ void nr_sgd_step(float *w, const float *g, float *buf, i64 n, const nr_step_vars *sv,
                                       float wd, float mu, float keep, float d_coef, float b_coef)
{
    float lr = sv->lr;
    int mode = sv->sgd_mode;
    GRID_STRIDE(i, n) {
        float d = nr_decayed_grad(g[i], w[i], wd);
        if (mode == 0) {
            w[i] = nr_sgd_apply(w[i], lr, d);
        } else {
            float b = mode == 1 ? d : nr_momentum_buffer(buf[i], mu, keep, d);
            buf[i] = b;
            w[i] = nr_sgd_apply(w[i], lr, nr_momentum_step(d_coef, d, b_coef, b));
        }
    }
}

/* Adam and AdamW (decay_factor = 1 - lr*wd applied to w first when decoupled). */
extern "C" __global__ void nr_adam_step(float *w, const float *g, float *m, float *v, i64 n, int decoupled,
                                        const nr_step_vars *sv, float wd, float b1, float one_minus_b1, float b2,
                                        float one_minus_b2, float eps)
{
    float decay_factor = sv->adam_decay_factor, neg_step_size = sv->adam_neg_step_size;
    float bc2_sqrt = sv->adam_bc2_sqrt;
    GRID_STRIDE(i, n) {
        float wi = decoupled ? w[i] * decay_factor : w[i];
        float d = nr_decayed_grad(g[i], wi, wd);
        float mi = nr_ema(m[i], b1, one_minus_b1, d);
        float vi = nr_ema_sq(v[i], b2, one_minus_b2, d);
        m[i] = mi;
        v[i] = vi;
        w[i] = nr_adam_apply(wi, neg_step_size, mi, vi, bc2_sqrt, eps);
    }
}

/* buf is NULL without momentum. */
extern "C" __global__ void nr_rmsprop_step(float *w, const float *g, float *v, float *buf, i64 n,
                                           const nr_step_vars *sv, float wd, float a, float one_minus_a, float eps,
                                           float mu)
{
    float lr = sv->lr;
    GRID_STRIDE(i, n) {
        float d = nr_decayed_grad(g[i], w[i], wd);
        float vi = nr_ema_sq(v[i], a, one_minus_a, d);
        v[i] = vi;
        float avg = nr_rmsprop_avg(vi, eps);
        if (buf) {
            float b = nr_momentum_buffer(buf[i], mu, 1.0f, d / avg);
            buf[i] = b;
            w[i] = nr_sgd_apply(w[i], lr, b);
        } else {
            w[i] = nr_rmsprop_apply(w[i], lr, d, avg);
        }
    }
}

/* SAM, pass 1 of 3: per-block sums of squares of (|w| if adaptive else 1) * g
 * into partial[gridDim.x], in double. */
extern "C" __global__ void nr_sam_sumsq(const float *w, const float *g, double *partial, i64 n, int adaptive)
{
    __shared__ double shared[NR_CUDA_BLOCK];
    double s = 0.0;
    GRID_STRIDE(i, n) {
        double x = nr_sam_term(adaptive, w[i], g[i]);
        s += x * x;
    }
    s = block_sum(s, shared);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* Pass 2, one block: the norm and the ascent's scale rho / (norm + 1e-12),
 * left on the device so that no step waits for the host. */
extern "C" __global__ void nr_sam_finish(const double *partial, int nparts, float rho, double *norm_out,
                                         float *scale_out)
{
    __shared__ double shared[NR_CUDA_BLOCK];
    double s = 0.0;
    for (int j = threadIdx.x; j < nparts; j += NR_CUDA_BLOCK) s += partial[j];
    s = block_sum(s, shared);
    if (threadIdx.x == 0) {
        double norm = sqrt(s);
        *norm_out = norm;
        *scale_out = nr_sam_scale(rho, norm);
    }
}

/* Pass 3: saved = w; w += (w^2 if adaptive else 1) * g * scale. */
extern "C" __global__ void nr_sam_ascend(float *w, const float *g, float *saved, const float *scale_in, i64 n,
                                         float w_coef)
{
    float scale = *scale_in;
    GRID_STRIDE(i, n) {
        float wi = w[i];
        saved[i] = wi;
        w[i] = nr_sam_ascended(wi, w_coef, g[i], scale);
    }
}
