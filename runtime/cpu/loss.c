/* The losses, with PyTorch's semantics and reduction='mean': the mean over
 * the batch, except MSE, which PyTorch averages over all n*classes
 * elements. Sums run in double; the gradient is written as float. */
#include "ops.h"
#include <math.h>

/* log(sum_j exp(x_j)) of one row, shifted by the maximum so exp cannot overflow. */
static double log_sum_exp(const float *x, int classes)
{
    double max = x[0];
    for (int j = 1; j < classes; j++)
        if (x[j] > max) max = x[j];
    double sum = 0.0;
    for (int j = 0; j < classes; j++) sum += exp(x[j] - max);
    return max + log(sum);
}

/* The target distribution of label smoothing e: PyTorch's form puts
 * (1-e) + e/C on the label and e/C elsewhere; the SAM reference's form puts
 * 1-e on the label and e/(C-1) elsewhere. */
static double smoothed_target(const nr_loss *loss, int classes, int j, int label)
{
    double e = loss->label_smoothing;
    if (loss->smoothing_other_classes && classes > 1) return j == label ? 1.0 - e : e / (classes - 1);
    return (j == label ? 1.0 - e : 0.0) + e / classes;
}

/* -sum_j q_j logp_j for one row. Cross-entropy takes logits (logp =
 * x - lse, gradient softmax - q); NLL takes log-probabilities (logp = x,
 * gradient -q). */
static double cross_entropy_row(const nr_loss *loss, int classes, const float *x, int label, int from_logits,
                                float *grad, double scale)
{
    double lse = from_logits ? log_sum_exp(x, classes) : 0.0;
    double l = 0.0;
    for (int j = 0; j < classes; j++) {
        double logp = x[j] - lse;
        double q = smoothed_target(loss, classes, j, label);
        l -= q * logp;
        if (grad) grad[j] = (float)(scale * ((from_logits ? exp(logp) : 0.0) - q));
    }
    return l;
}

/* sum_j (s_j - onehot_j)^2 for one row, s = softmax(x) or x; its gradient
 * times `scale` (which carries the 1/(n*C) of the mean). */
static double mse_row(const nr_loss *loss, int classes, const float *x, int label, float *grad, double scale)
{
    double lse = loss->mse_softmax ? log_sum_exp(x, classes) : 0.0;
    double l = 0.0, dot = 0.0; /* dot = sum_k g_k s_k, for the softmax's Jacobian */
    for (int j = 0; j < classes; j++) {
        double s = loss->mse_softmax ? exp(x[j] - lse) : x[j];
        double d = s - (j == label);
        l += d * d;
        dot += 2.0 * d * s;
    }
    if (grad)
        for (int j = 0; j < classes; j++) {
            double s = loss->mse_softmax ? exp(x[j] - lse) : x[j];
            double g = 2.0 * (s - (j == label));
            grad[j] = (float)(scale * (loss->mse_softmax ? s * (g - dot) : g));
        }
    return l;
}

/* sum_{j != y} max(0, margin - x_y + x_j)^p / C. */
static double multi_margin_row(const nr_loss *loss, int classes, const float *x, int label, float *grad,
                               double scale)
{
    double l = 0.0, dlabel = 0.0;
    for (int j = 0; j < classes; j++) {
        if (grad) grad[j] = 0.0f;
        if (j == label) continue;
        double z = (double)loss->margin - x[label] + x[j];
        if (z <= 0.0) continue;
        double term = loss->p == 2 ? z * z : z;
        double dz = loss->p == 2 ? 2.0 * z : 1.0;
        l += term / classes;
        if (grad) grad[j] = (float)(scale * dz / classes);
        dlabel -= dz / classes;
    }
    if (grad) grad[label] = (float)(scale * dlabel);
    return l;
}

static int argmax_row(const float *x, int classes)
{
    int best = 0;
    for (int j = 1; j < classes; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

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
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * classes;
        float *g = dlogits ? dlogits + (size_t)i * classes : NULL;
        int y = labels[i];
        if (y < 0 || y >= classes) return NAN;
        if (correct && argmax_row(x, classes) == y) (*correct)++;
        switch (loss->kind) {
        case NR_LOSS_CROSS_ENTROPY: total += cross_entropy_row(loss, classes, x, y, 1, g, scale); break;
        case NR_LOSS_NLL: total += cross_entropy_row(loss, classes, x, y, 0, g, scale); break;
        case NR_LOSS_MSE: total += mse_row(loss, classes, x, y, g, scale / classes) / classes; break;
        case NR_LOSS_MULTI_MARGIN: total += multi_margin_row(loss, classes, x, y, g, scale); break;
        default: return NAN;
        }
    }
    return total;
}
