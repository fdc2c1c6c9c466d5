/* The CUDA emulator (runtime/cuda/emu/) through the device layer
 * (runtime/cuda/dev.h), as the CUDA backend will drive it.
 *
 * The emulator is found by nr_emu_load (NETC_EMU_LIB, set by the Makefile);
 * the test kernels (tests/emu/kernels.cu) come from the module
 * NETC_EMU_TEST_MODULE. Random inputs are drawn from NETC_EMU_SEED (printed;
 * the time when unset). */
#include "cuda/dev.h"
#include "cuda/emu_load.h"
#include "rng.h"
#include "tap.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const nr_dev_ops *ops;
static uint64_t seed;
static uint64_t draws; /* next draw of the test stream: fresh numbers for every use */

static float next_uniform(void)
{
    return nr_uniform(nr_stream_make(seed, NR_RNG_TEST, 0, 0), draws++) * 2.0f - 1.0f;
}

enum { K_BLOCK_SUM, K_RACY, K_SYNCED, K_SKIP, K_SPLIT, K_ADD, K_IOTA, K_PARAMS, K_COUNT };
static const char *const test_kernels[K_COUNT] = {
    "emu_block_sum", "emu_racy_neighbour", "emu_synced_neighbour", "emu_skip_barrier",
    "emu_split_barrier", "emu_add", "emu_iota", "emu_params",
};

/* A context on the emulator with the test module loaded. */
typedef struct {
    void *ctx;
    nr_dev_info info;
    nr_dev_module *mod;
    void *fns[K_COUNT];
} emu;

/* Opens with NETC_EMU_ORDER=order (NULL: unset); 0 or -1 (and e). */
static int emu_open(emu *m, const char *order, nr_error *e)
{
    memset(m, 0, sizeof *m);
    if (order) setenv("NETC_EMU_ORDER", order, 1);
    else unsetenv("NETC_EMU_ORDER");
    int rc = ops->open(&m->ctx, 0, 0, &m->info, e);
    unsetenv("NETC_EMU_ORDER");
    if (rc) return -1;
    char note[256];
    const char *path = getenv("NETC_EMU_TEST_MODULE");
    if (!path) return nr_fail(e, "NETC_EMU_TEST_MODULE is not set");
    if (ops->load_module(m->ctx, "", path, test_kernels, K_COUNT, &m->mod, m->fns, note, sizeof note, e)) {
        ops->close(m->ctx);
        return -1;
    }
    return 0;
}

static void emu_close(emu *m)
{
    ops->unload_module(m->ctx, m->mod);
    ops->close(m->ctx);
}

#define OPEN(m, order)                                                  \
    do {                                                                \
        nr_error oe_;                                                   \
        if (emu_open((m), (order), &oe_)) {                             \
            printf("# open: %s\n", oe_.msg);                            \
            CU_FAIL_FATAL("emulator did not open");                     \
        }                                                               \
    } while (0)
#define OK(call)                                                        \
    do {                                                                \
        if ((call) != 0) {                                              \
            printf("# %s: %s\n", #call, e.msg);                         \
            CU_FAIL_FATAL(#call);                                       \
        }                                                               \
    } while (0)

static void test_open_info(void)
{
    emu m;
    OPEN(&m, NULL);
    CU_ASSERT_STRING_EQUAL(m.info.name, "netc CUDA emulator");
    CU_ASSERT_EQUAL(m.info.emulated, 1);
    CU_ASSERT_EQUAL(m.info.major, 9);
    CU_ASSERT_EQUAL(m.info.minor, 0);
    CU_ASSERT(m.info.sm_count >= 1 && m.info.sm_count <= 4);
    CU_ASSERT(m.info.total_memory > 0 && m.info.free_memory == m.info.total_memory);
    CU_ASSERT_STRING_EQUAL(ops->name, "emu");
    emu_close(&m);

    nr_error e = { "" };
    void *ctx;
    nr_dev_info info;
    CU_ASSERT_EQUAL(ops->open(&ctx, 1, 0, &info, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "no device 1"));
    setenv("NETC_EMU_ORDER", "sideways", 1);
    CU_ASSERT_EQUAL(ops->open(&ctx, 0, 0, &info, &e), -1);
    unsetenv("NETC_EMU_ORDER");
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "NETC_EMU_ORDER=sideways"));
}

