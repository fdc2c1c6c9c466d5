#include "maxpool2.h"
#include "isa.h"
#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f")))
/* The helpers are inlined: as calls they pass vectors through memory. */
#define HELPER TARGET __attribute__((always_inline)) static inline

/* Indices of the window's four inputs for 16 outputs from j0 on. */
typedef struct window_at {
    __m512 a00, a01, a10, a11;
} window_at;

HELPER window_at window_indices(int first, int j0, int W)
{
    const __m512i twice = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    __m512i at = _mm512_add_epi32(_mm512_set1_epi32(first + 2 * j0), twice);
    __m512i one = _mm512_set1_epi32(1), row = _mm512_set1_epi32(W);
    window_at w;
    w.a00 = _mm512_cvtepi32_ps(at);
    w.a01 = _mm512_cvtepi32_ps(_mm512_add_epi32(at, one));
    w.a10 = _mm512_cvtepi32_ps(_mm512_add_epi32(at, row));
    w.a11 = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_add_epi32(at, row), one));
    return w;
}

/* The even and odd floats of 2n consecutive floats at x (n <= 16). A masked
 * load whose mask is empty is left out. */
HELPER void split_even_odd(const float *x, int n, __m512 *even, __m512 *odd)
{
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    __m512 lo = _mm512_maskz_loadu_ps(nr_first_lanes(2 * n), x);
    __m512 hi = n > 8 ? _mm512_maskz_loadu_ps(nr_first_lanes(2 * n - 16), x + 16) : _mm512_setzero_ps();
    *even = _mm512_permutex2var_ps(lo, evens, hi);
    *odd = _mm512_permutex2var_ps(lo, odds, hi);
}

/* maxpool_plane's step: v (at `at`) replaces the best so far when greater, or NaN. */
HELPER void take(__m512 v, __m512 at, __m512 *best, __m512 *best_at)
{
    __mmask16 k = _mm512_cmp_ps_mask(v, *best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    *best = _mm512_mask_mov_ps(*best, k, v);
    *best_at = _mm512_mask_mov_ps(*best_at, k, at);
}

/* pre's v * scale + shift (a multiplication, then an addition: as the C,
 * no fused multiply-add), then max(v, +0), which is nr_relu (a NaN or -0
 * gives +0). */
HELPER __m512 pre_apply(__m512 v, nr_pool_pre pre)
{
    v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(pre.scale)), _mm512_set1_ps(pre.shift));
    return pre.relu ? _mm512_max_ps(v, _mm512_setzero_ps()) : v;
}

TARGET void nr_maxpool2_row(const float *x0, const float *x1, float *y, float *arg, int ow, int first, int W,
                            nr_pool_pre pre)
{
    for (int j0 = 0; j0 < ow; j0 += 16) {
        int n = ow - j0 < 16 ? ow - j0 : 16;
        __m512 e0, o0, e1, o1;
        split_even_odd(x0 + 2 * j0, n, &e0, &o0);
        split_even_odd(x1 + 2 * j0, n, &e1, &o1);
        e0 = pre_apply(e0, pre), o0 = pre_apply(o0, pre), e1 = pre_apply(e1, pre), o1 = pre_apply(o1, pre);
        window_at w = window_indices(first, j0, W);
        __m512 best = _mm512_set1_ps(-__builtin_inff()), best_at = _mm512_set1_ps(-1.0f);
        take(e0, w.a00, &best, &best_at);
        take(o0, w.a01, &best, &best_at);
        take(e1, w.a10, &best, &best_at);
        take(o1, w.a11, &best, &best_at);
        _mm512_mask_storeu_ps(y + j0, nr_first_lanes(n), best);
        _mm512_mask_storeu_ps(arg + j0, nr_first_lanes(n), best_at);
    }
}

/* The first count (<= 16) floats of v at d: a masked store only for a
 * part of a row that is not 8 or 16 floats (the plane is read right
 * after; see conv_direct.c's store_strip). */
HELPER void store_first(float *d, int count, __m512 v)
{
    if (count >= 16)
        _mm512_storeu_ps(d, v);
    else if (count == 8)
        _mm256_storeu_ps(d, _mm512_castps512_ps256(v));
    else
        _mm512_mask_storeu_ps(d, nr_first_lanes(count), v);
}

/* The 32 floats e[0] o[0] e[1] o[1] ... of the first 2n at d (n <= 16). */
HELPER void store_interleaved(float *d, int n, __m512 e, __m512 o)
{
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    store_first(d, 2 * n, _mm512_permutex2var_ps(e, lo, o));
    if (n > 8) store_first(d + 16, 2 * n - 16, _mm512_permutex2var_ps(e, hi, o));
}

TARGET void nr_maxpool2_route_row(const float *dy, const float *arg, const float *y, int relu, int ow, int first,
                                  int W, float *d0, float *d1)
{
    for (int j0 = 0; j0 < ow; j0 += 16) {
        int n = ow - j0 < 16 ? ow - j0 : 16;
        __mmask16 m = nr_first_lanes(n);
        __m512 g = _mm512_maskz_loadu_ps(m, dy + j0);
        if (relu) { /* nr_relu_grad: dy where y's bits are a positive int */
            __m512i bits = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, y + j0));
            g = _mm512_maskz_mov_ps(_mm512_cmpgt_epi32_mask(bits, _mm512_setzero_si512()), g);
        }
        g = _mm512_add_ps(g, _mm512_setzero_ps()); /* what a zeroed plane plus dy holds: -0 becomes +0 */
        __m512 at = _mm512_maskz_loadu_ps(m, arg + j0);
        window_at w = window_indices(first, j0, W);
        store_interleaved(d0 + 2 * j0, n, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(at, w.a00, _CMP_EQ_OQ), g),
                          _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(at, w.a01, _CMP_EQ_OQ), g));
        store_interleaved(d1 + 2 * j0, n, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(at, w.a10, _CMP_EQ_OQ), g),
                          _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(at, w.a11, _CMP_EQ_OQ), g));
    }
}

#else
void nr_maxpool2_route_row(const float *dy, const float *arg, const float *y, int relu, int ow, int first, int W,
                           float *d0, float *d1)
{
    (void)dy, (void)arg, (void)y, (void)relu, (void)ow, (void)first, (void)W, (void)d0, (void)d1;
    abort(); /* unreachable: nr_cpu_avx512_kernels is false */
}

void nr_maxpool2_row(const float *x0, const float *x1, float *y, float *arg, int ow, int first, int W,
                     nr_pool_pre pre)
{
    (void)x0, (void)x1, (void)y, (void)arg, (void)ow, (void)first, (void)W, (void)pre;
    abort(); /* unreachable: nr_cpu_avx512_kernels is false */
}
#endif
