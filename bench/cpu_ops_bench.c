/* Micro-benchmark of the CPU backend: LeNet-5 (W1: tanh, average pooling)
 * forward + loss + backward per batch, at batch 32 and 100, with 1 and 2
 * threads. Not a test; prints images per second. The optimizer step is not
 * included (it is another module's work and costs ~60k multiply-adds).
 *
 *   gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -fopenmp -Iruntime bench/cpu_ops_bench.c \
 *       runtime/cpu/ops.c runtime/cpu/conv_direct.c runtime/cpu/maxpool2.c runtime/cpu/dense_avx512.c runtime/cpu/isa.c runtime/cpu/loss.c runtime/rng.c runtime/nr_error.c -lopenblas -lm \
 *       -o /tmp/cpu_ops_bench && /tmp/cpu_ops_bench [seconds per case [thread count]]
 * Without a thread count it measures 1 and 2 threads.
 */
#include "cpu/ops.h"
#include "nr_error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NLAYERS 12

static nr_layer layer(nr_kind kind, int c, int h, int w, int oc, int oh, int ow)
{
    nr_layer L;
    memset(&L, 0, sizeof L);
    L.name = "";
    L.kind = kind;
    L.in_rank = h == 1 && w == 1 ? 1 : 3;
    L.in_c = c, L.in_h = h, L.in_w = w;
    L.out_rank = oh == 1 && ow == 1 && kind != NR_CONV ? 1 : 3;
    L.out_c = oc, L.out_h = oh, L.out_w = ow;
    L.bias = 1;
    return L;
}

static nr_layer conv(int c, int h, int oc, int k, int pad)
{
    int o = h + 2 * pad - k + 1;
    nr_layer L = layer(NR_CONV, c, h, h, oc, o, o);
    L.kernel = k, L.stride = 1, L.padding = pad;
    return L;
}

static nr_layer pool(int c, int h)
{
    nr_layer L = layer(NR_AVGPOOL, c, h, h, c, h / 2, h / 2);
    L.kernel = 2, L.stride = 2;
    return L;
}

static void lenet5(nr_layer *L)
{
    L[0] = conv(1, 28, 6, 5, 2);
    L[1] = layer(NR_TANH, 6, 28, 28, 6, 28, 28);
    L[2] = pool(6, 28);
    L[3] = conv(6, 14, 16, 5, 0);
    L[4] = layer(NR_TANH, 16, 10, 10, 16, 10, 10);
    L[5] = pool(16, 10);
    L[6] = conv(16, 5, 120, 5, 0);
    L[7] = layer(NR_TANH, 120, 1, 1, 120, 1, 1);
    L[8] = layer(NR_FLATTEN, 120, 1, 1, 120, 1, 1);
    L[9] = layer(NR_DENSE, 120, 1, 1, 84, 1, 1);
    L[10] = layer(NR_TANH, 84, 1, 1, 84, 1, 1);
    L[11] = layer(NR_DENSE, 84, 1, 1, 10, 1, 1);
}

typedef struct net {
    nr_layer L[NLAYERS];
    float *act[NLAYERS + 1], *grad[NLAYERS + 1], *params[NLAYERS], *dparams[NLAYERS], *buffers[NLAYERS];
    float *saved[NLAYERS], *scratch;
    int *labels;
} net;

static size_t floats(const nr_layer *L, int n, int out)
{
    return (size_t)n * (out ? (size_t)L->out_c * L->out_h * L->out_w : (size_t)L->in_c * L->in_h * L->in_w);
}

static float *get(size_t count)
{
    float *p = nr_zalloc(count * sizeof(float) + 64);
    if (!p) {
        fprintf(stderr, "cpu_ops_bench: out of memory\n");
        exit(1);
    }
    return p;
}

static void net_make(net *m, int n)
{
    lenet5(m->L);
    size_t scratch = 0;
    m->act[0] = get(floats(&m->L[0], n, 0));
    m->grad[0] = NULL;
    for (int i = 0; i < NLAYERS; i++) {
        const nr_layer *L = &m->L[i];
        m->act[i + 1] = get(floats(L, n, 1));
        m->grad[i + 1] = get(floats(L, n, 1));
        m->params[i] = get(nr_layer_param_count(L));
        m->dparams[i] = get(nr_layer_param_count(L));
        m->buffers[i] = get(nr_layer_buffer_count(L));
        m->saved[i] = get(nr_layer_saved_count(L, n));
        nr_layer_init(L, m->params[i], m->buffers[i], 1, (uint32_t)i);
        if (nr_layer_scratch_count(L, n) > scratch) scratch = nr_layer_scratch_count(L, n);
    }
    m->scratch = get(scratch);
    m->labels = malloc((size_t)n * sizeof *m->labels);
    if (!m->labels) exit(1);
    nr_stream s = nr_stream_make(7, NR_RNG_TEST, 0, 0);
    for (size_t j = 0; j < floats(&m->L[0], n, 0); j++) m->act[0][j] = nr_uniform(s, j);
    for (int b = 0; b < n; b++) m->labels[b] = b % 10;
}

static void net_free(net *m)
{
    for (int i = 0; i <= NLAYERS; i++) {
        nr_free(m->act[i]);
        nr_free(m->grad[i]);
    }
    for (int i = 0; i < NLAYERS; i++) {
        nr_free(m->params[i]);
        nr_free(m->dparams[i]);
        nr_free(m->buffers[i]);
        nr_free(m->saved[i]);
    }
    nr_free(m->scratch);
    free(m->labels);
}

static double step(net *m, int n)
{
    nr_stream none = nr_stream_make(0, NR_RNG_DROPOUT, 0, 0);
    for (int i = 0; i < NLAYERS; i++)
        nr_cpu_forward(&m->L[i], n, m->act[i], m->act[i + 1], m->params[i], m->buffers[i], m->saved[i], m->scratch,
                       NR_TRAINING | NR_UPDATE_STATS, none);
    nr_loss ce = { NR_LOSS_CROSS_ENTROPY, 0, 0, 0, 0, 0 };
    double loss = nr_loss_forward_backward(&ce, n, 10, m->act[NLAYERS], m->labels, m->grad[NLAYERS], NULL);
    for (int i = NLAYERS - 1; i >= 0; i--)
        nr_cpu_backward(&m->L[i], n, m->act[i], m->act[i + 1], m->grad[i + 1], m->grad[i], m->params[i],
                        m->dparams[i], m->saved[i], m->scratch);
    return loss;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    int batches[] = { 32, 100 }, threads[] = { 1, 2 }, nthreads = 2;
    if (argc > 2) {
        threads[0] = atoi(argv[2]);
        nthreads = 1;
    }
    printf("LeNet-5 forward+loss+backward, CPU backend\n");
    for (int t = 0; t < nthreads; t++)
        for (int b = 0; b < 2; b++) {
            int n = batches[b];
            nr_cpu_set_threads(threads[t]);
            net m;
            net_make(&m, n);
            for (int w = 0; w < 20; w++) step(&m, n);
            long iters = 0;
            double t0 = now(), t1 = t0, sink = 0;
            while (t1 - t0 < seconds) {
                for (int k = 0; k < 10; k++) sink += step(&m, n);
                iters += 10;
                t1 = now();
            }
            double per = (t1 - t0) / iters;
            printf("threads %d batch %3d: %8.3f ms/batch %9.0f images/s (loss %.3f)\n", threads[t], n, per * 1e3,
                   n / per, sink / iters);
            net_free(&m);
        }
    return 0;
}
