/*
 * arrival.c - arrival schedules by time rescaling (see arrival.h for why).
 */
#include "arrival.h"

#include <math.h>
#include <stddef.h>

const char *tlab_arrival_name(tlab_arrival_kind kind) {
    switch (kind) {
    case TLAB_ARRIVAL_CONSTANT: return "constant";
    case TLAB_ARRIVAL_POISSON: return "poisson";
    case TLAB_ARRIVAL_RAMP: return "ramp";
    case TLAB_ARRIVAL_STEP: return "step";
    case TLAB_ARRIVAL_CLOSED: return "closed";
    }
    return "?";
}

const char *tlab_arrival_check(const tlab_arrival_cfg *c) {
    if (c->kind == TLAB_ARRIVAL_CLOSED)
        return NULL;
    if (!(c->rate > 0) || !isfinite(c->rate))
        return "--rate must be a positive number of requests per second";
    if (c->burstiness < 0 || !isfinite(c->burstiness))
        return "--burstiness must be > 0";
    if (c->kind == TLAB_ARRIVAL_POISSON && c->burstiness == 0)
        return "--burstiness must be > 0";
    if (c->kind == TLAB_ARRIVAL_RAMP) {
        if (!(c->rate_end > 0) || !isfinite(c->rate_end))
            return "--rate-end must be a positive number of requests per second";
        if (!(c->ramp_s > 0))
            return "--ramp-time must be > 0";
    }
    if (c->kind == TLAB_ARRIVAL_STEP) {
        if (!(c->step_factor > 0) || !isfinite(c->step_factor))
            return "--step-factor must be > 0";
        if (!(c->step_period_s > 0) || !(c->step_len_s > 0) || c->step_len_s > c->step_period_s)
            return "--step-length must be > 0 and at most --step-period";
    }
    return NULL;
}

void tlab_arrival_init(tlab_arrival *a, const tlab_arrival_cfg *cfg, uint64_t seed) {
    a->cfg = *cfg;
    tlab_rng_seed(&a->rng, seed);
    a->u = 0;
}

double tlab_arrival_rate_at(const tlab_arrival_cfg *c, double t) {
    switch (c->kind) {
    case TLAB_ARRIVAL_RAMP:
        return t >= c->ramp_s ? c->rate_end : c->rate + (c->rate_end - c->rate) * t / c->ramp_s;
    case TLAB_ARRIVAL_STEP: {
        double phase = fmod(t, c->step_period_s);
        return phase >= c->step_period_s - c->step_len_s ? c->rate * c->step_factor : c->rate;
    }
    default:
        return c->rate;
    }
}

double tlab_arrival_expected(const tlab_arrival_cfg *c, double t) {
    switch (c->kind) {
    case TLAB_ARRIVAL_RAMP: {
        double slope = (c->rate_end - c->rate) / c->ramp_s;
        if (t <= c->ramp_s)
            return c->rate * t + 0.5 * slope * t * t;
        return c->rate * c->ramp_s + 0.5 * slope * c->ramp_s * c->ramp_s + c->rate_end * (t - c->ramp_s);
    }
    case TLAB_ARRIVAL_STEP: {
        double P = c->step_period_s, L = c->step_len_s, base = P - L;
        double per_period = c->rate * base + c->rate * c->step_factor * L;
        double k = floor(t / P), ph = t - k * P;
        double in = ph <= base ? c->rate * ph : c->rate * base + c->rate * c->step_factor * (ph - base);
        return k * per_period + in;
    }
    default:
        return c->rate * t;
    }
}

/* Lambda^-1(u): the time by which u arrivals are expected. */
static double inverse_expected(const tlab_arrival_cfg *c, double u) {
    switch (c->kind) {
    case TLAB_ARRIVAL_RAMP: {
        double slope = (c->rate_end - c->rate) / c->ramp_s;
        double at_end = c->rate * c->ramp_s + 0.5 * slope * c->ramp_s * c->ramp_s;
        if (u >= at_end)
            return c->ramp_s + (u - at_end) / c->rate_end;
        if (fabs(slope) < 1e-12)
            return u / c->rate;
        /* 0.5 s t^2 + r t - u = 0, the root in [0, ramp_s]; this form stays exact for small s. */
        return 2.0 * u / (c->rate + sqrt(c->rate * c->rate + 2.0 * slope * u));
    }
    case TLAB_ARRIVAL_STEP: {
        double P = c->step_period_s, L = c->step_len_s, base = P - L;
        double per_period = c->rate * base + c->rate * c->step_factor * L;
        double k = floor(u / per_period), rem = u - k * per_period;
        double ph = rem <= c->rate * base ? rem / c->rate : base + (rem - c->rate * base) / (c->rate * c->step_factor);
        return k * P + ph;
    }
    default:
        return u / c->rate;
    }
}

double tlab_arrival_next(tlab_arrival *a) {
    double k = a->cfg.burstiness;
    a->u += k > 0 ? tlab_rng_gamma(&a->rng, k, 1.0 / k) : 1.0;
    return inverse_expected(&a->cfg, a->u);
}
