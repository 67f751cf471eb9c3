/*
 * stats.h - rolling windows over the request lifecycle, for policies (gw.rps, gw.e2e_p95, ...).
 *
 * Fed by request.c on ARRIVED and DONE. Counts live in one bucket per second (a ring of
 * TLAB_STATS_MAX_WINDOW_S buckets); latencies in a ring of the most recent samples. Reading
 * quantiles sorts at most TLAB_STATS_SAMPLES values, and the result is cached for
 * TLAB_STATS_CACHE_US, so a policy that reads gw.e2e_p95 on every request costs a sort only a few
 * times a second, never per request.
 *
 * Definitions (docs/policies.md repeats them):
 *   rps         requests that arrived per second over the window
 *   drain_rate  requests that came back from the worker (were dispatched, then finished) per second
 *   error_rate  finished requests with status >= 500, divided by finished requests; requests whose
 *               client left (499) are excluded from both; 429 rejections are not errors (reject_rate)
 *   reject_rate finished requests with status 429, divided by finished requests (499 excluded)
 *   goodput     requests answered 2xx by the worker inside their deadline, per second
 *   slo_attainment  those, divided by finished requests (499 excluded; 1 when none finished):
 *               a request refused (429) or failed counts as missed
 *   quantiles   over finished requests in the window: e2e (arrival to done) and TTFT (arrival to the
 *               first response byte) of requests answered 2xx by the worker; queue wait (admitted to
 *               dispatched) of every dispatched request. In milliseconds; 0 when there is no sample.
 */
#ifndef TLAB_STATS_H
#define TLAB_STATS_H

#include <stdint.h>

#include "request/request.h"

#define TLAB_STATS_MAX_WINDOW_S 300
#define TLAB_STATS_SAMPLES 2048
#define TLAB_STATS_CACHE_US 100000

typedef struct tlab__stats_view {
    double rps, drain_rate, error_rate, reject_rate;
    double e2e_ms[3], ttft_ms[3], queue_wait_ms[3]; /* p50, p95, p99 */
    uint64_t completed;                             /* finished requests in the window (499 excluded) */
    double goodput, slo_attainment;
} tlab__stats_view;

/* Clears everything and sets the window (clamped to 1..TLAB_STATS_MAX_WINDOW_S seconds). */
void tlab__stats_init(int window_s);
int tlab__stats_window_s(void);
/* Lifecycle feed (request.c): only ARRIVED and DONE matter; internal requests are skipped. */
void tlab__stats_on_event(const tlab_request *r, tlab_event ev);
/* Raw feed, for tests and the feed above. Times in microseconds of tlab__now_us(); a 0 ttft or
 * queue wait means "none" (not dispatched, no byte). */
void tlab__stats_arrival(uint64_t now_us);
void tlab__stats_done(uint64_t now_us, int status, int dispatched, uint64_t e2e_us, uint64_t ttft_us, uint64_t queue_wait_us);
/* One request answered 2xx inside its deadline (the feed above calls it). */
void tlab__stats_good(uint64_t now_us);
/* The current view, recomputed when older than TLAB_STATS_CACHE_US. Valid until the next call. */
const tlab__stats_view *tlab__stats_get(void);
/* Drops the cached view so the next tlab__stats_get recomputes (tests). */
void tlab__stats_invalidate(void);

#endif
