/*
 * test_autopilot.c - the autopilot's controller (core/src/dispatch/autopilot.c) against a
 * scripted worker: TPOT(n) = a + b n and TTFT(n) = c + d n, an endless backlog (the gate is
 * always full), requests that leave at the rate n / service. Checks that it converges to the
 * knee (the n whose service time is the target), re-adapts after a capacity drop, holds a band
 * under noisy readings, honours vLLM's own queue, and parses vLLM's /metrics text.
 */
#include <math.h>

#include "dispatch/autopilot.h"
#include "dispatch/worker_scrape.h"
#include "tlab_test.h"

typedef struct worker {
    double a, b, c, d; /* seconds */
    double tokens;
    double noise;      /* relative, uniform in [-noise, noise] */
    int max_num_seqs;  /* 0: unlimited */
    double in_flight;
    double itl_sum, itl_count, ttft_sum, ttft_count;
    unsigned seed;
} worker;

static double tpot(const worker *w, double n) {
    return w->a + w->b * n;
}

static double jitter(worker *w) {
    w->seed = w->seed * 1103515245u + 12345u;
    return 1.0 + w->noise * (2.0 * (double)((w->seed >> 8) & 0xffff) / 65535.0 - 1.0);
}

/* The knee: the n at which the typical request's service time is the target. */
static double knee(const worker *w, double target) {
    /* c + d n + tokens (a + b n) = target */
    return (target - w->c - w->tokens * w->a) / (w->d + w->tokens * w->b);
}

/* Runs `ticks` control steps of dt; returns the limit's min and max over the last `tail` ticks. */
static void run(tlab__autopilot *ap, worker *w, int ticks, int tail, double *lo, double *hi, double *mean) {
    const double dt = 0.1;
    *lo = 1e9;
    *hi = 0;
    *mean = 0;
    for (int i = 0; i < ticks; i++) {
        double limit = tlab__autopilot_limit(ap);
        /* the backlog refills every free slot at once; a lowered limit waits for requests to end */
        double running = w->max_num_seqs && w->in_flight > w->max_num_seqs ? w->max_num_seqs : w->in_flight;
        double service = w->c + w->d * running + w->tokens * tpot(w, running);
        double done = w->in_flight * dt / service;
        w->in_flight -= done;
        if (w->in_flight < limit)
            w->in_flight = limit;
        running = w->max_num_seqs && w->in_flight > w->max_num_seqs ? w->max_num_seqs : w->in_flight;
        /* the worker's histograms: every token made in the interval */
        double tokens_made = running * dt / tpot(w, running);
        w->itl_sum += tokens_made * tpot(w, running) * jitter(w);
        w->itl_count += tokens_made;
        w->ttft_sum += done * (w->c + w->d * running) * jitter(w);
        w->ttft_count += done;
        tlab__worker_reading r = {.running = running, .waiting = w->in_flight - running, .kv_usage = 0.1,
                                  .itl_sum = w->itl_sum, .itl_count = w->itl_count, .ttft_sum = w->ttft_sum,
                                  .ttft_count = w->ttft_count, .has_itl = 1, .has_ttft = 1};
        tlab__autopilot_on_worker(ap, &r);
        for (int k = 0; k < (int)(done + 0.5); k++) {
            tlab__autopilot_sample s = {.service_s = service, .ttft_s = 0, .tokens = (long)w->tokens, .ok = 1};
            tlab__autopilot_on_sample(ap, &s);
        }
        tlab__gate_state g = {.in_flight = w->in_flight, .waiting = 100, .worker_up = 1};
        tlab__autopilot_tick(ap, &g, dt);
        if (i >= ticks - tail) {
            double l = tlab__autopilot_limit(ap);
            *lo = l < *lo ? l : *lo;
            *hi = l > *hi ? l : *hi;
            *mean += l / tail;
        }
    }
}

static const tlab__autopilot_params params = {.slo_s = 5.0, .service_share = 0.6, .initial_limit = 8, .max_limit = 1024};