/* Block sums of a shared-memory tree against sums on the host, in both orders. */
static void test_block_sum(void)
{
    enum { N = 5000, GRID = 3, BLOCK = 256 };
    float *x = malloc(N * sizeof *x);
    CU_ASSERT_FATAL(x != NULL);
    for (int i = 0; i < N; i++) x[i] = next_uniform();
    double want[GRID] = { 0 };
    for (int i = 0; i < N; i++) want[i / BLOCK % GRID] += x[i];
    const char *orders[] = { "forward", "reverse" };
    for (int o = 0; o < 2; o++) {
        emu m;
        nr_error e = { "" };
        OPEN(&m, orders[o]);
        nr_dptr dx, dout;
        OK(ops->alloc(m.ctx, &dx, N * sizeof(float), &e));
        OK(ops->alloc(m.ctx, &dout, GRID * sizeof(double), &e));
        OK(ops->upload(m.ctx, dx, x, N * sizeof(float), &e));
        int n = N;
        void *args[] = { &dx, &dout, &n };
        OK(ops->launch(m.ctx, m.fns[K_BLOCK_SUM], GRID, BLOCK, args, &e));
        double got[GRID];
        OK(ops->download(m.ctx, got, dout, sizeof got, &e));
        for (int b = 0; b < GRID; b++) {
            if (fabs(got[b] - want[b]) > 1e-9 * (1.0 + fabs(want[b])))
                printf("# %s: block %d sum %.17g, want %.17g\n", orders[o], b, got[b], want[b]);
            CU_ASSERT(fabs(got[b] - want[b]) <= 1e-9 * (1.0 + fabs(want[b])));
        }
        ops->free(m.ctx, dx);
        ops->free(m.ctx, dout);
        emu_close(&m);
    }
    free(x);
}

/* out of kernel k on 2 blocks of 256, under order. */
static void run_neighbour(int k, const char *order, int *out)
{
    emu m;
    nr_error e = { "" };
    OPEN(&m, order);
    nr_dptr d;
    OK(ops->alloc(m.ctx, &d, 512 * sizeof(int), &e));
    void *args[] = { &d };
    OK(ops->launch(m.ctx, m.fns[k], 2, 256, args, &e));
    OK(ops->download(m.ctx, out, d, 512 * sizeof(int), &e));
    ops->free(m.ctx, d);
    emu_close(&m);
}

/* A race shows as a difference between the forward and reverse runs; the
 * same kernel with its barrier gives one answer, the right one. */
static void test_race_detected(void)
{
    int fwd[512], rev[512];
    run_neighbour(K_RACY, "forward", fwd);
    run_neighbour(K_RACY, "reverse", rev);
    CU_ASSERT(memcmp(fwd, rev, sizeof fwd) != 0);
    int differ = 0;
    for (int i = 0; i < 512; i++) differ += fwd[i] != rev[i];
    printf("# racy kernel: %d of 512 outputs differ between forward and reverse\n", differ);

    run_neighbour(K_SYNCED, "forward", fwd);
    run_neighbour(K_SYNCED, "reverse", rev);
    CU_ASSERT(memcmp(fwd, rev, sizeof fwd) == 0);
    for (int i = 0; i < 512; i++) CU_ASSERT_EQUAL(fwd[i], i / 256 * 256 + (i % 256 + 1) % 256);
}

