/* Optimizer updates and learning-rate schedules against PyTorch.
 *
 * The want_* tables below are torch 1.13's numbers, made by
 * tests/fixtures/gen_optim_fixtures.py (which says how; the test itself
 * needs neither python nor torch). Each optimizer starts from W0 and takes
 * one step per row of G; the weights after every step are compared. */
#include "optim.h"
#include "rng.h"
#include "tap.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NP 6
#define NSTEPS 4
static const float W0[NP] = { 0.5f, -0.25f, 1.5f, -2.0f, 1e-3f, 0.0f };
static const float G[NSTEPS][NP] = {
    { 0.1f, -0.2f, 0.3f, 0.05f, -0.7f, 0.25f },
    { -0.3f, 0.4f, 0.1f, -0.15f, 0.2f, -0.5f },
    { 0.2f, 0.1f, -0.4f, 0.35f, 0.6f, 0.05f },
    { 0.05f, -0.05f, 0.2f, -0.3f, -0.1f, 0.45f },
};

/* made by tests/fixtures/gen_optim_fixtures.py with torch 1.13.0a0 */
/* sgd_plain */
static const float want_sgd_plain[4][6] = {
    { 0.49000001f, -0.230000004f, 1.47000003f, -2.00500011f, 0.0710000023f, -0.0250000004f },
    { 0.520000041f, -0.270000011f, 1.46000004f, -1.99000013f, 0.0510000028f, 0.0250000004f },
    { 0.50000006f, -0.280000001f, 1.5f, -2.0250001f, -0.00900000054f, 0.0199999996f },
    { 0.495000064f, -0.275000006f, 1.48000002f, -1.99500012f, 0.000999999698f, -0.0250000004f },
};
/* sgd_wd */
static const float want_sgd_wd[4][6] = {
    { 0.489975005f, -0.229987502f, 1.46992505f, -2.00489998f, 0.0709999502f, -0.0250000004f },
    { 0.519950509f, -0.26997599f, 1.4598515f, -1.98979974f, 0.0509964004f, 0.0250012521f },
    { 0.499924511f, -0.27996248f, 1.49977851f, -2.02470016f, -0.00900615379f, 0.0200000014f },
    { 0.494899511f, -0.274948478f, 1.47970355f, -1.99459898f, 0.000994296512f, -0.0250009988f },
};
/* sgd_momentum */
static const float want_sgd_momentum[4][6] = {
    { 0.49000001f, -0.230000004f, 1.47000003f, -2.00500011f, 0.0710000023f, -0.0250000004f },
    { 0.511000037f, -0.252000004f, 1.43299997f, -1.99450016f, 0.114f, 0.00250000064f },
    { 0.509900033f, -0.281800002f, 1.43970001f, -2.02005005f, 0.0926999971f, 0.0222500023f },
    { 0.503910005f, -0.303620011f, 1.42572999f, -2.01304507f, 0.0835299939f, -0.0049749976f },
};
/* sgd_dampening */
static const float want_sgd_dampening[4][6] = {
    { 0.495000005f, -0.239999995f, 1.48500001f, -2.00250006f, 0.0359999985f, -0.0125000002f },
    { 0.500999987f, -0.24499999f, 1.46800005f, -1.99950004f, 0.0604999997f, -0.00625000009f },
    { 0.49939999f, -0.252999991f, 1.46670008f, -2.00905013f, 0.0615499988f, -0.00237499992f },
    { 0.496209979f, -0.258450001f, 1.45853007f, -2.00714517f, 0.0659950003f, -0.0146374991f },
};
/* sgd_nesterov_wd */
static const float want_sgd_nesterov_wd[4][6] = {
    { 0.480049998f, -0.211524993f, 1.44015002f, -2.00570011f, 0.133998096f, -0.0474999994f },
    { 0.527632892f, -0.270720601f, 1.3928988f, -1.97581923f, 0.152442679f, 0.0273402501f },
    { 0.504887044f, -0.306672662f, 1.43402231f, -2.02697754f, 0.0728737563f, 0.0401017778f },
    { 0.492431372f, -0.320190459f, 1.39556241f, -1.98244703f, 0.0742604733f, -0.0294644311f },
};
/* adam */
static const float want_adam[4][6] = {
    { 0.499000013f, -0.248999998f, 1.49899995f, -2.00099993f, 0.00199999986f, -0.000999999931f },
    { 0.499494195f, -0.249366105f, 1.49812889f, -2.00050569f, 0.00243972801f, -0.000633896387f },
    { 0.49947542f, -0.249781758f, 1.49821281f, -2.00093079f, 0.00229541422f, -0.000408967782f },
    { 0.499383122f, -0.250057131f, 1.49806452f, -2.00084734f, 0.00223918259f, -0.000629044604f },
};
/* adam_wd */
static const float want_adam_wd[4][6] = {
    { 0.490000069f, -0.240000039f, 1.49000001f, -1.99000001f, 0.010999985f, -0.0099999588f },
    { 0.49351576f, -0.243510231f, 1.48068404f, -1.98031652f, 0.0148795564f, -0.00578267081f },
    { 0.490849197f, -0.247225299f, 1.47776163f, -1.97644353f, 0.0125147104f, -0.00336343842f },
    { 0.487181127f, -0.248902351f, 1.4723345f, -1.96935678f, 0.0114212073f, -0.0061524054f },
};
/* adamw */
static const float want_adamw[4][6] = {
    { 0.489500016f, -0.239749998f, 1.4885f, -2.00800014f, 0.0109989997f, -0.00999999978f },
    { 0.493952423f, -0.24317129f, 1.47830093f, -2.00105023f, 0.0153852813f, -0.00632896461f },
    { 0.493270606f, -0.247084633f, 1.47766232f, -2.00329947f, 0.0139267584f, -0.00407335022f },
    { 0.491854399f, -0.249591202f, 1.4747014f, -2.00046062f, 0.0133505147f, -0.00627004541f },
};
/* rmsprop */
static const float want_rmsprop[4][6] = {
    { 0.400000095f, -0.150000036f, 1.4000001f, -2.0999999f, 0.100999989f, -0.0999999568f },
    { 0.494915873f, -0.239532322f, 1.36823404f, -2.00508404f, 0.0733999908f, -0.0104676858f },
    { 0.441252589f, -0.261479676f, 1.44696736f, -2.09630132f, 0.00943429023f, -0.0194298103f },
    { 0.427890092f, -0.25051719f, 1.41017723f, -2.0345149f, 0.0200879686f, -0.0824026763f },
};
/* rmsprop_momentum_wd */
static const float want_rmsprop_momentum_wd[4][6] = {
    { 0.468377233f, -0.218377233f, 1.46837723f, -1.96837723f, 0.0326227695f, -0.0316227674f },
    { 0.472142994f, -0.221156716f, 1.4292227f, -1.91201746f, 0.0487330519f, -0.0283330306f },
    { 0.455656439f, -0.229996204f, 1.41872311f, -1.88993502f, 0.0402733423f, -0.0286077112f },
    { 0.435921878f, -0.232300818f, 1.39461339f, -1.84806657f, 0.0371413678f, -0.049910441f },
};
/* SAM sam: rho 0.05, norm 0.83366662263870239 */
static const double want_norm_sam = 0.833666623;
static const float want_sam[6] = {
    0.505997598f, -0.261995196f, 1.51799285f, -1.99700117f, -0.0409832075f, 0.0149940029f
};
/* SAM asam: rho 2, norm 0.46636950969696045 */
static const double want_norm_asam = 0.46636951;
static const float want_asam[6] = {
    0.607211113f, -0.303605556f, 4.39470053f, -1.14231098f, 0.000996998162f, 0.0f
};
static const double want_lr_step[10] = {
    0.10000000000000001, 0.10000000000000001, 0.10000000000000001, 0.050000000000000003,
    0.050000000000000003, 0.050000000000000003, 0.025000000000000001, 0.025000000000000001,
    0.025000000000000001, 0.012500000000000001
};
static const double want_lr_step_iter[21] = {
    0.10000000000000001, 0.10000000000000001, 0.10000000000000001, 0.10000000000000001,
    0.10000000000000001, 0.089999997615814217, 0.089999997615814217, 0.089999997615814217,
    0.089999997615814217, 0.089999997615814217, 0.080999995708465639, 0.080999995708465639,
    0.080999995708465639, 0.080999995708465639, 0.080999995708465639, 0.072899994206428689,
    0.072899994206428689, 0.072899994206428689, 0.072899994206428689, 0.072899994206428689,
    0.065609993047714518
};
static const double want_lr_multistep[10] = {
    0.10000000000000001, 0.10000000000000001, 0.050000000000000003, 0.050000000000000003,
    0.050000000000000003, 0.012500000000000001, 0.012500000000000001, 0.0062500000000000003,
    0.0062500000000000003, 0.0062500000000000003
};
static const double want_lr_w2[80] = {
    0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.10000000149011612,
    0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.10000000149011612,
    0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.10000000149011612,
    0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.10000000149011612,
    0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.10000000149011612,
    0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.10000000149011612,
    0.020000000596046452, 0.020000000596046452, 0.020000000596046452, 0.020000000596046452,
    0.020000000596046452, 0.020000000596046452, 0.020000000596046452, 0.020000000596046452,
    0.020000000596046452, 0.020000000596046452, 0.020000000596046452, 0.020000000596046452,
    0.020000000596046452, 0.020000000596046452, 0.020000000596046452, 0.020000000596046452,
    0.020000000596046452, 0.020000000596046452, 0.020000000596046452, 0.020000000596046452,
    0.020000000596046452, 0.020000000596046452, 0.020000000596046452, 0.020000000596046452,
    0.0040000001788139368, 0.0040000001788139368, 0.0040000001788139368, 0.0040000001788139368,
    0.0040000001788139368, 0.0040000001788139368, 0.0040000001788139368, 0.0040000001788139368,
    0.0040000001788139368, 0.0040000001788139368, 0.0040000001788139368, 0.0040000001788139368,
    0.0040000001788139368, 0.0040000001788139368, 0.0040000001788139368, 0.0040000001788139368,
    0.00080000004768371682, 0.00080000004768371682, 0.00080000004768371682, 0.00080000004768371682,
    0.00080000004768371682, 0.00080000004768371682, 0.00080000004768371682, 0.00080000004768371682,
    0.00080000004768371682, 0.00080000004768371682, 0.00080000004768371682, 0.00080000004768371682,
    0.00080000004768371682, 0.00080000004768371682, 0.00080000004768371682, 0.00080000004768371682
};
static const double want_lr_cosine[15] = {
    0.10000000000000001, 0.097577297557772461, 0.090546341226095506, 0.079595369998266996,
    0.06579634123796986, 0.050500000023748721, 0.03520365880952759, 0.021404630049230461,
    0.010453658821401954, 0.0034227024897250059, 0.0010000000474974513, 0.0034227024897250063,
    0.010453658821401987, 0.021404630049230544, 0.035203658809527742
};
static const double want_lr_cosine_run[8] = {
    0.10000000000000001, 0.096193976625564337, 0.085355339059327379, 0.069134171618254497,
    0.050000000000000003, 0.030865828381745515, 0.014644660940672627, 0.0038060233744356634
};

