/* Every CUDA kernel against the CPU backend on fresh random inputs.
 *
 * Each check draws its inputs from nr_stream(NR_RNG_TEST), runs the CPU
 * reference (nr_cpu_forward/backward, nr_loss_forward_backward,
 * nr_optim_step, nr_sam_perturb) and the GPU (runtime/cuda/layers.h) on
 * copies, with every GPU output poisoned with NaN first so an element the
 * GPU never writes cannot pass, and compares element by element:
 * |gpu - cpu| <= tol * (|cpu| + max |cpu|), and ||gpu - cpu|| / ||cpu|| <= tol.
 * The RNG draws and the dropout masks must be equal bit for bit.
 *
 * The inputs' seed is the time unless NETC_TEST_SEED gives it; it is
 * printed first, so a failure replays with NETC_TEST_SEED=<that seed>.
 *
 * Plain C, TAP output. On a GPU (tests/gpu/run.sh), or on the emulator with
 * NETC_CUDA=emu (make check); exit status 77 (skip) with a message when
 * there is no GPU and NETC_CUDA is not set. */
#include "../../runtime/cpu/ops.h"
#include "../../runtime/cuda/layers.h"
#include "../../runtime/optim.h"
#include "../../runtime/preprocess.h"
#include "../../runtime/rng.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POISON 0x7fc00000u /* a quiet NaN */
#define FP32_TOL 1e-5

static nr_gpu gpu;
static nr_dptr step_vars; /* one nr_step_vars in device memory, as the backend keeps */
static int test_number, failures;
static nr_stream inputs;
static uint64_t draws; /* next draw of `inputs`: every check gets fresh numbers */

static void tap(int ok, const char *what)
{
    printf("%s %d - %s\n", ok ? "ok" : "not ok", ++test_number, what);
    fflush(stdout);
    if (!ok) failures++;
}

/* A GPU call failed: report it as a failed check of `what`. */
static void gpu_failed(const char *what, const nr_error *e)
{
    printf("# %s: %s\n", what, e->msg);
    tap(0, what);
}

static float *host_floats(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) {
        printf("Bail out! out of host memory\n");
        exit(1);
    }
    return p;
}

static float *random_floats(size_t n, float lo, float hi)
{
    float *p = host_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * nr_uniform(inputs, draws++);
    return p;
}

static float *copy_floats(const float *src, size_t n)
{
    float *p = host_floats(n);
    if (n) memcpy(p, src, n * sizeof *p);
    return p;
}

/* Device buffer of n floats holding src, or poisoned when src is NULL. */
static nr_dptr device_floats(const float *src, size_t n, nr_error *e)
{
    nr_dptr p = 0;
    if (nr_gpu_alloc(&gpu, &p, (n ? n : 1) * sizeof(float), e) != 0) return 0;
    int rc = src ? nr_gpu_upload(&gpu, p, src, n * sizeof(float), e) : nr_gpu_fill32(&gpu, p, POISON, n, e);
    if (rc != 0) {
        nr_gpu_free(&gpu, p);
        return 0;
    }
    return p;
}

/* The step's values (nr_gpu_step_vars) into step_vars. */
static int set_step_vars(const nr_optim *o, float lr, long step, long slot, nr_error *e)
{
    nr_step_vars v;
    nr_gpu_step_vars(o, lr, step, slot, &v);
    return nr_gpu_upload(&gpu, step_vars, &v, sizeof v, e);
}

static float *download_floats(nr_dptr p, size_t n, nr_error *e)
{
    float *h = host_floats(n);
    if (nr_gpu_download(&gpu, h, p, n * sizeof(float), e) != 0) {
        free(h);
        return NULL;
    }
    return h;
}

/* ---- comparison ------------------------------------------------------------ */

static int compare(const char *what, const float *got, const float *ref, size_t n, double tol)
{
    double max_ref = 0.0, diff2 = 0.0, ref2 = 0.0, max_abs = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(ref[i]) && fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
    size_t bad = 0, exact = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i];
        int both_nan = isnan(got[i]) && isnan(ref[i]);
        if (both_nan || memcmp(&got[i], &ref[i], sizeof got[i]) == 0) exact++;
        if (both_nan) continue;
        if (!isfinite(d) || fabs(d) > tol * (fabs(ref[i]) + max_ref)) {
            if (bad < 5)
                printf("#   %s[%zu]: gpu %.9g cpu %.9g (diff %.3g)\n", what, i, got[i], ref[i], isfinite(d) ? d : NAN);
            bad++;
        }
        if (isfinite(d)) {
            diff2 += d * d;
            ref2 += (double)ref[i] * ref[i];
            if (fabs(d) > max_abs) max_abs = fabs(d);
        }
    }
    double rel = ref2 > 0 ? sqrt(diff2 / ref2) : sqrt(diff2);
    if (rel > tol && !bad) {
        printf("#   %s: relative error %.3g above %.3g\n", what, rel, tol);
        bad = 1;
    }
    printf("#   %-34s n=%-8zu max|diff| %.3g  rel %.3g  bit-equal %zu/%zu%s\n", what, n, max_abs, rel, exact, n,
           bad ? "  MISMATCH" : "");
    return bad == 0;
}

static int compare_exact(const char *what, const float *got, const float *ref, size_t n)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &ref[i], sizeof got[i]) != 0) {
            if (bad < 5) printf("#   %s[%zu]: gpu %.9g cpu %.9g\n", what, i, got[i], ref[i]);
            bad++;
        }
    printf("#   %-34s n=%-8zu %zu differ (bit for bit)\n", what, n, bad);
    return bad == 0;
}

