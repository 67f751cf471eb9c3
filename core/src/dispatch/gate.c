/*
 * gate.c - runs the autopilot on the loop (gate.h): the control timer, the worker scrape, the
 * samples, the cold-start clock and the gateway_autopilot_* metrics.
 */
#include "dispatch/gate.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/metrics_registry.h"
#include "common/log.h"
#include "dispatch/worker_scrape.h"
#include "hooks/plugin_host.h"
#include "request/stats.h"

#define LOG_EVERY_US 1000000 /* limit changes are logged at most this often (and on a new reason) */
/* A request is admitted when its predicted finish, this much longer, fits its deadline. The
 * prediction is a mean and the SLO a p95: without a margin the served requests' p95 ran 5 to
 * 20 % past the SLO in the burst benchmark (docs/autopilot.md), static gates and adaptive alike. */
#define PREDICTION_MARGIN 1.15
#define MIN_TICK_US 10000 /* the fastest tick, whatever the worker's clock */

static struct {
    tlab__autopilot *ap;
    tlab__worker_scrape *scrape;
    struct event *timer;
    size_t (*waiting)(void);
    void (*wake)(void);
    double target_s;
    uint64_t slo_us, interval_us, last_tick_us, last_log_us;
    uint64_t last_scrape_us;
    double time_scale; /* the worker's clock per real second: tlab-sim --time-scale, else 1 */
    const char *last_logged_reason;
    int logged_scrape_failure;
    int prev_worker_state;
    double last_promise_s; /* the latest Retry-After promised, in seconds of tlab__now_us */
    uint64_t left_running_us; /* when the worker last stopped running (its start clock), 0 while it runs */
    uint64_t up_since_us;     /* when the worker last came up: a leg sent before it waited on a start or a wake */
    tlab_metric *m_limit, *m_tpot, *m_ttft, *m_drain, *m_wait, *m_scrape, *m_attain, *m_goodput;
} g;

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

/* The controller's time constants (growth per tick, the EWMAs) are meant for the worker's
 * clock: in front of tlab-sim --time-scale F it ticks F times as often, or every adaptation
 * would take F times longer in the workload's time than in front of a real GPU (at F = 4 a
 * limit halved by a transient took 12 simulated seconds to climb back, against 3 at F = 1). */
static uint64_t tick_us(void) {
    uint64_t us = (uint64_t)((double)g.interval_us / (g.time_scale > 1 ? g.time_scale : 1));
    return us < MIN_TICK_US ? MIN_TICK_US : us;
}

static void arm_timer(void) {
    uint64_t us = tick_us();
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    event_add(g.timer, &tv);
}

static void on_reading(void *arg, const tlab__worker_reading *reading, const char *why) {
    (void)arg;
    double scale = reading && reading->time_scale > 0 ? reading->time_scale : 1;
    if (reading && scale != g.time_scale) {
        g.time_scale = scale;
        tlab__log(TLAB_LOG_INFO, NULL, "autopilot: the worker's clock runs %gx real time: ticking every %.0f ms", scale,
                  (double)tick_us() / 1e3);
        arm_timer();
    }
    if (!reading && !g.logged_scrape_failure) {
        tlab__log(TLAB_LOG_WARN, NULL, "autopilot: the worker's metrics are not usable (%s): steering by the gateway's own "
                                       "measurements until they are (logged once)", why);
        g.logged_scrape_failure = 1;
    } else if (reading && g.logged_scrape_failure) {
        tlab__log(TLAB_LOG_INFO, NULL, "autopilot: the worker's metrics answer again");
        g.logged_scrape_failure = 0;
    }
    if (reading && reading->time_scale > 0 && reading->time_scale != 1) {
        /* tlab-sim with --time-scale F: its durations are simulated seconds, F per real one. */
        tlab__worker_reading scaled = *reading;
        scaled.itl_sum /= reading->time_scale;
        scaled.ttft_sum /= reading->time_scale;
        tlab__autopilot_on_worker(g.ap, &scaled);
        return;
    }
    tlab__autopilot_on_worker(g.ap, reading);
}