/* Float agreement: torch fuses some multiply-adds (AVX2 fmadd) and the C
 * code does not, so the last bit or two may differ. */
static int close_float(float got, float want)
{
    return fabsf(got - want) <= 2e-6f * fabsf(want) + 1e-8f;
}

static int close_rel(double got, double want, double rel)
{
    return fabs(got - want) <= rel * fabs(want);
}

static nr_optim make_optim(nr_optim_kind kind)
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

/* Runs the NSTEPS steps of G from W0 and compares every step with want. */
static void check_against(const nr_optim *o, float lr, const float want[NSTEPS][NP])
{
    float w[NP], state[2 * NP];
    size_t ns = nr_optim_state_count(o, NP);
    CU_ASSERT_FATAL(ns <= 2 * NP);
    memcpy(w, W0, sizeof w);
    memset(state, 0, sizeof state);
    for (int t = 0; t < NSTEPS; t++) {
        nr_optim_step(o, lr, t + 1, w, G[t], ns ? state : NULL, NP);
        for (int i = 0; i < NP; i++) {
            if (!close_float(w[i], want[t][i]))
                fprintf(stderr, "# step %d w[%d] = %.9g, torch %.9g\n", t + 1, i, w[i], want[t][i]);
            CU_ASSERT(close_float(w[i], want[t][i]));
        }
    }
}