/* Downloads p (n floats) and compares it with ref. */
static int check_device(const char *what, nr_dptr p, const float *ref, size_t n, double tol, int exact)
{
    nr_error e;
    float *got = download_floats(p, n, &e);
    if (!got) {
        printf("# %s: %s\n", what, e.msg);
        return 0;
    }
    int ok = exact ? compare_exact(what, got, ref, n) : compare(what, got, ref, n, tol);
    free(got);
    return ok;
}

/* ---- layers ------------------------------------------------------------------- */

static nr_layer layer(const char *name, nr_kind kind, int in_c, int in_h, int in_w, int out_c, int out_h, int out_w)
{
    nr_layer L;
    memset(&L, 0, sizeof L);
    L.name = name;
    L.kind = kind;
    L.in_rank = in_h == 1 && in_w == 1 ? 1 : 3;
    L.in_c = in_c;
    L.in_h = in_h;
    L.in_w = in_w;
    L.out_rank = out_h == 1 && out_w == 1 ? 1 : 3;
    L.out_c = out_c;
    L.out_h = out_h;
    L.out_w = out_w;
    L.eps = 1e-5f;
    L.momentum = 0.1f;
    L.slope = 0.01f;
    return L;
}

static nr_layer conv(const char *name, int in_c, int in_hw, int out_c, int k, int s, int pad, int bias, int reflect)
{
    int out = (in_hw + 2 * pad - k) / s + 1;
    nr_layer L = layer(name, NR_CONV, in_c, in_hw, in_hw, out_c, out, out);
    L.kernel = k;
    L.stride = s;
    L.padding = pad;
    L.bias = bias;
    L.reflect = reflect;
    return L;
}

static nr_layer pooling(const char *name, nr_kind kind, int c, int in_hw, int k, int s, int pad)
{
    int out = (in_hw + 2 * pad - k) / s + 1;
    nr_layer L = layer(name, kind, c, in_hw, in_hw, c, out, out);
    L.kernel = k;
    L.stride = s;
    L.padding = pad;
    return L;
}

/* Host and device copies of everything one layer check touches. */
typedef struct layer_case {
    size_t nin, nout, np, nb, ns, nscratch_gpu;
    float *x, *params, *buffers, *dy;
    float *y, *saved, *buffers_after, *dx, *dparams; /* the CPU's results */
    nr_dptr dx_in, dparams_in, dbuffers, dsaved, dscratch, dy_out, ddy, ddx, ddparams;
} layer_case;

static void free_case(layer_case *c)
{
    float *host[] = { c->x, c->params, c->buffers, c->dy, c->y, c->saved, c->buffers_after, c->dx, c->dparams };
    for (size_t i = 0; i < sizeof host / sizeof *host; i++) free(host[i]);
    nr_dptr dev[] = { c->dx_in, c->dparams_in, c->dbuffers, c->dsaved, c->dscratch, c->dy_out, c->ddy, c->ddx,
                          c->ddparams };
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) nr_gpu_free(&gpu, dev[i]);
}

static void random_layer_inputs(const nr_layer *L, int n, layer_case *c)
{
    c->nin = (size_t)n * L->in_c * L->in_h * L->in_w;
    c->nout = (size_t)n * L->out_c * L->out_h * L->out_w;
    c->np = nr_layer_param_count(L);
    c->nb = nr_layer_buffer_count(L);
    c->ns = nr_layer_saved_count(L, n);
    c->nscratch_gpu = nr_gpu_layer_scratch_count(L, n);
    float range = L->kind >= NR_TANH ? 4.0f : 1.0f; /* activations: reach their flat parts */
    c->x = random_floats(c->nin, -range, range);
    c->params = random_floats(c->np, -0.5f, 0.5f);
    if (L->kind == NR_BATCHNORM && L->affine)
        for (int i = 0; i < L->in_c; i++) c->params[i] += 1.0f; /* gamma around 1 */
    c->buffers = random_floats(c->nb, -0.5f, 0.5f);
    for (size_t i = c->nb / 2; i < c->nb; i++) c->buffers[i] += 1.0f; /* running_var > 0 */
    c->dy = random_floats(c->nout, -1.0f, 1.0f);
}

static void cpu_reference(const nr_layer *L, int n, int flags, nr_stream dropout, int want_dx, layer_case *c)
{
    float *scratch = host_floats(nr_layer_scratch_count(L, n));
    c->y = host_floats(c->nout);
    c->saved = host_floats(c->ns);
    c->buffers_after = copy_floats(c->buffers, c->nb);
    c->dx = host_floats(c->nin);
    c->dparams = host_floats(c->np);
    nr_cpu_forward(L, n, c->x, c->y, c->params, c->buffers_after, c->saved, scratch, flags, dropout);
    nr_cpu_backward(L, n, c->x, c->y, c->dy, want_dx ? c->dx : NULL, c->params, c->dparams, c->saved, scratch);
    free(scratch);
}

/* Which parts of `saved` the two backends must agree on: dropout's mask
 * only when one was applied (else just the flag); a conv's none: the CPU
 * keeps its im2col columns there as a cache for its own backward pass,
 * while the GPU computes them again in backward and leaves saved unwritten
 * (comparing it would compare the poison). */
static size_t saved_compared(const nr_layer *L, const layer_case *c, size_t *offset)
{
    *offset = 0;
    if (L->kind == NR_CONV) return 0;
    if (L->kind == NR_DROPOUT && c->saved[c->ns - 1] == 0.0f) {
        *offset = c->ns - 1;
        return 1;
    }
    return c->ns;
}