static void watch_worker(uint64_t now) {
    int ws = tlab__plugins_worker_state();
    if (worker_up(ws) && !worker_up(g.prev_worker_state) && g.prev_worker_state != -2) {
        double start_s = g.left_running_us ? (double)(now - g.left_running_us) / 1e6 : 0;
        /* Only a real start (from idle or starting) measures the cold start; a wake is shorter. */
        tlab__autopilot_on_worker_start(g.ap, g.prev_worker_state == TLAB_WORKER_STARTING ? start_s : 0);
        g.left_running_us = 0;
        g.up_since_us = now;
    } else if (!worker_up(ws) && (worker_up(g.prev_worker_state) || g.prev_worker_state == -2)) {
        g.left_running_us = now;
    }
    if (ws == TLAB_WORKER_STARTING && g.prev_worker_state != TLAB_WORKER_STARTING)
        g.left_running_us = now; /* the start clock runs from the spawn */
    g.prev_worker_state = ws;
}

static void publish(void) {
    const tlab__autopilot_view *v = tlab__autopilot_view_get(g.ap);
    tlab__metric_set(g.m_limit, NULL, (double)tlab__autopilot_limit(g.ap));
    tlab__metric_set(g.m_tpot, NULL, v->tpot_s);
    tlab__metric_set(g.m_ttft, NULL, v->ttft_s);
    tlab__metric_set(g.m_drain, NULL, v->drain_rate);
    tlab__metric_set(g.m_wait, NULL, tlab__gate_wait_s(g.waiting ? (double)g.waiting() : 0));
    tlab__metric_set(g.m_scrape, NULL, v->worker_metrics);
    const tlab__stats_view *sv = tlab__stats_get();
    tlab__metric_set(g.m_attain, NULL, sv->slo_attainment);
    tlab__metric_set(g.m_goodput, NULL, sv->goodput);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    uint64_t now = tlab__now_us();
    double dt = g.last_tick_us ? (double)(now - g.last_tick_us) / 1e6 : 0;
    g.last_tick_us = now;
    watch_worker(now);
    int before = tlab__autopilot_limit(g.ap);
    tlab__gate_state st = {(double)tlab__requests_in_flight(), g.waiting ? (double)g.waiting() : 0,
                           worker_up(tlab__plugins_worker_state())};
    if (tlab__autopilot_tick(g.ap, &st, dt)) {
        const tlab__autopilot_view *v = tlab__autopilot_view_get(g.ap);
        if (now - g.last_log_us >= LOG_EVERY_US || v->last_reason != g.last_logged_reason) {
            tlab__log(TLAB_LOG_INFO, NULL,
                      "autopilot: limit %d -> %d: %s [in_flight=%.0f waiting=%.0f tpot=%.1fms ttft=%.0fms service=%.2fs "
                      "target=%.2fs worker_metrics=%s]",
                      before, tlab__autopilot_limit(g.ap), v->last_reason, st.in_flight, st.waiting, v->tpot_s * 1e3,
                      v->ttft_s * 1e3, tlab__autopilot_service_s(g.ap, 0), v->target_s,
                      v->worker_metrics ? "yes" : "no");
            g.last_log_us = now;
            g.last_logged_reason = v->last_reason;
        }
    }
    /* The scrape stays at the configured interval of real time: rendering /metrics costs the
     * worker (tlab-sim lagged when scraped 40 times a second). */
    if (g.scrape && worker_up(tlab__plugins_worker_state()) && now - g.last_scrape_us >= g.interval_us * 9 / 10) {
        g.last_scrape_us = now;
        tlab__worker_scrape_poll(g.scrape);
    }
    publish();
    /* A limit that grew opens the gate for requests already waiting. */
    if (tlab__autopilot_limit(g.ap) > before && g.wake)
        g.wake();
}

static int metrics_url(const tlab__config *cfg, char *out, size_t cap) {
    if (!cfg->autopilot_worker_metrics)
        return 0;
    const char *base = cfg->upstream_url;
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    /* upstream.url may end in /v1 (an OpenAI base URL): /metrics is at the server's root. */
    if (n >= 3 && strncmp(base + n - 3, "/v1", 3) == 0)
        n -= 3;
    return snprintf(out, cap, "%.*s/metrics", (int)n, base) < (int)cap;
}

static void apply(const tlab__config *cfg) {
    tlab__autopilot_params p;
    params_from(cfg, &p);
    tlab__autopilot_set_params(g.ap, &p);
    g.slo_us = (uint64_t)cfg->slo_e2e_ms * 1000;
    g.target_s = p.service_share * p.slo_s;
    g.interval_us = (uint64_t)cfg->autopilot_interval_ms * 1000;
    arm_timer();
}

