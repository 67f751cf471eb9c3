/*
 * gate.c - runs the autopilot on the loop (gate.h): the control timer, the worker scrape, the
 * samples, the cold-start clock and the gateway_autopilot_* metrics.
 */
#include "dispatch/gate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/metrics_registry.h"
#include "dispatch/retry_promises.h"
#include "common/log.h"
#include "dispatch/pool.h"
#include "dispatch/worker_scrape.h"
#include "hooks/plugin_host.h"
#include "relay/relay.h"
#include "relay/splice.h"
#include "request/request.h"
#include "request/stats.h"

#define LOG_EVERY_US 1000000 /* limit changes are logged at most this often (and on a new reason) */
/* A request is admitted when its predicted finish, this much longer, fits its deadline. The
 * prediction is a mean and the SLO a p95: without a margin the served requests' p95 ran 5 to
 * 20 % past the SLO in the burst benchmark (docs/autopilot.md), static gates and adaptive alike. */
#define PREDICTION_MARGIN 1.15
#define MIN_TICK_US 10000 /* the fastest tick, whatever the worker's clock */

static struct {
    struct event *timer;
    tlab__upstream *up;
    size_t (*waiting)(void);
    void (*wake)(void);
    double target_s;
    uint64_t slo_us, interval_us, stall_us, last_tick_us;
    tlab__autopilot_params params; /* the latest config's: a worker discovery adds starts from them */
    int worker_metrics;            /* autopilot.worker_metrics */
    long scrape_timeout_ms;
    double last_promise_s; /* the latest Retry-After promised, in seconds of tlab__now_us */
    /* The last refusal tlab__gate_judge gave a Retry-After: its request, the whole seconds and
     * the whole milliseconds behind them (tlab__gate_add_retry_after_ms). */
    const tlab_request *refused;
    int refused_retry_s;
    double refused_retry_ms;
    tlab__autopilot_view view; /* the pool's: each worker's view summed or averaged (aggregate()) */
    tlab_metric *m_demand, *m_per_worker; /* the demand signal summed across replicas (docs/kubernetes.md) */
    tlab_metric *m_limit, *m_tpot, *m_ttft, *m_drain, *m_wait, *m_scrape, *m_attain, *m_goodput;
    tlab_metric *m_w_ttft, *m_w_tpot, *m_stalls;
    tlab_metric *m_promises; /* Retry-After promises made and claimed (retry_promises.h) */
} g;

static const double ttft_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const double tpot_buckets[] = {0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5};

static void params_from(const tlab__config *cfg, tlab__autopilot_params *p) {
    p->slo_s = (double)cfg->slo_e2e_ms / 1000.0;
    p->service_share = (double)cfg->autopilot_service_share_pct / 100.0;
    /* tlab-tune's measured knee (autopilot.start_file), else the conservative start */
    p->initial_limit = (double)(cfg->autopilot_start_limit > 0 ? cfg->autopilot_start_limit : cfg->autopilot_initial_limit);
    p->max_limit = (double)cfg->autopilot_max_limit;
    p->fixed_limit = cfg->autopilot_enabled ? 0 : (double)cfg->autopilot_max_limit;
}

static int worker_up(int ws) {
    return ws < 0 || ws == TLAB_WORKER_RUNNING;
}

static double fastest_clock(void) {
    double scale = 1;
    for (size_t i = 0; i < tlab__pool_size(); i++)
        if (tlab__pool_worker_at(i)->time_scale > scale)
            scale = tlab__pool_worker_at(i)->time_scale;
    return scale;
}

/* The controller's time constants (growth per tick, the EWMAs) are meant for the worker's
 * clock: in front of tlab-sim --time-scale F it ticks F times as often, or every adaptation
 * would take F times longer in the workload's time than in front of a real GPU (at F = 4 a
 * limit halved by a transient took 12 simulated seconds to climb back, against 3 at F = 1). */
static uint64_t tick_us(void) {
    uint64_t us = (uint64_t)((double)g.interval_us / fastest_clock());
    return us < MIN_TICK_US ? MIN_TICK_US : us;
}

static void arm_timer(void) {
    uint64_t us = tick_us();
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    event_add(g.timer, &tv);
}

/* "autopilot" with one worker, "autopilot[name]" in a pool: the logs read as before for one. */
static const char *who(const tlab__pool_worker *w, char *buf, size_t cap) {
    if (tlab__pool_single())
        return "autopilot";
    snprintf(buf, cap, "autopilot[%s]", w->name);
    return buf;
}

