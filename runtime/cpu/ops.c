/* The CPU backend's layers: forward, backward and initialization of every
 * nr_kind, with PyTorch's semantics.
 *
 * Threads: every kernel parallelizes with OpenMP and calls OpenBLAS
 * single-threaded from inside its threads (nr_cpu_set_threads pins BLAS to
 * one thread). Two thread pools taking turns on the same few cores would
 * spin against each other; one pool that splits the batch keeps each
 * thread's im2col columns in its own cache. */
#include "ops.h"
#include "conv_direct.h"
#include "dense_avx512.h"
#include "isa.h"
#include "maxpool2.h"
#include <cblas.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- threads ---------------------------------------------------------- */


static int cpu_threads; /* 0 until nr_cpu_set_threads (or the first kernel) sets it */

static int processor_count(void)
{
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

void nr_cpu_set_threads(int threads)
{
    cpu_threads = threads > 0 ? threads : processor_count();
#ifdef _OPENMP
    omp_set_num_threads(cpu_threads);
#endif
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(1);
#endif
}

/* Set on a thread while it runs a pass's tasks (model.c). */
static _Thread_local int in_lane;

void nr_cpu_lane_kernels(int on) { in_lane = on; }

/* Inside a parallel region or a pass's task (the data-parallel step runs
 * every layer of a micro-batch on one thread) a kernel runs on its
 * caller's thread alone: its work and its sums then do not depend on the
 * thread count. */
static int kernel_threads(void)
{
    if (cpu_threads <= 0) nr_cpu_set_threads(0);
    if (in_lane) return 1;
#ifdef _OPENMP
    if (omp_get_level() > 0) return 1;
#endif
    return cpu_threads;
}

/* Per-thread scratch slots are sized for at least every core, so that
 * raising the thread count up to the core count after sizing stays safe. */
static int scratch_slots(void)
{
    int t = kernel_threads(), procs = processor_count();
    return t > procs ? t : procs;
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int thread_count(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}


/* Below this many elements an elementwise loop is not worth waking threads. */
#define PARALLEL_MIN 32768

/* ---- sizes ------------------------------------------------------------ */

static size_t in_size(const nr_layer *L) { return (size_t)L->in_c * L->in_h * L->in_w; }
static size_t out_size(const nr_layer *L) { return (size_t)L->out_c * L->out_h * L->out_w; }

/* ---- convolution (im2col + GEMM) --------------------------------------- */

typedef struct conv_geom {
    int C, H, W, O, k, s, pad, reflect, OH, OW;
    size_t P; /* output pixels per image */
    size_t K; /* C*k*k: one column of the im2col matrix */
} conv_geom;

static conv_geom conv_geom_of(const nr_layer *L)
{
    conv_geom g = { L->in_c, L->in_h, L->in_w, L->out_c, L->kernel, L->stride > 0 ? L->stride : 1, L->padding,
                    L->reflect, L->out_h, L->out_w, 0, 0 };
    g.P = (size_t)g.OH * g.OW;
    g.K = (size_t)g.C * g.k * g.k;
    return g;
}

/* A kernel that covers the whole unpadded input (LeNet-5's conv3) has one
 * output pixel: it is a dense layer over the flattened input, with no
 * im2col at all. */
static int conv_is_dense(const conv_geom *g)
{
    return g->pad == 0 && g->k == g->H && g->k == g->W && g->OH == 1 && g->OW == 1;
}

static nr_direct_conv direct_of(const conv_geom *g)
{
    nr_direct_conv d = { g->C, g->H, g->W, g->O, g->OH, g->OW, g->k, g->pad, g->reflect };
    return d;
}

/* Stride-1 convolutions run as direct convolutions where the CPU has
 * AVX-512 (conv_direct.c); the rest as im2col + GEMM. */
static int conv_direct(const conv_geom *g)
{
    nr_direct_conv d = direct_of(g);
    return !conv_is_dense(g) && nr_direct_conv_usable(&d, g->s);
}

/* im2col columns (or padded images, for the direct path) per thread chunk:
 * about a core's L2, so a chunk's columns are still cached when the GEMM
 * reads them. */
#define COL_BUDGET ((size_t)1 << 17)

static size_t conv_image_floats(const conv_geom *g)
{
    if (conv_direct(g)) return (size_t)g->C * (g->H + 2 * g->pad) * (g->W + 2 * g->pad);
    return g->K * g->P;
}

/* Images per chunk: as many as fit COL_BUDGET, never more than a thread's
 * share of the batch. Monotone in n, so scratch sized for the largest batch
 * serves every smaller one. */
static int conv_chunk_images(const conv_geom *g, int n, int threads)
{
    size_t per = conv_image_floats(g);
    size_t cb = per >= COL_BUDGET ? 1 : COL_BUDGET / per;
    size_t share = ((size_t)(n > 0 ? n : 1) + threads - 1) / threads;
    if (cb > share) cb = share;
    return cb < 1 ? 1 : (int)cb;
}

/* One thread's slot: columns, their gradient, the output (or dy) in GEMM
 * layout [O, images*P], and its partial weight and bias gradients; for the
 * direct path, the partial gradients and the direct kernels' scratch. */
typedef struct conv_slot {
    float *cols, *dcols, *gemm_out, *dw, *db, *direct;
} conv_slot;

static size_t conv_slot_floats(const conv_geom *g, int cb)
{
    if (conv_direct(g)) {
        nr_direct_conv d = direct_of(g);
        return nr_round16((size_t)g->O * g->K + g->O) + nr_direct_conv_scratch(&d, cb);
    }
    size_t cols = g->K * (size_t)cb * g->P;
    return 2 * nr_round16(cols) + nr_round16((size_t)g->O * cb * g->P) + nr_round16((size_t)g->O * g->K + g->O);
}

static conv_slot conv_slot_at(const conv_geom *g, int cb, float *scratch, int t)
{
    conv_slot s;
    float *base = scratch + (size_t)t * conv_slot_floats(g, cb);
    if (conv_direct(g)) {
        s.cols = s.dcols = s.gemm_out = NULL;
        s.dw = base;
        s.db = s.dw + (size_t)g->O * g->K;
        s.direct = base + nr_round16((size_t)g->O * g->K + g->O);
        return s;
    }
    size_t cols = nr_round16(g->K * (size_t)cb * g->P);
    s.direct = NULL;
    s.cols = base;
    s.dcols = s.cols + cols;
    s.gemm_out = s.dcols + cols;
    s.dw = s.gemm_out + nr_round16((size_t)g->O * cb * g->P);
    s.db = s.dw + (size_t)g->O * g->K;
    return s;
}


/* Output columns ow whose input column ow*s - pad + kj lies inside [0, W). */
static void valid_columns(const conv_geom *g, int kj, int *lo, int *hi)
{
    int first = g->pad - kj <= 0 ? 0 : (g->pad - kj + g->s - 1) / g->s;
    int last_in = g->W - 1 + g->pad - kj; /* ow*s <= last_in */
    int end = last_in < 0 ? 0 : last_in / g->s + 1;
    if (end > g->OW) end = g->OW;
    if (first > end) first = end;
    *lo = first;
    *hi = end;
}

/* Row (ki, kj) of one input plane's im2col block: P values. */
SIMD_CLONES static void im2col_row(const conv_geom *g, const float *plane, int ki, int kj, float *dst)
{
    int lo, hi;
    valid_columns(g, kj, &lo, &hi);
    for (int oh = 0; oh < g->OH; oh++, dst += g->OW) {
        int ih = oh * g->s - g->pad + ki;
        if (g->reflect) {
            const float *src = plane + (size_t)nr_reflect_index(ih, g->H) * g->W;
            for (int ow = 0; ow < g->OW; ow++) dst[ow] = src[nr_reflect_index(ow * g->s - g->pad + kj, g->W)];
            continue;
        }
        if (ih < 0 || ih >= g->H) {
            memset(dst, 0, (size_t)g->OW * sizeof *dst);
            continue;
        }
        const float *src = plane + (size_t)ih * g->W + kj - g->pad;
        for (int ow = 0; ow < lo; ow++) dst[ow] = 0;
        /* rows are short (28 floats in LeNet-5): a loop beats a memcpy call */
        if (g->s == 1) {
#pragma omp simd
            for (int ow = lo; ow < hi; ow++) dst[ow] = src[ow];
        } else {
            for (int ow = lo; ow < hi; ow++) dst[ow] = src[ow * g->s];
        }
        for (int ow = hi; ow < g->OW; ow++) dst[ow] = 0;
    }
}

/* The adjoint of im2col_row: adds the row back into the plane. */
static void col2im_row(const conv_geom *g, float *plane, int ki, int kj, const float *src)
{
    int lo, hi;
    valid_columns(g, kj, &lo, &hi);
    for (int oh = 0; oh < g->OH; oh++, src += g->OW) {
        int ih = oh * g->s - g->pad + ki;
        if (g->reflect) {
            float *dst = plane + (size_t)nr_reflect_index(ih, g->H) * g->W;
            for (int ow = 0; ow < g->OW; ow++) dst[nr_reflect_index(ow * g->s - g->pad + kj, g->W)] += src[ow];
            continue;
        }
        if (ih < 0 || ih >= g->H) continue;
        float *dst = plane + (size_t)ih * g->W + kj - g->pad;
        if (g->s == 1) {
#pragma omp simd
            for (int ow = lo; ow < hi; ow++) dst[ow] += src[ow];
        } else {
            for (int ow = lo; ow < hi; ow++) dst[ow * g->s] += src[ow];
        }
    }
}

/* cols [K, nb*P] of nb images, rows ld apart: row (c, ki, kj), column
 * (image, oh, ow). */
static void im2col(const conv_geom *g, const float *x, int nb, float *cols, size_t ld)
{
    size_t plane = (size_t)g->H * g->W;
    for (int c = 0; c < g->C; c++)
        for (int ki = 0; ki < g->k; ki++)
            for (int kj = 0; kj < g->k; kj++) {
                float *row = cols + ((size_t)(c * g->k + ki) * g->k + kj) * ld;
                for (int b = 0; b < nb; b++)
                    im2col_row(g, x + ((size_t)b * g->C + c) * plane, ki, kj, row + (size_t)b * g->P);
            }
}

/* dx (zeroed by the caller) += col2im(dcols). */
static void col2im(const conv_geom *g, const float *dcols, int nb, float *dx)
{
    size_t ld = (size_t)nb * g->P, plane = (size_t)g->H * g->W;
    for (int c = 0; c < g->C; c++)
        for (int ki = 0; ki < g->k; ki++)
            for (int kj = 0; kj < g->k; kj++) {
                const float *row = dcols + ((size_t)(c * g->k + ki) * g->k + kj) * ld;
                for (int b = 0; b < nb; b++)
                    col2im_row(g, dx + ((size_t)b * g->C + c) * plane, ki, kj, row + (size_t)b * g->P);
            }
}

/* Where a chunk's columns live: in the layer's saved floats when forward
 * keeps them for backward (the whole batch as one [K, n*P] matrix, so the
 * layout does not depend on how threads cut the batch), else in the
 * thread's slot. */
typedef struct cols_view {
    float *at;
    size_t ld;
} cols_view;

/* Small im2col matrices are kept from forward to backward, which then skips
 * rebuilding them (im2col is memory traffic, a large share of a small
 * net's time); large ones would cost too much memory per batch. */
#define KEEP_COLS_PER_IMAGE ((size_t)1 << 16)

static int conv_keeps_cols(const conv_geom *g);

static cols_view chunk_cols(const conv_geom *g, int n, int b0, int nb, float *saved, const conv_slot *s)
{
    cols_view v;
    if (conv_keeps_cols(g)) {
        v.at = saved + (size_t)b0 * g->P;
        v.ld = (size_t)n * g->P;
    } else {
        v.at = s->cols;
        v.ld = (size_t)nb * g->P;
    }
    return v;
}

/* One GEMM for the whole chunk, [O, K] x [K, nb*P], then each image's
 * [O, P] block moves to NCHW with the bias added on the way. */
static void conv_forward_chunk(const conv_geom *g, int nb, const float *x, float *y, const float *w,
                               const float *bias, const conv_slot *s, cols_view cols)
{
    int ncols = (int)((size_t)nb * g->P);
    im2col(g, x, nb, cols.at, cols.ld);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->O, ncols, (int)g->K, 1.0f, w, (int)g->K, cols.at,
                (int)cols.ld, 0.0f, s->gemm_out, ncols);
    for (int b = 0; b < nb; b++)
        for (int o = 0; o < g->O; o++) {
            const float *src = s->gemm_out + (size_t)o * ncols + (size_t)b * g->P;
            float *dst = y + ((size_t)b * g->O + o) * g->P;
            float add = bias ? bias[o] : 0.0f;
#pragma omp simd
            for (size_t p = 0; p < g->P; p++) dst[p] = src[p] + add;
        }
}

/* This thread's images of the batch: [lo, hi). */
static void thread_share(int n, int *lo, int *hi)
{
    int t = thread_id(), nt = thread_count();
    *lo = (int)((long long)n * t / nt);
    *hi = (int)((long long)n * (t + 1) / nt);
}

/* Threads for a conv of n images: one when the work would not pay for
 * waking another (and waiting for it when the cores are busy). */
static int conv_threads(const conv_geom *g, int n)
{
    return (size_t)n * g->K * g->P * g->O >= ((size_t)1 << 17) ? kernel_threads() : 1;
}

static int conv_keeps_cols(const conv_geom *g)
{
    return !conv_is_dense(g) && !conv_direct(g) && g->K * g->P <= KEEP_COLS_PER_IMAGE;
}

static void dense_forward_sized(int n, int in, int out, const float *x, float *y, const float *w, const float *bias);
static void dense_backward_sized(int n, int in, int out, const float *x, const float *dy, float *dx, const float *w,
                                 float *dw, float *db);

static void conv_forward(const nr_layer *L, int n, const float *x, float *y, const float *params, float *saved,
                         float *scratch)
{
    conv_geom g = conv_geom_of(L);
    int threads = kernel_threads();
    int cb = conv_chunk_images(&g, n, threads);
    const float *bias = L->bias ? params + (size_t)g.O * g.K : NULL;
    size_t in_img = (size_t)g.C * g.H * g.W, out_img = (size_t)g.O * g.P;
    if (conv_is_dense(&g)) {
        dense_forward_sized(n, (int)g.K, g.O, x, y, params, bias);
        return;
    }
#pragma omp parallel num_threads(conv_threads(&g, n))
    {
        conv_slot s = conv_slot_at(&g, cb, scratch, thread_id());
        int lo, hi;
        thread_share(n, &lo, &hi);
        nr_direct_conv d = direct_of(&g);
        for (int b0 = lo; b0 < hi; b0 += cb) {
            int nb = hi - b0 < cb ? hi - b0 : cb;
            if (s.direct)
                nr_direct_conv_forward(&d, nb, x + b0 * in_img, y + b0 * out_img, params, bias, s.direct);
            else
                conv_forward_chunk(&g, nb, x + b0 * in_img, y + b0 * out_img, params, bias, &s,
                                   chunk_cols(&g, n, b0, nb, saved, &s));
        }
    }
}

/* Sum of v[0..count) in a fixed order: 8 lanes over blocks of 8 (a
 * vector's worth), then the lanes and the tail. A vectorized reduction
 * would let the compiler peel a few elements to align the loads, and the
 * rounding would then depend on the address of v, so on the allocation
 * pattern of the run (the thread count, the test set's size). */
static float sum_fixed_order(const float *v, size_t count)
{
    float lane[8] = { 0 };
    size_t p = 0;
    for (; p + 8 <= count; p += 8)
        for (int k = 0; k < 8; k++) lane[k] += v[p + k];
    float sum = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    for (; p < count; p++) sum += v[p];
    return sum;
}

/* db += the sums of dy of nb images over their pixels. */
static void bias_gradient(const conv_geom *g, int nb, const float *dy, float *db)
{
    for (int b = 0; b < nb; b++)
        for (int o = 0; o < g->O; o++) db[o] += sum_fixed_order(dy + ((size_t)b * g->O + o) * g->P, g->P);
}

/* dy of nb images into GEMM layout [O, nb*P]. */
static void gather_dy(const conv_geom *g, int nb, const float *dy, const conv_slot *s)
{
    size_t ncols = (size_t)nb * g->P;
    for (int b = 0; b < nb; b++)
        for (int o = 0; o < g->O; o++)
            memcpy(s->gemm_out + (size_t)o * ncols + (size_t)b * g->P, dy + ((size_t)b * g->O + o) * g->P,
                   g->P * sizeof(float));
}

static void conv_backward_chunk(const conv_geom *g, int nb, const float *x, const float *dy, float *dx,
                                const float *w, const conv_slot *s, cols_view cols)
{
    int ncols = (int)((size_t)nb * g->P), K = (int)g->K;
    bias_gradient(g, nb, dy, s->db);
    if (s->direct) {
        nr_direct_conv d = direct_of(g);
        nr_direct_conv_backward(&d, nb, x, dy, dx, w, s->dw, s->direct);
        return;
    }
    gather_dy(g, nb, dy, s);
    if (!conv_keeps_cols(g)) im2col(g, x, nb, cols.at, cols.ld);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->O, K, ncols, 1.0f, s->gemm_out, ncols, cols.at,
                (int)cols.ld, 1.0f, s->dw, K);
    if (!dx) return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ncols, g->O, 1.0f, w, K, s->gemm_out, ncols, 0.0f,
                s->dcols, ncols);
    memset(dx, 0, (size_t)nb * g->C * g->H * g->W * sizeof *dx);
    col2im(g, s->dcols, nb, dx);
}