static void test_state_count(void)
{
    nr_optim o = make_optim(NR_SGD);
    CU_ASSERT_EQUAL(nr_optim_state_count(&o, 10), 0);
    o.momentum = 0.9f;
    CU_ASSERT_EQUAL(nr_optim_state_count(&o, 10), 10);
    o = make_optim(NR_ADAM);
    CU_ASSERT_EQUAL(nr_optim_state_count(&o, 10), 20);
    o = make_optim(NR_ADAMW);
    CU_ASSERT_EQUAL(nr_optim_state_count(&o, 10), 20);
    o = make_optim(NR_RMSPROP);
    CU_ASSERT_EQUAL(nr_optim_state_count(&o, 10), 10);
    o.momentum = 0.5f;
    CU_ASSERT_EQUAL(nr_optim_state_count(&o, 10), 20);
}

static void test_sgd(void)
{
    nr_optim o = make_optim(NR_SGD);
    check_against(&o, 0.1f, want_sgd_plain);
    o.weight_decay = 5e-4f;
    check_against(&o, 0.1f, want_sgd_wd);
    o = make_optim(NR_SGD);
    o.momentum = 0.9f;
    check_against(&o, 0.1f, want_sgd_momentum);
    o.dampening = 0.3f;
    check_against(&o, 0.05f, want_sgd_dampening);
    o = make_optim(NR_SGD);
    o.momentum = 0.9f;
    o.nesterov = 1;
    o.weight_decay = 0.01f;
    check_against(&o, 0.1f, want_sgd_nesterov_wd);
}

