/* Threads per block of every netc kernel: the launches (runtime/cuda/gpu.c)
 * and the kernels' block reductions and __launch_bounds__ (common.cuh and
 * the sources netc emits) read this one definition. A power of two. Plain
 * C, included by host code and device code alike. */
#ifndef NR_CUDA_BLOCK_H
#define NR_CUDA_BLOCK_H
#define NR_CUDA_BLOCK 256
#endif
