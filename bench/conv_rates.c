/* Rates of the AVX-512 direct convolutions (runtime/cpu/conv_direct.c) on
 * the convolutions of W6 (micro-batches of 16 images) and W5 (batch 100 in
 * micro-batches of 13), one thread: forward, and the weight gradient alone
 * (backward without dx; it includes padding and expanding the input), in
 * GMAC/s (multiply-adds per second, 1e9). Not a test. Compare with
 * bench/torch_conv_rates.py, PyTorch's own CPU convolutions on the same
 * shapes. Needs an AVX-512 CPU (it says so and exits otherwise).
 *
 *   gcc -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -fopenmp -Iruntime bench/conv_rates.c \
 *       runtime/cpu/conv_direct.c runtime/cpu/isa.c -lm -o /tmp/conv_rates && /tmp/conv_rates
 */
#include "cpu/conv_direct.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float *filled(size_t count, int period)
{
    float *p = malloc(count * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < count; i++) p[i] = (float)(i % (size_t)period) * 0.1f - 0.2f;
    return p;
}

/* Best of 5 rounds of about a second each (3e9 multiply-adds per round). */
static void measure(const char *name, nr_direct_conv d, int nb)
{
    size_t in = (size_t)nb * d.C * d.H * d.W, out = (size_t)nb * d.O * d.OH * d.OW, nw = (size_t)d.O * d.C * d.k * d.k;
    float *x = filled(in, 7), *dy = filled(out, 5), *y = filled(out, 3), *w = filled(nw, 11), *dw = filled(nw, 2);
    float *scratch = filled(nr_direct_conv_scratch(&d, nb), 1);
    double macs = (double)nb * d.O * d.OH * d.OW * d.C * d.k * d.k, forward = 1e9, weights = 1e9;
    int reps = (int)(3e9 / macs) + 1;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (int r = 0; r < reps; r++) nr_direct_conv_forward(&d, nb, x, y, w, NULL, scratch);
        double t1 = now();
        for (int r = 0; r < reps; r++) nr_direct_conv_backward(&d, nb, x, dy, NULL, w, dw, scratch);
        double t2 = now();
        if ((t1 - t0) / reps < forward) forward = (t1 - t0) / reps;
        if ((t2 - t1) / reps < weights) weights = (t2 - t1) / reps;
    }
    printf("%-9s %3d images  forward %6.1f GMAC/s  weight gradient %6.1f GMAC/s\n", name, nb, macs / forward * 1e-9,
           macs / weights * 1e-9);
    free(x), free(dy), free(y), free(w), free(dw), free(scratch);
}

int main(void)
{
    /* C, H, W, O, OH, OW, k, pad, reflect */
    nr_direct_conv w6_1 = { 3, 32, 32, 6, 32, 32, 5, 2, 1 }, w6_2 = { 6, 16, 16, 16, 16, 16, 3, 1, 0 },
                   w6_3 = { 16, 8, 8, 32, 8, 8, 3, 1, 0 }, w5_1 = { 1, 28, 28, 6, 28, 28, 5, 2, 0 },
                   w5_2 = { 6, 14, 14, 16, 10, 10, 5, 0, 0 };
    if (!nr_direct_conv_usable(&w6_1, 1)) {
        printf("the direct convolutions do not run here (no AVX-512F, or NETC_CPU_KERNELS=generic)\n");
        return 0;
    }
    measure("W6 conv1", w6_1, 16);
    measure("W6 conv2", w6_2, 16);
    measure("W6 conv3", w6_3, 16);
    measure("W5 conv1", w5_1, 13);
    measure("W5 conv2", w5_2, 13);
    return 0;
}