static void test_adam(void)
{
    nr_optim o = make_optim(NR_ADAM);
    check_against(&o, 1e-3f, want_adam);
    o.beta1 = 0.8f;
    o.beta2 = 0.99f;
    o.eps = 1e-6f;
    o.weight_decay = 0.1f;
    check_against(&o, 0.01f, want_adam_wd);
}

static void test_adamw(void)
{
    nr_optim o = make_optim(NR_ADAMW);
    o.weight_decay = 0.1f;
    check_against(&o, 0.01f, want_adamw);
}

static void test_rmsprop(void)
{
    nr_optim o = make_optim(NR_RMSPROP);
    check_against(&o, 0.01f, want_rmsprop);
    o.alpha = 0.9f;
    o.momentum = 0.8f;
    o.weight_decay = 0.05f;
    check_against(&o, 0.01f, want_rmsprop_momentum_wd);
}

/* Random weights of every magnitude (and some zeros) with their gradients. */
static void random_params(float *w, float *g, size_t n, uint32_t which)
{
    nr_stream s = nr_stream_make(7, NR_RNG_TEST, which, 0);
    for (size_t i = 0; i < n; i++) {
        float scale = powf(10.0f, -6.0f + 6.0f * nr_uniform(s, 3 * i));
        w[i] = i % 97 == 0 ? 0.0f : scale * nr_normal(s, 3 * i + 1);
        g[i] = nr_normal(s, 3 * i + 2);
    }
}

/* The large-n path (threads, SIMD) computes what one element at a time does. */
static void test_large_matches_elementwise(void)
{
    const size_t n = (1 << 16) + 37;
    float *w = malloc(n * sizeof *w), *w1 = malloc(n * sizeof *w1), *g = malloc(n * sizeof *g);
    float *st = calloc(2 * n, sizeof *st), *st1 = calloc(2 * n, sizeof *st1);
    CU_ASSERT_FATAL(w && w1 && g && st && st1);
    random_params(w, g, n, 1);
    memcpy(w1, w, n * sizeof *w);
    nr_optim kinds[4] = { make_optim(NR_SGD), make_optim(NR_ADAM), make_optim(NR_ADAMW), make_optim(NR_RMSPROP) };
    kinds[0].momentum = 0.9f;
    kinds[0].nesterov = 1;
    kinds[0].weight_decay = 5e-4f;
    kinds[2].weight_decay = 0.01f;
    kinds[3].momentum = 0.5f;
    for (int k = 0; k < 4; k++) {
        for (long step = 1; step <= 3; step++) {
            nr_optim_step(&kinds[k], 0.01f, step, w, g, st, n);
            for (size_t i = 0; i < n; i++) {
                float s1[2] = { st1[i], st1[n + i] };
                nr_optim_step(&kinds[k], 0.01f, step, &w1[i], &g[i], s1, 1);
                st1[i] = s1[0];
                st1[n + i] = s1[1];
            }
        }
        CU_ASSERT(memcmp(w, w1, n * sizeof *w) == 0);
        memset(st, 0, 2 * n * sizeof *st);
        memset(st1, 0, 2 * n * sizeof *st1);
    }
    free(w);
    free(w1);
    free(g);
    free(st);
    free(st1);
}

