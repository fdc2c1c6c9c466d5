/* netc's CUDA kernels, phase 1: every shape is a kernel argument.
 *
 * Each kernel mirrors a function of the CPU backend (runtime/cpu/ops.c,
 * loss.c, runtime/optim.c) operation for operation, and the module is
 * compiled with --fmad=false: the CPU reference is C11 without contraction,
 * so the same float operations round the same way on both. What still
 * differs is the order of long sums (done in double here, like the CPU's
 * batchnorm and losses) and the last bit of expf/logf; the per-element math
 * itself is runtime/nr_math.h's, the CPU backend's own functions.
 *
 * Sizes are long long and loops stride over the grid, so any launch grid
 * covers any size.
 *
 * This file is what the runtime compiles; the build embeds it, with every
 * file it includes expanded in place (scripts/embed-cuda), as
 * nr_cuda_kernel_source(). runtime/cuda/kernels.h lists its kernels. */
#include "common.cuh"
#include "rng.cuh"
#include "copy.cuh"
#include "conv.cuh"
#include "dense.cuh"
#include "pool.cuh"
#include "batchnorm.cuh"
#include "dropout.cuh"
#include "activations.cuh"
#include "loss.cuh"
#include "optim.cuh"
#include "gather.cuh"
