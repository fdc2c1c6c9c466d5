/* The losses, with PyTorch's semantics and reduction='mean': the mean over
 * the batch, except MSE, which PyTorch averages over all n*classes
 * elements. Sums run in double; the gradient is written as float. */
#include "ops.h"
#include <math.h>

/* The row math (log-sum-exp, smoothing, each loss and its gradient) is
 * runtime/nr_math.h's, shared with the CUDA kernels. */

/* A label outside [0, classes) makes the loss NaN (the caller checks the
 * data; a NaN cannot pass unnoticed in the log). */
double nr_loss_forward_backward(const nr_loss *loss, int n, int classes, const float *logits, const int *labels,
                                float *dlogits, int *correct)
{
    if (n <= 0 || classes <= 0) {
        if (correct) *correct = 0;
        return 0.0;
    }
    return nr_loss_rows(loss, n, classes, logits, labels, dlogits, correct, 1.0 / n) * (1.0 / n);
}

double nr_loss_rows(const nr_loss *loss, int n, int classes, const float *logits, const int *labels,
                    float *dlogits, int *correct, double scale)
{
    if (correct) *correct = 0;
    if (n <= 0 || classes <= 0) return 0.0;
    switch (loss->kind) {
    case NR_LOSS_CROSS_ENTROPY: case NR_LOSS_NLL: case NR_LOSS_MSE: case NR_LOSS_MULTI_MARGIN: break;
    default: return NAN;
    }
    nr_loss_args a = { (int)loss->kind, loss->label_smoothing, loss->smoothing_other_classes, loss->mse_softmax,
                       loss->margin, loss->p };
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * classes;
        float *g = dlogits ? dlogits + (size_t)i * classes : NULL;
        int y = labels[i];
        if (y < 0 || y >= classes) return NAN;
        if (correct && nr_argmax_row(x, classes) == y) (*correct)++;
        total += nr_loss_row(&a, classes, x, y, g, scale);
    }
    return total;
}
