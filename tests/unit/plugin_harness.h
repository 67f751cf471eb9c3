/*
 * plugin_harness.h - a stand-in gateway for unit-testing one plugin: the plugin's .c file is
 * compiled into the test, and this header provides the tlab_api it talks to, with a clock the
 * test advances by hand, timers that fire when it does, and requests whose every field the test
 * sets. Metrics go to the real core registry, so tests read them back with tlab__metric_value.
 *
 * Include it after the plugin's source; call harness_load(config_json) to run the plugin's init.
 */
#ifndef TLAB_PLUGIN_HARNESS_H
#define TLAB_PLUGIN_HARNESS_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/metrics_registry.h"
#include "tlab/plugin.h"
#include "tlab_test.h"

struct tlab_request {
    char id[16];
    const char *path;
    const char *x_priority;    /* header */
    const char *authorization; /* header */
    char priority[32];         /* set by request_set_priority */
    void *data;
    int status;
    int stream;
    int promised; /* request_promised */
    uint64_t t[TLAB_EV__COUNT];
    uint64_t overhead_us;
    /* what request_reject did */
    int rejected_status, retry_after_s;
    char reject_type[64], reject_message[256];
};

struct tlab_timer {
    tlab_timer_cb cb;
    void *arg;
    int armed, repeat;
    uint64_t due, interval;
};

struct tlab_exchange {
    int status;
    char content_type[64];
    char *body;
    size_t len;
};

#define HARNESS_MAX_TIMERS 16
static struct {
    uint64_t now;
    tlab_timer *timers[HARNESS_MAX_TIMERS];
    size_t n_timers;
    size_t in_flight, waiting;
    int wakes;
    const tlab_plugin *desc;
    void *self;
    tlab_route_handler route;
    void *route_arg;
    char route_path[64];
} H;

