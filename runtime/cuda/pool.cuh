#include "common.cuh"

/* ---- pooling ------------------------------------------------------------------
 * One thread per output (forward) or per input element (backward, gathered
 * from the windows that cover it in output order: the CPU's order of
 * accumulation, so the sums are identical). */

struct pool_window {
    int i0, i1, j0, j1;
};

__device__ pool_window window_of(int oh, int ow, int H, int W, int k, int s, int pad)
{
    int hs = oh * s - pad, ws = ow * s - pad;
    pool_window win;
    win.i0 = max(hs, 0);
    win.i1 = min(hs + k, H);
    win.j0 = max(ws, 0);
    win.j1 = min(ws + k, W);
    return win;
}

/* Outputs [*lo, *hi] along one axis whose window covers input index h. */
__device__ void covering_outputs(int h, int k, int s, int pad, int limit, int *lo, int *hi)
{
    int last = h + pad - k; /* o*s must exceed this */
    *lo = last < 0 ? 0 : last / s + 1;
    *hi = min((h + pad) / s, limit - 1);
}

/* Input element i of a backward pass: its row h and column w, the offset
 * of its plane's outputs, and the outputs [oh0, oh1] x [ow0, ow1] whose
 * windows cover it. */
typedef struct covering {
    int h, w, oh0, oh1, ow0, ow1;
    i64 base;
} covering;

__device__ covering covering_of(i64 i, int H, int W, int OH, int OW, int k, int s, int pad)
{
    covering c;
    c.w = (int)(i % W), c.h = (int)(i / W % H);
    c.base = i / ((i64)H * W) * OH * OW;
    covering_outputs(c.h, k, s, pad, OH, &c.oh0, &c.oh1);
    covering_outputs(c.w, k, s, pad, OW, &c.ow0, &c.ow1);
    return c;
}

/* Padding never wins; the first maximum wins and NaN wins over everything.
 * arg: the argmax's index in the plane, as a float (exact below 2^24). */
extern "C" __global__ void nr_maxpool_forward(const float *x, float *y, float *arg, i64 planes, int H, int W, int OH,
                                              int OW, int k, int s, int pad)
{
    i64 total = planes * OH * OW;
    GRID_STRIDE(i, total) {
        int ow = (int)(i % OW), oh = (int)(i / OW % OH);
        const float *plane = x + i / ((i64)OH * OW) * H * W;
        pool_window win = window_of(oh, ow, H, W, k, s, pad);
        float best = __int_as_float(0xff800000); /* -inf */
        int best_at = -1;
        for (int r = win.i0; r < win.i1; r++)
            for (int c = win.j0; c < win.j1; c++) {
                float v = plane[r * W + c];
                if (v > best || v != v) {
                    best = v;
                    best_at = r * W + c;
                }
            }
        y[i] = best;
        arg[i] = (float)best_at;
    }
}

extern "C" __global__ void nr_maxpool_backward(const float *dy, const float *arg, float *dx, i64 planes, int H, int W,
                                               int OH, int OW, int k, int s, int pad)
{
    i64 total = planes * H * W;
    GRID_STRIDE(i, total) {
        covering c = covering_of(i, H, W, OH, OW, k, s, pad);
        float me = (float)(c.h * W + c.w), sum = 0.0f;
        for (int oh = c.oh0; oh <= c.oh1; oh++)
            for (int ow = c.ow0; ow <= c.ow1; ow++) {
                i64 o = c.base + (i64)oh * OW + ow;
                if (arg[o] == me) sum += dy[o];
            }
        dx[i] = sum;
    }
}

/* count_include_pad: padding counts, the part past the padded edge does not. */
__device__ float avgpool_divisor(int oh, int ow, int H, int W, int k, int s, int pad)
{
    int hs = oh * s - pad, ws = ow * s - pad;
    int he = min(hs + k, H + pad), we = min(ws + k, W + pad);
    return (float)((he - hs) * (we - ws));
}

extern "C" __global__ void nr_avgpool_forward(const float *x, float *y, i64 planes, int H, int W, int OH, int OW,
                                              int k, int s, int pad)
{
    i64 total = planes * OH * OW;
    GRID_STRIDE(i, total) {
        int ow = (int)(i % OW), oh = (int)(i / OW % OH);
        const float *plane = x + i / ((i64)OH * OW) * H * W;
        pool_window win = window_of(oh, ow, H, W, k, s, pad);
        float sum = 0.0f;
        for (int r = win.i0; r < win.i1; r++)
            for (int c = win.j0; c < win.j1; c++) sum += plane[r * W + c];
        y[i] = sum / avgpool_divisor(oh, ow, H, W, k, s, pad);
    }
}

extern "C" __global__ void nr_avgpool_backward(const float *dy, float *dx, i64 planes, int H, int W, int OH, int OW,
                                               int k, int s, int pad)
{
    i64 total = planes * H * W;
    GRID_STRIDE(i, total) {
        covering c = covering_of(i, H, W, OH, OW, k, s, pad);
        float sum = 0.0f;
        for (int oh = c.oh0; oh <= c.oh1; oh++)
            for (int ow = c.ow0; ow <= c.ow1; ow++)
                sum += dy[c.base + (i64)oh * OW + ow] / avgpool_divisor(oh, ow, H, W, k, s, pad);
        dx[i] = sum;
    }
}