static void test_skipped_barrier(void)
{
    emu m;
    nr_error e = { "" };
    OPEN(&m, NULL);
    nr_dptr d;
    OK(ops->alloc(m.ctx, &d, 256 * sizeof(int), &e));
    int from = 256; /* nobody skips */
    void *args[] = { &d, &from };
    OK(ops->launch(m.ctx, m.fns[K_SKIP], 1, 256, args, &e));

    from = 100;
    CU_ASSERT_EQUAL(ops->launch(m.ctx, m.fns[K_SKIP], 2, 256, args, &e), -1);
    printf("# %s\n", e.msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "kernel emu_skip_barrier, block 0"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "__syncthreads skipped by some threads"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "threads 0-99 wait at "));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "kernels.cu:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "threads 100-255 returned without reaching it"));

    /* the emulator stays usable after a failed launch */
    from = 256;
    OK(ops->launch(m.ctx, m.fns[K_SKIP], 1, 256, args, &e));

    void *split_args[] = { &d };
    CU_ASSERT_EQUAL(ops->launch(m.ctx, m.fns[K_SPLIT], 1, 8, split_args, &e), -1);
    printf("# %s\n", e.msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "kernel emu_split_barrier, block 0"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "threads 0, 2, 4, 6 wait at "));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "threads 1, 3, 5, 7 wait at "));
    CU_ASSERT_EQUAL(ops->launch(m.ctx, m.fns[K_SPLIT], 1, 256, split_args, &e), -1);
    printf("# %s\n", e.msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "threads 0, 2, 4, 6, 8, 10, ... (128 threads) wait at "));

    CU_ASSERT_EQUAL(ops->launch(m.ctx, m.fns[K_SKIP], 1, 2048, args, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "2048 threads"));
    ops->free(m.ctx, d);
    emu_close(&m);
}

/* Each parameter reaches the kernel from its own pointer, whatever its size. */
static void test_params(void)
{
    emu m;
    nr_error e = { "" };
    OPEN(&m, NULL);
    nr_dptr d;
    OK(ops->alloc(m.ctx, &d, 8 * sizeof(unsigned long long), &e));
    char c = 7;
    struct { unsigned a; unsigned long long b; } pair = { 0xdeadbeefu, 0x123456789abcdefull };
    double dbl = 2.5;
    short s = 1234;
    void *args[] = { &c, &pair, &dbl, &s, &d };
    OK(ops->launch(m.ctx, m.fns[K_PARAMS], 1, 32, args, &e));
    unsigned long long out[8];
    OK(ops->download(m.ctx, out, d, sizeof out, &e));
    CU_ASSERT_EQUAL(out[0], 7);
    CU_ASSERT_EQUAL(out[1], 0xdeadbeefu);
    CU_ASSERT_EQUAL(out[2], 0x123456789abcdefull);
    CU_ASSERT_EQUAL(out[3], 10);
    CU_ASSERT_EQUAL(out[4], 1234);
    CU_ASSERT_EQUAL(out[5], (unsigned long long)(((uint64_t)0xD2511F53u * 0x12345678u) >> 32));
    CU_ASSERT_EQUAL(out[6], (unsigned long long)(((unsigned __int128)0xfedcba9876543210ull * 0x0123456789abcdefull) >> 64));
    CU_ASSERT_EQUAL(out[7], 0x3f800000);
    ops->free(m.ctx, d);
    emu_close(&m);
}

/* Column-major C = alpha op(A) op(B) + beta C, element by element. */
static void naive_sgemm(int ta, int tb, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                        int ldb, float beta, float *C, int ldc)
{
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double sum = 0.0;
            for (int p = 0; p < k; p++) {
                float a = ta ? A[p + (size_t)i * lda] : A[i + (size_t)p * lda];
                float b = tb ? B[j + (size_t)p * ldb] : B[p + (size_t)j * ldb];
                sum += (double)a * b;
            }
            C[i + (size_t)j * ldc] = (float)(alpha * sum + beta * C[i + (size_t)j * ldc]);
        }
}