static void check_layer(const char *what, const nr_layer *L, int n, int flags, int want_dx, double tol)
{
    layer_case c;
    memset(&c, 0, sizeof c);
    nr_error e = { "" };
    char label[160];
    /* Layer 7's mask of pass 1 of the step after the first: draw 2 * 1 + 1. */
    uint64_t dropout_seed = draws++;
    nr_stream dropout = nr_stream_make(dropout_seed, NR_RNG_DROPOUT, 7, 3);
    nr_gpu_draws gpu_dropout = { dropout_seed, 7, 1, step_vars };
    nr_optim any_optim = { 0 };
    random_layer_inputs(L, n, &c);
    cpu_reference(L, n, flags, dropout, want_dx, &c);

    c.dx_in = device_floats(c.x, c.nin, &e);
    c.dparams_in = device_floats(c.params, c.np, &e);
    c.dbuffers = device_floats(c.buffers, c.nb, &e);
    c.dsaved = device_floats(NULL, c.ns, &e);
    c.dscratch = device_floats(NULL, c.nscratch_gpu, &e);
    c.dy_out = device_floats(NULL, c.nout, &e);
    c.ddy = device_floats(c.dy, c.nout, &e);
    c.ddx = device_floats(NULL, c.nin, &e);
    c.ddparams = device_floats(NULL, c.np, &e);
    int ready = c.dx_in && c.dparams_in && c.dbuffers && c.dsaved && c.dscratch && c.dy_out && c.ddy && c.ddx &&
                c.ddparams;
    snprintf(label, sizeof label, "%s forward", what);
    printf("# %s (n=%d, flags=%d)\n", what, n, flags);
    if (!ready || set_step_vars(&any_optim, 0.0f, 2, 0, &e) != 0 ||
        nr_gpu_forward(&gpu, L, n, c.dx_in, c.dy_out, c.dparams_in, c.dbuffers, c.dsaved, c.dscratch, flags,
                       &gpu_dropout, &e) != 0 ||
        nr_gpu_sync(&gpu, &e) != 0) {
        gpu_failed(label, &e);
        free_case(&c);
        return;
    }
    int ok = check_device("y", c.dy_out, c.y, c.nout, tol, 0);
    size_t off, count = saved_compared(L, &c, &off);
    int exact_saved = L->kind == NR_MAXPOOL || L->kind == NR_DROPOUT;
    if (count) ok &= check_device("saved", c.dsaved + off * sizeof(float), c.saved + off, count, tol, exact_saved);
    if (c.nb) ok &= check_device("buffers", c.dbuffers, c.buffers_after, c.nb, tol, 0);
    tap(ok, label);

    snprintf(label, sizeof label, "%s backward%s", what, want_dx ? "" : " (no dx)");
    if (nr_gpu_backward(&gpu, L, n, c.dx_in, c.dy_out, c.ddy, want_dx ? c.ddx : 0, c.dparams_in, c.ddparams,
                        c.dsaved, c.dscratch, &e) != 0 ||
        nr_gpu_sync(&gpu, &e) != 0) {
        gpu_failed(label, &e);
        free_case(&c);
        return;
    }
    ok = 1;
    if (want_dx) ok &= check_device("dx", c.ddx, c.dx, c.nin, tol, 0);
    if (c.np) ok &= check_device("dparams", c.ddparams, c.dparams, c.np, tol, 0);
    tap(ok, label);
    free_case(&c);
}