static void converges_to_the_knee(void) {
    worker w = {.a = 0.005, .b = 0.00025, .c = 0.03, .d = 0.002, .tokens = 200, .seed = 1};
    tlab__autopilot *ap = tlab__autopilot_new(&params);
    CHECK(tlab__autopilot_limit(ap) == 8); /* the conservative start */
    CHECK(tlab__autopilot_service_s(ap, 200) == 0); /* nothing measured: nothing judged */
    double lo, hi, mean, k = knee(&w, 3.0);
    run(ap, &w, 600, 100, &lo, &hi, &mean);
    CHECK_MSG(fabs(mean - k) / k < 0.15, "mean limit %.1f, knee %.1f", mean, k);
    CHECK_MSG((hi - lo) / mean < 0.2, "band %.0f..%.0f", lo, hi);
    double s = tlab__autopilot_service_s(ap, 200);
    CHECK_MSG(s > 2.4 && s < 3.3, "predicted service %.2f s at the knee (target 3 s)", s);

    /* A slower worker (a restart with fewer resources, a longer prompt mix): half the knee. */
    w.a *= 2;
    w.b *= 2;
    double k2 = knee(&w, 3.0);
    run(ap, &w, 300, 100, &lo, &hi, &mean); /* 30 s */
    CHECK_MSG(fabs(mean - k2) / k2 < 0.15, "after the drop: mean %.1f, knee %.1f", mean, k2);
    tlab__autopilot_free(ap);
}

static void noisy_readings_hold_a_band(void) {
    worker w = {.a = 0.005, .b = 0.00025, .c = 0.03, .d = 0.002, .tokens = 200, .noise = 0.2, .seed = 7};
    tlab__autopilot *ap = tlab__autopilot_new(&params);
    double lo, hi, mean, k = knee(&w, 3.0);
    run(ap, &w, 900, 300, &lo, &hi, &mean);
    CHECK_MSG(fabs(mean - k) / k < 0.15, "mean %.1f, knee %.1f", mean, k);
    CHECK_MSG((hi - lo) / mean < 0.21, "band %.0f..%.0f around %.1f under +-20%% noise", lo, hi, mean);
    tlab__autopilot_free(ap);
}

static void the_engines_own_queue_caps_the_gate(void) {
    /* A fast worker whose knee is far above its max_num_seqs: the gate stops at what it runs. */
    worker w = {.a = 0.002, .b = 0.00001, .c = 0.02, .d = 0.0001, .tokens = 200, .max_num_seqs = 32, .seed = 3};
    tlab__autopilot *ap = tlab__autopilot_new(&params);
    double lo, hi, mean;
    run(ap, &w, 600, 100, &lo, &hi, &mean);
    CHECK_MSG(hi <= 32 * 1.15 + 1, "the limit stays near max_num_seqs 32: %.0f..%.0f", lo, hi);
    CHECK_MSG(lo >= 16, "and does not collapse: %.0f..%.0f", lo, hi);
    tlab__autopilot_free(ap);
}

/* Ladder tier 3: the worker restarts with max_num_seqs halved; within 30 s (300 ticks) the gate
 * holds at the new cap and vLLM's queue is gone. */
static void settles_after_max_num_seqs_halved(void) {
    worker w = {.a = 0.002, .b = 0.00001, .c = 0.02, .d = 0.0001, .tokens = 200, .max_num_seqs = 64, .seed = 11};
    tlab__autopilot *ap = tlab__autopilot_new(&params);
    double lo, hi, mean;
    run(ap, &w, 600, 100, &lo, &hi, &mean);
    CHECK_MSG(hi <= 64 * 1.15 + 1 && lo >= 32, "before: near max_num_seqs 64: %.0f..%.0f", lo, hi);
    w.max_num_seqs = 32;
    w.itl_sum = w.itl_count = w.ttft_sum = w.ttft_count = 0; /* a new process: its counters start again */
    tlab__autopilot_on_worker_start(ap, 5.0);
    run(ap, &w, 300, 100, &lo, &hi, &mean);
    CHECK_MSG(hi <= 32 * 1.15 + 1 && lo >= 16, "30 s after the restart: near max_num_seqs 32: %.0f..%.0f", lo, hi);
    tlab__autopilot_free(ap);
}

