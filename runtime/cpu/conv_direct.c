#include "conv_direct.h"
#include "isa.h"
#include "../nr_math.h"
#include <stdlib.h>
#include <string.h>

/* Floats a load of 16 may read past the last plane of a buffer. */
#define SLACK 16
/* Output channels one forward tile keeps in registers (two strips each). */
#define FWD_BLOCK 8
/* Weight-gradient tile: output channels x taps of one kernel row. */
#define DW_BLOCK_O 6
#define DW_BLOCK_TAPS 3

/* The input gradient is a convolution of dy padded by this much. */
static int pad_for_dx(const nr_direct_conv *d) { return d->reflect ? d->k - 1 : d->k - 1 - d->pad; }

/* Rows of an output plane are cut into vectors of 16 pixels. Where that
 * leaves many lanes idle (rows of 10 fill 10 of 16) the input is expanded
 * (expand_columns) so that vectors run over the whole plane instead. */
static int lanes_idle(int width)
{
    int lanes = (width + 15) / 16 * 16;
    return width * 5 < lanes * 4; /* under 80% of the lanes used */
}

static int expands(const nr_direct_conv *d) { return lanes_idle(d->OW); }

/* The same for the input gradient, whose rows are W wide (reflect padding
 * keeps row mode: its gradient is folded back from the padded planes). */
static int dx_expands(const nr_direct_conv *d) { return !d->reflect && lanes_idle(d->W); }

/* The planes the kernels read, per image. */
typedef struct direct_sizes {
    int hp, wp;          /* the padded input */
    size_t x_padded;     /* C hp wp */
    size_t x_expanded;   /* C k hp OW: see expand_columns */
    size_t x_read;       /* what the kernels read of one image: x_expanded or x_padded */
    int hq, wq;          /* the padded output gradient */
    size_t dy_padded;    /* O hq wq */
    size_t dy_expanded;  /* O k hq W, where dx_expands */
} direct_sizes;

static direct_sizes sizes_of(const nr_direct_conv *d)
{
    direct_sizes z;
    z.hp = d->H + 2 * d->pad, z.wp = d->W + 2 * d->pad;
    z.x_padded = (size_t)d->C * z.hp * z.wp;
    z.x_expanded = (size_t)d->C * d->k * z.hp * d->OW;
    z.x_read = expands(d) ? z.x_expanded : z.x_padded;
    z.hq = d->OH + 2 * pad_for_dx(d), z.wq = d->OW + 2 * pad_for_dx(d);
    z.dy_padded = (size_t)d->O * z.hq * z.wq;
    z.dy_expanded = dx_expands(d) ? (size_t)d->O * d->k * z.hq * d->W : 0;
    return z;
}

size_t nr_direct_conv_scratch(const nr_direct_conv *d, int nb)
{
    direct_sizes z = sizes_of(d);
    return nr_round16(z.x_padded + SLACK) + nr_round16((size_t)nb * z.x_read + SLACK) +
           nr_round16((size_t)d->O * d->C * d->k * d->k) + nr_round16(z.dy_padded + SLACK) +
           nr_round16(z.dy_expanded + SLACK) + (d->reflect ? nr_round16(z.x_padded) : 0) +
           16 * (size_t)d->O * d->C * d->k * d->k;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f")))
#define INLINE_TILE __attribute__((always_inline)) inline

/* dst[0, W) = src[0, W): rows of 8 and multiples of 16 floats in plain
 * vector moves (a memcpy call per row of 8 to 32 floats cost more than
 * the copy; masked moves were slower still: see store_strip). */
TARGET static void copy_row(const float *src, int W, float *dst)
{
    if (W % 16 != 0 && W != 8) {
        memcpy(dst, src, (size_t)W * sizeof *dst);
        return;
    }
    if (W == 8) _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
    for (int j = 0; j + 16 <= W; j += 16) _mm512_storeu_ps(dst + j, _mm512_loadu_ps(src + j));
}

/* Planes [C, H, W] into [C, H + 2 pad, W + 2 pad] with zero or reflected borders. */
TARGET static void pad_planes(const float *x, int C, int H, int W, int pad, int reflect, float *xp)
{
    int hp = H + 2 * pad, wp = W + 2 * pad;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < hp; i++) {
            float *dst = xp + ((size_t)c * hp + i) * wp;
            int si = i - pad;
            if (!reflect && (si < 0 || si >= H)) {
                memset(dst, 0, (size_t)wp * sizeof *dst);
                continue;
            }
            const float *src = x + ((size_t)c * H + (reflect ? nr_reflect_index(si, H) : si)) * W;
            for (int j = 0; j < pad; j++) {
                dst[j] = reflect ? src[nr_reflect_index(j - pad, W)] : 0.0f;
                dst[pad + W + j] = reflect ? src[nr_reflect_index(W + j, W)] : 0.0f;
            }
            copy_row(src, W, dst + pad);
        }
}