int tlab__gate_init(struct event_base *base, tlab__upstream *up, const tlab__config *cfg, size_t (*waiting)(void),
                    void (*wake)(void)) {
    memset(&g, 0, sizeof g);
    g.waiting = waiting;
    g.wake = wake;
    g.prev_worker_state = -2; /* not looked at yet */
    g.time_scale = 1;
    tlab__autopilot_params p;
    params_from(cfg, &p);
    g.ap = tlab__autopilot_new(&p);
    g.timer = event_new(base, -1, EV_PERSIST, on_timer, NULL);
    if (!g.ap || !g.timer)
        return -1;
    char url[1024];
    if (metrics_url(cfg, url, sizeof url)) {
        /* A scrape may take a few intervals on a busy worker; it is skipped, never queued. */
        long timeout_ms = cfg->autopilot_interval_ms * 10 < 2000 ? 2000 : cfg->autopilot_interval_ms * 10;
        g.scrape = tlab__worker_scrape_new(up, url, timeout_ms, on_reading, NULL);
        if (!g.scrape)
            return -1;
    }
    g.m_limit = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_autopilot_limit",
                                      "The autopilot's gate: most requests at the worker at once", NULL, 0);
    g.m_tpot = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_autopilot_tpot_seconds",
                                     "Measured time per output token at the current concurrency", NULL, 0);
    g.m_ttft = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_autopilot_ttft_seconds",
                                     "Measured time from dispatch to the first token", NULL, 0);
    g.m_drain = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_autopilot_drain_rate",
                                      "Requests per second the gate lets through when full (predicted)", NULL, 0);
    g.m_wait = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_autopilot_predicted_wait_seconds",
                                     "Predicted wait for dispatch of a request arriving now (at the back of the queue)", NULL, 0);
    g.m_scrape = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_autopilot_worker_metrics",
                                       "1 while the worker's /metrics answers and steers the autopilot, else 0", NULL, 0);
    g.m_attain = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_slo_attainment",
                                       "Share of finished requests answered 2xx inside their deadline (stats window)", NULL, 0);
    g.m_goodput = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_goodput_rps",
                                        "Requests per second answered 2xx inside their deadline (stats window)", NULL, 0);
    apply(cfg);
    publish();
    tlab__log(TLAB_LOG_INFO, NULL, "autopilot %s: slo.e2e_ms %ld, service target from %.2f s (a long queue) to %.2f s (none), "
                                   "start limit %d, max %ld, worker metrics %s",
              cfg->autopilot_enabled ? "on" : "off (fixed gate at autopilot.max_limit)", cfg->slo_e2e_ms, g.target_s,
              g.target_s > 0.75 * (double)cfg->slo_e2e_ms / 1000.0 ? g.target_s : 0.75 * (double)cfg->slo_e2e_ms / 1000.0,
              tlab__autopilot_limit(g.ap), cfg->autopilot_max_limit, g.scrape ? url : "off");
    return 0;
}

void tlab__gate_reconfigure(const tlab__config *cfg) {
    if (g.ap)
        apply(cfg);
}

void tlab__gate_shutdown(void) {
    tlab__worker_scrape_free(g.scrape);
    if (g.timer)
        event_free(g.timer);
    tlab__autopilot_free(g.ap);
    memset(&g, 0, sizeof g);
}

int tlab__gate_open(void) {
    return !g.ap || tlab__requests_in_flight() < (size_t)tlab__autopilot_limit(g.ap);
}

void tlab__gate_on_leg_done(const tlab_request *r) {
    if (!g.ap || r->internal || !r->t[TLAB_EV_DISPATCHED])
        return;
    uint64_t now = tlab__now_us(), sent = r->t[TLAB_EV_DISPATCHED], first = r->t[TLAB_EV_FIRST_BYTE];
    /* Sent before the worker came up, it waited on the start (measured on its own, as
     * cold_start_s): as a first-token time, a 15 s start became the idle worker's fastest
     * TTFT and refused every later request with a 5 s deadline. */
    if (sent < g.up_since_us)
        return;
    tlab__autopilot_sample s = {
        .service_s = (double)(now - sent) / 1e6,
        .ttft_s = r->info.stream && first > sent ? (double)(first - sent) / 1e6 : 0,
        .tokens = r->info.max_tokens,
        .ok = r->status >= 200 && r->status < 300,
    };
    tlab__autopilot_on_sample(g.ap, &s);
}

tlab__autopilot *tlab__gate_autopilot(void) {
    return g.ap;
}

int tlab__gate_limit(void) {
    return g.ap ? tlab__autopilot_limit(g.ap) : 0;
}

const tlab__autopilot_view *tlab__gate_view(void) {
    return g.ap ? tlab__autopilot_view_get(g.ap) : NULL;
}

uint64_t tlab__gate_slo_us(void) {
    return g.slo_us;
}

