#include "dense_avx512.h"
#include "isa.h"
#include <stddef.h>
#include <stdlib.h>

int nr_dense_avx512_usable(void) { return nr_cpu_avx512_kernels(); }

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f")))
#define INLINE_TILE __attribute__((always_inline)) inline
/* Rows and columns (forward) or rows and vectors of 16 columns (the
 * gradients) one tile keeps in registers: 16 accumulators. */
#define TILE 4

/* Forward, as dot products (w's rows are x's rows' partners, both read
 * along the inputs): y[i][j] = the sum over 16 lanes of the lane-wise sums
 * of x[i][k] w[j][k] over k, plus bias[j], for a tile of mi x nj. The
 * last, partial vector of k is read masked (zeros beyond the row). */
TARGET static INLINE_TILE void dot_tile(const int mi, const int nj, int k, const float *x, const float *w,
                                        const float *bias, float *y, int ldy)
{
    __m512 acc[TILE][TILE];
#pragma GCC unroll 4
    for (int i = 0; i < mi; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nj; j++) acc[i][j] = _mm512_setzero_ps();
    for (int kk = 0; kk < k; kk += 16) {
        __mmask16 m = nr_first_lanes(k - kk);
        __m512 a[TILE], b[TILE];
#pragma GCC unroll 4
        for (int i = 0; i < mi; i++) a[i] = _mm512_maskz_loadu_ps(m, x + (size_t)i * k + kk);
#pragma GCC unroll 4
        for (int j = 0; j < nj; j++) b[j] = _mm512_maskz_loadu_ps(m, w + (size_t)j * k + kk);
#pragma GCC unroll 4
        for (int i = 0; i < mi; i++)
#pragma GCC unroll 4
            for (int j = 0; j < nj; j++) acc[i][j] = _mm512_fmadd_ps(a[i], b[j], acc[i][j]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < mi; i++)
#pragma GCC unroll 4
        for (int j = 0; j < nj; j++) {
            float sum = _mm512_reduce_add_ps(acc[i][j]);
            y[(size_t)i * ldy + j] = bias ? sum + bias[j] : sum;
        }
}

#define DOT_CASE(MI, NJ)                                                                                          \
    case MI * 8 + NJ: dot_tile(MI, NJ, k, x, w, bias, y, ldy); break;

TARGET static void dot_tile_any(int mi, int nj, int k, const float *x, const float *w, const float *bias, float *y,
                                int ldy)
{
    switch (mi * 8 + nj) {
        DOT_CASE(1, 1) DOT_CASE(1, 2) DOT_CASE(1, 3) DOT_CASE(1, 4) DOT_CASE(2, 1) DOT_CASE(2, 2) DOT_CASE(2, 3)
        DOT_CASE(2, 4) DOT_CASE(3, 1) DOT_CASE(3, 2) DOT_CASE(3, 3) DOT_CASE(3, 4) DOT_CASE(4, 1) DOT_CASE(4, 2)
        DOT_CASE(4, 3) DOT_CASE(4, 4)
    default: break;
    }
}

static int min_int(int a, int b) { return a < b ? a : b; }

void nr_dense_avx512_forward(int n, int in, int out, const float *x, const float *w, const float *bias, float *y)
{
    for (int i = 0; i < n; i += TILE)
        for (int j = 0; j < out; j += TILE)
            dot_tile_any(min_int(TILE, n - i), min_int(TILE, out - j), in, x + (size_t)i * in, w + (size_t)j * in,
                         bias ? bias + j : NULL, y + (size_t)i * out + j, out);
}

/* The gradients, as rank-1 updates (b's rows are read along the columns
 * of the result): c[i][j] = the sum over k, in order, of a(i, k) b[k][j],
 * where a(i, k) = a[i as + k ak] is broadcast; a tile of mi rows and nv
 * vectors of 16 columns, the last of them masked by `last`. */
TARGET static INLINE_TILE void rank1_tile(const int mi, const int nv, int k, const float *a, size_t as, size_t ak,
                                          const float *b, int ldb, __mmask16 last, float *c, int ldc)
{
    __m512 acc[TILE][TILE];
#pragma GCC unroll 4
    for (int i = 0; i < mi; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) acc[i][v] = _mm512_setzero_ps();
    for (int kk = 0; kk < k; kk++) {
        const float *row = b + (size_t)kk * ldb;
        __m512 bv[TILE];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            bv[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(last, row + 16 * v) : _mm512_loadu_ps(row + 16 * v);
#pragma GCC unroll 4
        for (int i = 0; i < mi; i++) {
            __m512 av = _mm512_set1_ps(a[i * as + kk * ak]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < mi; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            float *dst = c + (size_t)i * ldc + 16 * v;
            if (v == nv - 1) _mm512_mask_storeu_ps(dst, last, acc[i][v]);
            else _mm512_storeu_ps(dst, acc[i][v]);
        }
}

#define RANK1_CASE(MI, NV)                                                                                        \
    case MI * 8 + NV: rank1_tile(MI, NV, k, a, as, ak, b, ldb, last, c, ldc); break;

TARGET static void rank1_tile_any(int mi, int nv, int k, const float *a, size_t as, size_t ak, const float *b,
                                  int ldb, __mmask16 last, float *c, int ldc)
{
    switch (mi * 8 + nv) {
        RANK1_CASE(1, 1) RANK1_CASE(1, 2) RANK1_CASE(1, 3) RANK1_CASE(1, 4) RANK1_CASE(2, 1) RANK1_CASE(2, 2)
        RANK1_CASE(2, 3) RANK1_CASE(2, 4) RANK1_CASE(3, 1) RANK1_CASE(3, 2) RANK1_CASE(3, 3) RANK1_CASE(3, 4)
        RANK1_CASE(4, 1) RANK1_CASE(4, 2) RANK1_CASE(4, 3) RANK1_CASE(4, 4)
    default: break;
    }
}

/* c [m, n] = the sum over k of a(i, k) b[k][j] (see rank1_tile). */
static void rank1_product(int m, int n, int k, const float *a, size_t as, size_t ak, const float *b, int ldb,
                          float *c, int ldc)
{
    for (int j = 0; j < n; j += 16 * TILE) {
        int width = min_int(16 * TILE, n - j), nv = (width + 15) / 16;
        __mmask16 last = nr_first_lanes(width - 16 * (nv - 1));
        for (int i = 0; i < m; i += TILE)
            rank1_tile_any(min_int(TILE, m - i), nv, k, a + (size_t)i * as, as, ak, b + j, ldb, last,
                           c + (size_t)i * ldc + j, ldc);
    }
}

void nr_dense_avx512_weight_grad(int n, int in, int rows, const float *dy, int ldy, const float *x, float *dw)
{
    rank1_product(rows, in, n, dy, 1, (size_t)ldy, x, in, dw, in);
}

void nr_dense_avx512_input_grad(int n, int in, int out, const float *dy, const float *w, float *dx)
{
    rank1_product(n, in, out, dy, (size_t)out, 1, w, in, dx, in);
}
#else
/* Unreachable: nr_dense_avx512_usable is false without AVX-512. */
void nr_dense_avx512_forward(int n, int in, int out, const float *x, const float *w, const float *bias, float *y)
{
    (void)n, (void)in, (void)out, (void)x, (void)w, (void)bias, (void)y;
    abort();
}

void nr_dense_avx512_weight_grad(int n, int in, int rows, const float *dy, int ldy, const float *x, float *dw)
{
    (void)n, (void)in, (void)rows, (void)dy, (void)ldy, (void)x, (void)dw;
    abort();
}

void nr_dense_avx512_input_grad(int n, int in, int out, const float *dy, const float *w, float *dx)
{
    (void)n, (void)in, (void)out, (void)dy, (void)w, (void)dx;
    abort();
}
#endif