static void check_sam(int adaptive, float rho, const float *want, double want_norm)
{
    nr_optim o = make_optim(NR_SGD);
    o.sam = 1;
    o.sam_rho = rho;
    o.sam_adaptive = adaptive;
    float w[NP], e[NP];
    memcpy(w, W0, sizeof w);
    double norm = nr_sam_perturb(&o, w, G[0], e, NP);
    CU_ASSERT(close_rel(norm, want_norm, 1e-6));
    for (int i = 0; i < NP; i++) CU_ASSERT(close_float(w[i], want[i]));
    nr_sam_restore(w, e, NP);
    CU_ASSERT(memcmp(w, W0, sizeof w) == 0);
}

static void test_sam_values(void)
{
    check_sam(0, 0.05f, want_sam, want_norm_sam);
    check_sam(1, 2.0f, want_asam, want_norm_asam);
}

/* Perturb then restore is the identity to the bit, even where a step far
 * larger than its weight would swallow the weight's low bits, and the norm
 * (over all parameters, blocked for threads) is the plain double norm. */
static void test_sam_restore_exact_large(void)
{
    const size_t n = (1 << 17) + 5;
    float *w = malloc(n * sizeof *w), *w0 = malloc(n * sizeof *w0), *g = malloc(n * sizeof *g),
          *e = malloc(n * sizeof *e);
    CU_ASSERT_FATAL(w && w0 && g && e);
    random_params(w, g, n, 2);
    memcpy(w0, w, n * sizeof *w);
    for (int adaptive = 0; adaptive <= 1; adaptive++) {
        nr_optim o = make_optim(NR_SGD);
        o.sam = 1;
        o.sam_rho = adaptive ? 2.0f : 0.05f;
        o.sam_adaptive = adaptive;
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            double x = (adaptive ? fabs((double)w[i]) : 1.0) * g[i];
            sum += x * x;
        }
        double norm = nr_sam_perturb(&o, w, g, e, n);
        CU_ASSERT(close_rel(norm, sqrt(sum), 1e-12));
        CU_ASSERT(memcmp(w, w0, n * sizeof *w) != 0);
        /* the step of element i is (w^2 or 1) * g * rho / norm */
        size_t i = 12345;
        double step = (adaptive ? (double)w0[i] * w0[i] : 1.0) * g[i] * o.sam_rho / norm;
        CU_ASSERT(fabs((double)w[i] - (w0[i] + step)) <= 1e-6 * fabs(w0[i] + step) + 1e-12);
        nr_sam_restore(w, e, n);
        CU_ASSERT(memcmp(w, w0, n * sizeof *w) == 0);
        /* the same inputs give the same norm, to the bit */
        CU_ASSERT(nr_sam_perturb(&o, w, g, e, n) == norm);
        nr_sam_restore(w, e, n);
    }
    free(w);
    free(w0);
    free(g);
    free(e);
}

static nr_schedule make_schedule(nr_sched_kind kind)
{
    nr_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.gamma = 0.1f;
    return s;
}

static void check_epochs(const nr_schedule *s, double lr0, const double *want, int epochs, double rel)
{
    for (int e = 0; e < epochs; e++) {
        double lr = nr_schedule_lr(s, lr0, e, (long)e * 10, epochs, 10);
        if (!close_rel(lr, want[e], rel)) fprintf(stderr, "# epoch %d lr %.17g, torch %.17g\n", e, lr, want[e]);
        CU_ASSERT(close_rel(lr, want[e], rel));
    }
}

static void test_constant_and_step(void)
{
    nr_schedule s = make_schedule(NR_SCHED_CONSTANT);
    CU_ASSERT_EQUAL(nr_schedule_lr(&s, 0.25, 7, 700, 10, 100), 0.25);
    s = make_schedule(NR_SCHED_STEP);
    s.step = 3;
    s.gamma = 0.5f;
    check_epochs(&s, 0.1, want_lr_step, 10, 1e-12);
    /* per iteration: 7 iterations an epoch, the count runs across epochs */
    s.step = 5;
    s.gamma = 0.9f;
    s.per_iteration = 1;
    for (long it = 0; it < 21; it++) {
        double lr = nr_schedule_lr(&s, 0.1, (int)(it / 7), it, 3, 7);
        CU_ASSERT(close_rel(lr, want_lr_step_iter[it], 1e-12));
    }
}