static void restart_measures_again(void) {
    worker w = {.a = 0.005, .b = 0.00025, .c = 0.03, .d = 0.002, .tokens = 200, .seed = 5};
    tlab__autopilot *ap = tlab__autopilot_new(&params);
    double lo, hi, mean;
    run(ap, &w, 400, 10, &lo, &hi, &mean);
    int before = tlab__autopilot_limit(ap);
    tlab__autopilot_on_worker_start(ap, 42.0);
    CHECK(tlab__autopilot_limit(ap) <= before && tlab__autopilot_limit(ap) >= 8);
    CHECK(tlab__autopilot_view_get(ap)->cold_start_s == 42.0);
    CHECK(tlab__autopilot_view_get(ap)->samples == 0);
    CHECK(tlab__autopilot_service_s(ap, 0) == 0);
    /* nothing up: no change, no division by zero */
    tlab__gate_state g = {.in_flight = 0, .waiting = 5, .worker_up = 0};
    CHECK(tlab__autopilot_tick(ap, &g, 0.1) == 0);
    CHECK(tlab__autopilot_wait_s(ap, 100, 0) == 0);
    tlab__autopilot_free(ap);
}

static void fixed_gate_when_off(void) {
    tlab__autopilot_params p = params;
    p.fixed_limit = 64;
    tlab__autopilot *ap = tlab__autopilot_new(&p);
    worker w = {.a = 0.005, .b = 0.001, .c = 0.03, .d = 0.002, .tokens = 200, .seed = 9};
    double lo, hi, mean;
    run(ap, &w, 100, 100, &lo, &hi, &mean);
    CHECK(lo == 64 && hi == 64);
    tlab__autopilot_free(ap);
}

static void gateway_samples_alone(void) {
    /* No worker metrics: TPOT from the requests that came back. */
    tlab__autopilot *ap = tlab__autopilot_new(&params);
    tlab__autopilot_on_worker(ap, NULL);
    for (int i = 0; i < 20; i++) {
        tlab__autopilot_sample s = {.service_s = 2.1, .ttft_s = 0.1, .tokens = 201, .ok = 1};
        tlab__autopilot_on_sample(ap, &s);
    }
    tlab__gate_state g = {.in_flight = 8, .waiting = 3, .worker_up = 1};
    tlab__autopilot_tick(ap, &g, 0.1);
    const tlab__autopilot_view *v = tlab__autopilot_view_get(ap);
    CHECK_MSG(fabs(v->tpot_s - 0.010) < 1e-9, "tpot %.6f", v->tpot_s);
    CHECK_MSG(fabs(v->ttft_s - 0.1) < 1e-9, "ttft %.6f", v->ttft_s);
    CHECK(fabs(tlab__autopilot_service_s(ap, 100) - 1.1) < 1e-9);
    CHECK(v->drain_rate > 0);
    /* 8 slots all taken: the 1st waiting request goes at the next completion */
    CHECK(fabs(tlab__autopilot_wait_s(ap, 0, 8) - 1.0 / v->drain_rate) < 1e-9);
    CHECK(tlab__autopilot_wait_s(ap, 0, 3) == 0);
    tlab__autopilot_free(ap);
}

/* vLLM's inter-token histogram, scraped every 100 ms, on a worker that stalls for a prefill in
 * one interval of ten: nine intervals of 14 tokens 7 ms apart, then one of a single 90 ms gap.
 * What the worker streams is the token-weighted mean, (9 x 0.098 + 0.09) / 127 = 7.7 ms; the
 * mean of the intervals' own means is (9 x 7 + 90) / 10 = 15.3 ms, twice that, and a gate steered
 * by it shrinks for a slowness that is not there. Between scrapes (the gateway ticks faster than
 * it scrapes in front of a time-scaled simulator) the gateway's own, coarser samples must not
 * pull the worker's figure either. */