static void on_reading(void *arg, const tlab__worker_reading *reading, const char *why) {
    tlab__pool_worker *w = arg;
    char name[96];
    double scale = reading && reading->time_scale > 0 ? reading->time_scale : 1;
    if (reading && scale != w->time_scale) {
        w->time_scale = scale;
        arm_timer();
        tlab__log(TLAB_LOG_INFO, NULL, "%s: the worker's clock runs %gx real time: ticking every %.0f ms", who(w, name, sizeof name),
                  scale, (double)tick_us() / 1e3);
    }
    if (!reading && !w->logged_scrape_failure) {
        tlab__log(TLAB_LOG_WARN, NULL, "%s: the worker's metrics are not usable (%s): steering by the gateway's own "
                                       "measurements until they are (logged once)", who(w, name, sizeof name), why);
        w->logged_scrape_failure = 1;
    } else if (reading && w->logged_scrape_failure) {
        tlab__log(TLAB_LOG_INFO, NULL, "%s: the worker's metrics answer again", who(w, name, sizeof name));
        w->logged_scrape_failure = 0;
    }
    if (reading && reading->time_scale > 0 && reading->time_scale != 1) {
        /* tlab-sim with --time-scale F: its durations are simulated seconds, F per real one. */
        tlab__worker_reading scaled = *reading;
        scaled.itl_sum /= reading->time_scale;
        scaled.ttft_sum /= reading->time_scale;
        tlab__autopilot_on_worker(w->ap, &scaled);
        return;
    }
    tlab__autopilot_on_worker(w->ap, reading);
}

static void watch_worker(tlab__pool_worker *w, uint64_t now) {
    int ws = tlab__pool_worker_state(w);
    if (worker_up(ws) && !worker_up(w->prev_state) && w->prev_state != -2) {
        double start_s = w->left_running_us ? (double)(now - w->left_running_us) / 1e6 : 0;
        /* Only a real start (from idle or starting) measures the cold start; a wake is shorter. */
        tlab__autopilot_on_worker_start(w->ap, w->prev_state == TLAB_WORKER_STARTING ? start_s : 0);
        /* Known from the command line the gateway started it with: no need to infer it. */
        tlab__autopilot_set_max_num_seqs(w->ap, (double)tlab__pool_worker_max_num_seqs(w));
        w->left_running_us = 0;
        w->up_since_us = now;
    } else if (!worker_up(ws) && (worker_up(w->prev_state) || w->prev_state == -2)) {
        w->left_running_us = now;
    }
    if (ws == TLAB_WORKER_STARTING && w->prev_state != TLAB_WORKER_STARTING)
        w->left_running_us = now; /* the start clock runs from the spawn */
    w->prev_state = ws;
}

/* In flight and not a byte for pool.stall_ms: the worker hangs (vLLM #53130: an engine that
 * stopped scheduling while /health still answers). Out of routing until it sends again, and
 * while it stays stalled, each of its requests that has waited stall_ms there without sending
 * its client anything goes to another worker (a breaker's trial sent to it included). */
static void watch_progress(tlab__pool_worker *w, uint64_t now) {
    if (tlab__pool_single() || !w->in_flight || now - w->last_progress_us < g.stall_us)
        return;
    if (!w->stalled) {
        w->stalled = 1;
        tlab__breaker_eject(&w->breaker, now);
        tlab__pool_count_ejection(w);
        tlab__metric_add(g.m_stalls, w->labels, 1);
        tlab__log(TLAB_LOG_WARN, NULL, "worker %s stalled: %zu request(s) in flight and no byte for %.1f s; out of routing",
                  w->name, w->in_flight, (double)(now - w->last_progress_us) / 1e6);
    }
    /* The walk is over every live request, at most 4 times per stall_ms while a worker is
     * stalled: rare, and cheaper than keeping a list per worker on the hot path. */
    if (now - w->last_stall_sweep_us < g.stall_us / 4)
        return;
    w->last_stall_sweep_us = now;
    char why[160];
    snprintf(why, sizeof why, "worker %s stalled (no byte for pool.stall_ms = %llu ms)", w->name,
             (unsigned long long)(g.stall_us / 1000));
    tlab_request *next;
    for (tlab_request *r = tlab__requests_live(); r; r = next) {
        next = r->live_next;
        if (r->worker_id == w->id && r->phase == TLAB_PHASE_UPSTREAM && !r->internal &&
            now - r->t[TLAB_EV_DISPATCHED] >= g.stall_us)
            tlab__relay_give_up(r, why);
    }
}

static double pool_in_flight(void) {
    double n = 0;
    for (size_t i = 0; i < tlab__pool_size(); i++)
        n += (double)tlab__pool_worker_at(i)->in_flight;
    return n;
}

