/* 2x2 max pooling with stride 2 (every pooling layer of the workloads'
 * CIFAR and LeNet models), forward, and backward as AVX-512 kernels: one output row,
 * rows of any width in masked vectors of 16. The compiler's vectorized C
 * (ops.c) runs short rows (LeNet-5's 14, CIFAR's 8) in its scalar
 * remainder loop; these do not. Same rule as the C: the first maximum of
 * the window in row order wins, a NaN wins over everything. */
#ifndef NR_CPU_MAXPOOL2_H
#define NR_CPU_MAXPOOL2_H

/* What each input goes through before the pooling: v * scale + shift (a
 * BatchNorm's apply; scale 1 and shift -0 leave every v as it is), then
 * nr_relu when relu is set. The layers it stands for give the same bits. */
typedef struct nr_pool_pre {
    float scale, shift;
    int relu;
} nr_pool_pre;

/* One output row from input rows x0, x1 (W floats apart): y and arg (the
 * winning index in the plane, as a float) for ow outputs of pre(x); first
 * is the plane index of x0[0]. Call only where nr_cpu_avx512_kernels()
 * (isa.h). */
void nr_maxpool2_row(const float *x0, const float *x1, float *y, float *arg, int ow, int first, int W,
                     nr_pool_pre pre);

/* Its backward: input rows d0 and d1 (2 ow floats each) written whole,
 * zeros except dy (+0 for -0) at each window's winner arg; with relu, the
 * fused relu's gradient too (nr_relu_grad of the pooled output y). */
void nr_maxpool2_route_row(const float *dy, const float *arg, const float *y, int relu, int ow, int first, int W,
                           float *d0, float *d1);

#endif