static void worker_tpot_is_token_weighted(void) {
    tlab__autopilot *ap = tlab__autopilot_new(&params);
    tlab__worker_reading r = {.running = 14, .kv_usage = 0.1, .has_itl = 1, .has_ttft = 1};
    tlab__gate_state g = {.in_flight = 14, .waiting = 0, .worker_up = 1};
    const double truth = (9 * 0.098 + 0.09) / 127;
    double lo = 1, hi = 0;
    tlab__autopilot_on_worker(ap, &r);
    for (int i = 0; i < 400; i++) {
        int stall = i % 10 == 9;
        r.itl_sum += stall ? 0.09 : 0.098;
        r.itl_count += stall ? 1 : 14;
        r.ttft_sum += 0.05;
        r.ttft_count += 1;
        tlab__autopilot_on_worker(ap, &r);
        tlab__autopilot_tick(ap, &g, 0.025);
        /* three more ticks before the next scrape, each with a slow request the gateway saw */
        for (int k = 0; k < 3; k++) {
            tlab__autopilot_sample s = {.service_s = 6.0, .ttft_s = 1.0, .tokens = 201, .ok = 1};
            tlab__autopilot_on_sample(ap, &s);
            tlab__autopilot_tick(ap, &g, 0.025);
        }
        double t = tlab__autopilot_view_get(ap)->tpot_s;
        if (i >= 200) {
            lo = t < lo ? t : lo;
            hi = t > hi ? t : hi;
        }
    }
    CHECK_MSG(lo > truth * 0.85 && hi < truth * 1.15, "controller TPOT %.2f..%.2f ms, streamed %.2f ms", lo * 1e3,
              hi * 1e3, truth * 1e3);
    double ttft = tlab__autopilot_view_get(ap)->ttft_s;
    CHECK_MSG(fabs(ttft - 0.05) < 1e-9, "TTFT %.4f s from the worker alone (the gateway saw 1 s)", ttft);
    tlab__autopilot_free(ap);
}

/* A controller that has seen one scrape of an idle worker whose KV cache is `kv_usage` full, and
 * that scrape as `r`, for the next ones. */
static tlab__autopilot *fed_autopilot(tlab__worker_reading *r, double kv_usage) {
    tlab__autopilot *ap = tlab__autopilot_new(&params);
    *r = (tlab__worker_reading){.kv_usage = kv_usage, .has_itl = 1, .has_ttft = 1};
    tlab__autopilot_on_worker(ap, r);
    return ap;
}

/* One scrape of a worker running `running` with `waiting` in its own queue, 5 ms a token (well
 * under the target), then a tick with the gate full. */
static void scrape_and_tick(tlab__autopilot *ap, tlab__worker_reading *r, double running, double waiting, double in_flight) {
    r->running = running;
    r->waiting = waiting;
    r->itl_sum += 0.005 * 20 * running;
    r->itl_count += 20 * running;
    r->ttft_sum += 0.03;
    r->ttft_count += 1;
    tlab__autopilot_on_worker(ap, r);
    tlab__gate_state g = {.in_flight = in_flight, .waiting = 50, .worker_up = 1};
    tlab__autopilot_tick(ap, &g, 0.1);
}

/* n scrapes of a worker that runs everything the gate lets through, nothing queued in vLLM. */
static void run_unqueued(tlab__autopilot *ap, tlab__worker_reading *r, int n) {
    for (int i = 0; i < n; i++)
        scrape_and_tick(ap, r, tlab__autopilot_limit(ap), 0, tlab__autopilot_limit(ap));
}

/* max_num_seqs 32, as vLLM shows it: the gate holds at 32 when vLLM queues, vLLM's waiting count
 * then reads 0 (the excess got scheduled) and the gate grows again, until it has seen the engine
 * queue twice at the same running count: then it stays there. */
