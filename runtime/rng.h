/* One counter-based generator (Philox4x32-10) for everything random: weight
 * init, shuffling, the validation split, dropout, augmentation and noise.
 * A draw is a pure function of (seed, stream, index), so a seed reproduces a
 * run exactly, a resumed run draws what an uninterrupted one would, and a
 * GPU kernel can compute element i's draw without any shared state. */
#ifndef NR_RNG_H
#define NR_RNG_H
#include "nr_math.h"
#include <stddef.h>
#include <stdint.h>

/* nr_rng_purpose and nr_stream (key: the seed; hi: purpose, a, b) are
 * runtime/nr_math.h's, which the CUDA kernels share. */

/* Philox4x32-10 of counter ctr under key. */
void nr_philox(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

/* The stream for `purpose`; a and b tell its uses apart (layer, epoch,
 * step...). Draw i of a stream is Philox(key = seed, counter = (i, hi)). */
nr_stream nr_stream_make(uint64_t seed, nr_rng_purpose purpose, uint32_t a, uint32_t b);

/* Four 32-bit words of draw i. */
void nr_draw(nr_stream s, uint64_t i, uint32_t out[4]);
/* Uniform in [0, 1) from word 0 of draw i (24 bits). */
float nr_uniform(nr_stream s, uint64_t i);
/* Standard normal from words 0 and 1 of draw i (Box-Muller, double inside). */
float nr_normal(nr_stream s, uint64_t i);
/* Uniform integer in [0, n) from words 0 and 1 of draw i (64-bit multiply-shift). */
uint64_t nr_below(nr_stream s, uint64_t i, uint64_t n);
/* A uniformly random permutation of 0..n-1 (Fisher-Yates, draw i for slot i). */
void nr_permutation(nr_stream s, uint32_t *perm, size_t n);
#endif
