/* The draws themselves are runtime/nr_math.h's, which the kernels share. */
#include "rng.h"

void nr_philox(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4])
{
    nr_draw4 d = nr_philox4x32_10(key[0], key[1], ctr[0], ctr[1], ctr[2], ctr[3]);
    for (int k = 0; k < 4; k++) out[k] = d.w[k];
}

nr_stream nr_stream_make(uint64_t seed, nr_rng_purpose purpose, uint32_t a, uint32_t b)
{
    return nr_stream_of(seed, (unsigned)purpose, a, b);
}

void nr_draw(nr_stream s, uint64_t i, uint32_t out[4])
{
    nr_draw4 d = nr_stream_draw(s, i);
    for (int k = 0; k < 4; k++) out[k] = d.w[k];
}

float nr_uniform(nr_stream s, uint64_t i) { return nr_stream_uniform(s, i); }

float nr_normal(nr_stream s, uint64_t i) { return nr_stream_normal(s, i); }

uint64_t nr_below(nr_stream s, uint64_t i, uint64_t n) { return nr_stream_below(s, i, n); }

void nr_permutation(nr_stream s, uint32_t *perm, size_t n)
{
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)nr_below(s, i - 1, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
