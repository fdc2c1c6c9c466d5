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
        nr_softmax_column(x + base, y + base, C, hw, log_form);
    }
}

extern "C" __global__ void nr_softmax_backward(const float *y, const float *dy, float *dx, int n, int C, i64 hw,
                                               int log_form)
{
    i64 total = (i64)n * hw;
    GRID_STRIDE(i, total) {
        i64 base = i / hw * C * hw + i % hw;
        nr_softmax_column_grad(y + base, dy + base, dx + base, C, hw, log_form);
    }
}