static void test_multistep(void)
{
    static const int ms[] = { 2, 5, 5, 7 };
    nr_schedule s = make_schedule(NR_SCHED_MULTISTEP);
    s.milestones = ms;
    s.nmilestones = 4;
    s.gamma = 0.5f;
    check_epochs(&s, 0.1, want_lr_multistep, 10, 1e-12);
}

/* W2: x0.2 at 30%, 60% and 80% of 80 epochs. */
static void test_multistep_fractions_w2(void)
{
    static const float fr[] = { 0.3f, 0.6f, 0.8f };
    nr_schedule s = make_schedule(NR_SCHED_MULTISTEP);
    s.fractions = fr;
    s.nfractions = 3;
    s.gamma = 0.2f;
    double lr0 = 0.1f;
    check_epochs(&s, lr0, want_lr_w2, 80, 1e-12);
    const int at[] = { 0, 23, 24, 47, 48, 63, 64, 79 };
    const double lr[] = { 0.1, 0.1, 0.02, 0.02, 0.004, 0.004, 0.0008, 0.0008 };
    for (int i = 0; i < 8; i++) CU_ASSERT(close_rel(nr_schedule_lr(&s, lr0, at[i], 0, 80, 375), lr[i], 1e-6));
    /* per iteration the fraction is of every step of the run: 0.3 * 10 * 7 = 21 */
    s.per_iteration = 1;
    CU_ASSERT(close_rel(nr_schedule_lr(&s, lr0, 2, 20, 10, 7), 0.1, 1e-6));
    CU_ASSERT(close_rel(nr_schedule_lr(&s, lr0, 3, 21, 10, 7), 0.02, 1e-6));
    /* 0.7f * 10 is 6.9999998 in double: still the milestone 7 the user meant */
    static const float seven[] = { 0.7f };
    s.per_iteration = 0;
    s.fractions = seven;
    s.nfractions = 1;
    CU_ASSERT(close_rel(nr_schedule_lr(&s, 1.0, 6, 0, 10, 1), 1.0, 1e-12));
    CU_ASSERT(close_rel(nr_schedule_lr(&s, 1.0, 7, 0, 10, 1), 0.2, 1e-6));
}

static void test_cosine(void)
{
    nr_schedule s = make_schedule(NR_SCHED_COSINE);
    s.t_max = 10;
    s.eta_min = 0.001f;
    check_epochs(&s, 0.1, want_lr_cosine, 15, 1e-9);
    /* t_max 0: the whole run, epochs or every iteration */
    s = make_schedule(NR_SCHED_COSINE);
    check_epochs(&s, 0.1, want_lr_cosine_run, 8, 1e-9);
    s.per_iteration = 1;
    for (long it = 0; it < 8 * 5; it += 5)
        CU_ASSERT(close_rel(nr_schedule_lr(&s, 0.1, (int)(it / 5), it, 1, 40), want_lr_cosine_run[it / 5], 1e-9));
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_TestInfo optim[] = {
        { "state sizes", test_state_count },
        { "sgd: plain, decay, momentum, dampening, nesterov", test_sgd },
        { "adam with and without decay", test_adam },
        { "adamw decoupled decay", test_adamw },
        { "rmsprop with and without momentum and decay", test_rmsprop },
        { "large n (threads, simd) equals one element at a time", test_large_matches_elementwise },
        { "sam perturbation, plain and adaptive", test_sam_values },
        { "sam restore exact, norm over all parameters", test_sam_restore_exact_large },
        CU_TEST_INFO_NULL,
    };
    CU_TestInfo sched[] = {
        { "constant and step, per epoch and per iteration", test_constant_and_step },
        { "multistep with milestones", test_multistep },
        { "multistep with fractions (W2)", test_multistep_fractions_w2 },
        { "cosine with t_max and the whole run", test_cosine },
        CU_TEST_INFO_NULL,
    };
    if (tap_add_suite("optim", optim) || tap_add_suite("schedule", sched)) return 1;
    return tap_run_all();
}
