#include "common.cuh"

/* ---- plain copies (flatten, SAM's restore) --------------------------------- */

extern "C" __global__ void nr_copy(const float *src, float *dst, i64 total)
{
    GRID_STRIDE(i, total) dst[i] = src[i];
}
