#include "common.cuh"

/* ---- losses: loss, gradient and correct count in one kernel -------------------
 * One block of NR_CUDA_BLOCK threads, a sample per thread at a time; each
 * row is runtime/nr_math.h's nr_loss_row, as runtime/cpu/loss.c computes
 * it. the step's result slot receives the mean loss (NaN when a label is out
 * of range), then how many argmax == label. Not named like the CPU's
 * nr_loss_forward_backward: the emulator links both into one program. */

/* dlogits may be NULL (evaluation). Launch with one block of NR_CUDA_BLOCK threads. */
extern "C" __global__ void nr_loss_batch(nr_loss_args a, int n, int classes, const float *logits, const int *labels,
                                         float *dlogits, unsigned char *results, const nr_step_vars *sv)
{
    /* The step's slot, read from device memory (see step_vars.h). */
    unsigned char *result = results + (i64)sv->slot * NR_LOSS_RESULT_BYTES;
    double *out_loss = (double *)result;
    int *out_correct = (int *)(result + sizeof(double));
    __shared__ double shared[NR_CUDA_BLOCK];
    double total = 0.0, correct = 0.0, bad = 0.0, scale = 1.0 / n;
    for (int i = threadIdx.x; i < n; i += NR_CUDA_BLOCK) {
        const float *x = logits + (i64)i * classes;
        float *g = dlogits ? dlogits + (i64)i * classes : 0;
        int y = labels[i];
        if (y < 0 || y >= classes || a.kind < 0 || a.kind > 3) {
            bad += 1.0;
            continue;
        }
        if (nr_argmax_row(x, classes) == y) correct += 1.0;
        total += nr_loss_row(&a, classes, x, y, g, scale);
    }
    total = block_sum(total, shared);
    correct = block_sum(correct, shared);
    bad = block_sum(bad, shared);
    if (threadIdx.x == 0) {
        *out_loss = bad > 0.0 || n <= 0 ? (n <= 0 ? 0.0 : __longlong_as_double(0x7ff8000000000000ll)) : total * scale;
        *out_correct = (int)correct;
    }
}