/* The adjoint of reflect padding: each padded position's gradient goes to
 * the input position it was copied from. */
static void fold_reflect(const float *dxp, int C, int H, int W, int pad, float *dx)
{
    int hp = H + 2 * pad, wp = W + 2 * pad;
    memset(dx, 0, (size_t)C * H * W * sizeof *dx);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < hp; i++) {
            float *dst = dx + ((size_t)c * H + nr_reflect_index(i - pad, H)) * W;
            const float *src = dxp + ((size_t)c * hp + i) * wp;
            for (int j = 0; j < wp; j++) dst[nr_reflect_index(j - pad, W)] += src[j];
        }
}

/* xs[c][kw][r][j] = xp[c][r][j + kw] for the hp rows r and OW columns j:
 * the input under tap (kh, kw) of output pixel p = i OW + j is then
 * xs[c][kw][kh OW + p], contiguous in p, so a vector of 16 output pixels
 * is full however narrow the rows (LeNet-5's 10, CIFAR's 8). */
TARGET static void expand_columns(const float *xp, int C, int hp, int wp, int k, int ow, float *xs)
{
    for (int c = 0; c < C; c++)
        for (int kw = 0; kw < k; kw++)
            for (int r = 0; r < hp; r++) {
                const float *src = xp + ((size_t)c * hp + r) * wp + kw;
                float *dst = xs + (((size_t)c * k + kw) * hp + r) * ow;
                for (int j0 = 0; j0 < ow; j0 += 16) /* masked only where needed: see store_strip */
                    if (ow - j0 >= 16) {
                        _mm512_storeu_ps(dst + j0, _mm512_loadu_ps(src + j0));
                    } else if (ow - j0 == 8) {
                        _mm256_storeu_ps(dst + j0, _mm256_loadu_ps(src + j0));
                    } else {
                        __mmask16 m = nr_first_lanes(ow - j0);
                        _mm512_mask_storeu_ps(dst + j0, m, _mm512_maskz_loadu_ps(m, src + j0));
                    }
            }
}

/* Where the taps of a tile read: input channel c, kernel row kh and column
 * kw of a strip are at c cs + kh rs + kw ks past the strip's offset;
 * kernel rows outside [kh_lo, kh_hi) read only zeros and are skipped. */
typedef struct taps {
    size_t cs, rs, ks;
    int k, kh_lo, kh_hi;
} taps;

/* Up to 16 output pixels: `in` is their offset in the input planes, `out`
 * in an output plane. */
typedef struct strip {
    size_t in, out;
    __mmask16 mask;
    int row; /* output row, in row mode */
} strip;

/* The strips of an output plane: up to 16 pixels of one of its rows, rows
 * wp apart in the input. An expanded input is read as one row of P pixels. */
typedef struct strips {
    int count, rows, ow, wp, per_row;
    size_t P;
    int rows_lo, rows_hi; /* the input rows that are not padding zeros */
} strips;

#define NO_ZERO_ROWS (-(1 << 20)), (1 << 20)

static strips row_strips(int rows, int ow, int wp, int rows_lo, int rows_hi)
{
    int per_row = (ow + 15) / 16;
    strips ss = { rows * per_row, rows, ow, wp, per_row, (size_t)rows * ow, rows_lo, rows_hi };
    return ss;
}

