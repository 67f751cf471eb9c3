/*
 * batching.c - a gateway micro-batching window (after Triton's delayed batching) with an SLO
 * guardrail.
 *
 * The first request to reach the dispatcher with no window open opens one. Requests are held
 * (dispatch gate: TLAB_AGAIN) until window_ms has elapsed or max_batch requests are waiting;
 * then the whole group is released at once, so the engine's continuous batching takes them in
 * the same scheduler step. window_ms 0 is a pass-through.
 *
 * Guardrail: every eval_interval_ms, the p95 end-to-end latency of the requests that finished
 * in the last p95_window_s is compared with slo_p95_ms. Above it, the window halves (below 1 ms
 * it drops to 0). Below recover_ratio x slo_p95_ms, it grows back by grow_step_ms per
 * evaluation, up to the configured window. Each change is logged.
 *
 * Commands: "set_window_ms" {"ms": N} sets the configured window (Lua: gw.set_window_ms).
 */
#include <stdlib.h>
#include <string.h>

#include <tlab/plugin.h>

#define SAMPLES 4096

typedef struct batching {
    const tlab_api *api;
    tlab_plugin_ctx *ctx;
    uint64_t configured_us, window_us;
    size_t max_batch;
    int open;
    size_t release_budget; /* requests of the released group not yet dispatched */
    tlab_timer *window_timer, *eval_timer;
    /* guardrail */
    double slo_p95_s, recover_ratio;
    uint64_t grow_step_us, p95_window_us;
    size_t min_samples;
    uint64_t sample_at[SAMPLES];
    double sample_e2e[SAMPLES];
    size_t n_samples, next_sample;
    tlab_metric *window_gauge, *releases, *changes;
} batching;

static void publish(batching *b) {
    b->api->metric_set(b->window_gauge, NULL, (double)b->window_us / 1e6);
}

static void release(batching *b, const char *why) {
    b->open = 0;
    b->api->timer_stop(b->window_timer);
    size_t waiting = b->api->waiting();
    b->release_budget = waiting < b->max_batch ? waiting : b->max_batch;
    char labels[32];
    snprintf(labels, sizeof labels, "trigger=\"%s\"", why);
    b->api->metric_add(b->releases, labels, 1);
    b->api->dispatch_wake();
}

static void on_window_elapsed(void *arg) {
    release(arg, "timer");
}

static int gate(void *self, tlab_request *r) {
    batching *b = self;
    (void)r;
    if (b->window_us == 0 || b->release_budget > 0)
        return TLAB_OK;
    if (!b->open) {
        b->open = 1;
        if (b->api->waiting() >= b->max_batch) {
            release(b, "max_batch");
            return TLAB_OK;
        }
        b->api->timer_start(b->window_timer, b->window_us, 0);
    }
    return TLAB_AGAIN;
}

static void record(batching *b, tlab_request *r) {
    if (b->api->request_status(r) != 200)
        return;
    uint64_t arrived = b->api->request_time_us(r, TLAB_EV_ARRIVED), done = b->api->request_time_us(r, TLAB_EV_DONE);
    b->sample_at[b->next_sample] = done;
    b->sample_e2e[b->next_sample] = (double)(done - arrived) / 1e6;
    b->next_sample = (b->next_sample + 1) % SAMPLES;
    if (b->n_samples < SAMPLES)
        b->n_samples++;
}