static void layer_tests(void)
{
    const int train = NR_TRAINING | NR_UPDATE_STATS;
    nr_layer L;
    L = conv("conv 1->6 k5 (LeNet)", 1, 28, 6, 5, 1, 0, 1, 0);
    check_layer(L.name, &L, 8, train, 1, FP32_TOL);
    check_layer(L.name, &L, 4, train, 0, FP32_TOL);
    L = conv("conv 3->8 k3 s2 p1", 3, 16, 8, 3, 2, 1, 1, 0);
    check_layer(L.name, &L, 6, train, 1, FP32_TOL);
    L = conv("conv 4->6 k3 p1 reflect, no bias", 4, 10, 6, 3, 1, 1, 0, 1);
    check_layer(L.name, &L, 5, train, 1, FP32_TOL);
    L = conv("conv 2->3 k3 p2 s3 reflect", 2, 11, 3, 3, 3, 2, 1, 1);
    check_layer(L.name, &L, 3, train, 1, FP32_TOL);
    L = conv("conv 16->32 k3 p1 (CIFAR-sized)", 16, 32, 32, 3, 1, 1, 1, 0);
    check_layer(L.name, &L, 16, train, 1, FP32_TOL);

    L = layer("dense 120->84", NR_DENSE, 120, 1, 1, 84, 1, 1);
    L.bias = 1;
    check_layer(L.name, &L, 16, train, 1, FP32_TOL);
    L = layer("dense 16x5x5->10, no bias", NR_DENSE, 16, 5, 5, 10, 1, 1);
    check_layer(L.name, &L, 33, train, 1, FP32_TOL);

    L = pooling("maxpool k2 s2", NR_MAXPOOL, 6, 24, 2, 2, 0);
    check_layer(L.name, &L, 8, train, 1, FP32_TOL);
    L = pooling("maxpool k3 s2 p1", NR_MAXPOOL, 5, 9, 3, 2, 1);
    check_layer(L.name, &L, 7, train, 1, FP32_TOL);
    L = pooling("avgpool k2 s2", NR_AVGPOOL, 6, 24, 2, 2, 0);
    check_layer(L.name, &L, 8, train, 1, FP32_TOL);
    L = pooling("avgpool k3 s2 p1", NR_AVGPOOL, 5, 9, 3, 2, 1);
    check_layer(L.name, &L, 7, train, 1, FP32_TOL);

    L = layer("batchnorm 2d affine, training", NR_BATCHNORM, 6, 8, 8, 6, 8, 8);
    L.affine = 1;
    check_layer(L.name, &L, 8, train, 1, FP32_TOL);
    check_layer("batchnorm 2d affine, SAM pass (no stats update)", &L, 8, NR_TRAINING, 1, FP32_TOL);
    check_layer("batchnorm 2d affine, eval", &L, 8, 0, 1, FP32_TOL);
    L.affine = 0;
    check_layer("batchnorm 2d plain, training", &L, 8, train, 1, FP32_TOL);
    L = layer("batchnorm 1d affine, training", NR_BATCHNORM, 32, 1, 1, 32, 1, 1);
    L.affine = 1;
    check_layer(L.name, &L, 16, train, 1, FP32_TOL);

    L = layer("dropout p=0.3, training", NR_DROPOUT, 500, 1, 1, 500, 1, 1);
    L.p = 0.3f;
    check_layer(L.name, &L, 8, train, 1, FP32_TOL);
    check_layer("dropout p=0.3, eval", &L, 8, 0, 1, FP32_TOL);
    L = layer("dropout 2d p=0.5, training", NR_DROPOUT, 4, 6, 6, 4, 6, 6);
    L.p = 0.5f;
    check_layer(L.name, &L, 5, train, 1, FP32_TOL);

    L = layer("flatten", NR_FLATTEN, 4, 5, 5, 100, 1, 1);
    check_layer(L.name, &L, 6, train, 1, FP32_TOL);

    static const struct {
        const char *name;
        nr_kind kind;
    } acts[] = { { "tanh", NR_TANH }, { "relu", NR_RELU }, { "leaky_relu", NR_LEAKY_RELU }, { "sigmoid", NR_SIGMOID } };
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        L = layer(acts[i].name, acts[i].kind, 6, 12, 12, 6, 12, 12);
        check_layer(L.name, &L, 8, train, 1, FP32_TOL);
    }
    L = layer("softmax over 10", NR_SOFTMAX, 10, 1, 1, 10, 1, 1);
    check_layer(L.name, &L, 32, train, 1, FP32_TOL);
    L = layer("softmax over channels 5x3x3", NR_SOFTMAX, 5, 3, 3, 5, 3, 3);
    check_layer(L.name, &L, 4, train, 1, FP32_TOL);
    L = layer("log_softmax over 10", NR_LOG_SOFTMAX, 10, 1, 1, 10, 1, 1);
    check_layer(L.name, &L, 32, train, 1, FP32_TOL);
    L = layer("log_softmax over channels 5x3x3", NR_LOG_SOFTMAX, 5, 3, 3, 5, 3, 3);
    check_layer(L.name, &L, 4, train, 1, FP32_TOL);
}

/* ---- RNG --------------------------------------------------------------------------- */

static void rng_test(void)
{
    nr_error e = { "" };
    const long long count = 4096;
    nr_stream streams[] = { nr_stream_make(1, NR_RNG_DROPOUT, 0, 0),
                            nr_stream_make(0x123456789abcdefull, NR_RNG_AUGMENT, 77, 5),
                            nr_stream_make(42, NR_RNG_TEST, 0xffffffffu, 0xffffffu) };
    /* the last start crosses 2^32, where the counter's second word turns */
    unsigned long long firsts[] = { 0, 1000, 0xfffffff0ull };
    uint32_t *want = malloc((size_t)count * 4 * sizeof *want), *got = malloc((size_t)count * 4 * sizeof *got);
    nr_dptr out = 0;
    int ok = want && got && nr_gpu_alloc(&gpu, &out, (size_t)count * 16, &e) == 0;
    for (int s = 0; ok && s < 3; s++) {
        for (long long i = 0; i < count; i++) nr_draw(streams[s], firsts[s] + (uint64_t)i, want + 4 * i);
        long long n = count;
        void *args[] = { &streams[s], &firsts[s], &n, &out };
        ok = nr_gpu_fill32(&gpu, out, POISON, (size_t)count * 4, &e) == 0 &&
             nr_gpu_launch(&gpu, NR_K_RNG_DRAWS, count, args, &e) == 0 &&
             nr_gpu_download(&gpu, got, out, (size_t)count * 16, &e) == 0;
        size_t differ = 0;
        for (long long i = 0; ok && i < count * 4; i++) differ += got[i] != want[i];
        printf("#   stream %d from draw %llu: %zu of %lld words differ\n", s, firsts[s], differ, count * 4);
        ok = ok && differ == 0;
    }
    if (e.msg[0]) printf("# %s\n", e.msg);
    tap(ok, "Philox4x32-10 draws equal runtime/rng.c's bit for bit");
    nr_gpu_free(&gpu, out);
    free(want);
    free(got);
}

/* ---- losses ----------------------------------------------------------------------------- */

