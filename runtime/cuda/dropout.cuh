#include "common.cuh"

/* ---- dropout -------------------------------------------------------------------
 * saved: the factor (0 or keep) per element, then 1 when a mask was applied.
 * Element i's draw is draw i of the stream: per = elements per sample, and
 * the CPU's index sample * per + element is the flat index. */

/* The mask of training step sv->step comes from the stream (seed, purpose,
 * layer, 2 * step + pass): the CPU's, read from device memory so that a
 * captured graph draws each step's own mask. */
extern "C" __global__ void nr_dropout_forward(const float *x, float *y, float *saved, i64 total, float p, float keep,
                                              int active, u64 seed, u32 purpose, u32 layer, u32 pass,
                                              const nr_step_vars *sv)
{
    nr_stream stream = nr_stream_of(seed, purpose, layer, active ? (u32)(2 * sv->step + pass) : 0u);
    GRID_STRIDE(i, total) {
        float factor = 1.0f;
        if (active) {
            factor = nr_dropout_factor(nr_stream_uniform(stream, (u64)i), p, keep);
            saved[i] = factor;
            y[i] = x[i] * factor;
        } else {
            y[i] = x[i];
        }
    }
    if (blockIdx.x == 0 && threadIdx.x == 0) saved[total] = (float)active;
}

extern "C" __global__ void nr_dropout_backward(const float *dy, float *dx, const float *saved, i64 total)
{
    int active = saved[total] != 0.0f;
    GRID_STRIDE(i, total) dx[i] = active ? dy[i] * saved[i] : dy[i];
}

