/* The phase-1 CUDA kernels (every shape a kernel argument), compiled at
 * run time by NVRTC: their names, and their source.
 *
 * The source lives in runtime/cuda/kernels.cu and the .cuh files it
 * includes (one per kernel family, beside runtime/nr_math.h, the math the
 * CPU backend shares); the build embeds it with its includes expanded
 * (scripts/embed-cuda -> kernels_embed.c). Every kernel mirrors a CPU-backend
 * function (runtime/cpu/ops.c, loss.c, runtime/optim.c), its numerical
 * reference; runtime/cuda/layers.h launches them layer by layer. Plain C:
 * no CUDA header is needed to embed, print or hash the source. */
#ifndef NR_CUDA_KERNELS_H
#define NR_CUDA_KERNELS_H
#include "block.h"

/* Every `extern "C" __global__` function of kernels.cu, in order:
 * X(enum id, kernel name). */
#define NR_CUDA_KERNELS(X)                                  \
    X(NR_K_RNG_DRAWS, nr_rng_draws)                         \
    X(NR_K_COPY, nr_copy)                                   \
    X(NR_K_IM2COL, nr_im2col)                               \
    X(NR_K_COL2IM, nr_col2im)                               \
    X(NR_K_CONV_SCATTER_BIAS, nr_conv_scatter_bias)         \
    X(NR_K_CONV_GATHER_DY, nr_conv_gather_dy)               \
    X(NR_K_ROW_SUM, nr_row_sum)                             \
    X(NR_K_BIAS_ADD_ROWS, nr_bias_add_rows)                 \
    X(NR_K_COL_SUM, nr_col_sum)                             \
    X(NR_K_MAXPOOL_FORWARD, nr_maxpool_forward)             \
    X(NR_K_MAXPOOL_BACKWARD, nr_maxpool_backward)           \
    X(NR_K_AVGPOOL_FORWARD, nr_avgpool_forward)             \
    X(NR_K_AVGPOOL_BACKWARD, nr_avgpool_backward)           \
    X(NR_K_BN_STATS, nr_bn_stats)                           \
    X(NR_K_BN_NORMALIZE, nr_bn_normalize)                   \
    X(NR_K_BN_BACKWARD_REDUCE, nr_bn_backward_reduce)       \
    X(NR_K_BN_BACKWARD_DX, nr_bn_backward_dx)               \
    X(NR_K_DROPOUT_FORWARD, nr_dropout_forward)             \
    X(NR_K_DROPOUT_BACKWARD, nr_dropout_backward)           \
    X(NR_K_TANH_FORWARD, nr_tanh_forward)                   \
    X(NR_K_TANH_BACKWARD, nr_tanh_backward)                 \
    X(NR_K_RELU_FORWARD, nr_relu_forward)                   \
    X(NR_K_RELU_BACKWARD, nr_relu_backward)                 \
    X(NR_K_LEAKY_RELU_FORWARD, nr_leaky_relu_forward)       \
    X(NR_K_LEAKY_RELU_BACKWARD, nr_leaky_relu_backward)     \
    X(NR_K_SIGMOID_FORWARD, nr_sigmoid_forward)             \
    X(NR_K_SIGMOID_BACKWARD, nr_sigmoid_backward)           \
    X(NR_K_SOFTMAX_FORWARD, nr_softmax_forward)             \
    X(NR_K_SOFTMAX_BACKWARD, nr_softmax_backward)           \
    X(NR_K_LOSS, nr_loss_batch)                             \
    X(NR_K_SGD_STEP, nr_sgd_step)                           \
    X(NR_K_ADAM_STEP, nr_adam_step)                         \
    X(NR_K_RMSPROP_STEP, nr_rmsprop_step)                   \
    X(NR_K_SAM_SUMSQ, nr_sam_sumsq)                         \
    X(NR_K_SAM_FINISH, nr_sam_finish)                       \
    X(NR_K_SAM_ASCEND, nr_sam_ascend)                       \
    X(NR_K_GATHER_TRAIN, nr_gather_train)                   \
    X(NR_K_GATHER_EVAL, nr_gather_eval)

#define NR_CUDA_KERNEL_ID(id, name) id,
typedef enum { NR_CUDA_KERNELS(NR_CUDA_KERNEL_ID) NR_K_COUNT } nr_kernel_id;
#undef NR_CUDA_KERNEL_ID

/* The whole source (kernels.cu with its includes expanded), NUL-terminated. */
const char *nr_cuda_kernel_source(void);

/* The kernel names (unmangled: the source declares them extern "C"). */
extern const char *const nr_cuda_kernel_names[NR_K_COUNT];
#endif