static void check_loss(const char *what, nr_loss loss, int n, int classes, int with_grad)
{
    nr_error e = { "" };
    float *logits = random_floats((size_t)n * classes, -3.0f, 3.0f);
    int *labels = malloc((size_t)n * sizeof *labels);
    if (!labels) exit(1);
    for (int i = 0; i < n; i++) labels[i] = (int)nr_below(inputs, draws++, (uint64_t)classes);
    for (int i = 0; i < n; i += 3) logits[(size_t)i * classes + labels[i]] = 5.0f; /* some right answers */
    float *grad = host_floats((size_t)n * classes);
    int correct = -1;
    double ref = nr_loss_forward_backward(&loss, n, classes, logits, labels, with_grad ? grad : NULL, &correct);

    nr_dptr dlogits = device_floats(logits, (size_t)n * classes, &e), dgrad = device_floats(NULL, (size_t)n * classes, &e);
    nr_dptr dlabels = 0, result = 0;
    double got = NAN;
    int got_correct = -1;
    int ok = dlogits && dgrad && nr_gpu_alloc(&gpu, &dlabels, (size_t)n * sizeof(int), &e) == 0 &&
             nr_gpu_upload(&gpu, dlabels, labels, (size_t)n * sizeof(int), &e) == 0 &&
             nr_gpu_alloc(&gpu, &result, 2 * NR_LOSS_RESULT_BYTES, &e) == 0 &&
             nr_gpu_fill32(&gpu, result, POISON, 2 * NR_LOSS_RESULT_BYTES / 4, &e) == 0 &&
             set_step_vars(&(nr_optim){ 0 }, 0.0f, 1, 1, &e) == 0 &&
             nr_gpu_loss(&gpu, &loss, n, classes, dlogits, dlabels, with_grad ? dgrad : 0, result, step_vars, &e) ==
                 0 &&
             nr_gpu_loss_result(&gpu, result, 1, &got, &got_correct, &e) == 0;
    printf("# %s (n=%d, classes=%d)\n", what, n, classes);
    if (!ok) printf("# %s\n", e.msg);
    double rel = fabs(got - ref) / (fabs(ref) > 1e-30 ? fabs(ref) : 1.0);
    printf("#   loss gpu %.12g cpu %.12g (rel %.3g), correct gpu %d cpu %d\n", got, ref, rel, got_correct, correct);
    ok = ok && rel <= 1e-9 && got_correct == correct;
    if (ok && with_grad) ok = check_device("dlogits", dgrad, grad, (size_t)n * classes, FP32_TOL, 0);
    tap(ok, what);
    nr_gpu_free(&gpu, dlogits);
    nr_gpu_free(&gpu, dgrad);
    nr_gpu_free(&gpu, dlabels);
    nr_gpu_free(&gpu, result);
    free(logits);
    free(labels);
    free(grad);
}

static void loss_tests(void)
{
    nr_loss l;
    memset(&l, 0, sizeof l);
    l.kind = NR_LOSS_CROSS_ENTROPY;
    check_loss("cross_entropy", l, 64, 10, 1);
    check_loss("cross_entropy, 300 samples (more than a block), no gradient", l, 300, 10, 0);
    l.label_smoothing = 0.1f;
    check_loss("cross_entropy, label smoothing 0.1 (PyTorch's form)", l, 64, 10, 1);
    l.smoothing_other_classes = 1;
    check_loss("cross_entropy, label smoothing 0.1 (e/(C-1) on the others)", l, 64, 100, 1);
    memset(&l, 0, sizeof l);
    l.kind = NR_LOSS_NLL;
    check_loss("nll", l, 64, 10, 1);
    l.kind = NR_LOSS_MSE;
    check_loss("mse", l, 64, 10, 1);
    l.mse_softmax = 1;
    check_loss("mse of softmax", l, 64, 10, 1);
    memset(&l, 0, sizeof l);
    l.kind = NR_LOSS_MULTI_MARGIN;
    l.margin = 1.0f;
    l.p = 1;
    check_loss("multi_margin p=1", l, 64, 10, 1);
    l.p = 2;
    l.margin = 0.5f;
    check_loss("multi_margin p=2 margin 0.5", l, 64, 10, 1);
}

/* ---- optimizers ----------------------------------------------------------------------------- */

static void check_optimizer(const char *what, nr_optim o, size_t n, int steps)
{
    nr_error e = { "" };
    size_t ns = nr_optim_state_count(&o, n);
    float *w = random_floats(n, -1.0f, 1.0f), *state = host_floats(ns);
    nr_dptr dw = device_floats(w, n, &e), dstate = device_floats(state, ns, &e), dg = device_floats(NULL, n, &e);
    int ok = dw && dstate && dg;
    printf("# %s (%zu parameters, %d steps)\n", what, n, steps);
    for (int step = 1; ok && step <= steps; step++) {
        float *g = random_floats(n, -0.1f, 0.1f);
        float lr = 0.01f * (float)step;
        nr_optim_step(&o, lr, step, w, g, state, n);
        ok = nr_gpu_upload(&gpu, dg, g, n * sizeof(float), &e) == 0 &&
             set_step_vars(&o, lr, step, 0, &e) == 0 && nr_gpu_optim_step(&gpu, &o, step_vars, dw, dg, dstate, n, &e) == 0;
        if (!ok) printf("# %s\n", e.msg);
        ok = ok && check_device("w", dw, w, n, FP32_TOL, 0);
        if (ns) ok = ok && check_device("state", dstate, state, ns, FP32_TOL, 0);
        free(g);
    }
    tap(ok, what);
    nr_gpu_free(&gpu, dw);
    nr_gpu_free(&gpu, dstate);
    nr_gpu_free(&gpu, dg);
    free(w);
    free(state);
}

static nr_optim optimizer(nr_optim_kind kind)
{
    nr_optim o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.beta1 = 0.9f;
    o.beta2 = 0.999f;
    o.eps = 1e-8f;
    o.alpha = 0.99f;
    return o;
}