/* The pool's view: limits and drain rates add up; times are averaged, weighted by the limit,
 * over the workers that measured them; the fastest first token is the pool's fastest. */
static void aggregate(void) {
    tlab__autopilot_view a = {0};
    double weight = 0, ttft_w = 0;
    uint64_t now = tlab__now_us();
    int metrics_all = 1, any = 0;
    for (size_t i = 0; i < tlab__pool_size(); i++) {
        const tlab__pool_worker *w = tlab__pool_worker_at(i);
        if (!w->ap)
            continue;
        const tlab__autopilot_view *v = tlab__autopilot_view_get(w->ap);
        if (i == 0) {
            a.last_reason = v->last_reason;
            a.cold_start_s = v->cold_start_s;
        }
        if (!tlab__pool_worker_routable(w, now))
            continue;
        double lim = (double)tlab__autopilot_limit(w->ap);
        any = 1;
        a.limit += lim;
        a.drain_rate += v->drain_rate;
        a.samples += v->samples;
        a.target_s = v->target_s > a.target_s ? v->target_s : a.target_s;
        metrics_all &= v->worker_metrics;
        if (v->tpot_s > 0) {
            a.tpot_s += lim * v->tpot_s;
            a.typical_tokens += lim * v->typical_tokens;
            weight += lim;
        }
        if (v->ttft_s > 0) {
            a.ttft_s += lim * v->ttft_s;
            ttft_w += lim;
        }
        if (v->ttft_min_s > 0 && (a.ttft_min_s <= 0 || v->ttft_min_s < a.ttft_min_s))
            a.ttft_min_s = v->ttft_min_s;
    }
    if (weight > 0) {
        a.tpot_s /= weight;
        a.typical_tokens /= weight;
    } else if (tlab__pool_size() && tlab__pool_worker_at(0)->ap) {
        a.typical_tokens = tlab__autopilot_view_get(tlab__pool_worker_at(0)->ap)->typical_tokens;
    }
    if (ttft_w > 0)
        a.ttft_s /= ttft_w;
    a.worker_metrics = any && metrics_all;
    g.view = a;
}

typedef struct demand {
    double queued, in_flight, in_flight_tokens, typical_tokens, per_worker;
    int members, ready;
} demand;

/* What the gateway asks of the pool now (GET /admin/demand and the gateway_demand_* gauges). */
static demand measure_demand(void) {
    uint64_t now = tlab__now_us();
    demand d = {0};
    double limit_sum = 0;
    for (size_t i = 0; i < tlab__pool_size(); i++) {
        const tlab__pool_worker *w = tlab__pool_worker_at(i);
        d.in_flight += (double)w->in_flight;
        d.in_flight_tokens += w->in_flight_tokens;
        if (!w->member)
            continue;
        d.members++;
        if (tlab__pool_worker_routable(w, now) && worker_up(tlab__pool_worker_state(w))) {
            d.ready++;
            limit_sum += (double)tlab__autopilot_limit(w->ap);
        }
    }
    d.queued = g.waiting ? (double)g.waiting() : 0;
    d.typical_tokens = g.view.typical_tokens > 0 ? g.view.typical_tokens : 256;
    /* One worker's capacity: the ready workers' mean gate (what the autopilot learned holds the
     * SLO), or the configured start before any worker runs (scale from zero). */
    d.per_worker = d.ready ? limit_sum / d.ready : g.params.initial_limit;
    return d;
}

static void publish(void) {
    aggregate();
    tlab__metric_set(g.m_limit, NULL, g.view.limit);
    tlab__metric_set(g.m_tpot, NULL, g.view.tpot_s);
    tlab__metric_set(g.m_ttft, NULL, g.view.ttft_s);
    tlab__metric_set(g.m_drain, NULL, g.view.drain_rate);
    tlab__metric_set(g.m_wait, NULL, tlab__gate_wait_s(g.waiting ? (double)g.waiting() : 0));
    tlab__metric_set(g.m_scrape, NULL, g.view.worker_metrics);
    const tlab__stats_view *sv = tlab__stats_get();
    tlab__metric_set(g.m_attain, NULL, sv->slo_attainment);
    tlab__metric_set(g.m_goodput, NULL, sv->goodput);
    demand d = measure_demand();
    tlab__metric_set(g.m_demand, NULL, d.queued + d.in_flight);
    tlab__metric_set(g.m_per_worker, NULL, d.per_worker);
    uint64_t made, claimed;
    tlab__promises_counts(&made, &claimed);
    tlab__metric_set(g.m_promises, "outcome=\"made\"", (double)made);
    tlab__metric_set(g.m_promises, "outcome=\"claimed\"", (double)claimed);
    tlab__pool_publish();
}

