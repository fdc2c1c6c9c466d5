/* What every kernel source shares (the phase-1 kernels, kernels.cu, and
 * the sources netc emits per model, fused.cuh): the integer types, the
 * grid-stride loop, the block size, the per-element math of
 * runtime/nr_math.h and the fixed-tree block sum. */
#ifndef NR_CUDA_COMMON_CUH
#define NR_CUDA_COMMON_CUH
#include "block.h"
#include "step_vars.h"
#include "../nr_math.h"

typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

#define GRID_STRIDE(i, total) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (total); i += (i64)blockDim.x * gridDim.x)

/* ---- block reductions (fixed tree: the result depends on the launch alone) */

/* The sum of v over the block's NR_CUDA_BLOCK threads; shared holds NR_CUDA_BLOCK doubles. */
__device__ __forceinline__ double block_sum(double v, double *shared)
{
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int half = NR_CUDA_BLOCK / 2; half > 0; half >>= 1) {
        if ((int)threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
    double total = shared[0];
    __syncthreads(); /* shared is reused by the caller's next reduction */
    return total;
}

/* ---- BatchNorm's statistics (nr_bn_stats, and bn_stats of fused.cuh) ---------
 * Channel c of x [n, C, hw] in one block: batch statistics in double (two
 * passes, as the CPU does) and the running statistics' update when asked,
 * or the running statistics without training; mean and 1/std into saved.
 * Index is the element counter's type: the fused kernels count in int (an
 * i64 division there takes the registers their launch bound leaves). */
template <class Index>
__device__ __forceinline__ void bn_channel_stats(const float *x, int c, int C, Index hw, i64 count, float eps,
                                                 float momentum, int training, int update, float *saved,
                                                 float *running_mean, float *running_var, double *shared)
{
    double mean, var;
    if (training) {
        double sum = 0.0;
        for (Index e = threadIdx.x; e < count; e += NR_CUDA_BLOCK) sum += x[((i64)(e / hw) * C + c) * hw + e % hw];
        mean = block_sum(sum, shared) / (double)count;
        double sq = 0.0;
        for (Index e = threadIdx.x; e < count; e += NR_CUDA_BLOCK) {
            double d = x[((i64)(e / hw) * C + c) * hw + e % hw] - mean;
            sq += d * d;
        }
        var = block_sum(sq, shared) / (double)count;
        if (update && threadIdx.x == 0) {
            double m = momentum;
            running_mean[c] = nr_bn_running(running_mean[c], m, mean);
            running_var[c] = nr_bn_running(running_var[c], m, nr_bn_unbiased(var, count));
        }
    } else {
        mean = running_mean[c];
        var = running_var[c];
    }
    if (threadIdx.x == 0) {
        saved[c] = (float)mean;
        saved[C + c] = nr_bn_invstd(var, eps);
    }
}

/* sum(dy) and sum(dy * xhat) of channel c of [n, C, hw] (count = n hw
 * values) in one block, in double, with the mean and 1/std in saved. */
__device__ __forceinline__ void bn_channel_grad_sums(const float *x, const float *dy, const float *saved, int c,
                                                     int C, i64 hw, i64 count, double *shared, double *sum_dy,
                                                     double *sum_dy_xhat)
{
    float mean = saved[c], invstd = saved[C + c];
    double s = 0.0, sx = 0.0;
    for (i64 e = threadIdx.x; e < count; e += NR_CUDA_BLOCK) {
        i64 at = (e / hw * C + c) * hw + e % hw;
        float d = dy[at];
        s += d;
        sx += d * ((x[at] - mean) * invstd);
    }
    *sum_dy = block_sum(s, shared);
    *sum_dy_xhat = block_sum(sx, shared);
}
#endif