static strip strip_at(const strips *ss, int s)
{
    strip st;
    int j0 = s % ss->per_row * 16;
    st.row = s / ss->per_row;
    st.in = (size_t)st.row * ss->wp + j0;
    st.out = (size_t)st.row * ss->ow + j0;
    st.mask = nr_first_lanes(ss->ow - j0);
    return st;
}

/* Kernel rows that read input rows of the strips a..b (rows a.row <= b.row)
 * inside [rows_lo, rows_hi). */
static void tap_rows(const strips *ss, strip a, strip b, taps *t)
{
    t->kh_lo = 0, t->kh_hi = t->k;
    if (ss->rows_lo - b.row > t->kh_lo) t->kh_lo = ss->rows_lo - b.row;
    if (ss->rows_hi - a.row < t->kh_hi) t->kh_hi = ss->rows_hi - a.row;
}

/* A strip's 16 pixels, or the first of them: whole vectors are stored
 * unmasked. Measured faster on AMD family 26: the loads that read the
 * data next seem to wait for a masked store to reach the cache, where a
 * plain store's data is forwarded to them (bench/RESULTS.md). */
TARGET static INLINE_TILE void store_strip(float *y, __mmask16 mask, __m512 v)
{
    if (mask == 0xffff)
        _mm512_storeu_ps(y, v);
    else
        _mm512_mask_storeu_ps(y, mask, v);
}

/* Two strips of ob output channels (ob and two are constants after
 * inlining, so acc0/acc1 live in registers). wt is [cin k k][ldw]: the
 * weights of one tap for every output channel side by side. */
TARGET static INLINE_TILE void fwd_tile(const int ob, const int two, const float *x, int cin, taps t,
                                        const float *wt, int ldw, const float *bias, float *y, size_t P, strip a,
                                        strip b)
{
    __m512 acc0[FWD_BLOCK], acc1[FWD_BLOCK];
#pragma GCC unroll 8
    for (int o = 0; o < ob; o++) {
        acc0[o] = bias ? _mm512_set1_ps(bias[o]) : _mm512_setzero_ps();
        acc1[o] = acc0[o];
    }
    for (int c = 0; c < cin; c++)
        for (int kh = t.kh_lo; kh < t.kh_hi; kh++) {
            const float *ra = x + c * t.cs + kh * t.rs + a.in, *rb = x + c * t.cs + kh * t.rs + b.in;
            const float *w = wt + ((size_t)c * t.k + kh) * t.k * ldw;
            for (int kw = 0; kw < t.k; kw++, w += ldw) {
                __m512 va = _mm512_loadu_ps(ra + kw * t.ks);
                __m512 vb = two ? _mm512_loadu_ps(rb + kw * t.ks) : va;
#pragma GCC unroll 8
                for (int o = 0; o < ob; o++) {
                    __m512 wv = _mm512_set1_ps(w[o]);
                    acc0[o] = _mm512_fmadd_ps(wv, va, acc0[o]);
                    if (two) acc1[o] = _mm512_fmadd_ps(wv, vb, acc1[o]);
                }
            }
        }
#pragma GCC unroll 8
    for (int o = 0; o < ob; o++) {
        store_strip(y + o * P + a.out, a.mask, acc0[o]);
        if (two) store_strip(y + o * P + b.out, b.mask, acc1[o]);
    }
}

#define FWD_CASE(OB)                                                                                             \
    case OB:                                                                                                     \
        if (two)                                                                                                 \
            fwd_tile(OB, 1, x, cin, t, wt, ldw, bias, y, P, a, b);                                               \
        else                                                                                                     \
            fwd_tile(OB, 0, x, cin, t, wt, ldw, bias, y, P, a, a);                                               \
        break;

