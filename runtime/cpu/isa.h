/* Which CPU code runs.
 *
 * nr_cpu_avx512_kernels: the AVX-512 kernels (conv_direct.c, maxpool2.c,
 * dense_avx512.c)
 * run where the CPU has AVX-512F, unless NETC_CPU_KERNELS=generic asks for
 * the portable C and BLAS path (to compare the two, or to test the
 * fallback that other CPUs run). Decided once per process. */
#ifndef NR_CPU_ISA_H
#define NR_CPU_ISA_H
#include <stddef.h>

int nr_cpu_avx512_kernels(void);

/* count floats rounded up to whole AVX-512 vectors (16 floats, 64 bytes):
 * the size of each region cut from a scratch buffer, so that every region
 * starts on a vector boundary when the buffer does. */
static inline size_t nr_round16(size_t count) { return (count + 15) & ~(size_t)15; }

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The mask of the first n of a vector's 16 float lanes (none for n <= 0,
 * all for n >= 16): the lanes a row's last, partial vector covers. */
static inline __mmask16 nr_first_lanes(long long n)
{
    return (__mmask16)(n >= 16 ? 0xffff : n <= 0 ? 0 : (1u << n) - 1);
}
#endif

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