static void conv_backward(const nr_layer *L, int n, const float *x, const float *dy, float *dx, const float *params,
                          float *dparams, const float *saved, float *scratch)
{
    conv_geom g = conv_geom_of(L);
    int threads = kernel_threads();
    int cb = conv_chunk_images(&g, n, threads);
    size_t in_img = (size_t)g.C * g.H * g.W, out_img = (size_t)g.O * g.P;
    size_t nw = (size_t)g.O * g.K;
    int used = 1;
    if (conv_is_dense(&g)) {
        dense_backward_sized(n, (int)g.K, g.O, x, dy, dx, params, dparams, L->bias ? dparams + nw : NULL);
        return;
    }
#pragma omp parallel num_threads(conv_threads(&g, n))
    {
        conv_slot s = conv_slot_at(&g, cb, scratch, thread_id());
        if (thread_id() == 0) used = thread_count();
        memset(s.dw, 0, (nw + g.O) * sizeof *s.dw);
        int lo, hi;
        thread_share(n, &lo, &hi);
        for (int b0 = lo; b0 < hi; b0 += cb) {
            int nb = hi - b0 < cb ? hi - b0 : cb;
            conv_backward_chunk(&g, nb, x + b0 * in_img, dy + b0 * out_img, dx ? dx + b0 * in_img : NULL, params,
                                &s, chunk_cols(&g, n, b0, nb, (float *)saved, &s)); /* only read here */
        }
    }
    /* The threads' partial gradients, summed in a fixed order. */
    size_t total = nw + (L->bias ? (size_t)g.O : 0);
    conv_slot first = conv_slot_at(&g, cb, scratch, 0);
    memcpy(dparams, first.dw, total * sizeof *dparams);
    for (int t = 1; t < used; t++) {
        conv_slot s = conv_slot_at(&g, cb, scratch, t);
        for (size_t j = 0; j < total; j++) dparams[j] += s.dw[j];
    }
}

