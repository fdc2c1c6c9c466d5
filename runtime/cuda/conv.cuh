#include "common.cuh"

/* ---- convolution: im2col / col2im around cuBLAS ------------------------------
 * cols is [K, nb*P] with K = C*k*k (row (c, ki, kj)) and P = OH*OW (column
 * (image, oh, ow)), the CPU backend's layout: the forward GEMM is
 * [O, K] x [K, nb*P] and the weight gradient [O, nb*P] x [K, nb*P]^T. */

extern "C" __global__ void nr_im2col(const float *x, float *cols, int nb, int C, int H, int W, int k, int s,
                                     int pad, int reflect, int OH, int OW)
{
    i64 P = (i64)OH * OW, ld = (i64)nb * P, total = (i64)C * k * k * ld;
    GRID_STRIDE(i, total) {
        i64 row = i / ld, col = i % ld;
        int b = (int)(col / P), p = (int)(col % P);
        int oh = p / OW, ow = p % OW;
        int kj = (int)(row % k), ki = (int)(row / k % k), c = (int)(row / ((i64)k * k));
        int ih = oh * s - pad + ki, iw = ow * s - pad + kj;
        float v = 0.0f;
        if (reflect) {
            ih = nr_reflect_index(ih, H);
            iw = nr_reflect_index(iw, W);
            v = x[(((i64)b * C + c) * H + ih) * W + iw];
        } else if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
            v = x[(((i64)b * C + c) * H + ih) * W + iw];
        }
        cols[i] = v;
    }
}

/* A padded position no output reads. */
#define NO_POSITION (-(1 << 30))

/* The t-th padded position (t = 0, 1, 2) that reads input row/column h, or
 * NO_POSITION: h itself and, under reflect padding, its two mirror images. */
__device__ int source_position(int t, int h, int n, int reflect)
{
    if (t == 0) return h;
    if (!reflect) return NO_POSITION;
    if (t == 1) return h > 0 ? -h : NO_POSITION;
    return h < n - 1 ? 2 * n - 2 - h : NO_POSITION;
}

/* Output index o with o*s - pad + kidx == pos, or -1. */
__device__ int output_index(int pos, int pad, int kidx, int s, int limit)
{
    int num = pos + pad - kidx;
    if (num < 0 || num % s) return -1;
    int o = num / s;
    return o < limit ? o : -1;
}

/* dx = col2im(dcols), gathered per input element (no atomics, so the sum's
 * order is fixed): every (ki, kj) and every padded position mapping to it. */
extern "C" __global__ void nr_col2im(const float *dcols, float *dx, int nb, int C, int H, int W, int k, int s,
                                     int pad, int reflect, int OH, int OW)
{
    i64 P = (i64)OH * OW, ld = (i64)nb * P, total = (i64)nb * C * H * W;
    GRID_STRIDE(i, total) {
        int w = (int)(i % W), h = (int)(i / W % H), c = (int)(i / ((i64)W * H) % C);
        int b = (int)(i / ((i64)W * H * C));
        float sum = 0.0f;
        for (int ki = 0; ki < k; ki++)
#pragma unroll
            for (int th = 0; th < 3; th++) {
                int oh = output_index(source_position(th, h, H, reflect), pad, ki, s, OH);
                if (oh < 0) continue;
                for (int kj = 0; kj < k; kj++)
#pragma unroll
                    for (int tw = 0; tw < 3; tw++) {
                        int ow = output_index(source_position(tw, w, W, reflect), pad, kj, s, OW);
                        if (ow < 0) continue;
                        i64 row = ((i64)c * k + ki) * k + kj;
                        sum += dcols[row * ld + (i64)b * P + (i64)oh * OW + ow];
                    }
            }
        dx[i] = sum;
    }
}

/* y [nb, O, P] = gemm_out [O, nb*P] moved to NCHW, plus the bias (or none). */
extern "C" __global__ void nr_conv_scatter_bias(const float *gemm_out, const float *bias, float *y, int nb, int O,
                                                i64 P)
{
    i64 total = (i64)nb * O * P;
    GRID_STRIDE(i, total) {
        i64 p = i % P;
        int o = (int)(i / P % O), b = (int)(i / (P * O));
        y[i] = gemm_out[(i64)o * nb * P + (i64)b * P + p] + (bias ? bias[o] : 0.0f);
    }
}

/* dyT [O, nb*P] = dy [nb, O, P] in GEMM layout. */
extern "C" __global__ void nr_conv_gather_dy(const float *dy, float *dyT, int nb, int O, i64 P)
{
    i64 total = (i64)nb * O * P;
    GRID_STRIDE(i, total) {
        i64 p = i % P;
        int b = (int)(i / P % nb), o = (int)(i / (P * nb));
        dyT[i] = dy[((i64)b * O + o) * P + p];
    }
}

/* out[r] = sum of row r of m [rows, cols] (the conv bias gradient from dyT):
 * one block per row, summed in double. */
extern "C" __global__ void nr_row_sum(const float *m, float *out, int rows, i64 cols)
{
    __shared__ double shared[NR_CUDA_BLOCK];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        double sum = 0.0;
        for (i64 j = threadIdx.x; j < cols; j += NR_CUDA_BLOCK) sum += m[(i64)r * cols + j];
        sum = block_sum(sum, shared);
        if (threadIdx.x == 0) out[r] = (float)sum;
    }
}

