/*
 * pool.c - the worker list, its load accounting and its metrics (pool.h).
 */
#include "dispatch/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/metrics_registry.h"
#include "hooks/plugin_host.h"

static struct {
    tlab__pool_worker *w;
    size_t n, cap;
    int dynamic; /* discovery fills it */
    uint64_t demand_us; /* the latest tlab__pool_note_demand */
    int eject_after;
    uint64_t eject_us;
    tlab_metric *m_in_flight, *m_limit, *m_up, *m_breaker, *m_ejections, *m_served, *m_failed, *m_failovers;
} pool;

static char *root_of(const char *url) {
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    /* An OpenAI base URL ends in /v1; /health and /metrics are at the server's root. */
    if (n >= 3 && strncmp(url + n - 3, "/v1", 3) == 0)
        n -= 3;
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, url, n);
        out[n] = '\0';
    }
    return out;
}

static char *base_of(const char *url) {
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, url, n);
        out[n] = '\0';
    }
    return out;
}

/* The counters' series exist from the start, at 0: a dashboard's rate() then has data before
 * the first ejection or failover, and an absent series never reads as "no worker". */
static void zero_series(const char *labels) {
    tlab__metric_add(pool.m_ejections, labels, 0);
    tlab__metric_add(pool.m_served, labels, 0);
    tlab__metric_add(pool.m_failed, labels, 0);
    tlab__metric_add(pool.m_failovers, labels, 0);
}

static int setup(tlab__pool_worker *w, size_t i, const char *name, const char *url, int listed) {
    w->id = (int)i;
    w->listed = listed;
    w->member = 1;
    w->health_ok = 1;
    w->prev_state = -2;
    w->time_scale = 1;
    snprintf(w->labels, sizeof w->labels, "worker=\"%s\"", name);
    tlab__breaker_init(&w->breaker, pool.eject_after, pool.eject_us);
    w->name = strdup(name);
    w->url = base_of(url);
    w->root_url = root_of(url);
    return w->name && w->url && w->root_url ? 0 : -1;
}

static void register_metrics(void) {
    pool.m_in_flight = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_worker_in_flight", "Requests at each worker now", NULL, 0);
    pool.m_limit = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_worker_gate_limit",
                                         "Each worker's concurrency gate (its autopilot's limit)", NULL, 0);
    pool.m_up = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_worker_up",
                                      "1 while a worker takes requests (up and not ejected), else 0", NULL, 0);
    pool.m_breaker = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_worker_breaker_state",
                                           "Each worker's circuit breaker: 0 closed, 1 open (ejected), 2 half-open", NULL, 0);
    pool.m_ejections = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_worker_ejections_total",
                                             "Times a worker was taken out of routing (failures, health, stall)", NULL, 0);
    pool.m_served = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_worker_requests_total",
                                          "Requests each worker answered (any status below 500)", NULL, 0);
    pool.m_failed = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_worker_failures_total",
                                          "Requests that failed at each worker (unreachable, 5xx, cut, timed out)", NULL, 0);
    pool.m_failovers = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_failovers_total",
                                             "Requests moved from this worker to another one", NULL, 0);
}

int tlab__pool_init(const tlab__config *cfg) {
    memset(&pool, 0, sizeof pool);
    pool.eject_after = (int)cfg->pool_eject_after_failures;
    pool.eject_us = (uint64_t)cfg->pool_eject_ms * 1000;
    pool.dynamic = cfg->discovery_file[0] || cfg->discovery_dns[0];
    pool.cap = pool.dynamic ? TLAB_POOL_MAX : cfg->n_workers ? cfg->n_workers : 1;
    if (!(pool.w = calloc(pool.cap, sizeof *pool.w)))
        return -1;
    register_metrics();
    if (!pool.dynamic) {
        pool.n = pool.cap;
        for (size_t i = 0; i < pool.n; i++) {
            int listed = cfg->n_workers > 0;
            if (setup(&pool.w[i], i, listed ? cfg->workers[i].name : "default", listed ? cfg->workers[i].url : cfg->upstream_url,
                      listed) != 0)
                return -1;
            zero_series(pool.w[i].labels);
            if (listed && cfg->workers[i].supervise) {
                pool.w[i].supervised = 1;
                pool.w[i].sup_state = TLAB_WORKER_IDLE;
            }
        }
    }
    tlab__pool_publish();
    return 0;
}