/* ---- dense -------------------------------------------------------------- */

/* Rows [lo, hi) of m rows split between the threads of the current team. */
static void split_rows(int m, int *lo, int *hi) { thread_share(m, lo, hi); }

static int dense_threads(int n, size_t in, size_t out)
{
    return (size_t)n * in * out >= (size_t)1 << 16 ? kernel_threads() : 1;
}

/* Where the CPU has AVX-512, dense_avx512.c's products instead of BLAS
 * calls: as fast as OpenBLAS's AVX-512 kernels, faster than the older ones
 * OPENBLAS_CORETYPE may hold it to, and the same bits whatever BLAS. */
static void dense_forward_sized(int n, int in, int out, const float *x, float *y, const float *w, const float *bias)
{
    int own = nr_dense_avx512_usable();
#pragma omp parallel num_threads(dense_threads(n, in, out))
    {
        int lo, hi;
        split_rows(n, &lo, &hi);
        if (hi > lo && own) {
            nr_dense_avx512_forward(hi - lo, in, out, x + (size_t)lo * in, w, bias, y + (size_t)lo * out);
        } else if (hi > lo) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, hi - lo, out, in, 1.0f, x + (size_t)lo * in, in, w,
                        in, 0.0f, y + (size_t)lo * out, out);
            if (bias)
                for (int b = lo; b < hi; b++) {
                    float *row = y + (size_t)b * out;
#pragma omp simd
                    for (int o = 0; o < out; o++) row[o] += bias[o];
                }
        }
    }
}

/* dw [out, in] = dy^T x, split by rows of dw; db = column sums of dy;
 * dx = dy w, split by rows of dx. */
static void dense_backward_sized(int n, int in, int out, const float *x, const float *dy, float *dx, const float *w,
                                 float *dw, float *db)
{
    int own = nr_dense_avx512_usable();
#pragma omp parallel num_threads(dense_threads(n, in, out))
    {
        int lo, hi;
        split_rows(out, &lo, &hi);
        if (hi > lo) {
            if (own)
                nr_dense_avx512_weight_grad(n, in, hi - lo, dy + lo, out, x, dw + (size_t)lo * in);
            else
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hi - lo, in, n, 1.0f, dy + lo, out, x, in, 0.0f,
                            dw + (size_t)lo * in, in);
            if (db)
                for (int o = lo; o < hi; o++) {
                    float sum = 0.0f;
                    for (int b = 0; b < n; b++) sum += dy[(size_t)b * out + o];
                    db[o] = sum;
                }
        }
        if (dx) {
            split_rows(n, &lo, &hi);
            if (hi > lo && own)
                nr_dense_avx512_input_grad(hi - lo, in, out, dy + (size_t)lo * out, w, dx + (size_t)lo * in);
            else if (hi > lo)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hi - lo, in, out, 1.0f, dy + (size_t)lo * out,
                            out, w, in, 0.0f, dx + (size_t)lo * in, in);
        }
    }
}

static void dense_forward(const nr_layer *L, int n, const float *x, float *y, const float *params)
{
    int in = (int)in_size(L), out = (int)out_size(L);
    dense_forward_sized(n, in, out, x, y, params, L->bias ? params + (size_t)in * out : NULL);
}

static void dense_backward(const nr_layer *L, int n, const float *x, const float *dy, float *dx, const float *params,
                           float *dparams)
{
    int in = (int)in_size(L), out = (int)out_size(L);
    dense_backward_sized(n, in, out, x, dy, dx, params, dparams, L->bias ? dparams + (size_t)in * out : NULL);
}

/* ---- pooling ------------------------------------------------------------ */

typedef struct pool_geom {
    int H, W, OH, OW, k, s, pad;
} pool_geom;

static pool_geom pool_geom_of(const nr_layer *L)
{
    pool_geom g = { L->in_h, L->in_w, L->out_h, L->out_w, L->kernel, L->stride > 0 ? L->stride : L->kernel,
                    L->padding };
    return g;
}

static int imax(int a, int b) { return a > b ? a : b; }
static int imin(int a, int b) { return a < b ? a : b; }

/* Window (oh, ow) clipped to the image: rows [*i0, *i1), columns [*j0, *j1). */
static void pool_window(const pool_geom *g, int oh, int ow, int *i0, int *i1, int *j0, int *j1)
{
    int hs = oh * g->s - g->pad, ws = ow * g->s - g->pad;
    *i0 = imax(hs, 0);
    *i1 = imin(hs + g->k, g->H);
    *j0 = imax(ws, 0);
    *j1 = imin(ws + g->k, g->W);
}

/* Padding counts as -inf, so it never wins; like PyTorch, the first maximum
 * wins and a NaN wins over everything. The argmax (index in the plane, exact
 * in a float below 2^24) is what backward routes the gradient to. */
static void maxpool_plane(const pool_geom *g, const float *x, float *y, float *arg)
{
    for (int oh = 0; oh < g->OH; oh++)
        for (int ow = 0; ow < g->OW; ow++) {
            int i0, i1, j0, j1, best_at = -1;
            float best = -INFINITY;
            pool_window(g, oh, ow, &i0, &i1, &j0, &j1);
            for (int i = i0; i < i1; i++)
                for (int j = j0; j < j1; j++) {
                    float v = x[i * g->W + j];
                    if (v > best || isnan(v)) {
                        best = v;
                        best_at = i * g->W + j;
                    }
                }
            y[oh * g->OW + ow] = best;
            arg[oh * g->OW + ow] = (float)best_at;
        }
}

/* One step of maxpool_plane's scan, without a branch (a float ?: is one
 * to GCC's vectorizer; nr_blend selects bits). */
#define MAXPOOL_TAKE(v, at)                                                                                      \
    do {                                                                                                         \
        float v_ = (v);                                                                                          \
        int take_ = -(int)((v_ > best) | (v_ != v_));                                                            \
        best = nr_blend(take_, v_, best);                                                                        \
        best_at = nr_blend(take_, (float)(at), best_at);                                                         \
    } while (0)

/* nr_pool_pre's v * scale + shift, then nr_relu when relu is set, without
 * a branch. */
#define PRE(pre, v) PRE_RELU((pre).relu, (v) * (pre).scale + (pre).shift)
#define PRE_RELU(relu, v) nr_blend(-(int)((relu) & !((v) > 0.0f)), 0.0f, (v))