/* One worker's control step. `waiting` is its share of the gateway's queue. */
static int tick_worker(tlab__pool_worker *w, uint64_t now, double dt, double waiting) {
    watch_worker(w, now);
    watch_progress(w, now);
    int before = tlab__autopilot_limit(w->ap);
    int ws = tlab__pool_worker_state(w);
    tlab__gate_state st = {(double)w->in_flight, waiting, worker_up(ws) && tlab__pool_worker_routable(w, now)};
    if (tlab__autopilot_tick(w->ap, &st, dt)) {
        const tlab__autopilot_view *v = tlab__autopilot_view_get(w->ap);
        if (now - w->last_log_us >= LOG_EVERY_US || v->last_reason != w->last_logged_reason) {
            char name[96];
            tlab__log(TLAB_LOG_INFO, NULL,
                      "%s: limit %d -> %d: %s [in_flight=%.0f waiting=%.0f tpot=%.1fms ttft=%.0fms service=%.2fs "
                      "target=%.2fs worker_metrics=%s]",
                      who(w, name, sizeof name), before, tlab__autopilot_limit(w->ap), v->last_reason, st.in_flight, st.waiting,
                      v->tpot_s * 1e3, v->ttft_s * 1e3, tlab__autopilot_service_s(w->ap, 0), v->target_s,
                      v->worker_metrics ? "yes" : "no");
            w->last_log_us = now;
            w->last_logged_reason = v->last_reason;
        }
    }
    /* The scrape stays at the configured interval of real time: rendering /metrics costs the
     * worker (tlab-sim lagged when scraped 40 times a second). */
    if (w->scrape && worker_up(ws) && now - w->last_scrape_us >= g.interval_us * 9 / 10) {
        w->last_scrape_us = now;
        tlab__worker_scrape_poll(w->scrape);
    }
    return tlab__autopilot_limit(w->ap) > before;
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    uint64_t now = tlab__now_us();
    double dt = g.last_tick_us ? (double)(now - g.last_tick_us) / 1e6 : 0;
    g.last_tick_us = now;
    double waiting = g.waiting ? (double)g.waiting() : 0, total = 0;
    for (size_t i = 0; i < tlab__pool_size(); i++)
        if (tlab__pool_worker_at(i)->member)
            total += (double)tlab__autopilot_limit(tlab__pool_worker_at(i)->ap);
    int grew = 0;
    for (size_t i = 0; i < tlab__pool_size(); i++) {
        tlab__pool_worker *w = tlab__pool_worker_at(i);
        /* The queue is shared: each worker sees the part it would drain, by its share of the gate
         * (none for a worker that left the pool and only finishes what it has). */
        double share = !w->member ? 0 : total > 0 ? (double)tlab__autopilot_limit(w->ap) / total : 1;
        grew |= tick_worker(w, now, dt, waiting * share);
    }
    publish();
    /* A limit that grew opens the gate for requests already waiting. */
    if (grew && g.wake)
        g.wake();
}

static void apply(const tlab__config *cfg) {
    tlab__autopilot_params p;
    params_from(cfg, &p);
    g.params = p;
    for (size_t i = 0; i < tlab__pool_size(); i++)
        tlab__autopilot_set_params(tlab__pool_worker_at(i)->ap, &p);
    g.slo_us = (uint64_t)cfg->slo_e2e_ms * 1000;
    g.target_s = p.service_share * p.slo_s;
    g.interval_us = (uint64_t)cfg->autopilot_interval_ms * 1000;
    g.stall_us = (uint64_t)cfg->pool_stall_ms * 1000;
    arm_timer();
}

static int worker_init(tlab__pool_worker *w, const tlab__autopilot_params *p) {
    if (!(w->ap = tlab__autopilot_new(p)))
        return -1;
    if (!g.worker_metrics || !g.up)
        return 0;
    char url[1024];
    snprintf(url, sizeof url, "%s/metrics", w->root_url);
    w->scrape = tlab__worker_scrape_new(g.up, url, g.scrape_timeout_ms, on_reading, w);
    return w->scrape ? 0 : -1;
}

static void worker_free(tlab__pool_worker *w) {
    tlab__worker_scrape_free(w->scrape);
    tlab__autopilot_free(w->ap);
    w->scrape = NULL;
    w->ap = NULL;
}

