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

#endif