/* 2x2 windows, stride 2, no padding: one output row from input rows 2 oh
 * and 2 oh + 1, with maxpool_plane's rule (first maximum, NaN wins) written
 * without branches so that it vectorizes; first = the index of x0[0]. Of
 * pre(x): the BatchNorm apply and relu before the pooling, fused. */
SIMD_CLONES static void maxpool2_row(const float *x0, const float *x1, float *y, float *arg, int ow, int first,
                                     int W, nr_pool_pre pre)
{
#pragma omp simd
    for (int j = 0; j < ow; j++) {
        float best = -INFINITY, best_at = -1.0f;
        float a = PRE(pre, x0[2 * j]), b = PRE(pre, x0[2 * j + 1]);
        float c = PRE(pre, x1[2 * j]), d = PRE(pre, x1[2 * j + 1]);
        MAXPOOL_TAKE(a, first + 2 * j);
        MAXPOOL_TAKE(b, first + 2 * j + 1);
        MAXPOOL_TAKE(c, first + W + 2 * j);
        MAXPOOL_TAKE(d, first + W + 2 * j + 1);
        y[j] = best;
        arg[j] = best_at;
    }
}

static int pool_is_2x2(const pool_geom *g) { return g->k == 2 && g->s == 2 && g->pad == 0; }

/* What runs before a pooling: bn (with its params and saved statistics)
 * when not NULL, then relu when set; both only for a 2x2 pooling (fused). */
typedef struct pool_pre_layers {
    const nr_layer *bn;
    const float *bn_params, *bn_saved;
    int relu;
} pool_pre_layers;

static void bn_scale_shift(const nr_layer *L, int c, const float *params, const float *saved, float *scale,
                           float *shift);

static nr_pool_pre pool_pre_of(const pool_pre_layers *pl, int channel)
{
    nr_pool_pre pre = { 1.0f, -0.0f, pl->relu }; /* v * 1 + -0 is v, -0 included */
    if (pl->bn) bn_scale_shift(pl->bn, channel, pl->bn_params, pl->bn_saved, &pre.scale, &pre.shift);
    return pre;
}

static void maxpool_forward(const nr_layer *L, int n, const float *x, float *y, float *saved,
                            const pool_pre_layers *pl)
{
    pool_geom g = pool_geom_of(L);
    long planes = (long)n * L->in_c;
    size_t ip = (size_t)g.H * g.W, op = (size_t)g.OH * g.OW;
    int avx512 = nr_cpu_avx512_kernels();
#pragma omp parallel for num_threads(kernel_threads()) if (planes * ip >= PARALLEL_MIN)
    for (long p = 0; p < planes; p++) {
        if (!pool_is_2x2(&g)) {
            maxpool_plane(&g, x + p * ip, y + p * op, saved + p * op);
            continue;
        }
        nr_pool_pre pre = pool_pre_of(pl, (int)(p % L->in_c));
        if (p + 2 < planes) /* the hardware prefetcher misses planes this small */
            for (size_t i = 0; i < ip; i += 16) __builtin_prefetch(x + (p + 2) * ip + i);
        for (int oh = 0; oh < g.OH; oh++) {
            int first = 2 * oh * g.W;
            (avx512 ? nr_maxpool2_row : maxpool2_row)(x + p * ip + first, x + p * ip + first + g.W,
                                                      y + p * op + (size_t)oh * g.OW,
                                                      saved + p * op + (size_t)oh * g.OW, g.OW, first, g.W, pre);
        }
    }
}

/* v where the window's winner `at` is `here`, else 0, without a branch. */
#define ROUTED(at, here, v) nr_blend(-(int)((at) == (here)), (v), 0.0f)

/* 2x2 windows that tile the plane: input rows 2 oh (d0) and 2 oh + 1 (d1)
 * written whole from output row oh, first = the index of d0[0]. v + 0
 * is what a zeroed plane plus v holds (-0 becomes +0). */
SIMD_CLONES static void route2_row(const float *restrict dy, const float *restrict arg, const float *restrict y,
                                   int relu, int ow, int first, int W, float *restrict d0, float *restrict d1)
{
#pragma omp simd
    for (int j = 0; j < ow; j++) {
        float v = nr_blend(-(int)(relu != 0), nr_relu_grad(y[j], dy[j]), dy[j]) + 0.0f;
        float at = arg[j], a = (float)(first + 2 * j);
        d0[2 * j] = ROUTED(at, a, v);
        d0[2 * j + 1] = ROUTED(at, a + 1.0f, v);
        d1[2 * j] = ROUTED(at, a + (float)W, v);
        d1[2 * j + 1] = ROUTED(at, a + (float)W + 1.0f, v);
    }
}

/* One plane of maxpool_backward: d (the input plane) gets zeros, and each
 * window's winner (saved) its dy; with y, the fused relu's gradient. */
static void route_plane(const pool_geom *g, const float *dy, const float *saved, const float *y, float *d)
{
    size_t op = (size_t)g->OH * g->OW;
    if (pool_is_2x2(g) && g->H == 2 * g->OH && g->W == 2 * g->OW) {
        for (int oh = 0; oh < g->OH; oh++) {
            size_t o = (size_t)oh * g->OW;
            int first = 2 * oh * g->W;
            (nr_cpu_avx512_kernels() ? nr_maxpool2_route_row : route2_row)(
                dy + o, saved + o, y ? y + o : dy + o, y != NULL, g->OW, first, g->W, d + first, d + first + g->W);
        }
        return;
    }
    memset(d, 0, (size_t)g->H * g->W * sizeof *d);
    for (size_t o = 0; o < op; o++) {
        int at = (int)saved[o];
        if (at >= 0) d[at] += y ? nr_relu_grad(y[o], dy[o]) : dy[o];
    }
}

/* y set: the fused relu -> maxpool pair's backward, y the pooled output:
 * the window's winner takes dy where y > 0 (relu's gradient there), as
 * the two layers' backward would give. */
static void maxpool_backward(const nr_layer *L, int n, const float *dy, float *dx, const float *saved,
                             const float *y)
{
    pool_geom g = pool_geom_of(L);
    long planes = (long)n * L->in_c;
    size_t ip = (size_t)g.H * g.W, op = (size_t)g.OH * g.OW;
#pragma omp parallel for num_threads(kernel_threads()) if (planes * ip >= PARALLEL_MIN)
    for (long p = 0; p < planes; p++) route_plane(&g, dy + p * op, saved + p * op, y ? y + p * op : NULL, dx + p * ip);
}

/* count_include_pad: the divisor counts padding but not the part of a
 * window past the padded edge (PyTorch's rule; in floor mode it is k*k). */
static float avgpool_divisor(const pool_geom *g, int oh, int ow)
{
    int hs = oh * g->s - g->pad, ws = ow * g->s - g->pad;
    int he = imin(hs + g->k, g->H + g->pad), we = imin(ws + g->k, g->W + g->pad);
    return (float)((he - hs) * (we - ws));
}

static void avgpool_plane(const pool_geom *g, const float *x, float *y)
{
    for (int oh = 0; oh < g->OH; oh++)
        for (int ow = 0; ow < g->OW; ow++) {
            int i0, i1, j0, j1;
            pool_window(g, oh, ow, &i0, &i1, &j0, &j1);
            float sum = 0.0f;
            for (int i = i0; i < i1; i++)
                for (int j = j0; j < j1; j++) sum += x[i * g->W + j];
            y[oh * g->OW + ow] = sum / avgpool_divisor(g, oh, ow);
        }
}

static void avgpool_plane_backward(const pool_geom *g, const float *dy, float *dx)
{
    memset(dx, 0, (size_t)g->H * g->W * sizeof *dx);
    for (int oh = 0; oh < g->OH; oh++)
        for (int ow = 0; ow < g->OW; ow++) {
            int i0, i1, j0, j1;
            pool_window(g, oh, ow, &i0, &i1, &j0, &j1);
            float share = dy[oh * g->OW + ow] / avgpool_divisor(g, oh, ow);
            for (int i = i0; i < i1; i++)
                for (int j = j0; j < j1; j++) dx[i * g->W + j] += share;
        }
}

/* Windows that tile the image without padding (stride = kernel, LeNet-5's
 * 2x2 pools): straight row sweeps instead of clipped windows. */
static int pool_is_tiled(const pool_geom *g) { return g->pad == 0 && g->s == g->k; }

/* 2x2 windows, stride 2: one output row from two input rows, summed in the
 * order of the general loop below. */
SIMD_CLONES static void avgpool2_row(const float *x0, const float *x1, float *y, int ow)
{
#pragma omp simd
    for (int j = 0; j < ow; j++) y[j] = (((x0[2 * j] + x0[2 * j + 1]) + x1[2 * j]) + x1[2 * j + 1]) * 0.25f;
}