static void learns_the_engines_ceiling(void) {
    tlab__worker_reading r;
    tlab__autopilot *ap = fed_autopilot(&r, 0.2);
    int holds = 0, above_after_second_hold = 0;
    for (int i = 0; i < 600; i++) {
        double limit = tlab__autopilot_limit(ap);
        double running = limit < 32 ? limit : 32, waiting = limit > 32 ? limit - 32 : 0;
        int before = tlab__autopilot_limit(ap);
        scrape_and_tick(ap, &r, running, waiting, limit);
        if (tlab__autopilot_limit(ap) == 32 && before > 32)
            holds++;
        if (holds >= 2 && tlab__autopilot_limit(ap) > 32)
            above_after_second_hold++;
    }
    CHECK_MSG(holds == 2, "held at the ceiling %d times (2: the second one teaches it)", holds);
    CHECK_MSG(above_after_second_hold == 0, "grew past the learned ceiling %d times", above_after_second_hold);
    CHECK(tlab__autopilot_limit(ap) == 32);
    /* It runs more after all (the KV cache, not max_num_seqs): the ceiling is forgotten. */
    scrape_and_tick(ap, &r, 40, 0, 32);
    run_unqueued(ap, &r, 20);
    CHECK_MSG(tlab__autopilot_limit(ap) > 32, "grows again once it ran more: %d", tlab__autopilot_limit(ap));
    tlab__autopilot_free(ap);
}

/* vLLM queues twice at the same running count because its KV cache is full: not a ceiling (it
 * moves with the requests' lengths), so the gate may grow again once the cache has room. */
static void a_full_kv_cache_is_not_a_ceiling(void) {
    tlab__worker_reading r;
    tlab__autopilot *ap = fed_autopilot(&r, 0.92); /* nearly full: it holds 32 */
    int holds = 0;
    for (int i = 0; i < 300; i++) {
        double limit = tlab__autopilot_limit(ap);
        scrape_and_tick(ap, &r, limit < 32 ? limit : 32, limit > 32 ? limit - 32 : 0, limit);
        holds += limit > 32 && tlab__autopilot_limit(ap) == 32;
    }
    CHECK_MSG(holds >= 3, "held at 32 %d times", holds);
    r.kv_usage = 0.3; /* shorter requests now: room in the cache, vLLM runs what it is given */
    run_unqueued(ap, &r, 100);
    CHECK_MSG(tlab__autopilot_limit(ap) > 40, "grows once the cache has room: %d", tlab__autopilot_limit(ap));
    tlab__autopilot_free(ap);
}

/* A worker that restarts: no scrape answers and nothing comes back, while the gate is full and
 * the last estimate says there is room. The limit must not grow on that estimate. */
static void no_growth_without_measurements(void) {
    tlab__worker_reading r;
    tlab__autopilot *ap = fed_autopilot(&r, 0.2);
    run_unqueued(ap, &r, 30);
    int before = tlab__autopilot_limit(ap);
    tlab__autopilot_on_worker(ap, NULL); /* the scrape fails */
    tlab__gate_state g = {.in_flight = before, .waiting = 50, .worker_up = 1};
    for (int i = 0; i < 40; i++)
        tlab__autopilot_tick(ap, &g, 0.025);
    CHECK_MSG(tlab__autopilot_limit(ap) <= before * 1.5, "limit %d -> %d with nothing measured", before,
              tlab__autopilot_limit(ap));
    tlab__autopilot_free(ap);
}

/* The supervisor drains the worker for a restart: it holds every waiting request while the ones
 * in flight finish fast. The gate is not what holds them back, so the limit must not grow. */
static void no_growth_while_something_else_holds(void) {
    tlab__worker_reading r;
    tlab__autopilot *ap = fed_autopilot(&r, 0.2);
    run_unqueued(ap, &r, 30);
    int before = tlab__autopilot_limit(ap);
    for (int i = 0; i < 40; i++) {
        double in_flight = before * (1.0 - (i + 1) / 40.0); /* draining, nothing dispatched */
        scrape_and_tick(ap, &r, in_flight, 0, in_flight);
    }
    CHECK_MSG(tlab__autopilot_limit(ap) <= before, "limit %d -> %d while the worker drained", before, tlab__autopilot_limit(ap));
    tlab__autopilot_free(ap);
}

