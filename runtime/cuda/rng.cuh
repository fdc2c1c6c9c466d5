/* The RNG's own test: draws of a stream, 4 words each (runtime/nr_math.h's Philox). */
#include "common.cuh"

/* Draws first..first+count-1 of a stream (4 words each): the RNG's own test. */
extern "C" __global__ void nr_rng_draws(nr_stream s, u64 first, i64 count, u32 *out)
{
    GRID_STRIDE(i, count) {
        nr_draw4 d = nr_stream_draw(s, first + (u64)i);
        for (int k = 0; k < 4; k++) out[4 * i + k] = d.w[k];
    }
}
