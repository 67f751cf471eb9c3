/*
 * test_bench_arrival.c - arrival schedules: rates, ramps and step bursts deliver the expected
 * counts, and gamma gaps have the mean and coefficient of variation the burstiness asks for
 * (CV = 1/sqrt(burstiness)), over many draws, within statistical tolerance.
 */
#include <math.h>

#include "arrival.h"
#include "rng.h"
#include "tlab_test.h"

/* Counts arrivals in [0, t_end) and gathers gap statistics. */
static size_t count(const tlab_arrival_cfg *c, uint64_t seed, double t_end, double *mean_gap, double *cv) {
    tlab_arrival a;
    tlab_arrival_init(&a, c, seed);
    double prev = 0, sum = 0, sum2 = 0;
    size_t n = 0;
    for (;;) {
        double t = tlab_arrival_next(&a);
        if (t >= t_end)
            break;
        CHECK_MSG(t >= prev, "schedule went backwards: %g after %g", t, prev);
        double g = t - prev;
        sum += g;
        sum2 += g * g;
        prev = t;
        n++;
    }
    if (mean_gap) {
        double m = sum / (double)n;
        *mean_gap = m;
        double var = sum2 / (double)n - m * m;
        *cv = sqrt(var > 0 ? var : 0) / m; /* rounding can make an exact 0 slightly negative */
    }
    return n;
}

static void test_constant(void) {
    tlab_arrival_cfg c = {.kind = TLAB_ARRIVAL_CONSTANT, .rate = 100};
    CHECK(tlab_arrival_check(&c) == NULL);
    double m, cv;
    size_t n = count(&c, 1, 10.0, &m, &cv);
    CHECK_MSG(n == 999 || n == 1000, "constant 100/s for 10 s gave %zu", n);
    CHECK(fabs(m - 0.01) < 1e-9);
    CHECK(cv < 1e-6);
}

static void test_poisson_and_burstiness(void) {
    const double ks[] = {0.25, 0.5, 1, 2, 4};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        tlab_arrival_cfg c = {.kind = TLAB_ARRIVAL_POISSON, .rate = 200, .burstiness = ks[i]};
        CHECK(tlab_arrival_check(&c) == NULL);
        double m, cv;
        size_t n = count(&c, 7 + i, 1000.0, &m, &cv); /* ~200000 draws */
        double want_cv = 1.0 / sqrt(ks[i]);
        CHECK_MSG(fabs((double)n / 200000.0 - 1) < 0.02, "k=%g: %zu arrivals, want ~200000", ks[i], n);
        CHECK_MSG(fabs(m * 200 - 1) < 0.02, "k=%g: mean gap %g", ks[i], m);
        CHECK_MSG(fabs(cv / want_cv - 1) < 0.05, "k=%g: CV %g, want %g", ks[i], cv, want_cv);
    }
}

static void test_seeds(void) {
    tlab_arrival_cfg c = {.kind = TLAB_ARRIVAL_POISSON, .rate = 50, .burstiness = 1};
    tlab_arrival a, b, d;
    tlab_arrival_init(&a, &c, 42);
    tlab_arrival_init(&b, &c, 42);
    tlab_arrival_init(&d, &c, 43);
    int same = 1, differ = 0;
    for (int i = 0; i < 1000; i++) {
        double x = tlab_arrival_next(&a), y = tlab_arrival_next(&b), z = tlab_arrival_next(&d);
        same &= x == y;
        differ |= x != z;
    }
    CHECK(same);
    CHECK(differ);
}

