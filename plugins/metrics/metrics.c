/*
 * metrics.c - GET /metrics in Prometheus text exposition format 0.0.4.
 *
 * Two sources: the core's registry, which every plugin writes into, and the request lifecycle
 * events, which this plugin turns into request counts and latency histograms. Gauges that are
 * a fact of the moment (queue depth, in flight, worker state) are read at scrape time.
 *
 * Families that other parts fill (worker starts, degradation tier, admission rejects, ...) are
 * registered here with a zero series, so dashboards and alerts see them from the first scrape
 * even before the part that owns them has anything to report.
 *
 * Rendering reuses one growing buffer; its cost is linear in the number of series, not in the
 * number of requests served.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <tlab/plugin.h>

typedef struct outbuf {
    char *data;
    size_t len, cap;
    int failed;
} outbuf;

typedef struct metrics {
    const tlab_api *api;
    tlab_plugin_ctx *ctx;
    outbuf out;
    const char *last_family;
    tlab_metric *requests, *duration, *ttft, *queue_wait, *overhead;
    tlab_metric *queue_depth, *in_flight, *worker_state, *uptime, *scrape_seconds;
    uint64_t started_us;
} metrics;

static const double latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 60, 120};
static const double overhead_buckets[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05};
static const double cold_start_buckets[] = {0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300};
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void put(outbuf *o, const char *fmt, ...) {
    for (int attempt = 0; attempt < 2 && !o->failed; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->data ? o->data + o->len : NULL, o->data ? o->cap - o->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if (o->data && o->len + (size_t)n < o->cap) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap ? o->cap : 4096;
        while (cap <= o->len + (size_t)n)
            cap *= 2;
        char *grown = realloc(o->data, cap);
        if (!grown) {
            o->failed = 1;
            return;
        }
        o->data = grown;
        o->cap = cap;
    }
}

/* Prometheus reads Go floats: +Inf, -Inf, NaN and ordinary decimals. */
static void put_value(outbuf *o, double v) {
    if (isnan(v))
        put(o, "NaN");
    else if (isinf(v))
        put(o, v > 0 ? "+Inf" : "-Inf");
    else
        put(o, "%.15g", v);
}

static void put_help(outbuf *o, const char *help) {
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            put(o, "\\\\");
        else if (*p == '\n')
            put(o, "\\n");
        else
            put(o, "%c", *p);
    }
}

static void series(outbuf *o, const char *name, const char *suffix, const char *labels, const char *extra, double v) {
    put(o, "%s%s", name, suffix);
    int has_labels = labels && *labels;
    if (has_labels || extra)
        put(o, "{%s%s%s}", has_labels ? labels : "", has_labels && extra ? "," : "", extra ? extra : "");
    put(o, " ");
    put_value(o, v);
    put(o, "\n");
}

