#include "common.cuh"

/* ---- dense: bias epilogue and bias gradient around cuBLAS ------------------- */

/* y [n, out] += bias, per row. */
extern "C" __global__ void nr_bias_add_rows(float *y, const float *bias, int n, int out)
{
    i64 total = (i64)n * out;
    GRID_STRIDE(i, total) y[i] += bias[i % out];
}

/* db[o] = sum over rows of dy [n, out], in row order as the CPU sums it. */
extern "C" __global__ void nr_col_sum(const float *dy, float *db, int n, int out)
{
    GRID_STRIDE(o, (i64)out) {
        float sum = 0.0f;
        for (int b = 0; b < n; b++) sum += dy[(i64)b * out + o];
        db[o] = sum;
    }
}

