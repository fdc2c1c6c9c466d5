#include "rng.h"
#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void nr_philox(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4])
{
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

nr_stream nr_stream_make(uint64_t seed, nr_rng_purpose purpose, uint32_t a, uint32_t b)
{
    nr_stream s;
    s.key[0] = (uint32_t)seed;
    s.key[1] = (uint32_t)(seed >> 32);
    /* purpose in the top byte of hi[1]; a and b fill the rest */
    s.hi[0] = a;
    s.hi[1] = ((uint32_t)purpose << 24) ^ b;
    return s;
}

void nr_draw(nr_stream s, uint64_t i, uint32_t out[4])
{
    uint32_t ctr[4] = { (uint32_t)i, (uint32_t)(i >> 32), s.hi[0], s.hi[1] };
    nr_philox(s.key, ctr, out);
}

float nr_uniform(nr_stream s, uint64_t i)
{
    uint32_t w[4];
    nr_draw(s, i, w);
    return (float)(w[0] >> 8) * (1.0f / 16777216.0f);
}

float nr_normal(nr_stream s, uint64_t i)
{
    uint32_t w[4];
    nr_draw(s, i, w);
    /* u1 in (0, 1] so the log is finite */
    double u1 = ((double)w[0] + 1.0) / 4294967296.0;
    double u2 = (double)w[1] / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2));
}

uint64_t nr_below(nr_stream s, uint64_t i, uint64_t n)
{
    uint32_t w[4];
    nr_draw(s, i, w);
    uint64_t r = ((uint64_t)w[1] << 32) | w[0];
    return (uint64_t)(((unsigned __int128)r * n) >> 64);
}

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