static void check_sam(const char *what, int adaptive, size_t n)
{
    nr_error e = { "" };
    nr_optim o = optimizer(NR_SGD);
    o.sam = 1;
    o.sam_rho = adaptive ? 2.0f : 0.05f;
    o.sam_adaptive = adaptive;
    float *w = random_floats(n, -1.0f, 1.0f), *g = random_floats(n, -0.1f, 0.1f), *saved = host_floats(n);
    float *w0 = copy_floats(w, n);
    double norm = nr_sam_perturb(&o, w, g, saved, n);
    nr_dptr dw = device_floats(w0, n, &e), dg = device_floats(g, n, &e), dsaved = device_floats(NULL, n, &e);
    nr_dptr scratch = 0;
    double got_norm = NAN;
    int ok = dw && dg && dsaved && nr_gpu_alloc(&gpu, &scratch, NR_GPU_SAM_SCRATCH_BYTES, &e) == 0 &&
             nr_gpu_sam_perturb(&gpu, &o, dw, dg, dsaved, scratch, n, &e) == 0 &&
             nr_gpu_download(&gpu, &got_norm, scratch + NR_GPU_SAM_NORM_OFFSET, sizeof got_norm, &e) == 0;
    printf("# %s (%zu parameters)\n", what, n);
    if (!ok) printf("# %s\n", e.msg);
    printf("#   norm gpu %.15g cpu %.15g\n", got_norm, norm);
    ok = ok && fabs(got_norm - norm) <= 1e-12 * norm;
    ok = ok && check_device("w after the ascent", dw, w, n, FP32_TOL, 0);
    ok = ok && check_device("saved weights", dsaved, saved, n, 0, 1);
    nr_sam_restore(w, saved, n);
    ok = ok && nr_gpu_sam_restore(&gpu, dw, dsaved, n, &e) == 0 && check_device("w restored", dw, w0, n, 0, 1);
    tap(ok, what);
    nr_gpu_free(&gpu, dw);
    nr_gpu_free(&gpu, dg);
    nr_gpu_free(&gpu, dsaved);
    nr_gpu_free(&gpu, scratch);
    free(w);
    free(g);
    free(saved);
    free(w0);
}

static void optimizer_tests(void)
{
    const size_t n = 100003; /* not a multiple of any block */
    nr_optim o = optimizer(NR_SGD);
    o.weight_decay = 5e-4f;
    check_optimizer("sgd, weight decay", o, n, 3);
    o.momentum = 0.9f;
    check_optimizer("sgd, momentum 0.9", o, n, 3);
    o.dampening = 0.1f;
    check_optimizer("sgd, momentum, dampening 0.1", o, n, 3);
    o.dampening = 0.0f;
    o.nesterov = 1;
    check_optimizer("sgd, nesterov", o, n, 3);
    o = optimizer(NR_ADAM);
    check_optimizer("adam", o, n, 3);
    o.weight_decay = 1e-2f;
    check_optimizer("adam, weight decay (coupled)", o, n, 3);
    o = optimizer(NR_ADAMW);
    o.weight_decay = 1e-2f;
    check_optimizer("adamw, weight decay 0.01", o, n, 3);
    o = optimizer(NR_RMSPROP);
    check_optimizer("rmsprop", o, n, 3);
    o.momentum = 0.9f;
    o.weight_decay = 1e-4f;
    check_optimizer("rmsprop, momentum, weight decay", o, n, 3);
    check_sam("sam perturb and restore", 0, n);
    check_sam("adaptive sam perturb and restore", 1, n);
}

/* ---- batches: gather and augment on the device against runtime/preprocess.c ---- */

enum { BATCH_C = 3, BATCH_H = 12, BATCH_W = 12, BATCH_IMAGES = 9, BATCH_N = 7 }; /* square: crop keeps the size */

typedef struct batch_case {
    nr_program p;
    nr_aug_op ops[6];
    float noise_std[2];
    uint8_t pixels[BATCH_IMAGES * BATCH_C * BATCH_H * BATCH_W];
    int32_t labels[BATCH_IMAGES];
    uint32_t image[BATCH_N], stream_a[BATCH_N];
    uint8_t augment[BATCH_N];
} batch_case;

/* Every augmentation op the language has, normalize per channel, and a
 * noise test clamped after normalize (W1's) with its own normalize. */
static void make_batch_case(batch_case *b)
{
    memset(b, 0, sizeof *b);
    nr_aug_op rotate_bilinear = { NR_AUG_ROTATE, 15.0f, 1, 0.25f, 0, 0, 0, 0, 0, 0, 0, 0 };
    nr_aug_op hflip = { NR_AUG_HFLIP, 0, 0, 0, 0.5f, 0, 0, 0, 0, 0, 0, 0 };
    nr_aug_op crop = { NR_AUG_CROP, 0, 0, 0, 0, BATCH_H, 3, 0, 0, 0, 0, 0 };
    nr_aug_op rotate_nearest = { NR_AUG_ROTATE, 40.0f, 0, 0.0f, 0, 0, 0, 0, 0, 0, 0, 0 };
    nr_aug_op noise_before = { NR_AUG_NOISE, 0, 0, 0, 0, 0, 0, 0.1f, 1, 0.0f, 1.0f, 0 };
    nr_aug_op noise_after = { NR_AUG_NOISE, 0, 0, 0, 0, 0, 0, 0.2f, 0, 0, 0, 1 };
    b->ops[0] = rotate_bilinear, b->ops[1] = hflip, b->ops[2] = crop, b->ops[3] = rotate_nearest;
    b->ops[4] = noise_before, b->ops[5] = noise_after;
    nr_data_spec *d = &b->p.data;
    d->channels = BATCH_C, d->height = BATCH_H, d->width = BATCH_W;
    d->nnorm = 3;
    for (int c = 0; c < 3; c++) d->mean[c] = 0.4f + 0.05f * c, d->std[c] = 0.2f + 0.03f * c;
    b->p.augment.ops = b->ops;
    b->p.augment.nops = 6;
    b->noise_std[0] = 0.3f, b->noise_std[1] = 0.7f;
    nr_noise_test *t = &b->p.noise;
    t->std = b->noise_std, t->nstd = 2, t->seed = 17, t->clamp = 1, t->lo = -1.0f, t->hi = 1.5f;
    t->nnorm = 1, t->norm_mean[0] = 0.1307f, t->norm_std[0] = 0.3081f;
    for (size_t i = 0; i < sizeof b->pixels; i++) b->pixels[i] = (uint8_t)nr_below(inputs, draws++, 256);
    for (int i = 0; i < BATCH_IMAGES; i++) b->labels[i] = i % 4;
    for (int j = 0; j < BATCH_N; j++) {
        b->image[j] = (uint32_t)nr_below(inputs, draws++, BATCH_IMAGES);
        b->stream_a[j] = (uint32_t)(j * 3 + 1);
        b->augment[j] = j != 2; /* one sample is not augmented */
    }
}