TARGET static void fwd_tile_any(int ob, int two, const float *x, int cin, taps t, const float *wt, int ldw,
                                const float *bias, float *y, size_t P, strip a, strip b)
{
    switch (ob) {
        FWD_CASE(1) FWD_CASE(2) FWD_CASE(3) FWD_CASE(4) FWD_CASE(5) FWD_CASE(6) FWD_CASE(7) FWD_CASE(8)
    default: break;
    }
}

/* Blocks of at most `most` channels, as even as possible (10 -> 5 + 5, not 8 + 2). */
static int block_size(int count, int most)
{
    int blocks = (count + most - 1) / most;
    return (count + blocks - 1) / blocks;
}

/* y [cout, P] (+ bias) = the convolution of one image's input x, read
 * through the strides of t and the strips of ss. */
TARGET static void conv_image(const float *x, int cin, taps t, const strips *ss, const float *wt, int cout,
                              const float *bias, float *y)
{
    int ob_most = block_size(cout, FWD_BLOCK);
    for (int o0 = 0; o0 < cout; o0 += ob_most) {
        int ob = cout - o0 < ob_most ? cout - o0 : ob_most;
        for (int s = 0; s < ss->count; s += 2) {
            int two = s + 1 < ss->count;
            strip a = strip_at(ss, s), b = two ? strip_at(ss, s + 1) : a;
            tap_rows(ss, a, b, &t);
            fwd_tile_any(ob, two, x, cin, t, wt + o0, cout, bias ? bias + o0 : NULL, y + o0 * ss->P, ss->P, a, b);
        }
    }
}

/* Sums over nb images and all output pixels of dy[o] * x shifted by the
 * taps kw0 .. kw0 + kb of one kernel row: ob x kb vector sums in
 * registers, stored to (first) or added to the vectors at part, 16 floats
 * each, ldp apart per output channel. x points at image 0's input for
 * (c, kh, kw0), taps ks apart; dy at image 0's channel o0. */
TARGET static INLINE_TILE void dw_tile(const int ob, const int kb, int nb, const float *x, size_t x_image,
                                       size_t ks, const float *dy, size_t dy_image, const strips *ss, float *part,
                                       size_t ldp, int first)
{
    size_t P = ss->P;
    __m512 acc[DW_BLOCK_O][DW_BLOCK_TAPS];
#pragma GCC unroll 6
    for (int o = 0; o < ob; o++)
#pragma GCC unroll 3
        for (int t = 0; t < kb; t++) acc[o][t] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        /* one base pointer per plane and tap, one offset for all: no address arithmetic per vector */
        const float *dp[DW_BLOCK_O], *xp[DW_BLOCK_TAPS];
#pragma GCC unroll 6
        for (int o = 0; o < ob; o++) dp[o] = dy + b * dy_image + o * P;
#pragma GCC unroll 3
        for (int t = 0; t < kb; t++) xp[t] = x + b * x_image + t * ks;
        for (int i = 0; i < ss->rows; i++) {
            size_t xo = (size_t)i * ss->wp, yo = (size_t)i * ss->ow;
            for (int j0 = 0; j0 < ss->ow; j0 += 16, xo += 16, yo += 16) {
                int full = ss->ow - j0 >= 16; /* masked loads only where the row ends */
                __mmask16 m = nr_first_lanes(ss->ow - j0);
                __m512 d[DW_BLOCK_O];
#pragma GCC unroll 6
                for (int o = 0; o < ob; o++)
                    d[o] = full ? _mm512_loadu_ps(dp[o] + yo) : _mm512_maskz_loadu_ps(m, dp[o] + yo);
#pragma GCC unroll 3
                for (int t = 0; t < kb; t++) {
                    __m512 v = full ? _mm512_loadu_ps(xp[t] + xo) : _mm512_maskz_loadu_ps(m, xp[t] + xo);
#pragma GCC unroll 6
                    for (int o = 0; o < ob; o++) acc[o][t] = _mm512_fmadd_ps(d[o], v, acc[o][t]);
                }
            }
        }
    }
#pragma GCC unroll 6
    for (int o = 0; o < ob; o++)