int tlab__gate_worker_reset(tlab__pool_worker *w) {
    worker_free(w);
    if (worker_init(w, &g.params) != 0)
        return -1;
    tlab__metric_add(g.m_w_ttft, w->labels, 0);
    tlab__metric_add(g.m_w_tpot, w->labels, 0);
    tlab__metric_add(g.m_stalls, w->labels, 0);
    if (g.wake)
        g.wake(); /* room for the requests waiting */
    return 0;
}

int tlab__gate_init(struct event_base *base, tlab__upstream *up, const tlab__config *cfg, size_t (*waiting)(void),
                    void (*wake)(void)) {
    memset(&g, 0, sizeof g);
    g.up = up;
    g.waiting = waiting;
    g.wake = wake;
    tlab__autopilot_params p;
    params_from(cfg, &p);
    g.timer = event_new(base, -1, EV_PERSIST, on_timer, NULL);
    if (!g.timer)
        return -1;
    g.params = p;
    g.worker_metrics = cfg->autopilot_worker_metrics;
    /* A scrape may take a few intervals on a busy worker; it is skipped, never queued. */
    g.scrape_timeout_ms = cfg->autopilot_interval_ms * 10 < 2000 ? 2000 : cfg->autopilot_interval_ms * 10;
    for (size_t i = 0; i < tlab__pool_size(); i++)
        if (worker_init(tlab__pool_worker_at(i), &p) != 0)
            return -1;
    g.m_limit = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_autopilot_limit",
                                      "The autopilot's gate: most requests at the workers at once (the pool's sum)", NULL, 0);
    g.m_tpot = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_autopilot_tpot_seconds",
                                     "Measured time per output token at the current concurrency", NULL, 0);
    g.m_ttft = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_autopilot_ttft_seconds",
                                     "Measured time from dispatch to the first token", NULL, 0);
    g.m_drain = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_autopilot_drain_rate",
                                      "Requests per second the gate lets through when full (predicted)", NULL, 0);
    g.m_wait = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_autopilot_predicted_wait_seconds",
                                     "Predicted wait for dispatch of a request arriving now (at the back of the queue)", NULL, 0);
    g.m_scrape = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_autopilot_worker_metrics",
                                       "1 while the workers' /metrics answer and steer the autopilot, else 0", NULL, 0);
    g.m_attain = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_slo_attainment",
                                       "Share of finished requests answered 2xx inside their deadline (stats window)", NULL, 0);
    g.m_demand = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_demand_requests",
                                       "Requests queued or in flight at the workers (GET /admin/demand: queued + in_flight)", NULL, 0);
    g.m_per_worker = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_demand_capacity_per_worker",
                                           "Requests one worker holds inside the SLO, as the autopilot learned it (autopilot.initial_limit "
                                           "before any worker is ready)", NULL, 0);
    g.m_promises = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_retry_promises_total",
                                         "Retry-After promises of deadline refusals (outcome=made) and retries that came back "
                                         "inside their promise's window and were queued ahead of fresh arrivals (outcome=claimed)",
                                         NULL, 0);
    g.m_goodput = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_goodput_rps",
                                        "Requests per second answered 2xx inside their deadline (stats window)", NULL, 0);
    g.m_w_ttft = tlab__metric_register(TLAB_METRIC_HISTOGRAM, "gateway_worker_ttft_seconds",
                                       "Dispatch to first byte of streamed requests, per worker", ttft_buckets,
                                       sizeof ttft_buckets / sizeof ttft_buckets[0]);
    g.m_w_tpot = tlab__metric_register(TLAB_METRIC_HISTOGRAM, "gateway_worker_tpot_seconds",
                                       "Time per output token after the first of streamed requests (max_tokens), per worker",
                                       tpot_buckets, sizeof tpot_buckets / sizeof tpot_buckets[0]);
    g.m_stalls = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_worker_stalls_total",
                                       "Times a worker was in flight and sent no byte for pool.stall_ms", NULL, 0);
    for (size_t i = 0; i < tlab__pool_size(); i++) {
        const char *l = tlab__pool_worker_at(i)->labels;
        tlab__metric_add(g.m_w_ttft, l, 0); /* the series exist from the start (see pool.c) */
        tlab__metric_add(g.m_w_tpot, l, 0);
        tlab__metric_add(g.m_stalls, l, 0);
    }
    apply(cfg);
    publish();
    const tlab__pool_worker *w0 = tlab__pool_worker_at(0);
    if (!w0) {
        tlab__log(TLAB_LOG_INFO, NULL, "autopilot %s: slo.e2e_ms %ld, start limit %.0f per worker, max %ld; the workers come from "
                                       "discovery",
                  cfg->autopilot_enabled ? "on" : "off (fixed gate at autopilot.max_limit)", cfg->slo_e2e_ms, p.initial_limit,
                  cfg->autopilot_max_limit);
        return 0;
    }
    tlab__log(TLAB_LOG_INFO, NULL, "autopilot %s: slo.e2e_ms %ld, service target from %.2f s (a long queue) to %.2f s (none), "
                                   "start limit %d per worker, max %ld, worker metrics %s%s",
              cfg->autopilot_enabled ? "on" : "off (fixed gate at autopilot.max_limit)", cfg->slo_e2e_ms, g.target_s,
              g.target_s > 0.75 * (double)cfg->slo_e2e_ms / 1000.0 ? g.target_s : 0.75 * (double)cfg->slo_e2e_ms / 1000.0,
              tlab__autopilot_limit(w0->ap), cfg->autopilot_max_limit, w0->scrape ? w0->root_url : "off",
              w0->scrape ? "/metrics" : "");
    return 0;
}

