/*
 * rng.c - xoshiro256** (Blackman and Vigna) and the gamma distribution used for bursty arrivals.
 */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void tlab_rng_seed(tlab_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t tlab_rng_next(tlab_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double tlab_rng_uniform(tlab_rng *r) {
    /* 53 random bits, shifted by half a step so that 0 and 1 are both excluded. */
    return ((double)(tlab_rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double tlab_rng_normal(tlab_rng *r) {
    double u, v, s;
    do {
        u = 2.0 * tlab_rng_uniform(r) - 1.0;
        v = 2.0 * tlab_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return u * sqrt(-2.0 * log(s) / s);
}

double tlab_rng_gamma(tlab_rng *r, double shape, double scale) {
    if (shape < 1.0) {
        double u = tlab_rng_uniform(r);
        return tlab_rng_gamma(r, shape + 1.0, scale) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = tlab_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = tlab_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x)
            return d * v * scale;
        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v * scale;
    }
}