static void test_sgemm(void)
{
    enum { M = 5, N = 7, K = 3 };
    emu m;
    nr_error e = { "" };
    OPEN(&m, NULL);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? K : M) + 2, ldb = (tb ? N : K) + 3, ldc = M + 1;
            size_t na = (size_t)lda * (ta ? M : K), nb = (size_t)ldb * (tb ? K : N), nc = (size_t)ldc * N;
            float A[64], B[128], Cm[64], want[64], got[64];
            CU_ASSERT_FATAL(na <= 64 && nb <= 128 && nc <= 64);
            for (size_t i = 0; i < na; i++) A[i] = next_uniform();
            for (size_t i = 0; i < nb; i++) B[i] = next_uniform();
            for (size_t i = 0; i < nc; i++) Cm[i] = want[i] = next_uniform();
            naive_sgemm(ta, tb, M, N, K, 1.5f, A, lda, B, ldb, 0.5f, want, ldc);
            nr_dptr dA, dB, dC;
            OK(ops->alloc(m.ctx, &dA, na * 4, &e));
            OK(ops->alloc(m.ctx, &dB, nb * 4, &e));
            OK(ops->alloc(m.ctx, &dC, nc * 4, &e));
            OK(ops->upload(m.ctx, dA, A, na * 4, &e));
            OK(ops->upload(m.ctx, dB, B, nb * 4, &e));
            OK(ops->upload(m.ctx, dC, Cm, nc * 4, &e));
            OK(ops->sgemm(m.ctx, ta, tb, M, N, K, 1.5f, dA, lda, dB, ldb, 0.5f, dC, ldc, &e));
            OK(ops->download(m.ctx, got, dC, nc * 4, &e));
            int bad = 0;
            for (size_t i = 0; i < nc; i++) bad += fabsf(got[i] - want[i]) > 1e-5f * (1.0f + fabsf(want[i]));
            if (bad) printf("# sgemm trans_a=%d trans_b=%d: %d elements off\n", ta, tb, bad);
            CU_ASSERT_EQUAL(bad, 0);
            /* an ld below the rows, and a matrix beyond its allocation, are refused */
            CU_ASSERT_EQUAL(ops->sgemm(m.ctx, ta, tb, M, N, K, 1.0f, dA, (ta ? K : M) - 1, dB, ldb, 0.0f, dC, ldc, &e), -1);
            CU_ASSERT_EQUAL(ops->sgemm(m.ctx, ta, tb, M, N + 1, K, 1.0f, dA, lda, dB, ldb, 0.0f, dC, ldc, &e), -1);
            CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "outside the allocation"));
            ops->free(m.ctx, dA);
            ops->free(m.ctx, dB);
            ops->free(m.ctx, dC);
        }
    emu_close(&m);
}

/* Capture runs nothing; each replay applies the captured launches, fills and
 * copies once, with the argument values of capture time. */
static void test_graph(void)
{
    enum { N = 300 };
    emu m;
    nr_error e = { "" };
    OPEN(&m, NULL);
    nr_dptr y, z;
    OK(ops->alloc(m.ctx, &y, N * sizeof(float), &e));
    OK(ops->alloc(m.ctx, &z, N * sizeof(float), &e));
    OK(ops->fill32(m.ctx, y, 0, N, &e));
    OK(ops->fill32(m.ctx, z, 0x7fc00000u, N, &e));
    float a = 1.0f;
    int n = N;
    void *args[] = { &y, &a, &n };
    OK(ops->graph_begin(m.ctx, &e));
    OK(ops->launch(m.ctx, m.fns[K_ADD], 2, 128, args, &e));
    OK(ops->copy(m.ctx, z, y, N * sizeof(float), &e));
    OK(ops->fill32(m.ctx, y + 4 * (N - 1), 0x42280000u /* 42 */, 1, &e));
    float dummy;
    CU_ASSERT_EQUAL(ops->download(m.ctx, &dummy, y, 4, &e), -1); /* CUDA refuses it while capturing */
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "while capturing"));
    nr_dev_graph *g = NULL;
    OK(ops->graph_end(m.ctx, &g, &e));
    float got[N], copied[N];
    OK(ops->download(m.ctx, got, y, sizeof got, &e));
    for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(got[i], 0.0f);

    a = 100.0f; /* after capture: the graph keeps 1 */
    OK(ops->graph_launch(m.ctx, g, &e));
    OK(ops->graph_launch(m.ctx, g, &e));
    OK(ops->download(m.ctx, got, y, sizeof got, &e));
    OK(ops->download(m.ctx, copied, z, sizeof copied, &e));
    for (int i = 0; i < N - 1; i++) {
        CU_ASSERT_EQUAL(got[i], 2.0f);
        CU_ASSERT_EQUAL(copied[i], 2.0f);
    }
    CU_ASSERT_EQUAL(got[N - 1], 42.0f);
    CU_ASSERT_EQUAL(copied[N - 1], 43.0f); /* 42 from the first replay's fill, + 1 */
    ops->graph_free(m.ctx, g);
    ops->free(m.ctx, y);
    ops->free(m.ctx, z);
    emu_close(&m);
}