void tlab__gate_reconfigure(const tlab__config *cfg) {
    if (g.timer)
        apply(cfg);
}

void tlab__gate_shutdown(void) {
    for (size_t i = 0; i < tlab__pool_size(); i++)
        worker_free(tlab__pool_worker_at(i));
    if (g.timer)
        event_free(g.timer);
    memset(&g, 0, sizeof g);
}

int tlab__gate_worker_open(const tlab__pool_worker *w) {
    return !w->ap || w->in_flight < (size_t)tlab__autopilot_limit(w->ap);
}

void tlab__gate_on_leg_done(const tlab_request *r) {
    tlab__pool_worker *w = tlab__pool_worker_of(r->worker_id);
    if (!w || !w->ap || r->internal || !r->t[TLAB_EV_DISPATCHED])
        return;
    uint64_t now = tlab__now_us(), sent = r->t[TLAB_EV_DISPATCHED], first = r->t[TLAB_EV_FIRST_BYTE];
    /* Sent before the worker came up, it waited on the start (measured on its own, as
     * cold_start_s): as a first-token time, a 15 s start became the idle worker's fastest
     * TTFT and refused every later request with a 5 s deadline. */
    if (sent < w->up_since_us)
        return;
    if (r->splice && r->splice->resuming)
        return; /* dispatched to another worker: its times mix two workers */
    tlab__autopilot_sample s = {
        .service_s = (double)(now - sent) / 1e6,
        .ttft_s = r->info.stream && first > sent ? (double)(first - sent) / 1e6 : 0,
        .tokens = r->info.max_tokens,
        .ok = r->status >= 200 && r->status < 300,
    };
    tlab__autopilot_on_sample(w->ap, &s);
    if (s.ok && s.ttft_s > 0) {
        tlab__metric_observe(g.m_w_ttft, w->labels, s.ttft_s);
        if (s.tokens > 1)
            tlab__metric_observe(g.m_w_tpot, w->labels, (s.service_s - s.ttft_s) / (double)(s.tokens - 1));
    }
}

tlab__autopilot *tlab__gate_autopilot(void) {
    const tlab__pool_worker *w = tlab__pool_worker_at(0);
    return w ? w->ap : NULL;
}

int tlab__gate_limit(void) {
    if (!g.timer)
        return 0;
    aggregate();
    return (int)g.view.limit;
}

json_t *tlab__gate_demand(void) {
    if (!g.timer)
        return json_object();
    aggregate();
    demand d = measure_demand();
    double want = d.per_worker > 0 ? ceil((d.in_flight + d.queued) / d.per_worker) : 0;
    return json_pack("{s:f, s:f, s:f, s:f, s:i, s:i, s:f, s:f, s:b}", "queued", d.queued, "in_flight", d.in_flight, "queued_tokens",
                     d.queued * d.typical_tokens, "in_flight_tokens", d.in_flight_tokens, "workers", d.members, "workers_ready",
                     d.ready, "capacity_per_worker", d.per_worker, "workers_wanted", want, "active", d.queued + d.in_flight > 0);
}

const tlab__autopilot_view *tlab__gate_view(void) {
    if (!g.timer)
        return NULL;
    aggregate();
    return &g.view;
}

uint64_t tlab__gate_slo_us(void) {
    return g.slo_us;
}

/* Seconds until w could take requests, from its measured start time; -1 when it is not on its
 * way (failed, or up). */
static double worker_cold_wait_s(const tlab__pool_worker *w, int ws) {
    if (worker_up(ws) || ws == TLAB_WORKER_FAILED)
        return -1;
    double cold = tlab__autopilot_view_get(w->ap)->cold_start_s;
    if (ws == TLAB_WORKER_STARTING && w->left_running_us) {
        double left = cold - (double)(tlab__now_us() - w->left_running_us) / 1e6;
        return left > 0 ? left : 0;
    }
    return ws == TLAB_WORKER_IDLE || ws == TLAB_WORKER_STOPPING ? cold : -1;
}