static void h_log(tlab_plugin_ctx *ctx, tlab_log_level level, const char *fmt, ...) {
    (void)ctx;
    if (level < TLAB_LOG_INFO)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[plugin] ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
static uint64_t h_now(void) {
    return H.now;
}
static tlab_timer *h_timer_new(tlab_plugin_ctx *ctx, tlab_timer_cb cb, void *arg) {
    (void)ctx;
    if (H.n_timers == HARNESS_MAX_TIMERS)
        return NULL;
    tlab_timer *t = calloc(1, sizeof *t);
    t->cb = cb;
    t->arg = arg;
    H.timers[H.n_timers++] = t;
    return t;
}
static int h_timer_start(tlab_timer *t, uint64_t after_us, int repeat) {
    t->armed = 1;
    t->repeat = repeat;
    t->interval = after_us;
    t->due = H.now + after_us;
    return TLAB_OK;
}
static void h_timer_stop(tlab_timer *t) {
    t->armed = 0;
}
static void h_timer_free(tlab_timer *t) {
    for (size_t i = 0; i < H.n_timers; i++)
        if (H.timers[i] == t)
            H.timers[i] = H.timers[--H.n_timers];
    free(t);
}
static tlab_metric *h_metric_register(tlab_plugin_ctx *ctx, tlab_metric_kind kind, const char *name, const char *help,
                                      const double *buckets, size_t n) {
    (void)ctx;
    return tlab__metric_register(kind, name, help, buckets, n);
}
static const char *h_request_id(const tlab_request *r) {
    return r->id;
}
static const char *h_request_path(const tlab_request *r) {
    return r->path ? r->path : "/v1/completions";
}
static uint64_t h_request_time(const tlab_request *r, tlab_event ev) {
    return r->t[ev];
}
static const char *h_request_header(const tlab_request *r, const char *name) {
    if (strcasecmp(name, "x-priority") == 0)
        return r->x_priority;
    if (strcasecmp(name, "authorization") == 0)
        return r->authorization;
    return NULL;
}
static int h_is_stream(const tlab_request *r) {
    return r->stream;
}
static int h_status(const tlab_request *r) {
    return r->status;
}
static void h_set_data(tlab_plugin_ctx *ctx, tlab_request *r, void *d) {
    (void)ctx;
    r->data = d;
}
static void *h_get_data(tlab_plugin_ctx *ctx, const tlab_request *r) {
    (void)ctx;
    return r->data;
}
/* Like the core: a rejected request first leaves the queue, then is answered. */
static int h_reject(tlab_request *r, int status, const char *type, const char *message, int retry_after_s) {
    if (H.desc->queue)
        H.desc->queue->remove(H.self, r);
    r->rejected_status = r->status = status;
    r->retry_after_s = retry_after_s;
    snprintf(r->reject_type, sizeof r->reject_type, "%s", type ? type : "");
    snprintf(r->reject_message, sizeof r->reject_message, "%s", message ? message : "");
    return TLAB_OK;
}
static void h_wake(void) {
    H.wakes++;
}
static size_t h_in_flight(void) {
    return H.in_flight;
}
static size_t h_waiting(void) {
    return H.waiting;
}
static int h_route_add(tlab_plugin_ctx *ctx, const char *method, const char *path, tlab_route_handler h, void *arg) {
    (void)ctx, (void)method;
    H.route = h;
    H.route_arg = arg;
    snprintf(H.route_path, sizeof H.route_path, "%s", path);
    return TLAB_OK;
}
static void h_exchange_reply(tlab_exchange *ex, int status, const char *ctype, const char *body, size_t len) {
    ex->status = status;
    snprintf(ex->content_type, sizeof ex->content_type, "%s", ctype ? ctype : "");
    ex->body = malloc(len + 1);
    memcpy(ex->body, body, len);
    ex->body[len] = '\0';
    ex->len = len;
}
static int h_worker_state(void) {
    return -1;
}
static uint64_t h_overhead(const tlab_request *r) {
    return r->overhead_us;
}
static const char *h_priority(const tlab_request *r) {
    return r->priority[0] ? r->priority : r->x_priority;
}
static int h_set_priority(tlab_request *r, const char *p) {
    snprintf(r->priority, sizeof r->priority, "%s", p ? p : "");
    return TLAB_OK;
}

static int h_promised(const tlab_request *r) {
    return r->promised;
}

static const tlab_api harness_api = {
    .size = sizeof(tlab_api), .abi_major = TLAB_ABI_MAJOR, .abi_minor = TLAB_ABI_MINOR, .log = h_log, .now_us = h_now,
    .timer_new = h_timer_new, .timer_start = h_timer_start, .timer_stop = h_timer_stop, .timer_free = h_timer_free,
    .metric_register = h_metric_register, .metric_add = tlab__metric_add, .metric_set = tlab__metric_set,
    .metric_observe = tlab__metric_observe, .metrics_foreach = tlab__metrics_foreach, .request_id = h_request_id,
    .request_path = h_request_path, .request_time_us = h_request_time, .request_header = h_request_header,
    .request_is_stream = h_is_stream, .request_status = h_status, .request_set_data = h_set_data,
    .request_get_data = h_get_data, .request_reject = h_reject, .dispatch_wake = h_wake, .in_flight = h_in_flight,
    .route_add = h_route_add, .exchange_reply = h_exchange_reply, .worker_state = h_worker_state, .waiting = h_waiting,
    .request_overhead_us = h_overhead, .request_priority = h_priority, .request_set_priority = h_set_priority,
    .request_promised = h_promised,
};

/* Advances the clock by `us`, firing due timers in due order (a timer may re-arm itself). */
__attribute__((unused)) static void harness_advance(uint64_t us) {
    uint64_t target = H.now + us;
    for (;;) {
        tlab_timer *next = NULL;
        for (size_t i = 0; i < H.n_timers; i++)
            if (H.timers[i]->armed && H.timers[i]->due <= target && (!next || H.timers[i]->due < next->due))
                next = H.timers[i];
        if (!next)
            break;
        H.now = next->due;
        if (next->repeat)
            next->due += next->interval ? next->interval : 1;
        else
            next->armed = 0;
        next->cb(next->arg);
    }
    H.now = target;
}

/* Runs init with `config_json`; returns its result and leaves err filled on failure. */
__attribute__((unused)) static int harness_load(const char *config_json, char *err, size_t errlen) {
    H.desc = tlab_plugin_entry();
    json_t *cfg = json_loads(config_json, 0, NULL);
    if (!cfg) {
        snprintf(err, errlen, "bad test JSON");
        return TLAB_ERROR;
    }
    err[0] = '\0';
    int rc = H.desc->init(NULL, &harness_api, cfg, &H.self, err, errlen);
    json_decref(cfg);
    return rc;
}

__attribute__((unused)) static void harness_unload(void) {
    if (H.desc && H.self && H.desc->shutdown)
        H.desc->shutdown(H.self);
    H.self = NULL;
    tlab__metrics_reset();
}

__attribute__((unused)) static tlab_request *harness_request(const char *id) {
    tlab_request *r = calloc(1, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    return r;
}

#endif