#pragma GCC unroll 3
        for (int t = 0; t < kb; t++) {
            float *p = part + o * ldp + 16 * t;
            _mm512_storeu_ps(p, first ? acc[o][t] : _mm512_add_ps(_mm512_loadu_ps(p), acc[o][t]));
        }
}

#define DW_CASE(OB, KB)                                                                                          \
    case OB * 4 + KB: dw_tile(OB, KB, nb, x, x_image, ks, dy, dy_image, ss, part, ldp, first); break;

TARGET static void dw_tile_any(int ob, int kb, int nb, const float *x, size_t x_image, size_t ks, const float *dy,
                               size_t dy_image, const strips *ss, float *part, size_t ldp, int first)
{
    switch (ob * 4 + kb) {
        DW_CASE(1, 1) DW_CASE(1, 2) DW_CASE(1, 3) DW_CASE(2, 1) DW_CASE(2, 2) DW_CASE(2, 3)
        DW_CASE(3, 1) DW_CASE(3, 2) DW_CASE(3, 3) DW_CASE(4, 1) DW_CASE(4, 2) DW_CASE(4, 3)
        DW_CASE(5, 1) DW_CASE(5, 2) DW_CASE(5, 3) DW_CASE(6, 1) DW_CASE(6, 2) DW_CASE(6, 3)
    default: break;
    }
}

/* wt[(c k + kh) k + kw][o] = w[o][c][kh][kw]. */
static void weights_by_tap(const float *w, int O, size_t taps_per_o, float *wt)
{
    for (int o = 0; o < O; o++)
        for (size_t t = 0; t < taps_per_o; t++) wt[t * O + o] = w[(size_t)o * taps_per_o + t];
}

/* The input gradient's weights: wt[(o k + kh) k + kw][c] = w[o][c][k-1-kh][k-1-kw]. */
static void weights_flipped(const float *w, int O, int C, int k, float *wt)
{
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++)
            for (int kh = 0; kh < k; kh++)
                for (int kw = 0; kw < k; kw++)
                    wt[(((size_t)o * k + kh) * k + kw) * C + c] =
                        w[(((size_t)o * C + c) * k + (k - 1 - kh)) * k + (k - 1 - kw)];
}

typedef struct direct_scratch {
    float *x_padded, *x_read, *weights, *dy_padded, *dy_expanded, *dx_padded, *dw_part;
} direct_scratch;

static direct_scratch scratch_at(const nr_direct_conv *d, int nb, float *scratch)
{
    direct_sizes z = sizes_of(d);
    direct_scratch s;
    s.x_padded = scratch;
    s.x_read = s.x_padded + nr_round16(z.x_padded + SLACK);
    s.weights = s.x_read + nr_round16((size_t)nb * z.x_read + SLACK);
    s.dy_padded = s.weights + nr_round16((size_t)d->O * d->C * d->k * d->k);
    s.dy_expanded = s.dy_padded + nr_round16(z.dy_padded + SLACK);
    s.dx_padded = s.dy_expanded + nr_round16(z.dy_expanded + SLACK);
    s.dw_part = s.dx_padded + (d->reflect ? nr_round16(z.x_padded) : 0);
    return s;
}

/* One image as the kernels read it, into slot: padded, and expanded
 * (through s->x_padded) where expands(d). */
static void prepare_image(const nr_direct_conv *d, const direct_sizes *z, const float *image,
                          const direct_scratch *s, float *slot)
{
    if (!expands(d)) {
        pad_planes(image, d->C, d->H, d->W, d->pad, d->reflect, slot);
        return;
    }
    pad_planes(image, d->C, d->H, d->W, d->pad, d->reflect, s->x_padded);
    memset(s->x_padded + z->x_padded, 0, SLACK * sizeof(float));
    expand_columns(s->x_padded, d->C, z->hp, z->wp, d->k, d->OW, slot);
}

/* How the kernels step through a prepared image: in an expanded one,
 * channel c's column kw is plane c k + kw, read as one row of P pixels. */