SIMD_CLONES static void avgpool2_row_backward(const float *dy, float *dx0, float *dx1, int ow)
{
#pragma omp simd
    for (int j = 0; j < ow; j++) {
        float v = dy[j] * 0.25f;
        dx0[2 * j] = v, dx0[2 * j + 1] = v, dx1[2 * j] = v, dx1[2 * j + 1] = v;
    }
}

static void avgpool_plane_tiled(const pool_geom *g, const float *x, float *y)
{
    if (g->k == 2) {
        for (int oh = 0; oh < g->OH; oh++)
            avgpool2_row(x + (size_t)2 * oh * g->W, x + (size_t)(2 * oh + 1) * g->W, y + (size_t)oh * g->OW, g->OW);
        return;
    }
    float inv = 1.0f / (float)(g->k * g->k);
    for (int oh = 0; oh < g->OH; oh++) {
        float *yrow = y + (size_t)oh * g->OW;
        for (int ow = 0; ow < g->OW; ow++) yrow[ow] = 0.0f;
        for (int ki = 0; ki < g->k; ki++) {
            const float *xrow = x + (size_t)(oh * g->k + ki) * g->W;
            for (int ow = 0; ow < g->OW; ow++)
                for (int kj = 0; kj < g->k; kj++) yrow[ow] += xrow[ow * g->k + kj];
        }
        for (int ow = 0; ow < g->OW; ow++) yrow[ow] *= inv;
    }
}

static void avgpool_plane_tiled_backward(const pool_geom *g, const float *dy, float *dx)
{
    float inv = 1.0f / (float)(g->k * g->k);
    /* floor mode leaves the bottom rows and right columns out of every window */
    if (g->H != g->OH * g->k || g->W != g->OW * g->k) memset(dx, 0, (size_t)g->H * g->W * sizeof *dx);
    if (g->k == 2) {
        for (int oh = 0; oh < g->OH; oh++)
            avgpool2_row_backward(dy + (size_t)oh * g->OW, dx + (size_t)2 * oh * g->W,
                                  dx + (size_t)(2 * oh + 1) * g->W, g->OW);
        return;
    }
    for (int oh = 0; oh < g->OH; oh++)
        for (int ki = 0; ki < g->k; ki++) {
            float *dxrow = dx + (size_t)(oh * g->k + ki) * g->W;
            const float *dyrow = dy + (size_t)oh * g->OW;
            for (int ow = 0; ow < g->OW; ow++)
                for (int kj = 0; kj < g->k; kj++) dxrow[ow * g->k + kj] = dyrow[ow] * inv;
        }
}

static void avgpool_forward(const nr_layer *L, int n, const float *x, float *y)
{
    pool_geom g = pool_geom_of(L);
    long planes = (long)n * L->in_c;
    size_t ip = (size_t)g.H * g.W, op = (size_t)g.OH * g.OW;
#pragma omp parallel for num_threads(kernel_threads()) if (planes * ip >= PARALLEL_MIN)
    for (long p = 0; p < planes; p++)
        if (pool_is_tiled(&g))
            avgpool_plane_tiled(&g, x + p * ip, y + p * op);
        else
            avgpool_plane(&g, x + p * ip, y + p * op);
}

static void avgpool_backward(const nr_layer *L, int n, const float *dy, float *dx)
{
    pool_geom g = pool_geom_of(L);
    long planes = (long)n * L->in_c;
    size_t ip = (size_t)g.H * g.W, op = (size_t)g.OH * g.OW;
#pragma omp parallel for num_threads(kernel_threads()) if (planes * ip >= PARALLEL_MIN)
    for (long p = 0; p < planes; p++)
        if (pool_is_tiled(&g))
            avgpool_plane_tiled_backward(&g, dy + p * op, dx + p * ip);
        else
            avgpool_plane_backward(&g, dy + p * op, dx + p * ip);
}

/* ---- batchnorm ----------------------------------------------------------- */

/* saved: mean [c], 1/sqrt(var + eps) [c], then 1 when batch statistics were
 * used (training) or 0 (running statistics), which backward needs to know.
 *
 * The batch statistics are sums over the batch; the data-parallel step
 * (runtime/model.c) takes them part by part (nr_bn_*), combines the parts
 * in a fixed order and hands the totals back. The whole-batch layer below
 * is the same pieces with one part. */

/* BatchNorm's sums run in double over 8 lanes: element i of a plane goes to
 * lane i mod 8, then the lanes add up in a fixed tree. A fixed order (the
 * result depends on the values alone), and 8 chains of additions instead
 * of one, whose every add would wait for the previous. */
#define BN_LANES 8