static nr_dptr device_bytes(const void *src, size_t bytes, nr_error *e)
{
    nr_dptr p = 0;
    if (nr_gpu_alloc(&gpu, &p, bytes ? bytes : 4, e) != 0) return 0;
    if (nr_gpu_upload(&gpu, p, src, bytes, e) != 0) {
        nr_gpu_free(&gpu, p);
        return 0;
    }
    return p;
}

static int check_labels(nr_dptr dlabels, const int32_t *ref, int n, nr_error *e)
{
    int32_t got[BATCH_N];
    if (nr_gpu_download(&gpu, got, dlabels, (size_t)n * sizeof *got, e) != 0) return 0;
    int same = memcmp(got, ref, (size_t)n * sizeof *got) == 0;
    if (!same) printf("#   labels differ\n");
    return same;
}

static void check_gather_train(batch_case *b, uint64_t seed)
{
    nr_error e = { "" };
    size_t image = BATCH_C * BATCH_H * BATCH_W, scratch_n = nr_preprocess_scratch(&b->p.data, &b->p.augment);
    float *ref = host_floats(BATCH_N * image), *scratch = host_floats(scratch_n);
    int32_t ref_labels[BATCH_N];
    for (int j = 0; j < BATCH_N; j++) {
        nr_stream st = nr_stream_make(seed, NR_RNG_AUGMENT, b->stream_a[j], b->image[j]);
        nr_preprocess(&b->p.data, b->augment[j] ? &b->p.augment : NULL, b->pixels + b->image[j] * image,
                      ref + j * image, scratch, st);
        ref_labels[j] = b->labels[b->image[j]];
    }
    nr_gpu_batch_desc d;
    nr_dptr px = device_bytes(b->pixels, sizeof b->pixels, &e), lab = device_bytes(b->labels, sizeof b->labels, &e);
    nr_dptr img = device_bytes(b->image, sizeof b->image, &e), sa = device_bytes(b->stream_a, sizeof b->stream_a, &e);
    nr_dptr aug = device_bytes(b->augment, sizeof b->augment, &e), x = 0, y = 0, sc = 0;
    int ok = px && lab && img && sa && aug && nr_gpu_batch_desc_of(&b->p, seed, &d, &e) == 0 &&
             (x = device_floats(NULL, BATCH_N * image, &e)) != 0 && nr_gpu_alloc(&gpu, &y, sizeof ref_labels, &e) == 0 &&
             (sc = device_floats(NULL, (size_t)BATCH_N * 2 * d.scratch, &e)) != 0 &&
             nr_gpu_gather_train(&gpu, &d, px, lab, img, sa, aug, BATCH_N, sc, x, y, &e) == 0;
    printf("# gather and augment a training batch (%d images %dx%dx%d: rotate, hflip, crop, noise)\n", BATCH_N,
           BATCH_C, BATCH_H, BATCH_W);
    if (!ok) printf("# %s\n", e.msg);
    ok = ok && check_device("x", x, ref, BATCH_N * image, FP32_TOL, 0) && check_labels(y, ref_labels, BATCH_N, &e);
    tap(ok, "gather and augment a training batch");
    nr_dptr all[] = { px, lab, img, sa, aug, x, y, sc };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nr_gpu_free(&gpu, all[i]);
    free(ref);
    free(scratch);
}