static taps input_taps(const nr_direct_conv *d, const direct_sizes *z)
{
    if (expands(d)) {
        size_t plane = (size_t)z->hp * d->OW;
        taps t = { d->k * plane, (size_t)d->OW, plane, d->k, 0, d->k };
        return t;
    }
    taps t = { (size_t)z->hp * z->wp, (size_t)z->wp, 1, d->k, 0, d->k };
    return t;
}

static strips input_strips(const nr_direct_conv *d, const direct_sizes *z)
{
    size_t P = (size_t)d->OH * d->OW;
    if (expands(d)) return row_strips(1, (int)P, (int)P, NO_ZERO_ROWS);
    if (d->reflect) return row_strips(d->OH, d->OW, z->wp, NO_ZERO_ROWS);
    return row_strips(d->OH, d->OW, z->wp, d->pad, d->pad + d->H);
}

void nr_direct_conv_forward(const nr_direct_conv *d, int nb, const float *x, float *y, const float *w,
                            const float *bias, float *scratch)
{
    direct_scratch s = scratch_at(d, nb, scratch);
    direct_sizes z = sizes_of(d);
    taps t = input_taps(d, &z);
    strips ss = input_strips(d, &z);
    weights_by_tap(w, d->O, (size_t)d->C * d->k * d->k, s.weights);
    memset(s.x_read + z.x_read, 0, SLACK * sizeof(float));
    size_t in_image = (size_t)d->C * d->H * d->W;
    for (int b = 0; b < nb; b++) {
        prepare_image(d, &z, x + b * in_image, &s, s.x_read);
        conv_image(s.x_read, d->C, t, &ss, s.weights, d->O, bias, y + b * d->O * ss.P);
    }
}

/* Images per pass of weight_gradient's tiles: as many as keep what one
 * tile reads of them (an input channel, ob_most dy planes) within
 * DW_GROUP_BYTES, so that the tiles after it find them in L1 (one pass
 * over all 16 images of a micro-batch read the 24 KB of dy planes of a
 * CIFAR image from L2 again for each of its 30 first-layer tiles). The
 * tiles' vector sums wait in s->dw_part between passes. */
#define DW_GROUP_BYTES (24 * 1024)

static int dw_group_images(const nr_direct_conv *d, const taps *t, int ob_most)
{
    size_t per_image = (t->cs + (size_t)ob_most * d->OH * d->OW) * sizeof(float);
    int g = (int)(DW_GROUP_BYTES / per_image);
    return g > 0 ? g : 1;
}

/* dw[i] += the sum of the 16 floats at part + 16 i, for count of them. */
TARGET static void add_reduced(const float *part, size_t count, float *dw)
{
    for (size_t i = 0; i < count; i++) dw[i] += _mm512_reduce_add_ps(_mm512_loadu_ps(part + 16 * i));
}

static void weight_gradient(const nr_direct_conv *d, int nb, const direct_scratch *s, const float *dy, float *dw)
{
    direct_sizes z = sizes_of(d);
    taps t = input_taps(d, &z);
    strips ss = input_strips(d, &z);
    int k = d->k;
    size_t P = ss.P, per_o = (size_t)d->C * k * k;
    int ob_most = block_size(d->O, DW_BLOCK_O), kb_most = block_size(k, DW_BLOCK_TAPS);
    int group = dw_group_images(d, &t, ob_most);
    size_t ldp = 16 * per_o;
    for (int b0 = 0; b0 < nb; b0 += group) {
        int g = nb - b0 < group ? nb - b0 : group;
        const float *xg = s->x_read + b0 * z.x_read, *dg = dy + (size_t)b0 * d->O * P;
        for (int c = 0; c < d->C; c++)
            for (int kh = 0; kh < k; kh++)
                for (int o0 = 0; o0 < d->O; o0 += ob_most)
                    for (int kw0 = 0; kw0 < k; kw0 += kb_most) {
                        int ob = d->O - o0 < ob_most ? d->O - o0 : ob_most;
                        int kb = k - kw0 < kb_most ? k - kw0 : kb_most;
                        dw_tile_any(ob, kb, g, xg + c * t.cs + kw0 * t.ks + kh * t.rs, z.x_read, t.ks, dg + o0 * P,
                                    d->O * P, &ss, s->dw_part + o0 * ldp + 16 * (((size_t)c * k + kh) * k + kw0),
                                    ldp, b0 == 0);
                    }
    }
    add_reduced(s->dw_part, (size_t)d->O * per_o, dw);
}

