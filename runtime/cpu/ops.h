/* The CPU backend: forward and backward of every layer kind and every loss.
 * It is also the numerical reference the CUDA kernels are tested against.
 *
 * Conventions
 * - Tensors are float32, batch-major NCHW ([n, c, h, w]; flat = [n, c]).
 * - Parameters of one layer are contiguous, weight first, then bias:
 *     conv:      weight [out_c, in_c, k, k], bias [out_c] (when bias)
 *     dense:     weight [out_c, in_c],       bias [out_c] (when bias)
 *     batchnorm: gamma [c], beta [c]                      (when affine)
 *   Buffers (not trained): batchnorm running_mean [c], running_var [c].
 * - Backward overwrites dparams (gradients are not accumulated across calls)
 *   and writes dx unless dx is NULL (the first layer needs no input
 *   gradient). It may read what forward left in `saved`.
 * - `scratch` is temporary memory of nr_layer_scratch_count floats, free to
 *   be reused by the next layer. */
#ifndef NR_CPU_OPS_H
#define NR_CPU_OPS_H
#include "../netrt.h"
#include "../rng.h"
#include <stddef.h>

enum {
    NR_TRAINING = 1,      /* batch statistics for BatchNorm, dropout active */
    NR_UPDATE_STATS = 2,  /* update BatchNorm running statistics (off on SAM's second pass) */
};

size_t nr_layer_param_count(const nr_layer *L);
size_t nr_layer_buffer_count(const nr_layer *L);
/* Floats forward keeps for backward for a batch of n (masks, argmax, batch statistics). */
size_t nr_layer_saved_count(const nr_layer *L, int n);
/* Temporary floats forward or backward needs for a batch of n (im2col columns...). */
size_t nr_layer_scratch_count(const nr_layer *L, int n);

/* A relu layer followed by a 2x2, stride-2 max pooling of even planes runs
 * as one pass (the relu's output is never stored): forward gives the
 * pooling's output and saved, backward the relu's input gradient from the
 * pooled output y and its dy. The same values as the two layers'. */
int nr_cpu_relu_maxpool_fusable(const nr_layer *relu, const nr_layer *pool);
void nr_cpu_relu_maxpool_forward(const nr_layer *pool, int n, const float *x, float *y, float *saved);
void nr_cpu_relu_maxpool_backward(const nr_layer *pool, int n, const float *y, const float *dy, float *dx,
                                  const float *saved);
/* The same pair after a BatchNorm layer whose statistics are in bn_saved
 * (nr_bn_set_stats): its apply runs in the same pass, and neither its
 * output nor the relu's is stored (backward needs neither: BatchNorm's
 * takes its input and the pair's dx). */
void nr_cpu_bn_relu_maxpool_forward(const nr_layer *bn, const float *bn_params, const float *bn_saved,
                                    const nr_layer *pool, int n, const float *x, float *y, float *saved);

/* Whether this convolution runs as a direct convolution (conv_direct.h:
 * AVX-512, stride 1, NETC_CPU_KERNELS not "generic") rather than im2col + BLAS. */
int nr_cpu_direct_conv(const nr_layer *L);

/* PyTorch's initialization (or the layer's init option) of params, and the
 * initial buffers (running_mean 0, running_var 1). Draws from
 * nr_stream_make(seed, NR_RNG_INIT, layer_index, 0). */
void nr_layer_init(const nr_layer *L, float *params, float *buffers, uint64_t seed, uint32_t layer_index);

/* y = layer(x) for a batch of n. `dropout` is the stream whose draw
 * (sample * per-sample elements + element) decides dropout's mask. */
void nr_cpu_forward(const nr_layer *L, int n, const float *x, float *y, const float *params,
                    float *buffers, float *saved, float *scratch, int flags, nr_stream dropout);
void nr_cpu_backward(const nr_layer *L, int n, const float *x, const float *y, const float *dy,
                     float *dx, const float *params, float *dparams, const float *saved,
                     float *scratch);