double tlab__gate_cold_wait_s(void) {
    if (!g.timer)
        return 0;
    /* 0 as soon as one worker takes requests (the pool's wait covers the rest); else the soonest
     * start among the workers the gateway starts. External workers have no start to wait for. */
    uint64_t now = tlab__now_us();
    double best = -1;
    for (size_t i = 0; i < tlab__pool_size(); i++) {
        const tlab__pool_worker *w = tlab__pool_worker_at(i);
        if (!w->member || !w->ap)
            continue;
        int ws = tlab__pool_worker_state(w);
        if (worker_up(ws) && tlab__pool_worker_routable(w, now))
            return 0;
        if (w->listed && !w->supervised)
            continue;
        double c = worker_cold_wait_s(w, ws);
        if (c >= 0 && (best < 0 || c < best))
            best = c;
    }
    return best > 0 ? best : 0;
}

/* The pool drains as one: its free slots and its drain rates add up. With one worker this is
 * that worker's autopilot's own prediction. */
static double pool_wait_s(double ahead) {
    if (tlab__pool_single()) {
        const tlab__pool_worker *w = tlab__pool_worker_at(0);
        return tlab__autopilot_wait_s(w->ap, ahead, (double)w->in_flight);
    }
    double free_slots = 0, drain = 0;
    uint64_t now = tlab__now_us();
    for (size_t i = 0; i < tlab__pool_size(); i++) {
        const tlab__pool_worker *w = tlab__pool_worker_at(i);
        if (!tlab__pool_worker_routable(w, now))
            continue;
        double f = floor((double)tlab__autopilot_limit(w->ap)) - (double)w->in_flight;
        free_slots += f > 0 ? f : 0;
        drain += tlab__autopilot_view_get(w->ap)->drain_rate;
    }
    if (ahead < free_slots || drain <= 0)
        return 0;
    return (ahead - free_slots + 1) / drain;
}

double tlab__gate_wait_s(double ahead) {
    if (!g.timer)
        return 0;
    return tlab__gate_cold_wait_s() + pool_wait_s(ahead);
}

double tlab__gate_service_s(long tokens) {
    if (!g.timer)
        return 0;
    if (tlab__pool_single())
        return tlab__autopilot_service_s(tlab__pool_worker_at(0)->ap, tokens);
    /* A request lands on one worker; the pool's mean, weighted by each one's gate. */
    double sum = 0, weight = 0;
    uint64_t now = tlab__now_us();
    for (size_t i = 0; i < tlab__pool_size(); i++) {
        const tlab__pool_worker *w = tlab__pool_worker_at(i);
        double s = tlab__autopilot_service_s(w->ap, tokens), lim = (double)tlab__autopilot_limit(w->ap);
        if (s > 0 && tlab__pool_worker_routable(w, now)) {
            sum += lim * s;
            weight += lim;
        }
    }
    return weight > 0 ? sum / weight : 0;
}

/* Refused with a retry in `retry_s`: Retry-After is whole seconds, rounded up (never early);
 * the promise is kept for the exact time, which clients that read `retry-after-ms` (the openai
 * SDKs do) come back at. Rounded, a burst's retries came back in clumps a second apart: at
 * tlab-sim's --time-scale 4 a second is 80 % of the SLO, and a clump's back half was refused
 * again. Kept: the retry is known by what it repeats and goes ahead of fresh arrivals. */
static void promise(const tlab_request *r, double now_s, double retry_s, int *retry_after_s) {
    double ms = ceil(retry_s * 1e3); /* whole ms, never early; the seconds from them, so ms <= s x 1000 */
    if (ms < 1)
        ms = 1;
    *retry_after_s = (int)ceil(ms / 1e3); /* 1 for anything up to a second */
    g.refused = r;
    g.refused_retry_s = *retry_after_s;
    g.refused_retry_ms = ms;
    tlab__promises_add(r->client_key, now_s + ms / 1e3);
}

void tlab__gate_add_retry_after_ms(tlab_request *r, int retry_after_s) {
    const tlab_request *judged = g.refused;
    g.refused = NULL; /* any refusal uses it up: a later one at the same address is another request */
    if (!r || r != judged || retry_after_s != g.refused_retry_s)
        return;
    char ms[32];
    snprintf(ms, sizeof ms, "%.0f", g.refused_retry_ms);
    tlab__request_add_response_header(r, "retry-after-ms", ms);
}