size_t tlab__pool_members(void) {
    size_t k = 0;
    for (size_t i = 0; i < pool.n; i++)
        k += pool.w[i].member ? 1 : 0;
    return k;
}

int tlab__pool_single(void) {
    return !pool.dynamic && pool.n == 1 && !pool.w[0].supervised;
}

tlab__pool_worker *tlab__pool_find(const char *name) {
    for (size_t i = 0; i < pool.n; i++)
        if (pool.w[i].member && strcmp(pool.w[i].name, name) == 0)
            return &pool.w[i];
    return NULL;
}

/* A slot for a newcomer: one whose worker left and has nothing in flight, else a new one. */
static tlab__pool_worker *free_slot(void) {
    for (size_t i = 0; i < pool.n; i++) {
        tlab__pool_worker *w = &pool.w[i];
        if (!w->member && !w->in_flight && !w->health_xfer)
            return w;
    }
    return pool.n < pool.cap ? &pool.w[pool.n++] : NULL;
}

tlab__pool_worker *tlab__pool_add(const char *name, const char *url, int *fresh) {
    *fresh = 0;
    if (!pool.dynamic)
        return NULL;
    char *base = base_of(url);
    if (!base)
        return NULL;
    /* Back before its last request ended: the same worker, its measurements still good. */
    for (size_t i = 0; i < pool.n; i++) {
        tlab__pool_worker *w = &pool.w[i];
        if (!w->member && w->in_flight && strcmp(w->name, name) == 0 && strcmp(w->url, base) == 0) {
            free(base);
            w->member = 1;
            return w;
        }
    }
    free(base);
    tlab__pool_worker *w = free_slot();
    if (!w)
        return NULL;
    if (w->name) {
        /* The slot's former worker: its gauges say it is gone (its counters stay, as counters do). */
        tlab__metric_set(pool.m_up, w->labels, 0);
        tlab__metric_set(pool.m_in_flight, w->labels, 0);
    }
    /* The gate's objects stay with the slot: tlab__gate_worker_reset starts them afresh. */
    tlab__autopilot *ap = w->ap;
    struct tlab__worker_scrape *scrape = w->scrape;
    free(w->name);
    free(w->url);
    free(w->root_url);
    size_t i = (size_t)(w - pool.w);
    memset(w, 0, sizeof *w);
    w->ap = ap;
    w->scrape = scrape;
    if (setup(w, i, name, url, 1) != 0) {
        w->member = 0;
        return NULL;
    }
    zero_series(w->labels);
    *fresh = 1;
    return w;
}

void tlab__pool_remove(tlab__pool_worker *w) {
    w->member = 0;
}

void tlab__pool_shutdown(void) {
    for (size_t i = 0; i < pool.cap; i++) {
        free(pool.w[i].name);
        free(pool.w[i].url);
        free(pool.w[i].root_url);
    }
    free(pool.w);
    memset(&pool, 0, sizeof pool);
}

size_t tlab__pool_size(void) {
    return pool.n;
}

tlab__pool_worker *tlab__pool_worker_at(size_t i) {
    return i < pool.n ? &pool.w[i] : NULL;
}

tlab__pool_worker *tlab__pool_worker_of(int id) {
    return id >= 0 && (size_t)id < pool.n ? &pool.w[id] : NULL;
}

int tlab__pool_worker_state(const tlab__pool_worker *w) {
    if (w->supervised)
        return w->sup_state;
    return w->listed ? -1 : tlab__plugins_worker_state();
}

long tlab__pool_worker_max_num_seqs(const tlab__pool_worker *w) {
    if (w->supervised)
        return w->sup_max_num_seqs;
    return w->listed ? 0 : tlab__plugins_worker_max_num_seqs();
}

int tlab__pool_worker_routable(const tlab__pool_worker *w, uint64_t now) {
    /* The only worker is never ejected: there would be nowhere to send its requests, and the
     * single-worker path answers its failures itself (503, and the supervisor's restart). */
    return tlab__pool_single() || (w->member && (!w->supervised || w->sup_state == TLAB_WORKER_RUNNING) &&
                                   tlab__breaker_routable(&w->breaker, now) && (!w->listed || w->health_ok));
}