static void visit(void *arg, const tlab_metric_sample *s) {
    metrics *m = arg;
    outbuf *o = &m->out;
    if (!m->last_family || strcmp(m->last_family, s->name) != 0) {
        static const char *const types[] = {"counter", "gauge", "histogram"};
        put(o, "# HELP %s ", s->name);
        put_help(o, s->help);
        put(o, "\n# TYPE %s %s\n", s->name, types[s->kind]);
        m->last_family = s->name;
    }
    if (s->kind != TLAB_METRIC_HISTOGRAM) {
        series(o, s->name, "", s->labels, NULL, s->value);
        return;
    }
    char le[48];
    for (size_t i = 0; i < s->n_buckets; i++) {
        snprintf(le, sizeof le, "le=\"%.15g\"", s->buckets[i]);
        series(o, s->name, "_bucket", s->labels, le, (double)s->bucket_counts[i]);
    }
    series(o, s->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
    series(o, s->name, "_sum", s->labels, NULL, s->value);
    series(o, s->name, "_count", s->labels, NULL, (double)s->count);
}

static void on_scrape(void *arg, tlab_exchange *ex) {
    metrics *m = arg;
    uint64_t start = m->api->now_us();
    m->api->metric_set(m->queue_depth, NULL, (double)m->api->waiting());
    m->api->metric_set(m->in_flight, NULL, (double)m->api->in_flight());
    int ws = m->api->worker_state();
    /* An external worker (no supervisor plugin) is assumed running. */
    m->api->metric_set(m->worker_state, NULL, ws < 0 ? (double)TLAB_WORKER_RUNNING : (double)ws);
    m->api->metric_set(m->uptime, NULL, (double)(start - m->started_us) / 1e6);
    m->out.len = 0;
    m->out.failed = 0;
    m->last_family = NULL;
    m->api->metrics_foreach(visit, m);
    if (m->out.failed) {
        m->api->exchange_reply(ex, 500, "text/plain", "out of memory rendering metrics\n", 32);
        return;
    }
    m->api->exchange_reply(ex, 200, "text/plain; version=0.0.4; charset=utf-8", m->out.data, m->out.len);
    m->api->metric_observe(m->scrape_seconds, NULL, (double)(m->api->now_us() - start) / 1e6);
}

/* Appends s to the NUL-terminated buf of `cap` bytes holding `len`, cut as snprintf would cut it.
 * The labels below are built on every request; this costs a fraction of a snprintf. */
static size_t append(char *buf, size_t len, size_t cap, const char *s) {
    while (*s && len + 1 < cap)
        buf[len++] = *s++;
    buf[len] = '\0';
    return len;
}

static size_t append_int(char *buf, size_t len, size_t cap, int v) {
    char digits[16];
    int n = sizeof digits - 1;
    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;
    digits[n] = '\0';
    do {
        digits[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        digits[--n] = '-';
    return append(buf, len, cap, digits + n);
}

static void on_event(void *self, tlab_request *r, tlab_event ev) {
    metrics *m = self;
    if (ev != TLAB_EV_DONE)
        return;
    const tlab_api *api = m->api;
    const char *route = api->request_path(r);
    char labels[128];
    size_t n = append(labels, 0, sizeof labels, "code=\"");
    n = append_int(labels, n, sizeof labels, api->request_status(r));
    n = append(labels, n, sizeof labels, "\",route=\"");
    n = append(labels, n, sizeof labels, route);
    append(labels, n, sizeof labels, "\"");
    api->metric_add(m->requests, labels, 1);
    n = append(labels, 0, sizeof labels, "route=\"");
    n = append(labels, n, sizeof labels, route);
    append(labels, n, sizeof labels, "\"");
    uint64_t arrived = api->request_time_us(r, TLAB_EV_ARRIVED);
    api->metric_observe(m->duration, labels, (double)(api->request_time_us(r, TLAB_EV_DONE) - arrived) / 1e6);
    uint64_t first = api->request_time_us(r, TLAB_EV_FIRST_BYTE);
    if (first && api->request_status(r) == 200)
        api->metric_observe(m->ttft, labels, (double)(first - arrived) / 1e6);
    uint64_t admitted = api->request_time_us(r, TLAB_EV_ADMITTED), dispatched = api->request_time_us(r, TLAB_EV_DISPATCHED);
    if (admitted && dispatched)
        api->metric_observe(m->queue_wait, NULL, (double)(dispatched - admitted) / 1e6);
    if (dispatched)
        api->metric_observe(m->overhead, NULL, (double)api->request_overhead_us(r) / 1e6);
}

static void shutdown_plugin(void *self) {
    metrics *m = self;
    if (m) {
        free(m->out.data);
        free(m);
    }
}

/* Families owned by other parts, created here so they exist from the first scrape. Unlabelled
 * ones get a zero series; labelled ones get series as their owners meet each label value. */
static void preregister(metrics *m) {
    static const struct {
        tlab_metric_kind kind;
        int zero_series;
        const char *name, *help;
    } owned_elsewhere[] = {
        {TLAB_METRIC_COUNTER, 1, "gateway_worker_starts_total", "Worker process starts by the supervisor"},
        {TLAB_METRIC_COUNTER, 1, "gateway_worker_stops_total", "Worker process stops by the supervisor"},
        {TLAB_METRIC_COUNTER, 1, "gateway_worker_crashes_total", "Unexpected worker exits"},
        {TLAB_METRIC_GAUGE, 1, "gateway_degradation_tier", "Current degradation tier (0 = normal)"},
        {TLAB_METRIC_GAUGE, 1, "gateway_batch_window_seconds", "Current gateway batching window (0 = pass-through)"},
        {TLAB_METRIC_COUNTER, 0, "gateway_admission_rejects_total", "Requests rejected by the admission policy, by reason"},
        {TLAB_METRIC_COUNTER, 0, "gateway_queue_timeouts_total", "Requests answered 503 because they outwaited queue_timeout_ms"},
    };
    for (size_t i = 0; i < N(owned_elsewhere); i++) {
        tlab_metric *f = m->api->metric_register(m->ctx, owned_elsewhere[i].kind, owned_elsewhere[i].name,
                                                 owned_elsewhere[i].help, NULL, 0);
        if (f && owned_elsewhere[i].zero_series)
            m->api->metric_add(f, NULL, 0); /* adds nothing to a value its owner already set */
    }
    tlab_metric *cold = m->api->metric_register(m->ctx, TLAB_METRIC_HISTOGRAM, "gateway_worker_cold_start_seconds",
                                                "Time from worker start to READY", cold_start_buckets, N(cold_start_buckets));
    m->api->metric_add(cold, NULL, 0); /* an empty series: count 0, every bucket 0 */
}

static int init(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *cfg, void **self, char *err, size_t errlen) {
    static const char *const keys[] = {"path", NULL};
    if (tlab_config_check_keys(cfg, keys, err, errlen))
        return TLAB_ERROR;
    const json_t *path_v = json_object_get(cfg, "path");
    const char *path = path_v ? json_string_value(path_v) : "/metrics";
    if (!path || path[0] != '/') {
        snprintf(err, errlen, "'path' must be a string starting with '/'");
        return TLAB_ERROR;
    }
    metrics *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return TLAB_ERROR;
    }
    m->api = api;
    m->ctx = ctx;
    m->started_us = api->now_us();
    m->requests = api->metric_register(ctx, TLAB_METRIC_COUNTER, "gateway_requests_total",
                                       "LLM requests answered, by HTTP status and route (499: client left first)", NULL, 0);
    m->duration = api->metric_register(ctx, TLAB_METRIC_HISTOGRAM, "gateway_request_duration_seconds",
                                       "End-to-end time in the gateway, from request read to response end", latency_buckets,
                                       N(latency_buckets));
    m->ttft = api->metric_register(ctx, TLAB_METRIC_HISTOGRAM, "gateway_ttft_seconds",
                                   "Time from request read to the first response byte from the worker", latency_buckets,
                                   N(latency_buckets));
    m->queue_wait = api->metric_register(ctx, TLAB_METRIC_HISTOGRAM, "gateway_queue_wait_seconds",
                                         "Time from admission to dispatch to a worker", latency_buckets, N(latency_buckets));
    m->overhead = api->metric_register(ctx, TLAB_METRIC_HISTOGRAM, "gateway_overhead_seconds",
                                       "Time spent in gateway code per request (x-tlab-overhead-us)", overhead_buckets,
                                       N(overhead_buckets));
    m->queue_depth = api->metric_register(ctx, TLAB_METRIC_GAUGE, "gateway_queue_depth", "Requests admitted and waiting for dispatch", NULL, 0);
    m->in_flight = api->metric_register(ctx, TLAB_METRIC_GAUGE, "gateway_in_flight", "Requests sent to a worker and not yet done", NULL, 0);
    m->worker_state = api->metric_register(ctx, TLAB_METRIC_GAUGE, "gateway_worker_state",
                                           "Worker state: 0 idle, 1 starting, 2 running, 3 stopping, 4 sleeping, 5 failed", NULL, 0);
    m->uptime = api->metric_register(ctx, TLAB_METRIC_GAUGE, "gateway_uptime_seconds", "Seconds since the metrics plugin started", NULL, 0);
    m->scrape_seconds = api->metric_register(ctx, TLAB_METRIC_HISTOGRAM, "gateway_metrics_render_seconds",
                                             "Time to render /metrics on the event loop", overhead_buckets, N(overhead_buckets));
    preregister(m);
    if (!m->requests || !m->duration || !m->ttft || !m->queue_wait || !m->overhead || !m->queue_depth || !m->in_flight ||
        !m->worker_state || !m->uptime || !m->scrape_seconds || api->route_add(ctx, "GET", path, on_scrape, m) != TLAB_OK) {
        snprintf(err, errlen, "cannot register metrics or the route %s (taken?)", path);
        shutdown_plugin(m);
        return TLAB_ERROR;
    }
    *self = m;
    return TLAB_OK;
}

static const tlab_plugin metrics_plugin = {
    TLAB_PLUGIN_HEADER,
    .name = "metrics",
    .version = "1.0.0",
    .init = init,
    .shutdown = shutdown_plugin,
    .on_event = on_event,
    .events = TLAB_EVENT_BIT(TLAB_EV_DONE),
};

TLAB_PLUGIN_DECLARE(metrics_plugin)