static double lanes_total(const double *lane)
{
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

SIMD_CLONES static void add_plane_sum(double *restrict lane, const float *restrict p, size_t hw)
{
    size_t i = 0;
    for (; i + BN_LANES <= hw; i += BN_LANES)
        for (int k = 0; k < BN_LANES; k++) lane[k] += p[i + k];
    for (int k = 0; i < hw; i++, k++) lane[k] += p[i];
}

SIMD_CLONES static void add_plane_sqdev(double *restrict lane, const float *restrict p, size_t hw, double m)
{
    size_t i = 0;
    for (; i + BN_LANES <= hw; i += BN_LANES)
        for (int k = 0; k < BN_LANES; k++) lane[k] += (p[i + k] - m) * (p[i + k] - m);
    for (int k = 0; i < hw; i++, k++) lane[k] += (p[i] - m) * (p[i] - m);
}

static double bn_channel_sum(const float *x, int n, int c, int C, size_t hw)
{
    double lane[BN_LANES] = { 0 };
    for (int b = 0; b < n; b++) add_plane_sum(lane, x + ((size_t)b * C + c) * hw, hw);
    return lanes_total(lane);
}

static double bn_channel_sqdev(const float *x, int n, int c, int C, size_t hw, double m)
{
    double lane[BN_LANES] = { 0 };
    for (int b = 0; b < n; b++) add_plane_sqdev(lane, x + ((size_t)b * C + c) * hw, hw, m);
    return lanes_total(lane);
}

/* saved and the running statistics of channel c from its mean and
 * (biased) variance over count values. */
static void bn_channel_stats(const nr_layer *L, int c, size_t count, double mean, double var, float *buffers,
                             float *saved, int flags)
{
    int C = L->in_c;
    int training = (flags & NR_TRAINING) != 0, update = training && (flags & NR_UPDATE_STATS);
    float *running_mean = buffers, *running_var = buffers + C;
    float m = L->momentum;
    if (training && update) {
        running_mean[c] = nr_bn_running(running_mean[c], m, mean);
        running_var[c] = nr_bn_running(running_var[c], m, nr_bn_unbiased(var, (long long)count));
    }
    saved[c] = (float)mean;
    saved[C + c] = nr_bn_invstd(var, L->eps);
}

/* Channel c's apply as y = x * scale + shift, from the saved mean and
 * 1/std and gamma, beta. */
static void bn_scale_shift(const nr_layer *L, int c, const float *params, const float *saved, float *scale,
                           float *shift)
{
    float invstd = saved[L->in_c + c];
    *scale = L->affine ? params[c] * invstd : invstd;
    *shift = (L->affine ? params[L->in_c + c] : 0.0f) - saved[c] * *scale;
}

static void bn_channel_apply(const nr_layer *L, int n, int c, const float *x, float *y, const float *params,
                             const float *saved)
{
    int C = L->in_c;
    size_t hw = (size_t)L->in_h * L->in_w;
    float scale, shift;
    bn_scale_shift(L, c, params, saved, &scale, &shift);
    for (int b = 0; b < n; b++) {
        const float *src = x + ((size_t)b * C + c) * hw;
        float *dst = y + ((size_t)b * C + c) * hw;
#pragma omp simd
        for (size_t i = 0; i < hw; i++) dst[i] = src[i] * scale + shift;
    }
}

static void batchnorm_forward(const nr_layer *L, int n, const float *x, float *y, const float *params,
                              float *buffers, float *saved, int flags)
{
    int C = L->in_c;
    size_t hw = (size_t)L->in_h * L->in_w, count = (size_t)n * hw;
    int training = (flags & NR_TRAINING) != 0;
#pragma omp parallel for num_threads(kernel_threads()) if (count * C >= PARALLEL_MIN)
    for (int c = 0; c < C; c++) {
        double mean = buffers[c], var = buffers[C + c];
        if (training) {
            mean = bn_channel_sum(x, n, c, C, hw) / (double)count;
            var = bn_channel_sqdev(x, n, c, C, hw, mean) / (double)count;
        }
        bn_channel_stats(L, c, count, mean, var, buffers, saved, flags);
        bn_channel_apply(L, n, c, x, y, params, saved);
    }
    saved[2 * C] = (float)training;
}

SIMD_CLONES static void add_plane_shifted(double *restrict s1, double *restrict s2, const float *restrict p, size_t hw,
                                          double shift)
{
    size_t i = 0;
    for (; i + BN_LANES <= hw; i += BN_LANES)
        for (int k = 0; k < BN_LANES; k++) {
            double d = p[i + k] - shift;
            s1[k] += d;
            s2[k] += d * d;
        }
    for (int k = 0; i < hw; i++, k++) {
        double d = p[i] - shift;
        s1[k] += d;
        s2[k] += d * d;
    }
}

/* One pass over the part: the sums of x - K and (x - K)^2, K the channel's
 * first value. K is a sample of the channel, so x - K is of the order of
 * the spread and little cancels when the squared deviation is taken from
 * them; in double, as precise as a second pass from the mean and half the
 * reads. */
void nr_bn_part_stats(const nr_layer *L, int n, const float *x, double *sum, double *sqdev)
{
    int C = L->in_c;
    size_t hw = (size_t)L->in_h * L->in_w;
    double count = (double)n * (double)hw;
    for (int c = 0; c < C; c++) {
        double s1[BN_LANES] = { 0 }, s2[BN_LANES] = { 0 }, shift = x[(size_t)c * hw];
        for (int b = 0; b < n; b++) add_plane_shifted(s1, s2, x + ((size_t)b * C + c) * hw, hw, shift);
        double d1 = lanes_total(s1), d2 = lanes_total(s2);
        sum[c] = d1 + count * shift;
        sqdev[c] = d2 - d1 * d1 / count > 0.0 ? d2 - d1 * d1 / count : 0.0;
    }
}

void nr_bn_set_stats(const nr_layer *L, size_t count, const double *mean, const double *var, float *buffers,
                     float *saved, int flags)
{
    for (int c = 0; c < L->in_c; c++) bn_channel_stats(L, c, count, mean[c], var[c], buffers, saved, flags);
    saved[2 * L->in_c] = (float)((flags & NR_TRAINING) != 0);
}

void nr_bn_apply(const nr_layer *L, int n, const float *x, float *y, const float *params, const float *saved)
{
    for (int c = 0; c < L->in_c; c++) bn_channel_apply(L, n, c, x, y, params, saved);
}

SIMD_CLONES static void add_plane_grad_sums(double *restrict lane_dy, double *restrict lane_dy_xhat,
                                            const float *restrict xs, const float *restrict ds, size_t hw, float mean,
                                            float invstd)
{
    size_t i = 0;
    for (; i + BN_LANES <= hw; i += BN_LANES)
        for (int k = 0; k < BN_LANES; k++) {
            lane_dy[k] += ds[i + k];
            lane_dy_xhat[k] += ds[i + k] * ((xs[i + k] - mean) * invstd);
        }
    for (int k = 0; i < hw; i++, k++) {
        lane_dy[k] += ds[i];
        lane_dy_xhat[k] += ds[i] * ((xs[i] - mean) * invstd);
    }
}

/* sum dy and sum dy * xhat of channel c over n samples. */
static void bn_channel_grad_sums(const nr_layer *L, int n, int c, const float *x, const float *dy,
                                 const float *saved, double *sum_dy, double *sum_dy_xhat)
{
    int C = L->in_c;
    size_t hw = (size_t)L->in_h * L->in_w;
    double lane_dy[BN_LANES] = { 0 }, lane_dy_xhat[BN_LANES] = { 0 };
    for (int b = 0; b < n; b++) {
        size_t at = ((size_t)b * C + c) * hw;
        add_plane_grad_sums(lane_dy, lane_dy_xhat, x + at, dy + at, hw, saved[c], saved[C + c]);
    }
    *sum_dy = lanes_total(lane_dy);
    *sum_dy_xhat = lanes_total(lane_dy_xhat);
}

/* What BatchNorm's backward applies to channel c: dx = k (dy - mean_dy -
 * xhat mean_dy_xhat), xhat = (x - mean) invstd. */
typedef struct bn_grad_coef {
    float mean, invstd, k, mean_dy, mean_dy_xhat;
} bn_grad_coef;

/* From the sums over all count values of the batch. */
static bn_grad_coef bn_grad_coef_of(const nr_layer *L, int c, size_t count, const float *params, const float *saved,
                                    double sum_dy, double sum_dy_xhat)
{
    int C = L->in_c;
    int training = saved[2 * C] != 0.0f;
    bn_grad_coef f;
    f.mean = saved[c], f.invstd = saved[C + c];
    f.k = (L->affine ? params[c] : 1.0f) * f.invstd;
    /* Training: the batch mean and variance depend on x too. */
    f.mean_dy = training ? (float)(sum_dy / count) : 0.0f;
    f.mean_dy_xhat = training ? (float)(sum_dy_xhat / count) : 0.0f;
    return f;
}

SIMD_CLONES static void bn_plane_grad_apply(const float *restrict xs, const float *restrict ds, float *restrict d,
                                            size_t hw, bn_grad_coef f)
{
#pragma omp simd
    for (size_t i = 0; i < hw; i++) {
        float xhat = (xs[i] - f.mean) * f.invstd;
        d[i] = f.k * (ds[i] - f.mean_dy - xhat * f.mean_dy_xhat);
    }
}

/* dx of channel c from the sums over all count values of the batch. */
static void bn_channel_grad_apply(const nr_layer *L, int n, int c, size_t count, const float *x, const float *dy,
                                  float *dx, const float *params, const float *saved, double sum_dy,
                                  double sum_dy_xhat)
{
    int C = L->in_c;
    size_t hw = (size_t)L->in_h * L->in_w;
    bn_grad_coef f = bn_grad_coef_of(L, c, count, params, saved, sum_dy, sum_dy_xhat);
    for (int b = 0; b < n; b++) {
        size_t at = ((size_t)b * C + c) * hw;
        bn_plane_grad_apply(x + at, dy + at, dx + at, hw, f);
    }
}

static void batchnorm_backward(const nr_layer *L, int n, const float *x, const float *dy, float *dx,
                               const float *params, float *dparams, const float *saved)
{
    int C = L->in_c;
    size_t hw = (size_t)L->in_h * L->in_w, count = (size_t)n * hw;
#pragma omp parallel for num_threads(kernel_threads()) if (count * C >= PARALLEL_MIN)
    for (int c = 0; c < C; c++) {
        double sum_dy, sum_dy_xhat;
        bn_channel_grad_sums(L, n, c, x, dy, saved, &sum_dy, &sum_dy_xhat);
        if (L->affine) {
            dparams[c] = (float)sum_dy_xhat;
            dparams[C + c] = (float)sum_dy;
        }
        if (dx) bn_channel_grad_apply(L, n, c, count, x, dy, dx, params, saved, sum_dy, sum_dy_xhat);
    }
}

void nr_bn_grad_sums(const nr_layer *L, int n, const float *x, const float *dy, const float *saved, double *sums)
{
    for (int c = 0; c < L->in_c; c++) bn_channel_grad_sums(L, n, c, x, dy, saved, &sums[c], &sums[L->in_c + c]);
}

void nr_bn_grad_apply(const nr_layer *L, int n, size_t count, const float *x, const float *dy, float *dx,
                      const float *params, const float *saved, const double *sums)
{
    for (int c = 0; c < L->in_c; c++)
        bn_channel_grad_apply(L, n, c, count, x, dy, dx, params, saved, sums[c], sums[L->in_c + c]);
}

/* BatchNorm -> relu -> 2x2 max pooling, whose forward ran fused
 * (nr_cpu_bn_relu_maxpool_forward): the relu's dx, which is BatchNorm's
 * dy, is made one plane at a time in `plane` as the pair's backward would
 * write it, and used while in cache. */
static void fused_dy_plane(const nr_layer *pool, const nr_pooled_grad *g, size_t p, size_t planes, float *plane)
{
    pool_geom geom = pool_geom_of(pool);
    size_t op = (size_t)geom.OH * geom.OW;
    /* planes two ahead: pooled planes of 64 to 1,024 bytes defeat the hardware prefetcher */
    for (size_t o = 0; p + 2 < planes && o < op; o += 16) {
        __builtin_prefetch(g->dy + (p + 2) * op + o);
        __builtin_prefetch(g->saved + (p + 2) * op + o);
        __builtin_prefetch(g->y + (p + 2) * op + o);
    }
    route_plane(&geom, g->dy + p * op, g->saved + p * op, g->y + p * op, plane);
}

size_t nr_bn_fused_scratch(const nr_layer *L)
{
    return (size_t)L->in_h * L->in_w + 4 * BN_LANES * (size_t)L->in_c;
}

/* Image by image (the batch's planes in memory order), each channel's
 * lanes still summed image after image as nr_bn_grad_sums does. */
void nr_bn_fused_grad_sums(const nr_layer *L, const nr_layer *pool, int n, const float *x, const nr_pooled_grad *g,
                           const float *saved, double *sums, float *scratch)
{
    int C = L->in_c;
    size_t hw = (size_t)L->in_h * L->in_w;
    double *lane_dy = (double *)(void *)scratch, *lane_dy_xhat = lane_dy + (size_t)C * BN_LANES;
    float *plane = scratch + 4 * BN_LANES * (size_t)C;
    memset(lane_dy, 0, 2 * (size_t)C * BN_LANES * sizeof *lane_dy);
    for (int b = 0; b < n; b++)
        for (int c = 0; c < C; c++) {
            size_t p = (size_t)b * C + c;
            fused_dy_plane(pool, g, p, (size_t)n * C, plane);
            add_plane_grad_sums(lane_dy + (size_t)c * BN_LANES, lane_dy_xhat + (size_t)c * BN_LANES, x + p * hw,
                                plane, hw, saved[c], saved[C + c]);
        }
    for (int c = 0; c < C; c++) {
        sums[c] = lanes_total(lane_dy + (size_t)c * BN_LANES);
        sums[C + c] = lanes_total(lane_dy_xhat + (size_t)c * BN_LANES);
    }
}

void nr_bn_fused_grad_apply(const nr_layer *L, const nr_layer *pool, int n, size_t count, const float *x,
                            const nr_pooled_grad *g, float *dx, const float *params, const float *saved,
                            const double *sums, float *scratch)
{
    int C = L->in_c;
    size_t hw = (size_t)L->in_h * L->in_w;
    for (int b = 0; b < n; b++)
        for (int c = 0; c < C; c++) {
            size_t p = (size_t)b * C + c;
            bn_grad_coef f = bn_grad_coef_of(L, c, count, params, saved, sums[c], sums[C + c]);
            fused_dy_plane(pool, g, p, (size_t)n * C, scratch);
            bn_plane_grad_apply(x + p * hw, scratch, dx + p * hw, hw, f);
        }
}

/* ---- dropout ------------------------------------------------------------ */

/* saved: the per-element factor (0 or 1/(1-p)) [n * per-sample], then 1 when
 * a mask was applied. */
static void dropout_forward(const nr_layer *L, int n, int first, const float *x, float *y, float *saved,
                            int flags, nr_stream stream)
{
    size_t per = in_size(L), total = (size_t)n * per;
    int active = (flags & NR_TRAINING) && L->p > 0.0f;
    saved[total] = (float)active;
    if (!active) {
        memcpy(y, x, total * sizeof *y);
        return;
    }
    float keep = nr_dropout_scale(L->p);
#pragma omp parallel for num_threads(kernel_threads()) if (total >= PARALLEL_MIN / 8)
    for (int i = 0; i < n; i++)
        for (size_t e = 0; e < per; e++) {
            size_t at = (size_t)i * per + e;
            float factor = nr_dropout_factor(nr_stream_uniform(stream, ((uint64_t)first + i) * per + e), L->p, keep);
            saved[at] = factor;
            y[at] = x[at] * factor;
        }
}

static void dropout_backward(const nr_layer *L, int n, const float *dy, float *dx, const float *saved)
{
    size_t total = (size_t)n * in_size(L);
    if (saved[total] == 0.0f) {
        memcpy(dx, dy, total * sizeof *dx);
        return;
    }
#pragma omp parallel for simd num_threads(kernel_threads()) if (parallel : total >= PARALLEL_MIN)
    for (size_t i = 0; i < total; i++) dx[i] = dy[i] * saved[i];
}

/* ---- activations ---------------------------------------------------------- */

/* The activations are runtime/nr_math.h's, shared with the CUDA kernels;
 * written branch-free (integer masks on the bit patterns) so these loops
 * vectorize, nr_tanh included (glibc's tanhf is a scalar call). */

SIMD_CLONES static void tanh_span(const float *x, float *y, size_t count)
{
#pragma omp simd
    for (size_t i = 0; i < count; i++) y[i] = nr_tanh(x[i]);
}

static void tanh_forward(size_t total, const float *x, float *y)
{
    if (total < PARALLEL_MIN) {
        tanh_span(x, y, total);
        return;
    }
#pragma omp parallel num_threads(kernel_threads())
    {
        size_t t = (size_t)thread_id(), nt = (size_t)thread_count();
        size_t lo = total * t / nt, hi = total * (t + 1) / nt;
        tanh_span(x + lo, y + lo, hi - lo);
    }
}

SIMD_CLONES static void elementwise_forward(const nr_layer *L, size_t total, const float *x, float *y)
{
    float slope = L->slope;
    int threads = kernel_threads();
    switch (L->kind) {
    case NR_TANH: tanh_forward(total, x, y); break;
    case NR_RELU:
#pragma omp parallel for simd num_threads(threads) if (parallel : total >= PARALLEL_MIN)
        for (size_t i = 0; i < total; i++) y[i] = nr_relu(x[i]);
        break;
    case NR_LEAKY_RELU:
#pragma omp parallel for simd num_threads(threads) if (parallel : total >= PARALLEL_MIN)
        for (size_t i = 0; i < total; i++) y[i] = nr_leaky_relu(x[i], slope);
        break;
    case NR_SIGMOID:
#pragma omp parallel for num_threads(threads) if (total >= PARALLEL_MIN)
        for (size_t i = 0; i < total; i++) y[i] = nr_sigmoid(x[i]);
        break;
    default: break;
    }
}

SIMD_CLONES static void elementwise_backward(const nr_layer *L, size_t total, const float *x, const float *y,
                                             const float *dy, float *dx)
{
    float slope = L->slope;
    int threads = kernel_threads();
    switch (L->kind) {
    case NR_TANH:
#pragma omp parallel for simd num_threads(threads) if (parallel : total >= PARALLEL_MIN)
        for (size_t i = 0; i < total; i++) dx[i] = nr_tanh_grad(y[i], dy[i]);
        break;
    case NR_RELU:
#pragma omp parallel for simd num_threads(threads) if (parallel : total >= PARALLEL_MIN)
        for (size_t i = 0; i < total; i++) dx[i] = nr_relu_grad(y[i], dy[i]);
        break;
    case NR_LEAKY_RELU:
#pragma omp parallel for simd num_threads(threads) if (parallel : total >= PARALLEL_MIN)
        for (size_t i = 0; i < total; i++) dx[i] = nr_leaky_relu_grad(x[i], dy[i], slope);
        break;
    case NR_SIGMOID:
#pragma omp parallel for simd num_threads(threads) if (parallel : total >= PARALLEL_MIN)
        for (size_t i = 0; i < total; i++) dx[i] = nr_sigmoid_grad(y[i], dy[i]);
        break;
    default: break;
    }
}

/* Softmax and log_softmax over the channel dimension (PyTorch's dim=1),
 * at every spatial position; for a flat [n, c] tensor over the features. */
static void softmax_forward(const nr_layer *L, int n, const float *x, float *y, int log_form)
{
    int C = L->in_c;
    size_t hw = (size_t)L->in_h * L->in_w;
#pragma omp parallel for num_threads(kernel_threads()) if ((size_t)n * C * hw >= PARALLEL_MIN)
    for (int b = 0; b < n; b++)
        for (size_t q = 0; q < hw; q++) {
            size_t base = (size_t)b * C * hw + q;
            nr_softmax_column(x + base, y + base, C, (long long)hw, log_form);
        }
}

static void softmax_backward(const nr_layer *L, int n, const float *y, const float *dy, float *dx, int log_form)
{
    int C = L->in_c;
    size_t hw = (size_t)L->in_h * L->in_w;
#pragma omp parallel for num_threads(kernel_threads()) if ((size_t)n * C * hw >= PARALLEL_MIN)
    for (int b = 0; b < n; b++)
        for (size_t q = 0; q < hw; q++) {
            size_t base = (size_t)b * C * hw + q;
            nr_softmax_column_grad(y + base, dy + base, dx + base, C, (long long)hw, log_form);
        }
}

/* ---- the interface ---------------------------------------------------------- */

size_t nr_layer_param_count(const nr_layer *L)
{
    switch (L->kind) {
    case NR_CONV:
        return (size_t)L->out_c * L->in_c * L->kernel * L->kernel + (L->bias ? (size_t)L->out_c : 0);
    case NR_DENSE: return out_size(L) * in_size(L) + (L->bias ? out_size(L) : 0);
    case NR_BATCHNORM: return L->affine ? 2 * (size_t)L->in_c : 0;
    default: return 0;
    }
}

size_t nr_layer_buffer_count(const nr_layer *L)
{
    return L->kind == NR_BATCHNORM ? 2 * (size_t)L->in_c : 0;
}

size_t nr_layer_saved_count(const nr_layer *L, int n)
{
    switch (L->kind) {
    case NR_CONV: {
        conv_geom g = conv_geom_of(L);
        return conv_keeps_cols(&g) ? (size_t)n * g.K * g.P : 0;
    }
    case NR_MAXPOOL: return (size_t)n * out_size(L);
    case NR_BATCHNORM: return 2 * (size_t)L->in_c + 1;
    case NR_DROPOUT: return (size_t)n * in_size(L) + 1;
    default: return 0;
    }
}

size_t nr_layer_thread_scratch_count(const nr_layer *L, int n)
{
    if (L->kind == NR_MAXPOOL) return (size_t)n * out_size(L); /* the fused relu pair's dy (model.c) */
    if (L->kind != NR_CONV) return 0;
    conv_geom g = conv_geom_of(L);
    return conv_slot_floats(&g, conv_chunk_images(&g, n, 1));
}

size_t nr_layer_scratch_count(const nr_layer *L, int n)
{
    if (L->kind != NR_CONV) return 0;
    conv_geom g = conv_geom_of(L);
    int slots = scratch_slots();
    /* One thread's chunk is the largest: the same slots serve any count. */
    return (size_t)slots * conv_slot_floats(&g, conv_chunk_images(&g, n, 1));
}

int nr_cpu_relu_maxpool_fusable(const nr_layer *relu, const nr_layer *pool)
{
    pool_geom g = pool_geom_of(pool);
    return relu->kind == NR_RELU && pool->kind == NR_MAXPOOL && pool_is_2x2(&g) && g.H == 2 * g.OH &&
           g.W == 2 * g.OW;
}

void nr_cpu_relu_maxpool_forward(const nr_layer *pool, int n, const float *x, float *y, float *saved)
{
    pool_pre_layers relu = { NULL, NULL, NULL, 1 };
    if (n > 0) maxpool_forward(pool, n, x, y, saved, &relu);
}

void nr_cpu_bn_relu_maxpool_forward(const nr_layer *bn, const float *bn_params, const float *bn_saved,
                                    const nr_layer *pool, int n, const float *x, float *y, float *saved)
{
    pool_pre_layers pre = { bn, bn_params, bn_saved, 1 };
    if (n > 0) maxpool_forward(pool, n, x, y, saved, &pre);
}

void nr_cpu_relu_maxpool_backward(const nr_layer *pool, int n, const float *y, const float *dy, float *dx,
                                  const float *saved)
{
    if (n > 0 && dx) maxpool_backward(pool, n, dy, dx, saved, y);
}

int nr_cpu_direct_conv(const nr_layer *L)
{
    conv_geom g = conv_geom_of(L);
    return L->kind == NR_CONV && conv_direct(&g);
}

static void fill_uniform(float *v, size_t count, float bound, nr_stream s)
{
    for (size_t j = 0; j < count; j++) v[j] = -bound + 2.0f * bound * nr_uniform(s, j);
}

static void fill_normal(float *v, size_t count, float std, nr_stream s)
{
    for (size_t j = 0; j < count; j++) v[j] = std * nr_normal(s, j);
}

static void init_weights(const nr_layer *L, float *params, uint64_t seed, uint32_t layer_index)
{
    int conv = L->kind == NR_CONV;
    size_t kk = conv ? (size_t)L->kernel * L->kernel : 1;
    size_t fan_in = (conv ? (size_t)L->in_c : in_size(L)) * kk;
    size_t fan_out = (conv ? (size_t)L->out_c : out_size(L)) * kk;
    size_t nweights = nr_layer_param_count(L) - (L->bias ? (conv ? (size_t)L->out_c : out_size(L)) : 0);
    nr_stream ws = nr_stream_make(seed, NR_RNG_INIT, layer_index, 0);
    float default_bound = fan_in ? (float)(1.0 / sqrt((double)fan_in)) : 0.0f;
    switch (L->init) {
    case NR_INIT_XAVIER_UNIFORM: fill_uniform(params, nweights, (float)sqrt(6.0 / (fan_in + fan_out)), ws); break;
    case NR_INIT_XAVIER_NORMAL: fill_normal(params, nweights, (float)sqrt(2.0 / (fan_in + fan_out)), ws); break;
    case NR_INIT_KAIMING_UNIFORM: fill_uniform(params, nweights, (float)sqrt(6.0 / fan_in), ws); break;
    case NR_INIT_KAIMING_NORMAL: fill_normal(params, nweights, (float)sqrt(2.0 / fan_in), ws); break;
    default: fill_uniform(params, nweights, default_bound, ws); break;
    }
    /* Whatever the weight init, the bias keeps PyTorch's default. */
    if (L->bias)
        fill_uniform(params + nweights, nr_layer_param_count(L) - nweights, default_bound,
                     nr_stream_make(seed, NR_RNG_INIT, layer_index, 1));
}

void nr_layer_init(const nr_layer *L, float *params, float *buffers, uint64_t seed, uint32_t layer_index)
{
    if (L->kind == NR_CONV || L->kind == NR_DENSE) {
        init_weights(L, params, seed, layer_index);
    } else if (L->kind == NR_BATCHNORM) {
        int C = L->in_c;
        for (int c = 0; c < C; c++) {
            if (L->affine) {
                params[c] = 1.0f;
                params[C + c] = 0.0f;
            }
            buffers[c] = 0.0f;
            buffers[C + c] = 1.0f;
        }
    }
}

void nr_cpu_forward(const nr_layer *L, int n, const float *x, float *y, const float *params, float *buffers,
                    float *saved, float *scratch, int flags, nr_stream dropout)
{
    nr_cpu_forward_part(L, n, 0, x, y, params, buffers, saved, scratch, flags, dropout);
}

void nr_cpu_forward_part(const nr_layer *L, int n, int first, const float *x, float *y, const float *params,
                         float *buffers, float *saved, float *scratch, int flags, nr_stream dropout)
{
    if (n <= 0) return;
    size_t total = (size_t)n * in_size(L);
    switch (L->kind) {
    case NR_CONV: conv_forward(L, n, x, y, params, saved, scratch); break;
    case NR_DENSE: dense_forward(L, n, x, y, params); break;
    case NR_MAXPOOL: {
        pool_pre_layers none = { NULL, NULL, NULL, 0 };
        maxpool_forward(L, n, x, y, saved, &none);
        break;
    }
    case NR_AVGPOOL: avgpool_forward(L, n, x, y); break;
    case NR_BATCHNORM: batchnorm_forward(L, n, x, y, params, buffers, saved, flags); break;
    case NR_DROPOUT: dropout_forward(L, n, first, x, y, saved, flags, dropout); break;
    case NR_FLATTEN: memmove(y, x, total * sizeof *y); break;
    case NR_SOFTMAX: softmax_forward(L, n, x, y, 0); break;
    case NR_LOG_SOFTMAX: softmax_forward(L, n, x, y, 1); break;
    case NR_TANH:
    case NR_RELU:
    case NR_LEAKY_RELU:
    case NR_SIGMOID: elementwise_forward(L, total, x, y); break;
    case NR_KIND_COUNT: break;
    }
}

void nr_cpu_backward(const nr_layer *L, int n, const float *x, const float *y, const float *dy, float *dx,
                     const float *params, float *dparams, const float *saved, float *scratch)
{
    if (n <= 0) return;
    size_t total = (size_t)n * in_size(L);
    switch (L->kind) {
    case NR_CONV: conv_backward(L, n, x, dy, dx, params, dparams, saved, scratch); return;
    case NR_DENSE: dense_backward(L, n, x, dy, dx, params, dparams); return;
    case NR_BATCHNORM: batchnorm_backward(L, n, x, dy, dx, params, dparams, saved); return;
    default: break;
    }
    if (!dx) return; /* the remaining kinds have no parameters */
    switch (L->kind) {
    case NR_MAXPOOL: maxpool_backward(L, n, dy, dx, saved, NULL); break;
    case NR_AVGPOOL: avgpool_backward(L, n, dy, dx); break;
    case NR_DROPOUT: dropout_backward(L, n, dy, dx, saved); break;
    case NR_FLATTEN: memmove(dx, dy, total * sizeof *dx); break;
    case NR_SOFTMAX: softmax_backward(L, n, y, dy, dx, 0); break;
    case NR_LOG_SOFTMAX: softmax_backward(L, n, y, dy, dx, 1); break;
    case NR_TANH:
    case NR_RELU:
    case NR_LEAKY_RELU:
    case NR_SIGMOID: elementwise_backward(L, total, x, y, dy, dx); break;
    default: break;
    }
}