/* dx of one image: the convolution of dy, padded by k - 1 - pad (by k - 1
 * and folded back for reflect padding), with the flipped weights. In row
 * mode, kernel rows that would read only the padding's zero rows are
 * skipped. */
static void input_gradient(const nr_direct_conv *d, const direct_scratch *s, const float *dy, float *dx)
{
    direct_sizes z = sizes_of(d);
    int q = pad_for_dx(d);
    size_t plane = (size_t)z.hq * z.wq;
    pad_planes(dy, d->O, d->OH, d->OW, q, 0, s->dy_padded);
    memset(s->dy_padded + z.dy_padded, 0, SLACK * sizeof(float));
    if (dx_expands(d)) {
        size_t expanded_plane = (size_t)z.hq * d->W, P = (size_t)d->H * d->W;
        expand_columns(s->dy_padded, d->O, z.hq, z.wq, d->k, d->W, s->dy_expanded);
        memset(s->dy_expanded + z.dy_expanded, 0, SLACK * sizeof(float));
        taps te = { d->k * expanded_plane, (size_t)d->W, expanded_plane, d->k, 0, d->k };
        strips flat = row_strips(1, (int)P, (int)P, NO_ZERO_ROWS);
        conv_image(s->dy_expanded, d->O, te, &flat, s->weights, d->C, NULL, dx);
        return;
    }
    taps t = { plane, (size_t)z.wq, 1, d->k, 0, d->k };
    int oh = d->reflect ? z.hp : d->H, ow = d->reflect ? z.wp : d->W;
    strips ss = row_strips(oh, ow, z.wq, q, q + d->OH);
    conv_image(s->dy_padded, d->O, t, &ss, s->weights, d->C, NULL, d->reflect ? s->dx_padded : dx);
    if (d->reflect) fold_reflect(s->dx_padded, d->C, d->H, d->W, d->pad, dx);
}

void nr_direct_conv_backward(const nr_direct_conv *d, int nb, const float *x, const float *dy, float *dx,
                             const float *w, float *dw, float *scratch)
{
    direct_scratch s = scratch_at(d, nb, scratch);
    direct_sizes z = sizes_of(d);
    size_t in_image = (size_t)d->C * d->H * d->W, out_image = (size_t)d->O * d->OH * d->OW;
    for (int b = 0; b < nb; b++) prepare_image(d, &z, x + b * in_image, &s, s.x_read + b * z.x_read);
    memset(s.x_read + nb * z.x_read, 0, SLACK * sizeof(float));
    weight_gradient(d, nb, &s, dy, dw);
    if (!dx) return;
    weights_flipped(w, d->O, d->C, d->k, s.weights);
    for (int b = 0; b < nb; b++) input_gradient(d, &s, dy + b * out_image, dx + b * in_image);
}
#else
void nr_direct_conv_forward(const nr_direct_conv *d, int nb, const float *x, float *y, const float *w,
                            const float *bias, float *scratch)
{
    (void)d, (void)nb, (void)x, (void)y, (void)w, (void)bias, (void)scratch;
    abort(); /* unreachable: nr_direct_conv_usable is false without AVX-512 */
}

void nr_direct_conv_backward(const nr_direct_conv *d, int nb, const float *x, const float *dy, float *dx,
                             const float *w, float *dw, float *scratch)
{
    (void)d, (void)nb, (void)x, (void)dy, (void)dx, (void)w, (void)dw, (void)scratch;
    abort();
}
#endif

int nr_direct_conv_usable(const nr_direct_conv *d, int stride)
{
    return nr_cpu_avx512_kernels() && stride == 1 && d->pad < d->k && d->OH == d->H + 2 * d->pad - d->k + 1 &&
           d->OW == d->W + 2 * d->pad - d->k + 1;
}
