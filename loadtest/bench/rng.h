/*
 * rng.h - a small seeded random number generator (xoshiro256**, seeded through splitmix64) and
 * the distributions the arrival schedules need. Deterministic for a given seed on every platform,
 * which libc's rand() is not.
 */
#ifndef TLAB_BENCH_RNG_H
#define TLAB_BENCH_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} tlab_rng;

/* Seeds the generator; any seed (including 0) gives a valid, distinct stream. */
void tlab_rng_seed(tlab_rng *r, uint64_t seed);
uint64_t tlab_rng_next(tlab_rng *r);
/* Uniform in the open interval (0, 1): never 0, so log() of it is always finite. */
double tlab_rng_uniform(tlab_rng *r);
/* Standard normal (Marsaglia polar method). */
double tlab_rng_normal(tlab_rng *r);
/* Gamma(shape, scale) with mean shape*scale (Marsaglia-Tsang; shape < 1 by the boost U^(1/shape)).
 * shape and scale must be > 0. */
double tlab_rng_gamma(tlab_rng *r, double shape, double scale);

#endif
