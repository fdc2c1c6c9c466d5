/* Which CPU kernels run: the AVX-512 ones (conv_direct.c, maxpool2.c)
 * where the CPU has AVX-512F, unless NETC_CPU_KERNELS=generic asks for the
 * portable C and BLAS path (to compare the two, or to test the fallback
 * that other CPUs run). Decided once per process. */
#ifndef NR_CPU_ISA_H
#define NR_CPU_ISA_H
int nr_cpu_avx512_kernels(void);
#endif