/* A worker whose service time barely moves with the batch (a large GPU in its compute-bound
 * range: rtx4090-24gb with Qwen3-4B streamed 4.5 ms a token at 100 in flight and 4.8 at 128).
 * The knee is flat: 0.95 T to 1.05 T spans 75 to 125 in flight. Growing only under 0.95 T left
 * the gate wherever a cut put it in that span (81 here, 87 from the start; on the burst
 * benchmark's rtx4090 ramp 100-115 in flight against a best static gate of 128, 0.93-0.99x). */
static void a_flat_knee_is_found_again_after_a_cut(void) {
    /* 256 tokens (the typical request before any sample) at 9.4 ms + n x 23 us: S(0) = 0.8 T */
    worker w = {.a = 0.009375, .b = 0.0000234375, .tokens = 256};
    tlab__autopilot *ap = tlab__autopilot_new(&params);
    double lo, hi, mean, k = knee(&w, 3.0); /* 100 */
    run(ap, &w, 600, 100, &lo, &hi, &mean);
    CHECK_MSG(fabs(mean - k) / k < 0.1, "mean limit %.1f (%.0f..%.0f), knee %.1f", mean, lo, hi, k);
    /* A second of slow steps (a wave of long prefills), then the same worker again. */
    w.a *= 1.5;
    w.b *= 1.5;
    run(ap, &w, 10, 10, &lo, &hi, &mean);
    w.a /= 1.5;
    w.b /= 1.5;
    run(ap, &w, 20, 20, &lo, &hi, &mean);
    CHECK_MSG(lo < 0.8 * k, "the slow second cut the gate: lowest %.0f", lo);
    run(ap, &w, 600, 200, &lo, &hi, &mean);
    CHECK_MSG(fabs(mean - k) / k < 0.1, "after a cut: mean limit %.1f (%.0f..%.0f), knee %.1f", mean, lo, hi, k);
    tlab__autopilot_free(ap);
}

/* One scrape of a worker running `running`, `tpot` a token, nothing queued in vLLM. */
static void scrape_at(tlab__autopilot *ap, tlab__worker_reading *r, double running, double tpot) {
    r->running = running;
    r->waiting = 0;
    r->itl_sum += tpot * 20 * running;
    r->itl_count += 20 * running;
    r->ttft_sum += 0.03;
    r->ttft_count += 1;
    tlab__autopilot_on_worker(ap, r);
}

/* After a cut (the knee is near) the limit grows by at most 2 % per fresh measurement and not at
 * all on ticks between two scrapes (four ticks to a scrape in front of --time-scale 4): growing
 * 10 % a tick while the measurements lagged took the gate 1.6x past the knee in each burst. Once
 * the service time is far under the target (under 2/3) the knee it saw is stale and it climbs
 * fast again: a gate cut to 3 by a cold start's first measurements took 40 s to climb back at 2 %. */
