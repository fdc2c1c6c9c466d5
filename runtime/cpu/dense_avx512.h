/* Dense layers' matrix products on CPUs with AVX-512, for the small
 * matrices of a micro-batch (8 to 16 images against a few hundred inputs
 * and outputs: LeNet-5's conv3, which is dense over its 5x5 input, and its
 * dense layers). Against OpenBLAS 0.3.21's sgemm with its own AVX-512
 * kernels they measured the same within 2%, and 10% faster on a whole W5
 * step where OPENBLAS_CORETYPE holds OpenBLAS to older kernels, as this
 * project's machine sets it (bench/RESULTS.md); and the weights no longer
 * depend on which kernels a BLAS picks.
 *
 * Every element of a result is summed in one fixed order whatever the
 * rows a call covers, so splitting the rows over threads cannot change it. */
#ifndef NR_CPU_DENSE_AVX512_H
#define NR_CPU_DENSE_AVX512_H

/* Whether these kernels serve dense layers here: the CPU has AVX-512 and
 * NETC_CPU_KERNELS is not "generic" (runtime/cpu/isa.h). */
int nr_dense_avx512_usable(void);

/* y [n, out] = x [n, in] w^T + bias, with w [out, in]; bias may be NULL. */
void nr_dense_avx512_forward(int n, int in, int out, const float *x, const float *w, const float *bias, float *y);

/* dw [rows, in] = dy^T x over the n images: dw's row o is the sum over
 * images b of dy[b ldy + o] x[b in ...]. */
void nr_dense_avx512_weight_grad(int n, int in, int rows, const float *dy, int ldy, const float *x, float *dw);

/* dx [n, in] = dy [n, out] w, with w [out, in]. */
void nr_dense_avx512_input_grad(int n, int in, int out, const float *dy, const float *w, float *dx);
#endif