/* NETC_EMU_MEMORY_MB bounds the device; freed memory is free again. */
static void test_memory_accounting(void)
{
    setenv("NETC_EMU_MEMORY_MB", "1", 1);
    emu m;
    nr_error e = { "" };
    OPEN(&m, NULL);
    unsetenv("NETC_EMU_MEMORY_MB");
    CU_ASSERT_EQUAL(m.info.total_memory, (size_t)1 << 20);
    nr_dptr p, q, r;
    OK(ops->alloc(m.ctx, &p, 600 << 10, &e));
    CU_ASSERT_EQUAL(p % 256, 0);
    CU_ASSERT_EQUAL(ops->alloc(m.ctx, &q, 600 << 10, &e), -1);
    printf("# %s\n", e.msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "asked 614400 bytes, 434176 of 1048576 free"));
    OK(ops->alloc(m.ctx, &q, 400 << 10, &e));
    ops->free(m.ctx, p);
    OK(ops->alloc(m.ctx, &r, 600 << 10, &e));
    ops->free(m.ctx, q);
    ops->free(m.ctx, r);
    OK(ops->alloc(m.ctx, &p, 1 << 20, &e));
    ops->free(m.ctx, p);
    emu_close(&m);
}

/* Freeing what is not an allocation, and copies outside one, are errors. */
static void test_bad_pointers(void)
{
    emu m;
    nr_error e = { "" };
    OPEN(&m, NULL);
    nr_dptr p;
    OK(ops->alloc(m.ctx, &p, 64, &e));
    char buf[128] = { 0 };
    CU_ASSERT_EQUAL(ops->upload(m.ctx, p + 32, buf, 33, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "33 bytes at"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "outside the allocation of 64 bytes"));
    CU_ASSERT_EQUAL(ops->download(m.ctx, buf, (nr_dptr)(uintptr_t)buf, 4, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "not device memory"));
    CU_ASSERT_EQUAL(ops->copy(m.ctx, p, p + 16, 32, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "overlapping"));

    ops->free(m.ctx, p + 16); /* not the start of an allocation */
    CU_ASSERT_EQUAL(ops->sync(m.ctx, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "not a device allocation"));
    OK(ops->sync(m.ctx, &e)); /* reported once */
    ops->free(m.ctx, p);
    ops->free(m.ctx, p); /* twice */
    CU_ASSERT_EQUAL(ops->sync(m.ctx, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "freed twice"));
    int x = 0;
    void *args[] = { &x };
    CU_ASSERT_EQUAL(ops->launch(m.ctx, &x, 1, 1, args, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "no kernel from load_module"));
    emu_close(&m);
}

/* A page-locked source changed, or freed, before the stream passed its
 * upload is an error at the next sync; a pageable one is not watched. */
static void test_async_upload_misuse(void)
{
    emu m;
    nr_error e = { "" };
    OPEN(&m, NULL);
    nr_dptr d;
    OK(ops->alloc(m.ctx, &d, 1024, &e));
    float *pinned;
    OK(ops->host_alloc(m.ctx, (void **)&pinned, 1024, &e));
    for (int i = 0; i < 256; i++) pinned[i] = (float)i;
    OK(ops->upload(m.ctx, d, pinned, 1024, &e));
    OK(ops->sync(m.ctx, &e));
    pinned[3] = -1.0f; /* after the sync: fine */
    OK(ops->upload(m.ctx, d, pinned, 1024, &e));
    pinned[5] = -1.0f; /* before: the GPU may copy the new value */
    CU_ASSERT_EQUAL(ops->sync(m.ctx, &e), -1);
    printf("# %s\n", e.msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "changed before a sync or download"));
    OK(ops->upload(m.ctx, d, pinned + 8, 512, &e));
    pinned[100] = 0.5f;
    float back[4];
    CU_ASSERT_EQUAL(ops->download(m.ctx, back, d, sizeof back, &e), -1);
    OK(ops->upload(m.ctx, d, pinned, 1024, &e));
    ops->host_free(m.ctx, pinned);
    CU_ASSERT_EQUAL(ops->sync(m.ctx, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "while an upload from it is queued"));
    ops->host_free(m.ctx, pinned);
    CU_ASSERT_EQUAL(ops->sync(m.ctx, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "not from host_alloc"));

    float pageable[256] = { 0 };
    OK(ops->upload(m.ctx, d, pageable, sizeof pageable, &e));
    pageable[0] = 1.0f; /* staged at once by CUDA */
    OK(ops->sync(m.ctx, &e));
    ops->free(m.ctx, d);
    emu_close(&m);
}

