#include "common.cuh"

/* ---- activations: runtime/nr_math.h's, element by element ------------------------- */

extern "C" __global__ void nr_tanh_forward(const float *x, float *y, i64 total)
{
    GRID_STRIDE(i, total) y[i] = nr_tanh(x[i]);
}

extern "C" __global__ void nr_tanh_backward(const float *y, const float *dy, float *dx, i64 total)
{
    GRID_STRIDE(i, total) dx[i] = nr_tanh_grad(y[i], dy[i]);
}

extern "C" __global__ void nr_relu_forward(const float *x, float *y, i64 total)
{
    GRID_STRIDE(i, total) y[i] = nr_relu(x[i]);
}

extern "C" __global__ void nr_relu_backward(const float *y, const float *dy, float *dx, i64 total)
{
    GRID_STRIDE(i, total) dx[i] = nr_relu_grad(y[i], dy[i]);
}

extern "C" __global__ void nr_leaky_relu_forward(const float *x, float *y, i64 total, float slope)
{
    GRID_STRIDE(i, total) y[i] = nr_leaky_relu(x[i], slope);
}

extern "C" __global__ void nr_leaky_relu_backward(const float *x, const float *dy, float *dx, i64 total, float slope)
{
    GRID_STRIDE(i, total) dx[i] = nr_leaky_relu_grad(x[i], dy[i], slope);
}

extern "C" __global__ void nr_sigmoid_forward(const float *x, float *y, i64 total)
{
    GRID_STRIDE(i, total) y[i] = nr_sigmoid(x[i]);
}

extern "C" __global__ void nr_sigmoid_backward(const float *y, const float *dy, float *dx, i64 total)
{
    GRID_STRIDE(i, total) dx[i] = nr_sigmoid_grad(y[i], dy[i]);
}

/* ---- softmax and log_softmax over channels (dim 1), at every position ------- */

extern "C" __global__ void nr_softmax_forward(const float *x, float *y, int n, int C, i64 hw, int log_form)
{
    i64 total = (i64)n * hw;
    GRID_STRIDE(i, total) {
        i64 base = i / hw * C * hw + i % hw;
        const float *xs = x + base;
        float *ys = y + base;
        float mx = xs[0];
        for (int c = 1; c < C; c++)
            if (xs[c * hw] > mx) mx = xs[c * hw];
        float sum = 0.0f;
        for (int c = 0; c < C; c++) sum += expf(xs[c * hw] - mx);
        if (log_form) {
            float lse = logf(sum);
            for (int c = 0; c < C; c++) ys[c * hw] = xs[c * hw] - mx - lse;
        } else {
            for (int c = 0; c < C; c++) ys[c * hw] = expf(xs[c * hw] - mx) / sum;
        }
    }
}

extern "C" __global__ void nr_softmax_backward(const float *y, const float *dy, float *dx, int n, int C, i64 hw,
                                               int log_form)
{
    i64 total = (i64)n * hw;
    GRID_STRIDE(i, total) {
        i64 base = i / hw * C * hw + i % hw;
        float dot = 0.0f;
        for (int c = 0; c < C; c++) dot += log_form ? dy[base + c * hw] : dy[base + c * hw] * y[base + c * hw];
        for (int c = 0; c < C; c++) {
            i64 at = base + c * hw;
            dx[at] = log_form ? dy[at] - expf(y[at]) * dot : y[at] * (dy[at] - dot);
        }
    }
}