/* The same for samples [first, first + n) of a larger batch (the
 * data-parallel step runs a batch as micro-batches): first numbers
 * dropout's draws. BatchNorm in training mode needs statistics of the whole
 * batch: the step runs it through nr_bn_* instead. */
void nr_cpu_forward_part(const nr_layer *L, int n, int first, const float *x, float *y, const float *params,
                         float *buffers, float *saved, float *scratch, int flags, nr_stream dropout);
/* Scratch floats for one thread running a layer inside a parallel region
 * (where every kernel runs single-threaded). */
size_t nr_layer_thread_scratch_count(const nr_layer *L, int n);

/* BatchNorm over a batch cut into parts. Statistics of one part of n
 * samples, per channel c: sum[c] of x, and sqdev[c], the sum of the squared
 * deviations from the part's own mean. */
void nr_bn_part_stats(const nr_layer *L, int n, const float *x, double *sum, double *sqdev);
/* saved (and, with NR_UPDATE_STATS, the running statistics) from the
 * batch's mean and biased variance over count values per channel. */
void nr_bn_set_stats(const nr_layer *L, size_t count, const double *mean, const double *var, float *buffers,
                     float *saved, int flags);
void nr_bn_apply(const nr_layer *L, int n, const float *x, float *y, const float *params, const float *saved);
/* sums[c] = sum dy, sums[C + c] = sum dy * xhat over one part. */
void nr_bn_grad_sums(const nr_layer *L, int n, const float *x, const float *dy, const float *saved, double *sums);
/* dx of one part from the sums over the whole batch (count values per channel). */
void nr_bn_grad_apply(const nr_layer *L, int n, size_t count, const float *x, const float *dy, float *dx,
                      const float *params, const float *saved, const double *sums);

/* BatchNorm followed by the fused relu -> max pooling pair, whose forward
 * ran as nr_cpu_bn_relu_maxpool_forward: the pair's backward is not run on
 * its own; these take its inputs instead of BatchNorm's dy (the relu's
 * dx, never stored) and give the same values as nr_bn_grad_sums and
 * nr_bn_grad_apply would from it. scratch: nr_bn_fused_scratch floats,
 * 8-byte aligned. */
typedef struct nr_pooled_grad {
    const float *y, *dy, *saved; /* the pooling's output, its dy and its saved argmax */
} nr_pooled_grad;
size_t nr_bn_fused_scratch(const nr_layer *L);
void nr_bn_fused_grad_sums(const nr_layer *L, const nr_layer *pool, int n, const float *x, const nr_pooled_grad *g,
                           const float *saved, double *sums, float *scratch);
void nr_bn_fused_grad_apply(const nr_layer *L, const nr_layer *pool, int n, size_t count, const float *x,
                            const nr_pooled_grad *g, float *dx, const float *params, const float *saved,
                            const double *sums, float *scratch);

/* Mean loss over the batch of `logits` ([n, classes], the last layer's
 * output) against labels; when dlogits is not NULL it receives d(loss)/d(logits).
 * *correct (when not NULL) receives how many argmax(logits) == label. */
double nr_loss_forward_backward(const nr_loss *loss, int n, int classes, const float *logits,
                                const int *labels, float *dlogits, int *correct);

/* Rows [0, n) of a batch: the sum of their losses (not the mean), and when
 * dlogits is not NULL, their gradients times scale (1/batch for a mean). */
double nr_loss_rows(const nr_loss *loss, int n, int classes, const float *logits, const int *labels,
                    float *dlogits, int *correct, double scale);

/* Threads used by the CPU kernels and BLAS; 0 means every core.
 * The kernels split the batch between OpenMP threads and call BLAS
 * single-threaded (this pins OpenBLAS to one thread). Scratch counts allow
 * for max(threads, cores) threads, so set a count above the core count
 * before sizing scratch. A kernel called before this sets every core. */
void nr_cpu_set_threads(int threads);
/* on: the calling thread runs a pass's tasks, and its kernels run on it
 * alone (as inside an OpenMP parallel region); off: as set above. */
void nr_cpu_lane_kernels(int on);
#endif
