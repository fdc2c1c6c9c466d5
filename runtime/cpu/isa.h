/* Which CPU code runs.
 *
 * nr_cpu_avx512_kernels: the AVX-512 kernels (conv_direct.c, maxpool2.c)
 * run where the CPU has AVX-512F, unless NETC_CPU_KERNELS=generic asks for
 * the portable C and BLAS path (to compare the two, or to test the
 * fallback that other CPUs run). Decided once per process. */
#ifndef NR_CPU_ISA_H
#define NR_CPU_ISA_H
int nr_cpu_avx512_kernels(void);

/* SIMD_CLONES: the library is built for the baseline ISA (SSE2 on x86-64);
 * on GCC, AVX2 and AVX-512 versions of the element-wise loops it marks are
 * picked at load time when the CPU has them. The loops' results do not
 * depend on the version: C11 mode does not contract a * b + c into an FMA,
 * and every operation they use is correctly rounded. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef SIMD_CLONES
#define SIMD_CLONES
#endif
#endif