/* Cold: the worker's last measured start time, then its fastest first token (0 when none was
 * measured). Refused, the worker starts anyway: otherwise a start longer than the SLO would
 * refuse every request for ever, and the promised retry would find it cold. */
static int judge_cold(const tlab_request *r, double ttft, double left, double budget, uint64_t now, char *msg, size_t len,
                      int *retry_after_s) {
    double cold = tlab__gate_cold_wait_s();
    if (cold <= 0 || cold + ttft <= budget)
        return 0;
    tlab__plugins_worker_demand();
    tlab__pool_note_demand(now);
    promise(r, (double)now / 1e6, cold + ttft - budget, retry_after_s);
    snprintf(msg, len, "the worker is starting (measured start time: %.1f s to go) and the request's deadline has "
                       "%.0f ms left; retry in %d s", cold, left * 1e3, *retry_after_s);
    return -1;
}

int tlab__gate_judge(const tlab_request *r, double ahead, double share, char *msg, size_t len, int *retry_after_s) {
    *retry_after_s = 0;
    g.refused = NULL;
    if (!g.timer || !r->deadline_us)
        return 0;
    double service = tlab__gate_service_s(r->info.max_tokens);
    uint64_t now = tlab__now_us();
    double left = r->deadline_us > now ? (double)(r->deadline_us - now) / 1e6 : 0, budget = left * share;
    int idle = pool_in_flight() == 0;
    /* Nothing measured yet: the conservative start admits and the gate holds. Except into a start
     * measured to outlast the deadline: the request that caused that start waited on it and is no
     * sample, so a worker stopped again before a scrape measured its first answers knew its start
     * time and nothing else, and admitted the next request into a 6 s start against a 5 s SLO. */
    if (service <= 0)
        return idle ? judge_cold(r, 0, left, budget, now, msg, len, retry_after_s) : 0;
    const tlab__autopilot_view *v = tlab__gate_view();
    /* An idle worker is judged by the fastest first token it ever gave: what was measured under
     * an earlier load could otherwise refuse everything for ever, since only a request that
     * runs can measure again. */
    double ttft = idle ? v->ttft_min_s : v->ttft_s;
    if (ttft > 0 && budget < ttft) {
        snprintf(msg, len, "the request's deadline (%.0f ms left) is shorter than the worker's measured time to first token "
                           "(%.0f ms%s): it cannot be met", left * 1e3, ttft * 1e3, idle ? ", its fastest" : "");
        return -1;
    }
    if (idle)
        return judge_cold(r, ttft, left, budget, now, msg, len, retry_after_s);
    if (budget < service) {
        snprintf(msg, len, "the request cannot finish inside its deadline (%.0f ms left): %ld tokens take about %.1f s at "
                           "the worker now; lower max_tokens or allow a longer deadline", left * 1e3,
                 r->info.max_tokens > 0 ? r->info.max_tokens : (long)v->typical_tokens, service);
        return -1;
    }
    /* The retries promised from a second ago to a second ahead go ahead of a fresh request when
     * they come (Retry-After is whole seconds, and clients are a little early or late): the
     * room they were promised is kept for them, in the share of clients that do come back
     * (without it 60 % of retries got in at their first retry, not 80: fresh arrivals took the
     * slot that freed at the promised time). */
    double now_s = (double)now / 1e6;
    if (!r->promised)
        ahead += (double)tlab__promises_due(now_s, TLAB_PROMISE_EARLY_S) * tlab__promises_show_rate();
    double wait = tlab__gate_wait_s(ahead), finish = (wait + service) * PREDICTION_MARGIN;
    if (finish <= budget)
        return 0;
    /* The queue ahead drains at drain_rate: after (finish - budget) seconds the same place in it
     * is that much closer to the front, so a retry then would just make it. But every refused
     * client of a burst hears the same figure and would come back together: the promises are
     * spaced at the drain rate, each one after the last still to come. */
    double at = now_s + (finish - budget);
    if (v->drain_rate > 0 && g.last_promise_s + 1.0 / v->drain_rate > at)
        at = g.last_promise_s + 1.0 / v->drain_rate;
    g.last_promise_s = at;
    promise(r, now_s, at - now_s, retry_after_s);
    snprintf(msg, len, "predicted to finish in %.1f s (%.1f s waiting behind %.0f requests, draining %.1f/s; %.1f s at the "
                       "worker), past its deadline (%.1f s left); retry in %d s", finish, wait, ahead, v->drain_rate, service,
             left, *retry_after_s);
    return -1;
}