static void grows_slowly_after_a_cut_until_far_under_the_target(void) {
    tlab__worker_reading r;
    tlab__autopilot *ap = fed_autopilot(&r, 0.2);
    int before = tlab__autopilot_limit(ap);
    run_unqueued(ap, &r, 5); /* slow start: 10 % a tick */
    CHECK_MSG(tlab__autopilot_limit(ap) >= before * 1.4, "slow start grew %d -> %d in 5 ticks", before, tlab__autopilot_limit(ap));
    /* 20 ms a token at the gate: 5.1 s of service against the 3 s target, a cut */
    double l = tlab__autopilot_view_get(ap)->limit;
    tlab__gate_state g = {.in_flight = floor(l), .waiting = 50, .worker_up = 1};
    for (int i = 0; i < 100 && tlab__autopilot_view_get(ap)->limit >= l; i++) {
        scrape_at(ap, &r, floor(l), 0.02);
        tlab__autopilot_tick(ap, &g, 0.025);
    }
    CHECK_MSG(tlab__autopilot_view_get(ap)->limit < l, "cut from %.1f: %.1f", l, tlab__autopilot_view_get(ap)->limit);
    /* 10 ms a token: 2.6 s of service, under the target (3 to 3.75 s) but not far under */
    double worst = 0, cut = tlab__autopilot_view_get(ap)->limit;
    int between = 0;
    for (int i = 0; i < 100; i++) {
        scrape_at(ap, &r, floor(tlab__autopilot_view_get(ap)->limit), 0.010);
        for (int k = 0; k < 4; k++) {
            double t0 = tlab__autopilot_view_get(ap)->limit;
            g.in_flight = floor(t0);
            tlab__autopilot_tick(ap, &g, 0.025);
            double growth = tlab__autopilot_view_get(ap)->limit / t0;
            between += k > 0 && growth > 1.0;
            worst = growth > worst ? growth : worst;
            cut = t0 < cut ? t0 : cut; /* the averages still remember 20 ms: cut again first */
        }
    }
    CHECK_MSG(worst <= 1.02 + 1e-9, "grew %.3fx in one tick after the cut", worst);
    CHECK_MSG(between == 0, "grew on %d ticks without a new measurement", between);
    CHECK_MSG(tlab__autopilot_view_get(ap)->limit > 2 * cut, "still grows: %.1f -> %.1f", cut, tlab__autopilot_view_get(ap)->limit);
    /* 2 ms a token: far under the target, 10 % a tick again */
    for (int i = 0; i < 30; i++)
        scrape_at(ap, &r, floor(tlab__autopilot_view_get(ap)->limit), 0.002);
    double t0 = tlab__autopilot_view_get(ap)->limit;
    g.in_flight = floor(t0);
    tlab__autopilot_tick(ap, &g, 0.025);
    g.in_flight = floor(tlab__autopilot_view_get(ap)->limit);
    tlab__autopilot_tick(ap, &g, 0.025); /* no scrape between: grows all the same */
    CHECK_MSG(tlab__autopilot_view_get(ap)->limit >= t0 * 1.2, "far under the target: %.1f -> %.1f in two ticks", t0,
              tlab__autopilot_view_get(ap)->limit);
    tlab__autopilot_free(ap);
}

/* The supervisor started the worker with max_num_seqs 32: the gate goes no higher, from the
 * start, without waiting to see vLLM queue twice (a tier-3 restart settled in 14 to 38 s on
 * that inference). */
static void a_known_max_num_seqs_caps_the_gate(void) {
    tlab__worker_reading r;
    tlab__autopilot *ap = fed_autopilot(&r, 0.2);
    run_unqueued(ap, &r, 40);
    CHECK_MSG(tlab__autopilot_limit(ap) > 64, "a fast worker: %d", tlab__autopilot_limit(ap));
    tlab__autopilot_on_worker_start(ap, 0);
    tlab__autopilot_set_max_num_seqs(ap, 32);
    CHECK_MSG(tlab__autopilot_limit(ap) == 32, "restarted with max_num_seqs 32: limit %d", tlab__autopilot_limit(ap));
    tlab__autopilot_on_worker(ap, &r);
    run_unqueued(ap, &r, 100);
    CHECK_MSG(tlab__autopilot_limit(ap) == 32, "room under the target, but max_num_seqs 32: limit %d", tlab__autopilot_limit(ap));
    /* vLLM queues twice at 20 (say, a KV cache full at 0.8): the inferred ceiling, 20 */
    for (int i = 0; i < 200; i++) {
        double limit = tlab__autopilot_limit(ap);
        r.kv_usage = 0.8;
        scrape_and_tick(ap, &r, limit < 20 ? limit : 20, limit > 20 ? limit - 20 : 0, limit);
    }
    CHECK_MSG(tlab__autopilot_limit(ap) == 20, "held at the inferred ceiling: %d", tlab__autopilot_limit(ap));
    /* it runs 25 after all: the inferred ceiling goes, the known max_num_seqs stays */
    r.kv_usage = 0.2;
    scrape_and_tick(ap, &r, 25, 0, 20);
    run_unqueued(ap, &r, 100);
    CHECK_MSG(tlab__autopilot_limit(ap) == 32, "back to max_num_seqs 32: %d", tlab__autopilot_limit(ap));
    tlab__autopilot_set_max_num_seqs(ap, 0); /* unknown: changes nothing */
    CHECK(tlab__autopilot_limit(ap) == 32);
    tlab__autopilot_on_worker_start(ap, 0); /* restarted without it: inferred again */
    tlab__autopilot_on_worker(ap, &r);
    run_unqueued(ap, &r, 40);
    CHECK_MSG(tlab__autopilot_limit(ap) > 32, "without max_num_seqs the gate grows again: %d", tlab__autopilot_limit(ap));
    tlab__autopilot_free(ap);
}

