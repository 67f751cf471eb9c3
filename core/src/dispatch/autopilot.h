/*
 * autopilot.h - the SLO autopilot's controller: the in-flight limit toward the worker, and the
 * predictions that deadline-aware admission judges a request by (docs/autopilot.md).
 *
 * A pure state machine: no clock, no I/O, no loop. Its owner (worker_signals.c) feeds it what
 * the gateway measured on each finished request, what the worker's /metrics said, and a tick
 * every interval; unit tests feed it a scripted worker the same way.
 *
 * The model: a request's service time (dispatch to done) is TTFT + tokens x TPOT, where TPOT is
 * the time per output token at the gate's concurrency. The limit is steered so the service time
 * of the typical request stays at `service_share` of the SLO, leaving the rest of the budget for
 * waiting in the gateway's queue, where deadlines and priorities apply. It grows only while the
 * gate is the bottleneck (saturated), shrinks at once when the target is missed, and never lets
 * vLLM keep its own waiting queue.
 */
#ifndef TLAB_AUTOPILOT_H
#define TLAB_AUTOPILOT_H

#include <stdint.h>

typedef struct tlab__autopilot_params {
    double slo_s;         /* the default end-to-end deadline (slo.e2e_ms) */
    double service_share; /* target: service time of the typical request <= this share of slo_s */
    double initial_limit; /* before any sample, and after the worker (re)starts */
    double max_limit;     /* a ceiling (autopilot.max_limit) */
    double fixed_limit;   /* > 0: the autopilot is off and the gate holds this (autopilot.enabled false) */
} tlab__autopilot_params;

/* One request that came back from the worker, as the gateway measured it. */
typedef struct tlab__autopilot_sample {
    double service_s; /* dispatch -> done */
    double ttft_s;    /* dispatch -> first token; 0 when unknown (not streamed) */
    long tokens;      /* output tokens asked for (max_tokens), <= 0 when unknown */
    int ok;           /* answered 2xx by the worker */
} tlab__autopilot_sample;

/* One scrape of the worker's /metrics (cumulative counters as the worker reports them). */
typedef struct tlab__worker_reading {
    double running, waiting, kv_usage;
    double itl_sum, itl_count;   /* vllm:inter_token_latency_seconds (or time_per_output_token) */
    double ttft_sum, ttft_count; /* vllm:time_to_first_token_seconds */
    int has_itl, has_ttft;
    double time_scale; /* tlab_sim:time_scale (simulated seconds per real one); 0 from a real vLLM */
} tlab__worker_reading;

/* What the gateway looks like at a tick. */
typedef struct tlab__gate_state {
    double in_flight;  /* requests at the worker now */
    double waiting;    /* requests waiting in the gateway */
    int worker_up;     /* the worker is running (or external) */
} tlab__gate_state;

/* What the predictions are made of; also what /metrics, the Lua policies and the plugins see. */
typedef struct tlab__autopilot_view {
    double limit;         /* the gate: most requests at the worker at once */
    double tpot_s;        /* measured time per output token at the current concurrency */
    double ttft_s;        /* measured time from dispatch to the first token */
    double ttft_min_s;    /* the smallest TTFT measured (one tick's mean) since the worker started */
    double typical_tokens;/* output tokens of the typical request (moving average of max_tokens) */
    double drain_rate;    /* requests per second the gate lets through when saturated (predicted) */
    double cold_start_s;  /* the worker's last measured start time, 0 when never seen */
    double target_s;      /* the service-time target of the last tick */
    int samples;          /* measurements taken so far since the last (re)start; 0: the conservative start */
    int worker_metrics;   /* 1 while the worker's /metrics answers and is used */
    const char *last_reason; /* why the limit last changed */
} tlab__autopilot_view;

typedef struct tlab__autopilot tlab__autopilot;

tlab__autopilot *tlab__autopilot_new(const tlab__autopilot_params *p);
void tlab__autopilot_free(tlab__autopilot *a);
void tlab__autopilot_set_params(tlab__autopilot *a, const tlab__autopilot_params *p);

void tlab__autopilot_on_sample(tlab__autopilot *a, const tlab__autopilot_sample *s);
/* A scrape that answered; `reading` NULL when the scrape failed (the gateway's own samples rule). */
void tlab__autopilot_on_worker(tlab__autopilot *a, const tlab__worker_reading *reading);
/* The worker became ready after `start_s` seconds of starting (0: unknown): estimates restart. */
void tlab__autopilot_on_worker_start(tlab__autopilot *a, double start_s);
/* The worker was started with this max_num_seqs (its supervisor knows; call after
 * tlab__autopilot_on_worker_start, which forgets it): vLLM runs no more at once, so the gate goes
 * no higher. Without it the ceiling is inferred from vLLM queueing twice at the same count. */
void tlab__autopilot_set_max_num_seqs(tlab__autopilot *a, double max_num_seqs);
/* The control step; `dt_s` since the previous one. Returns 1 when the limit changed. */
int tlab__autopilot_tick(tlab__autopilot *a, const tlab__gate_state *g, double dt_s);

/* The gate: at most this many requests at the worker (>= 1). */
int tlab__autopilot_limit(const tlab__autopilot *a);
const tlab__autopilot_view *tlab__autopilot_view_get(const tlab__autopilot *a);
/* Predicted seconds from dispatch to done of a request asking for `tokens` (<= 0: typical). */
double tlab__autopilot_service_s(const tlab__autopilot *a, long tokens);
/* Predicted seconds a request waits in the gateway when `ahead` requests go before it and
 * `in_flight` are at the worker. */
double tlab__autopilot_wait_s(const tlab__autopilot *a, double ahead, double in_flight);

#endif