void tlab__pool_leg_started(tlab__pool_worker *w, double tokens, uint64_t now) {
    if (w->in_flight == 0)
        w->last_progress_us = now; /* the stall clock starts with the first leg on an idle worker */
    w->in_flight++;
    w->in_flight_tokens += tokens;
}

static void ejected(tlab__pool_worker *w) {
    tlab__metric_add(pool.m_ejections, w->labels, 1);
}

int tlab__pool_leg_ended(tlab__pool_worker *w, double tokens, int verdict, uint64_t now) {
    if (w->in_flight)
        w->in_flight--;
    w->in_flight_tokens -= tokens;
    if (w->in_flight_tokens < 0 || !w->in_flight)
        w->in_flight_tokens = 0;
    if (verdict < 0)
        return 0;
    if (verdict) {
        w->served++;
        tlab__metric_add(pool.m_served, w->labels, 1);
        tlab__breaker_success(&w->breaker);
        w->stalled = 0;
        return 0;
    }
    w->failed++;
    tlab__metric_add(pool.m_failed, w->labels, 1);
    if (!tlab__pool_single() && tlab__breaker_failure(&w->breaker, now)) {
        ejected(w);
        return 1;
    }
    return 0;
}

void tlab__pool_progress(tlab__pool_worker *w, uint64_t now) {
    w->last_progress_us = now;
}

void tlab__pool_count_failover(tlab__pool_worker *from) {
    from->failovers++;
    tlab__metric_add(pool.m_failovers, from->labels, 1);
}

void tlab__pool_count_ejection(tlab__pool_worker *w) {
    ejected(w);
}

void tlab__pool_note_demand(uint64_t now) {
    pool.demand_us = now;
}

int tlab__pool_demand_since(uint64_t since) {
    return pool.demand_us && pool.demand_us >= since;
}

void tlab__pool_publish(void) {
    uint64_t now = tlab__now_us();
    for (size_t i = 0; i < pool.n; i++) {
        tlab__pool_worker *w = &pool.w[i];
        tlab__metric_set(pool.m_in_flight, w->labels, (double)w->in_flight);
        tlab__metric_set(pool.m_limit, w->labels, w->ap ? (double)tlab__autopilot_limit(w->ap) : 0);
        tlab__metric_set(pool.m_breaker, w->labels, (double)w->breaker.state);
        tlab__metric_set(pool.m_up, w->labels, tlab__pool_worker_routable(w, now) ? 1 : 0);
    }
}

json_t *tlab__pool_describe(void) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < pool.n; i++) {
        const tlab__pool_worker *w = &pool.w[i];
        if (!w->member && !w->in_flight)
            continue; /* left, and done */
        const tlab__autopilot_view *v = w->ap ? tlab__autopilot_view_get(w->ap) : NULL;
        int ws = tlab__pool_worker_state(w);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:f, s:i, s:s, s:I, s:b, s:b, s:I, s:I, s:I}", "name", w->name, "url",
                              w->url, "kind", w->supervised ? "supervised" : w->listed ? "external" : ws >= 0 ? "supervised" : "external", "state",
                              ws >= 0 ? tlab_worker_state_name((tlab_worker_state)ws) : "external", "in_flight",
                              (json_int_t)w->in_flight, "in_flight_tokens", w->in_flight_tokens, "gate_limit",
                              w->ap ? tlab__autopilot_limit(w->ap) : 0, "breaker", tlab__breaker_state_name(w->breaker.state),
                              "ejections", (json_int_t)w->breaker.ejections, "health_ok", w->health_ok, "stalled", w->stalled,
                              "served", (json_int_t)w->served, "failed", (json_int_t)w->failed, "failovers",
                              (json_int_t)w->failovers);
        if (o && w->supervised)
            json_object_set_new(o, "pid", json_integer(w->sup_pid));
        if (o && !w->member)
            json_object_set_new(o, "leaving", json_true()); /* discovery dropped it; its requests finish */
        if (o && v) {
            json_object_set_new(o, "tpot_ms", json_real(v->tpot_s * 1e3));
            json_object_set_new(o, "ttft_ms", json_real(v->ttft_s * 1e3));
            json_object_set_new(o, "drain_rate", json_real(v->drain_rate));
        }
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}