static void test_missing_kernel(void)
{
    void *ctx;
    nr_dev_info info;
    nr_error e = { "" };
    OK(ops->open(&ctx, 0, 0, &info, &e));
    const char *names[] = { "emu_add", "emu_no_such_kernel" };
    void *fns[2];
    nr_dev_module *mod = NULL;
    CU_ASSERT_EQUAL(ops->load_module(ctx, "", getenv("NETC_EMU_TEST_MODULE"), names, 2, &mod, fns, NULL, 0, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "no kernel emu_no_such_kernel"));
    CU_ASSERT_EQUAL(ops->load_module(ctx, "", "/nonexistent/module.so", names, 1, &mod, fns, NULL, 0, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "/nonexistent/module.so"));
    CU_ASSERT_EQUAL(ops->load_module(ctx, "", "netc kernels", names, 1, &mod, fns, NULL, 0, &e), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "no kernel emu_add"));
    ops->close(ctx);
}

/* netc's own kernels compiled into the emulator: Philox draws bit for bit
 * runtime/rng.c's, and a plain copy. */
static void test_builtin_kernels(void)
{
    void *ctx;
    nr_dev_info info;
    nr_error e = { "" };
    OK(ops->open(&ctx, 0, 0, &info, &e));
    const char *names[] = { "nr_rng_draws", "nr_copy" };
    void *fns[2];
    nr_dev_module *mod = NULL;
    char note[256] = "";
    OK(ops->load_module(ctx, "(unused)", "netc kernels", names, 2, &mod, fns, note, sizeof note, &e));
    printf("# %s\n", note);
    enum { COUNT = 1000 };
    nr_stream s = nr_stream_make(seed, NR_RNG_TEST, 7, 9);
    uint64_t first = 123456789;
    long long count = COUNT;
    nr_dptr out, copy;
    OK(ops->alloc(ctx, &out, COUNT * 16, &e));
    OK(ops->alloc(ctx, &copy, COUNT * 16, &e));
    void *args[] = { &s, &first, &count, &out };
    OK(ops->launch(ctx, fns[0], 2, 256, args, &e));
    long long words = COUNT * 4;
    void *copy_args[] = { &out, &copy, &words };
    OK(ops->launch(ctx, fns[1], 2, 256, copy_args, &e));
    uint32_t *got = malloc(COUNT * 16);
    CU_ASSERT_FATAL(got != NULL);
    OK(ops->download(ctx, got, copy, COUNT * 16, &e));
    int bad = 0;
    for (int i = 0; i < COUNT; i++) {
        uint32_t want[4];
        nr_draw(s, first + (uint64_t)i, want);
        bad += memcmp(want, got + 4 * i, sizeof want) != 0;
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(got);
    ops->free(ctx, out);
    ops->free(ctx, copy);
    ops->unload_module(ctx, mod);
    ops->close(ctx);
}

/* nr_row_sum (block_sum's shared-memory tree, several rows per block) on
 * emulator `order`: out[ROWS]. */
enum { ROWS = 5, COLS = 1000 };
static void row_sums(const char *order, const float *m, float *out)
{
    setenv("NETC_EMU_ORDER", order, 1);
    void *ctx;
    nr_dev_info info;
    nr_error e = { "" };
    int rc = ops->open(&ctx, 0, 0, &info, &e);
    unsetenv("NETC_EMU_ORDER");
    OK(rc);
    const char *names[] = { "nr_row_sum" };
    void *fn;
    nr_dev_module *mod = NULL;
    OK(ops->load_module(ctx, "", "netc kernels", names, 1, &mod, &fn, NULL, 0, &e));
    nr_dptr dm, dout;
    OK(ops->alloc(ctx, &dm, ROWS * COLS * sizeof(float), &e));
    OK(ops->alloc(ctx, &dout, ROWS * sizeof(float), &e));
    OK(ops->upload(ctx, dm, m, ROWS * COLS * sizeof(float), &e));
    int rows = ROWS;
    long long cols = COLS;
    void *args[] = { &dm, &dout, &rows, &cols };
    OK(ops->launch(ctx, fn, 2, 256, args, &e));
    OK(ops->download(ctx, out, dout, ROWS * sizeof(float), &e));
    ops->free(ctx, dm);
    ops->free(ctx, dout);
    ops->unload_module(ctx, mod);
    ops->close(ctx);
}

/* netc's block reduction gives the same bits in both orders (no race), and
 * the row sums. */
static void test_builtin_reduction(void)
{
    float *m = malloc(ROWS * COLS * sizeof *m);
    CU_ASSERT_FATAL(m != NULL);
    for (int i = 0; i < ROWS * COLS; i++) m[i] = next_uniform();
    float fwd[ROWS], rev[ROWS];
    row_sums("forward", m, fwd);
    row_sums("reverse", m, rev);
    CU_ASSERT(memcmp(fwd, rev, sizeof fwd) == 0);
    for (int r = 0; r < ROWS; r++) {
        double want = 0.0;
        for (int j = 0; j < COLS; j++) want += m[r * COLS + j];
        CU_ASSERT(fabs(fwd[r] - want) <= 1e-6 * (1.0 + fabs(want)));
    }
    free(m);
}

/* What a launch costs: 8 blocks of 256 threads of a trivial kernel. */
static void test_launch_time(void)
{
    emu m;
    nr_error e = { "" };
    OPEN(&m, NULL);
    nr_dptr d;
    OK(ops->alloc(m.ctx, &d, 2048 * sizeof(int), &e));
    void *args[] = { &d };
    OK(ops->launch(m.ctx, m.fns[K_IOTA], 8, 256, args, &e)); /* maps the stacks */
    enum { REPS = 20 };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < REPS; r++) OK(ops->launch(m.ctx, m.fns[K_IOTA], 8, 256, args, &e));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / REPS;
    printf("# launch of 8 x 256 threads: %.3f ms\n", ms);
    int out[2048];
    OK(ops->download(m.ctx, out, d, sizeof out, &e));
    for (int i = 0; i < 2048; i++) CU_ASSERT_EQUAL(out[i], i);
    ops->free(m.ctx, d);
    emu_close(&m);
}

