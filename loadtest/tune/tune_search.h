/*
 * tune_search.h - the highest request rate one worker configuration sustains inside the SLO.
 *
 * Bracket, then bisect. From a start rate the search multiplies by `growth` while probes pass
 * (or divides while they fail) until it holds a passing rate `lo` and a failing rate `hi`, then
 * halves [lo, hi] until (hi - lo) / lo <= tolerance. vLLM's benchmarks/auto_tune instead steps
 * the rate down 1 req/s at a time and judges p99 from 100 prompts; bisection needs
 * log2(range / tolerance) probes, and each probe here is sized for a sound p95 verdict and
 * re-run longer, once, when its verdict is still uncertain (tune_probe.h).
 *
 * Pure logic: probes come from a callback, so the unit tests drive it with a model worker.
 */
#ifndef TLAB_TUNE_SEARCH_H
#define TLAB_TUNE_SEARCH_H

#include <stddef.h>

#include "tune_probe.h"

/* Runs one probe (`phase`: "bracket", "bisect" or "retry", for progress). 0 with *out filled, or
 * -1 when the probe could not run (the search stops). */
typedef int (*tune_probe_fn)(void *ctx, const tune_probe_plan *plan, const char *phase, tune_probe *out);

typedef struct {
    double start_rate, min_rate, max_rate, growth, tolerance;
    long min_requests;
    double min_duration_s, max_duration_s;
    int early_stop;           /* probes may stop as soon as FAIL is certain */
    int retry_uncertain;      /* an uncertain verdict is re-run twice as long, once */
    double hint_lo, hint_hi;  /* a bracket believed from earlier work (0 = none): probed first */
    unsigned seed;
} tune_search_cfg;

typedef struct {
    double best_rate;         /* highest passing offered rate; 0 when none passed */
    double fail_rate;         /* lowest failing rate above it; 0 when max_rate passed */
    int infeasible;           /* the SLO failed even at min_rate */
    int hit_max;              /* max_rate passed: the true limit is higher */
    int aborted;              /* a probe could not run */
    tune_probe best_probe;    /* the passing probe at best_rate */
} tune_search_result;

/* Runs the search; every probe is also handed to on_probe (may be NULL) as it completes. */
void tune_search(const tune_search_cfg *cfg, tune_probe_fn probe, void *ctx,
                 void (*on_probe)(void *ctx, const tune_probe *p, const char *phase), tune_search_result *res);

/* Median of v[0..n) (v is sorted in place); 0 when n == 0. */
double tune_median(double *v, size_t n);

#endif
