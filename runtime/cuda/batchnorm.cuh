#include "common.cuh"

/* ---- batchnorm -----------------------------------------------------------------
 * saved: mean [C], 1/sqrt(var + eps) [C], then 1 (batch statistics) or 0
 * (running statistics): the CPU backend's layout. */

/* One block per channel (bn_channel_stats, common.cuh), then saved's
 * training flag. */
extern "C" __global__ void nr_bn_stats(const float *x, float *saved, float *running_mean, float *running_var, int n,
                                       int C, i64 hw, float eps, float momentum, int training, int update)
{
    __shared__ double shared[NR_CUDA_BLOCK];
    i64 count = (i64)n * hw;
    for (int c = blockIdx.x; c < C; c += gridDim.x)
        bn_channel_stats<i64>(x, c, C, hw, count, eps, momentum, training, update, saved, running_mean, running_var,
                              shared);
    if (blockIdx.x == 0 && threadIdx.x == 0) saved[2 * C] = (float)training;
}

/* y = x * scale + shift per channel; gamma and beta are NULL without affine. */
extern "C" __global__ void nr_bn_normalize(const float *x, float *y, const float *saved, const float *gamma,
                                           const float *beta, int n, int C, i64 hw)
{
    i64 total = (i64)n * C * hw;
    GRID_STRIDE(i, total) {
        int c = (int)(i / hw % C);
        float invstd = saved[C + c];
        float scale = gamma ? gamma[c] * invstd : invstd;
        float shift = (beta ? beta[c] : 0.0f) - saved[c] * scale;
        y[i] = x[i] * scale + shift;
    }
}

/* One block per channel (bn_channel_grad_sums, common.cuh): the affine
 * gradients (dparams: dgamma [C], dbeta [C], or NULL) and, in coef, the two
 * means dx needs (zero when running statistics were used). */
extern "C" __global__ void nr_bn_backward_reduce(const float *x, const float *dy, const float *saved, float *dparams,
                                                 float *coef, int n, int C, i64 hw)
{
    __shared__ double shared[NR_CUDA_BLOCK];
    i64 count = (i64)n * hw;
    int training = saved[2 * C] != 0.0f;
    for (int c = blockIdx.x; c < C; c += gridDim.x) {
        double sum_dy, sum_dy_xhat;
        bn_channel_grad_sums(x, dy, saved, c, C, hw, count, shared, &sum_dy, &sum_dy_xhat);
        if (threadIdx.x == 0) {
            if (dparams) {
                dparams[c] = (float)sum_dy_xhat;
                dparams[C + c] = (float)sum_dy;
            }
            coef[c] = training ? (float)(sum_dy / (double)count) : 0.0f;
            coef[C + c] = training ? (float)(sum_dy_xhat / (double)count) : 0.0f;
        }
    }
}

extern "C" __global__ void nr_bn_backward_dx(const float *x, const float *dy, float *dx, const float *saved,
                                             const float *gamma, const float *coef, int n, int C, i64 hw)
{
    i64 total = (i64)n * C * hw;
    GRID_STRIDE(i, total) {
        int c = (int)(i / hw % C);
        float mean = saved[c], invstd = saved[C + c];
        float k = (gamma ? gamma[c] : 1.0f) * invstd;
        float xhat = (x[i] - mean) * invstd;
        dx[i] = k * (dy[i] - coef[c] - xhat * coef[C + c]);
    }
}