int main(void)
{
    const char *s = getenv("NETC_EMU_SEED");
    seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
    printf("# NETC_EMU_SEED=%llu\n", (unsigned long long)seed);
    nr_error e = { "" };
    ops = nr_emu_load(&e);
    if (!ops) {
        printf("Bail out! %s\n", e.msg);
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_TestInfo tests[] = {
        { "open: device info, bad ordinal, bad NETC_EMU_ORDER", test_open_info },
        { "block reduction with __syncthreads, both orders", test_block_sum },
        { "a race differs between forward and reverse order", test_race_detected },
        { "a skipped __syncthreads fails the launch", test_skipped_barrier },
        { "kernel parameters of every size unpacked", test_params },
        { "sgemm column-major, all transposes, ld > rows", test_sgemm },
        { "graph capture and replay with capture-time arguments", test_graph },
        { "memory accounting and out of memory", test_memory_accounting },
        { "bad frees and out-of-range copies", test_bad_pointers },
        { "page-locked upload sources changed or freed too early", test_async_upload_misuse },
        { "missing kernels and modules", test_missing_kernel },
        { "netc's kernels: Philox bit for bit, copy", test_builtin_kernels },
        { "netc's block reduction: same bits in both orders", test_builtin_reduction },
        { "launch time", test_launch_time },
        CU_TEST_INFO_NULL,
    };
    if (tap_add_suite("emu", tests)) return 1;
    return tap_run_all();
}