static void check_gather_eval(batch_case *b, int level)
{
    nr_error e = { "" };
    size_t image = BATCH_C * BATCH_H * BATCH_W;
    float *ref = host_floats(BATCH_N * image), *scratch = host_floats(nr_preprocess_scratch(&b->p.data, NULL) + 1);
    int32_t ref_labels[BATCH_N];
    uint32_t idx[BATCH_N + 2];
    for (int j = 0; j < BATCH_N + 2; j++) idx[j] = (uint32_t)((j * 5 + 3) % BATCH_IMAGES);
    const int first = 2;
    for (int j = 0; j < BATCH_N; j++) {
        uint32_t im = idx[first + j];
        const uint8_t *px = b->pixels + im * image;
        if (level < 0) nr_preprocess(&b->p.data, NULL, px, ref + j * image, scratch, nr_stream_make(0, NR_RNG_AUGMENT, 0, 0));
        else nr_preprocess_noisy(&b->p.data, &b->p.noise, b->noise_std[level], px, ref + j * image,
                                 nr_stream_make(b->p.noise.seed, NR_RNG_NOISE_TEST, (uint32_t)level, im + 1));
        ref_labels[j] = b->labels[im];
    }
    nr_gpu_batch_desc d;
    nr_dptr px = device_bytes(b->pixels, sizeof b->pixels, &e), lab = device_bytes(b->labels, sizeof b->labels, &e);
    nr_dptr di = device_bytes(idx, sizeof idx, &e), x = 0, y = 0;
    float std = level < 0 ? 0.0f : b->noise_std[level];
    int ok = px && lab && di && nr_gpu_batch_desc_of(&b->p, 0, &d, &e) == 0 &&
             (x = device_floats(NULL, BATCH_N * image, &e)) != 0 && nr_gpu_alloc(&gpu, &y, sizeof ref_labels, &e) == 0 &&
             nr_gpu_gather_eval(&gpu, &d, px, lab, di, first, BATCH_N, level, std, x, y, &e) == 0;
    char what[96];
    snprintf(what, sizeof what, "gather an evaluation batch, %s", level < 0 ? "clean" : "noise test");
    printf("# %s\n", what);
    if (!ok) printf("# %s\n", e.msg);
    ok = ok && check_device("x", x, ref, BATCH_N * image, FP32_TOL, 0) && check_labels(y, ref_labels, BATCH_N, &e);
    tap(ok, what);
    nr_dptr all[] = { px, lab, di, x, y };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nr_gpu_free(&gpu, all[i]);
    free(ref);
    free(scratch);
}

static void batch_tests(void)
{
    batch_case *b = malloc(sizeof *b);
    if (!b) exit(1);
    make_batch_case(b);
    check_gather_train(b, 1234);
    check_gather_eval(b, -1);
    check_gather_eval(b, 1);
    free(b);
}

/* ---- module load and cache ----------------------------------------------------------------------- */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* NETC_TEST_SEED when set (a decimal number), else the time. */
static int input_seed(uint64_t *seed)
{
    const char *s = getenv("NETC_TEST_SEED");
    if (!s || !*s) {
        *seed = (uint64_t)time(NULL);
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || *s == '-' || *s == '+') return -1;
    *seed = v;
    return 0;
}

/* The device layer NETC_CUDA picks (the emulator for "emu"), opened with
 * the kernels loaded; 77 (skip) when there is no GPU and no emulator was
 * asked for, 1 when what was asked for does not work. */
static int open_device(const nr_dev_ops **ops, nr_error *e)
{
    const char *which = getenv("NETC_CUDA");
    *ops = nr_cuda_device_layer(e);
    if (!*ops || nr_gpu_open(&gpu, *ops, 0, 0, e) != 0) {
        if (which && *which) {
            printf("Bail out! NETC_CUDA=%s: %s\n", which, e->msg);
            return 1;
        }
        printf("1..0 # SKIP no GPU: %s\n", e->msg);
        fprintf(stderr, "test_kernels: skipped: %s\n", e->msg);
        return 77;
    }
    if (nr_gpu_load_kernels(&gpu, e) != 0) {
        printf("Bail out! %s\n", e->msg);
        return 1;
    }
    return 0;
}

int main(void)
{
    nr_error e = { "" };
    uint64_t seed;
    if (input_seed(&seed) != 0) {
        printf("Bail out! NETC_TEST_SEED must be a decimal number, not '%s'\n", getenv("NETC_TEST_SEED"));
        return 1;
    }
    inputs = nr_stream_make(seed, NR_RNG_TEST, 0, 0);
    printf("# input seed %llu (stream NR_RNG_TEST; replay with NETC_TEST_SEED=%llu)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    const nr_dev_ops *ops;
    double t0 = now();
    int rc = open_device(&ops, &e);
    if (rc) return rc;
    const nr_dev_info *in = &gpu.info;
    printf("# %s, compute capability %d.%d, %d SMs, %.1f GiB%s\n", in->name, in->major, in->minor, in->sm_count,
           (double)in->total_memory / (1 << 30), in->emulated ? " (emulated)" : "");
    printf("# kernels: %s (open + load %.3f s)\n", gpu.module_note, now() - t0);
    if (in->emulated) {
        printf("ok %d - a second start reads the kernels from the cache # SKIP the emulator has no binary cache\n",
               ++test_number);
    } else {
        nr_gpu_close(&gpu);
        t0 = now();
        if (nr_gpu_open(&gpu, ops, 0, 0, &e) != 0 || nr_gpu_load_kernels(&gpu, &e) != 0) {
            printf("Bail out! %s\n", e.msg);
            return 1;
        }
        printf("# second start: kernels %s (open + load %.3f s)\n", gpu.module_note, now() - t0);
        /* driver.c's note: "... read from the cache ...", or why the cache was not used after "; ". */
        tap(strstr(gpu.module_note, "read from the cache") != NULL || strstr(gpu.module_note, "; ") != NULL,
            "a second start reads the kernels from the cache");
    }

    if (nr_gpu_alloc(&gpu, &step_vars, sizeof(nr_step_vars), &e) != 0) {
        printf("Bail out! %s\n", e.msg);
        return 1;
    }
    rng_test();
    layer_tests();
    loss_tests();
    optimizer_tests();
    batch_tests();
    nr_gpu_free(&gpu, step_vars);
    nr_gpu_close(&gpu);
    printf("1..%d\n# %d passed, %d failed\n", test_number, test_number - failures, failures);
    return failures ? 1 : 0;
}