static void test_ramp(void) {
    /* 10 -> 110 req/s over 100 s: 6000 arrivals; in the last 10 s of the ramp ~1050. */
    tlab_arrival_cfg c = {.kind = TLAB_ARRIVAL_RAMP, .rate = 10, .rate_end = 110, .ramp_s = 100};
    CHECK(tlab_arrival_check(&c) == NULL);
    CHECK(fabs(tlab_arrival_expected(&c, 100) - 6000) < 1e-6);
    CHECK(fabs(tlab_arrival_rate_at(&c, 50) - 60) < 1e-9);
    size_t n = count(&c, 3, 100.0, NULL, NULL);
    CHECK_MSG(n >= 5999 && n <= 6000, "ramp gave %zu, want 6000", n);
    size_t first10 = count(&c, 3, 10.0, NULL, NULL);
    CHECK_MSG(first10 >= 149 && first10 <= 150, "ramp first 10 s gave %zu, want 150", first10);
    /* After the ramp the rate stays at rate_end. */
    size_t n120 = count(&c, 3, 120.0, NULL, NULL);
    CHECK_MSG(n120 >= 8199 && n120 <= 8200, "ramp + 20 s at 110 gave %zu", n120);
    /* Downward ramp with Poisson gaps. */
    tlab_arrival_cfg d = {.kind = TLAB_ARRIVAL_RAMP, .rate = 200, .rate_end = 20, .ramp_s = 100, .burstiness = 1};
    size_t nd = count(&d, 9, 100.0, NULL, NULL); /* expected 11000, sd ~105 */
    CHECK_MSG(fabs((double)nd - 11000) < 500, "poisson down-ramp gave %zu, want ~11000", nd);
}

static void test_step(void) {
    /* base 10/s, 3x for the last 20 s of every 60 s: 40*10 + 20*30 = 1000 per period. */
    tlab_arrival_cfg c = {.kind = TLAB_ARRIVAL_STEP, .rate = 10, .step_factor = 3, .step_len_s = 20, .step_period_s = 60};
    CHECK(tlab_arrival_check(&c) == NULL);
    CHECK(fabs(tlab_arrival_rate_at(&c, 10) - 10) < 1e-9);
    CHECK(fabs(tlab_arrival_rate_at(&c, 45) - 30) < 1e-9);
    size_t n = count(&c, 5, 300.0, NULL, NULL);
    CHECK_MSG(n >= 4999 && n <= 5000, "step gave %zu, want 5000", n);
    /* Within the burst the rate is 3x: count arrivals in [40, 60) of the first period. */
    tlab_arrival a;
    tlab_arrival_init(&a, &c, 5);
    size_t in_burst = 0, before = 0;
    for (double t = tlab_arrival_next(&a); t < 60; t = tlab_arrival_next(&a)) {
        if (t >= 40)
            in_burst++;
        else
            before++;
    }
    CHECK_MSG(in_burst >= 599 && in_burst <= 601, "burst had %zu, want 600", in_burst);
    CHECK_MSG(before >= 399 && before <= 401, "base had %zu, want 400", before);
}

static void test_checks(void) {
    tlab_arrival_cfg c = {.kind = TLAB_ARRIVAL_CONSTANT, .rate = 0};
    CHECK(tlab_arrival_check(&c) != NULL);
    c = (tlab_arrival_cfg){.kind = TLAB_ARRIVAL_POISSON, .rate = 1, .burstiness = 0};
    CHECK(tlab_arrival_check(&c) != NULL);
    c = (tlab_arrival_cfg){.kind = TLAB_ARRIVAL_STEP, .rate = 1, .step_factor = 3, .step_len_s = 70, .step_period_s = 60};
    CHECK(tlab_arrival_check(&c) != NULL);
    c = (tlab_arrival_cfg){.kind = TLAB_ARRIVAL_RAMP, .rate = 1, .rate_end = 0, .ramp_s = 10};
    CHECK(tlab_arrival_check(&c) != NULL);
}

static void test_gamma_moments(void) {
    /* Gamma(k, theta): mean k theta, variance k theta^2. */
    tlab_rng r;
    tlab_rng_seed(&r, 11);
    const double ks[] = {0.3, 1, 5};
    for (size_t i = 0; i < 3; i++) {
        double sum = 0, sum2 = 0;
        int n = 200000;
        for (int j = 0; j < n; j++) {
            double x = tlab_rng_gamma(&r, ks[i], 2.0);
            CHECK(x >= 0);
            sum += x;
            sum2 += x * x;
        }
        double m = sum / n, var = sum2 / n - m * m;
        CHECK_MSG(fabs(m / (2 * ks[i]) - 1) < 0.02, "gamma k=%g mean %g", ks[i], m);
        CHECK_MSG(fabs(var / (4 * ks[i]) - 1) < 0.05, "gamma k=%g var %g", ks[i], var);
    }
}

int main(void) {
    test_constant();
    test_poisson_and_burstiness();
    test_seeds();
    test_ramp();
    test_step();
    test_checks();
    test_gamma_moments();
    return tlab_test_finish();
}