double tlab__gate_cold_wait_s(void) {
    if (!g.ap)
        return 0;
    int ws = tlab__plugins_worker_state();
    if (worker_up(ws) || ws == TLAB_WORKER_FAILED)
        return 0;
    double cold = tlab__autopilot_view_get(g.ap)->cold_start_s;
    if (ws == TLAB_WORKER_STARTING && g.left_running_us) {
        double left = cold - (double)(tlab__now_us() - g.left_running_us) / 1e6;
        return left > 0 ? left : 0;
    }
    return ws == TLAB_WORKER_IDLE || ws == TLAB_WORKER_STOPPING ? cold : 0;
}

double tlab__gate_wait_s(double ahead) {
    if (!g.ap)
        return 0;
    return tlab__gate_cold_wait_s() + tlab__autopilot_wait_s(g.ap, ahead, (double)tlab__requests_in_flight());
}

double tlab__gate_service_s(long tokens) {
    return g.ap ? tlab__autopilot_service_s(g.ap, tokens) : 0;
}

int tlab__gate_judge(const tlab_request *r, double ahead, double share, char *msg, size_t len, int *retry_after_s) {
    *retry_after_s = 0;
    if (!g.ap || !r->deadline_us)
        return 0;
    double service = tlab__gate_service_s(r->info.max_tokens);
    if (service <= 0)
        return 0; /* nothing measured yet: the conservative start admits and the gate holds */
    uint64_t now = tlab__now_us();
    double left = r->deadline_us > now ? (double)(r->deadline_us - now) / 1e6 : 0, budget = left * share;
    const tlab__autopilot_view *v = tlab__autopilot_view_get(g.ap);
    /* An idle worker is judged by the fastest first token it ever gave: what was measured under
     * an earlier load could otherwise refuse everything for ever, since only a request that
     * runs can measure again. */
    int idle = tlab__requests_in_flight() == 0;
    double ttft = idle ? v->ttft_min_s : v->ttft_s;
    if (ttft > 0 && budget < ttft) {
        snprintf(msg, len, "the request's deadline (%.0f ms left) is shorter than the worker's measured time to first token "
                           "(%.0f ms%s): it cannot be met", left * 1e3, ttft * 1e3, idle ? ", its fastest" : "");
        return -1;
    }
    if (idle) {
        /* Cold: the worker's last measured start time, then its fastest first token. */
        double cold = tlab__gate_cold_wait_s();
        if (cold > 0 && cold + ttft > budget) {
            /* Refused, but the worker starts anyway: otherwise a start longer than the SLO
             * would refuse every request for ever, and the promised retry would find it cold. */
            tlab__plugins_worker_demand();
            double retry = cold + ttft - budget;
            *retry_after_s = retry < 1 ? 1 : (int)(retry + 0.999);
            snprintf(msg, len, "the worker is starting (measured start time: %.1f s to go) and the request's deadline has "
                               "%.0f ms left; retry in %d s", cold, left * 1e3, *retry_after_s);
            return -1;
        }
        return 0;
    }
    if (budget < service) {
        snprintf(msg, len, "the request cannot finish inside its deadline (%.0f ms left): %ld tokens take about %.1f s at "
                           "the worker now; lower max_tokens or allow a longer deadline", left * 1e3,
                 r->info.max_tokens > 0 ? r->info.max_tokens : (long)v->typical_tokens, service);
        return -1;
    }
    double wait = tlab__gate_wait_s(ahead), finish = (wait + service) * PREDICTION_MARGIN;
    if (finish <= budget)
        return 0;
    /* The queue ahead drains at drain_rate: after (finish - budget) seconds the same place in it
     * is that much closer to the front, so a retry then would just make it. But every refused
     * client of a burst hears the same figure and would come back together: the promises are
     * spaced at the drain rate, each one after the last still to come. */
    double now_s = (double)now / 1e6, at = now_s + (finish - budget);
    if (v->drain_rate > 0 && g.last_promise_s + 1.0 / v->drain_rate > at)
        at = g.last_promise_s + 1.0 / v->drain_rate;
    g.last_promise_s = at;
    double retry = at - now_s;
    *retry_after_s = retry < 1 ? 1 : (int)(retry + 0.999);
    snprintf(msg, len, "predicted to finish in %.1f s (%.1f s waiting behind %.0f requests, draining %.1f/s; %.1f s at the "
                       "worker), past its deadline (%.1f s left); retry in %d s", finish, wait, ahead, v->drain_rate, service,
             left, *retry_after_s);
    return -1;
}