static void on_event(void *self, tlab_request *r, tlab_event ev) {
    batching *b = self;
    if (ev == TLAB_EV_DISPATCHED && b->release_budget > 0)
        b->release_budget--;
    else if (ev == TLAB_EV_ADMITTED && b->open && b->api->waiting() + 1 >= b->max_batch)
        release(b, "max_batch"); /* r is about to join the waiting line: the group is full */
    else if (ev == TLAB_EV_DONE)
        record(b, r);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void set_window(batching *b, uint64_t us, const char *reason, double p95) {
    if (us == b->window_us)
        return;
    b->api->log(b->ctx, TLAB_LOG_INFO, "window %.1f ms -> %.1f ms (%s; p95 %.3f s, SLO %.3f s)", (double)b->window_us / 1000,
                (double)us / 1000, reason, p95, b->slo_p95_s);
    b->api->metric_add(b->changes, NULL, 1);
    b->window_us = us;
    publish(b);
    if (us == 0 && b->open)
        release(b, "disabled");
}

static void on_eval(void *arg) {
    batching *b = arg;
    if (b->configured_us == 0)
        return;
    uint64_t now = b->api->now_us();
    double recent[SAMPLES];
    size_t n = 0;
    for (size_t i = 0; i < b->n_samples; i++)
        if (now - b->sample_at[i] <= b->p95_window_us)
            recent[n++] = b->sample_e2e[i];
    if (n < b->min_samples)
        return;
    qsort(recent, n, sizeof recent[0], cmp_double);
    double p95 = recent[(size_t)(0.95 * (double)(n - 1))];
    if (p95 > b->slo_p95_s && b->window_us > 0)
        set_window(b, b->window_us / 2 < 1000 ? 0 : b->window_us / 2, "p95 above the SLO: halving", p95);
    else if (p95 < b->recover_ratio * b->slo_p95_s && b->window_us < b->configured_us) {
        uint64_t grown = b->window_us + b->grow_step_us;
        set_window(b, grown > b->configured_us ? b->configured_us : grown, "p95 well below the SLO: growing back", p95);
    }
}

static int command(void *self, const char *verb, const json_t *args, json_t **result) {
    batching *b = self;
    if (strcmp(verb, "set_window_ms") != 0)
        return TLAB_DECLINED;
    const json_t *ms = json_object_get(args, "ms");
    if (!json_is_number(ms) || json_number_value(ms) < 0 || json_number_value(ms) > 10000) {
        if (result)
            *result = json_string("set_window_ms: 'ms' must be a number from 0 to 10000");
        return TLAB_ERROR;
    }
    b->configured_us = (uint64_t)(json_number_value(ms) * 1000);
    set_window(b, b->configured_us, "set by command", 0);
    return TLAB_OK;
}

static void shutdown_plugin(void *self) {
    batching *b = self;
    if (!b)
        return;
    b->api->timer_free(b->window_timer);
    b->api->timer_free(b->eval_timer);
    free(b);
}

static int init(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *cfg, void **self, char *err, size_t errlen) {
    static const char *const keys[] = {"window_ms",    "max_batch",     "slo_p95_ms",        "recover_ratio",
                                       "grow_step_ms", "p95_window_s", "eval_interval_ms", "min_samples", NULL};
    double window_ms, recover, grow_ms;
    long long max_batch, slo_ms, p95_window_s, eval_ms, min_samples;
    if (tlab_config_check_keys(cfg, keys, err, errlen) ||
        tlab_config_number(cfg, "window_ms", 0, 0, 10000, &window_ms, err, errlen) ||
        tlab_config_int(cfg, "max_batch", 64, 1, 100000, &max_batch, err, errlen) ||
        tlab_config_int(cfg, "slo_p95_ms", 5000, 1, 3600000, &slo_ms, err, errlen) ||
        tlab_config_number(cfg, "recover_ratio", 0.5, 0.01, 1, &recover, err, errlen) ||
        tlab_config_number(cfg, "grow_step_ms", 1, 0.001, 10000, &grow_ms, err, errlen) ||
        tlab_config_int(cfg, "p95_window_s", 30, 1, 3600, &p95_window_s, err, errlen) ||
        tlab_config_int(cfg, "eval_interval_ms", 1000, 10, 600000, &eval_ms, err, errlen) ||
        tlab_config_int(cfg, "min_samples", 20, 1, SAMPLES, &min_samples, err, errlen))
        return TLAB_ERROR;
    batching *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return TLAB_ERROR;
    }
    b->api = api;
    b->ctx = ctx;
    b->configured_us = b->window_us = (uint64_t)(window_ms * 1000);
    b->max_batch = (size_t)max_batch;
    b->slo_p95_s = (double)slo_ms / 1000;
    b->recover_ratio = recover;
    b->grow_step_us = (uint64_t)(grow_ms * 1000);
    b->p95_window_us = (uint64_t)p95_window_s * 1000000;
    b->min_samples = (size_t)min_samples;
    b->window_timer = api->timer_new(ctx, on_window_elapsed, b);
    b->eval_timer = api->timer_new(ctx, on_eval, b);
    b->window_gauge = api->metric_register(ctx, TLAB_METRIC_GAUGE, "gateway_batch_window_seconds",
                                           "Current gateway batching window (0 = pass-through)", NULL, 0);
    b->releases = api->metric_register(ctx, TLAB_METRIC_COUNTER, "gateway_batch_releases_total",
                                       "Batching windows released, by what released them", NULL, 0);
    b->changes = api->metric_register(ctx, TLAB_METRIC_COUNTER, "gateway_batch_window_changes_total",
                                      "Changes of the batching window by the guardrail or a command", NULL, 0);
    if (!b->window_timer || !b->eval_timer || api->timer_start(b->eval_timer, (uint64_t)eval_ms * 1000, 1) != TLAB_OK) {
        snprintf(err, errlen, "cannot create timers");
        shutdown_plugin(b);
        return TLAB_ERROR;
    }
    publish(b);
    api->log(ctx, TLAB_LOG_INFO, "window %.1f ms, max_batch %zu, guardrail p95 <= %.3f s", window_ms, b->max_batch, b->slo_p95_s);
    *self = b;
    return TLAB_OK;
}

static const tlab_plugin batching_plugin = {
    TLAB_PLUGIN_HEADER,
    .name = "batching",
    .version = "1.0.0",
    .init = init,
    .shutdown = shutdown_plugin,
    .on_event = on_event,
    .events = TLAB_EVENT_BIT(TLAB_EV_ADMITTED) | TLAB_EVENT_BIT(TLAB_EV_DISPATCHED) | TLAB_EVENT_BIT(TLAB_EV_DONE),
    .dispatch_gate = gate,
    .command = command,
};

TLAB_PLUGIN_DECLARE(batching_plugin)
