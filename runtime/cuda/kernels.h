/* The CUDA C source of netc's kernels (phase 1: shapes are kernel
 * arguments), compiled at run time by NVRTC, and the names of its kernels.
 *
 * Every kernel mirrors a CPU-backend function (runtime/cpu/ops.c, loss.c,
 * runtime/optim.c), which is its numerical reference; runtime/cuda/layers.h
 * launches them layer by layer. The source is plain C for the host: it
 * needs no CUDA header to be embedded, printed or hashed. */
#ifndef NR_CUDA_KERNELS_H
#define NR_CUDA_KERNELS_H

/* One entry per `extern "C" __global__` function of the source, in order. */
typedef enum {
    NR_K_RNG_DRAWS, NR_K_COPY,
    NR_K_IM2COL, NR_K_COL2IM, NR_K_CONV_SCATTER_BIAS, NR_K_CONV_GATHER_DY, NR_K_ROW_SUM,
    NR_K_BIAS_ADD_ROWS, NR_K_COL_SUM,
    NR_K_MAXPOOL_FORWARD, NR_K_MAXPOOL_BACKWARD, NR_K_AVGPOOL_FORWARD, NR_K_AVGPOOL_BACKWARD,
    NR_K_BN_STATS, NR_K_BN_NORMALIZE, NR_K_BN_BACKWARD_REDUCE, NR_K_BN_BACKWARD_DX,
    NR_K_DROPOUT_FORWARD, NR_K_DROPOUT_BACKWARD,
    NR_K_TANH_FORWARD, NR_K_TANH_BACKWARD, NR_K_RELU_FORWARD, NR_K_RELU_BACKWARD,
    NR_K_LEAKY_RELU_FORWARD, NR_K_LEAKY_RELU_BACKWARD, NR_K_SIGMOID_FORWARD, NR_K_SIGMOID_BACKWARD,
    NR_K_SOFTMAX_FORWARD, NR_K_SOFTMAX_BACKWARD,
    NR_K_LOSS,
    NR_K_SGD_STEP, NR_K_ADAM_STEP, NR_K_RMSPROP_STEP,
    NR_K_SAM_SUMSQ, NR_K_SAM_FINISH, NR_K_SAM_ASCEND,
    NR_K_COUNT
} nr_kernel_id;

/* Threads per block the reductions in the source are written for. */
#define NR_CUDA_BLOCK 256

/* The whole source, NUL-terminated. */
const char *nr_cuda_kernel_source(void);

/* The kernel names (unmangled: the source declares them extern "C"). */
extern const char *const nr_cuda_kernel_names[NR_K_COUNT];
#endif