static void parses_vllm_metrics(void) {
    static const char text[] =
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 12.0\n"
        "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0\n"
        "vllm:num_requests_waiting{engine=\"1\",model_name=\"m\"} 1.0\n"
        "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.25\n"
        "vllm:inter_token_latency_seconds_sum{engine=\"0\",model_name=\"m\"} 4.5\n"
        "vllm:inter_token_latency_seconds_count{engine=\"0\",model_name=\"m\"} 900.0\n"
        "vllm:inter_token_latency_seconds_bucket{engine=\"0\",le=\"0.01\",model_name=\"m\"} 10.0\n"
        "vllm:time_to_first_token_seconds_sum{engine=\"0\",model_name=\"a b\"} 1.5\r\n"
        "vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"m\"} 10\n"
        "vllm:num_requests_running_extra 99\n"
        "tlab_sim:time_scale{engine=\"0\"} 5\n";
    tlab__worker_reading r;
    CHECK(tlab__worker_metrics_parse(text, sizeof text - 1, &r) == 0);
    CHECK(r.running == 12 && r.waiting == 4 && r.kv_usage == 0.25);
    CHECK(r.has_itl && r.itl_sum == 4.5 && r.itl_count == 900);
    CHECK(r.has_ttft && r.ttft_sum == 1.5 && r.ttft_count == 10);
    CHECK(r.time_scale == 5); /* tlab-sim's clock; a real vLLM leaves it 0 */
    static const char old[] = "vllm:num_requests_running 1\nvllm:num_requests_waiting 0\nvllm:gpu_cache_usage_perc 0.5\n"
                              "vllm:time_per_output_token_seconds_sum 2\nvllm:time_per_output_token_seconds_count 4\n";
    CHECK(tlab__worker_metrics_parse(old, sizeof old - 1, &r) == 0);
    CHECK(r.kv_usage == 0.5 && r.has_itl && r.itl_sum == 2 && !r.has_ttft);
    static const char garbage[] = "<html>not metrics</html>\nvllm:num_requests_running abc\n";
    CHECK(tlab__worker_metrics_parse(garbage, sizeof garbage - 1, &r) == -1);
    CHECK(tlab__worker_metrics_parse("", 0, &r) == -1);
}

int main(void) {
    converges_to_the_knee();
    noisy_readings_hold_a_band();
    a_flat_knee_is_found_again_after_a_cut();
    the_engines_own_queue_caps_the_gate();
    settles_after_max_num_seqs_halved();
    restart_measures_again();
    fixed_gate_when_off();
    gateway_samples_alone();
    worker_tpot_is_token_weighted();
    learns_the_engines_ceiling();
    no_growth_without_measurements();
    no_growth_while_something_else_holds();
    grows_slowly_after_a_cut_until_far_under_the_target();
    a_known_max_num_seqs_caps_the_gate();
    a_full_kv_cache_is_not_a_ceiling();
    parses_vllm_metrics();
    return tlab_test_finish();
}
