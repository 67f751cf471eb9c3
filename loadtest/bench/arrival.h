/*
 * arrival.h - open-loop arrival schedules: when each request is due, in seconds from the start.
 *
 * Every schedule is a unit-rate renewal process mapped through the inverse of the cumulative rate
 * Lambda(t) = integral of rate(s) ds (time rescaling). Gaps in "operational time" are all 1
 * (constant spacing) or gamma(k, 1/k) (mean 1, coefficient of variation 1/sqrt(k)); the rate
 * shape (flat, ramp, step bursts) then only bends the time axis. So burstiness and rate shape
 * combine freely, and the expected number of arrivals in [0, t] is exactly Lambda(t).
 */
#ifndef TLAB_BENCH_ARRIVAL_H
#define TLAB_BENCH_ARRIVAL_H

#include "rng.h"

typedef enum {
    TLAB_ARRIVAL_CONSTANT, /* evenly spaced at --rate (unless --burstiness is given) */
    TLAB_ARRIVAL_POISSON,  /* gamma gaps, shape = burstiness (1 = Poisson), as vllm bench serve */
    TLAB_ARRIVAL_RAMP,     /* rate goes linearly from rate to rate_end over ramp_s, then stays */
    TLAB_ARRIVAL_STEP,     /* base rate, times step_factor during the last step_len_s of every step_period_s */
    TLAB_ARRIVAL_CLOSED,   /* not a schedule: fixed concurrency, handled by the runner */
} tlab_arrival_kind;

typedef struct {
    tlab_arrival_kind kind;
    double rate;        /* requests/s (ramp: the starting rate) */
    double burstiness;  /* gamma shape; 0 = evenly spaced gaps */
    double rate_end;    /* ramp */
    double ramp_s;      /* ramp */
    double step_factor; /* step */
    double step_len_s;  /* step */
    double step_period_s;
} tlab_arrival_cfg;

typedef struct {
    tlab_arrival_cfg cfg;
    tlab_rng rng;
    double u; /* operational time of the last arrival */
} tlab_arrival;

/* Checks a configuration; returns NULL if usable, else a message naming the bad value. */
const char *tlab_arrival_check(const tlab_arrival_cfg *cfg);
/* Starts a schedule. cfg must have passed tlab_arrival_check and must not be CLOSED. */
void tlab_arrival_init(tlab_arrival *a, const tlab_arrival_cfg *cfg, uint64_t seed);
/* The due time of the next request, in seconds from the start; strictly non-decreasing. */
double tlab_arrival_next(tlab_arrival *a);
/* The rate (requests/s) the schedule asks for at time t. */
double tlab_arrival_rate_at(const tlab_arrival_cfg *cfg, double t);
/* Lambda(t): expected arrivals in [0, t]. */
double tlab_arrival_expected(const tlab_arrival_cfg *cfg, double t);
const char *tlab_arrival_name(tlab_arrival_kind kind);

#endif
