/* Direct convolution for stride-1 convolutions on CPUs with AVX-512: no
 * im2col matrix, no GEMM call. Each output row is cut into strips of 16
 * pixels (one vector); a strip of every output channel of a block is
 * accumulated in registers over the input channels and taps, reading the
 * input through a padded copy of the image. The input gradient is the same
 * kernel on the padded output gradient with the weights flipped and
 * transposed; the weight gradient keeps a block of (channel, tap) sums in
 * registers over a group of images small enough to stay in L1, and adds
 * them to vector sums in scratch group after group.
 *
 * Sums run in a fixed order (strips, then images, then groups, then the 16
 * lanes), so a result depends on the call's images alone, never on the
 * thread count. */
#ifndef NR_CPU_CONV_DIRECT_H
#define NR_CPU_CONV_DIRECT_H
#include <stddef.h>

typedef struct nr_direct_conv {
    int C, H, W;   /* input planes */
    int O, OH, OW; /* output planes */
    int k, pad, reflect;
} nr_direct_conv;

/* Whether the direct kernels serve this convolution here: the CPU has
 * AVX-512 (checked once), the convolution has stride 1 and padding below
 * the kernel size, and NETC_CPU_KERNELS is not "generic" (which keeps the
 * im2col + BLAS path, for comparison and for tests of both). */
int nr_direct_conv_usable(const nr_direct_conv *d, int stride);

/* Scratch floats for forward or backward over up to nb images. */
size_t nr_direct_conv_scratch(const nr_direct_conv *d, int nb);

/* y [nb, O, OH, OW] = conv(x [nb, C, H, W], w [O, C, k, k]) + bias (bias may be NULL). */
void nr_direct_conv_forward(const nr_direct_conv *d, int nb, const float *x, float *y, const float *w,
                            const float *bias, float *scratch);

/* dw [O, C, k, k] += d(loss)/dw over the nb images; dx [nb, C, H, W] =
 * d(loss)/dx unless dx is NULL. */
void nr_direct_conv_backward(const nr_direct_conv *d, int nb, const float *x, const float *dy, float *dx,
                             const float *w, float *dw, float *scratch);
#endif
