/*
 * plugin_api.c - the tlab_api table: each entry adapts one core facility for plugins, checking
 * arguments at the boundary so a plugin's mistake is logged rather than crashing the gateway.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>


#include "gateway/plugin_api.h"

#include "dispatch/dispatch.h"
#include "dispatch/gate.h"
#include "gateway/gateway.h"
#include "common/log.h"
#include "base/metrics_registry.h"
#include "hooks/plugin_host.h"
#include "gateway/plugin_services.h"
#include "request/request.h"

struct tlab_timer {
    struct event *ev;
    tlab_timer_cb cb;
    void *arg;
};

static void api_log(tlab_plugin_ctx *ctx, tlab_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tlab__logv(level, ctx ? tlab__plugin_ctx_name(ctx) : "plugin", fmt, ap);
    va_end(ap);
}

static uint64_t api_now_us(void) {
    return tlab__now_us();
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    tlab_timer *t = arg;
    t->cb(t->arg);
}

static tlab_timer *api_timer_new(tlab_plugin_ctx *ctx, tlab_timer_cb cb, void *arg) {
    tlab_timer *t = calloc(1, sizeof *t);
    if (!t || !cb) {
        free(t);
        return NULL;
    }
    t->cb = cb;
    t->arg = arg;
    t->ev = event_new(tlab__plugin_ctx_base(ctx), -1, 0, on_timer, t);
    if (!t->ev) {
        free(t);
        return NULL;
    }
    return t;
}

static int api_timer_start(tlab_timer *t, uint64_t after_us, int repeat) {
    if (!t)
        return TLAB_ERROR;
    event_del(t->ev);
    struct event_base *base = event_get_base(t->ev);
    event_assign(t->ev, base, -1, repeat ? EV_PERSIST : 0, on_timer, t);
    struct timeval tv = {.tv_sec = (time_t)(after_us / 1000000), .tv_usec = (suseconds_t)(after_us % 1000000)};
    return event_add(t->ev, &tv) == 0 ? TLAB_OK : TLAB_ERROR;
}

static void api_timer_stop(tlab_timer *t) {
    if (t)
        event_del(t->ev);
}

static void api_timer_free(tlab_timer *t) {
    if (!t)
        return;
    event_free(t->ev);
    free(t);
}

static tlab_metric *api_metric_register(tlab_plugin_ctx *ctx, tlab_metric_kind kind, const char *name, const char *help,
                                        const double *buckets, size_t n_buckets) {
    tlab_metric *m = tlab__metric_register(kind, name, help, buckets, n_buckets);
    if (!m)
        api_log(ctx, TLAB_LOG_ERROR, "cannot register metric '%s' (invalid name, or registered with another kind)",
                name ? name : "(null)");
    return m;
}

static const char *api_request_id(const tlab_request *r) {
    return r->id;
}

static const char *api_request_path(const tlab_request *r) {
    return r->path;
}

static uint64_t api_request_time_us(const tlab_request *r, tlab_event ev) {
    return (unsigned)ev < TLAB_EV__COUNT ? r->t[ev] : 0;
}

static const char *api_request_header(const tlab_request *r, const char *name) {
    return r->http ? tlab__http_req_header(r->http, name) : NULL;
}

static json_t *api_request_body(tlab_request *r) {
    json_t *body = tlab__request_body(r); /* parsed again if the request waited */
    if (body) {
        r->body_dirty = 1; /* the caller may change it; re-serialise to be safe */
        r->body_lent = 1;  /* and may keep the pointer: the JSON stays until the request ends */
        if (r->phase == TLAB_PHASE_WAITING)
            tlab__request_compact_body(r); /* only the JSON is the truth now: the bytes go */
    }
    return body;
}

static int api_request_is_stream(const tlab_request *r) {
    return r->info.stream;
}

static int api_request_status(const tlab_request *r) {
    return r->status;
}

static int api_request_worker_id(const tlab_request *r) {
    return r->worker_id;
}

static int api_request_add_response_header(tlab_request *r, const char *name, const char *value) {
    if (!name || !value || r->phase >= TLAB_PHASE_RESPONDING)
        return TLAB_ERROR;
    return tlab__request_add_response_header(r, name, value) == 0 ? TLAB_OK : TLAB_ERROR;
}

static void api_request_set_data(tlab_plugin_ctx *ctx, tlab_request *r, void *data) {
    if (r->plugin_data)
        r->plugin_data[tlab__plugin_ctx_index(ctx)] = data;
}

static void *api_request_get_data(tlab_plugin_ctx *ctx, const tlab_request *r) {
    return r->plugin_data ? r->plugin_data[tlab__plugin_ctx_index(ctx)] : NULL;
}

static int api_request_reject(tlab_request *r, int status, const char *type, const char *message, int retry_after_s) {
    if (r->phase >= TLAB_PHASE_UPSTREAM || status < 400 || status > 599)
        return TLAB_ERROR;
    /* A waiting request leaves the queue through its cleanup handler (dispatch.c), also when the
     * queue plugin calls this from push() itself, before it holds r. */
    tlab__error err;
    tlab__error_set(&err, status, type ? type : "invalid_request_error", NULL, "%s", message ? message : "rejected");
    tlab__gate_add_retry_after_ms(r, retry_after_s);
    tlab__request_fail(r, &err, retry_after_s);
    return TLAB_OK;
}

static size_t api_in_flight(void) {
    return tlab__requests_in_flight();
}

static uint64_t api_request_deadline_us(const tlab_request *r) {
    return r->deadline_us;
}

static int api_request_judge(const tlab_request *r, double ahead, double share, char *msg, size_t msglen, int *retry_after_s) {
    int retry = 0;
    if (share <= 0 || share > 2)
        share = 1;
    int rc = tlab__gate_judge(r, ahead, share, msg, msglen, &retry);
    if (retry_after_s)
        *retry_after_s = retry;
    return rc == 0 ? TLAB_OK : TLAB_DECLINED;
}

static int api_request_promised(const tlab_request *r) {
    return r->promised;
}

static size_t api_waiting(void) {
    return tlab__dispatch_waiting();
}

static uint64_t api_request_overhead_us(const tlab_request *r) {
    return r->overhead_us;
}

static int api_request_set_priority(tlab_request *r, const char *class_name) {
    return tlab__request_set_priority(r, class_name) == 0 ? TLAB_OK : TLAB_ERROR;
}

static const tlab_api api_table = {
    .size = sizeof(tlab_api),
    .abi_major = TLAB_ABI_MAJOR,
    .abi_minor = TLAB_ABI_MINOR,
    .log = api_log,
    .now_us = api_now_us,
    .timer_new = api_timer_new,
    .timer_start = api_timer_start,
    .timer_stop = api_timer_stop,
    .timer_free = api_timer_free,
    .metric_register = api_metric_register,
    .metric_add = tlab__metric_add,
    .metric_set = tlab__metric_set,
    .metric_observe = tlab__metric_observe,
    .metrics_foreach = tlab__metrics_foreach,
    .request_id = api_request_id,
    .request_path = api_request_path,
    .request_time_us = api_request_time_us,
    .request_header = api_request_header,
    .request_body = api_request_body,
    .request_is_stream = api_request_is_stream,
    .request_status = api_request_status,
    .request_worker_id = api_request_worker_id,
    .request_add_response_header = api_request_add_response_header,
    .request_set_data = api_request_set_data,
    .request_get_data = api_request_get_data,
    .request_reject = api_request_reject,
    .dispatch_wake = tlab__dispatch_wake,
    .in_flight = api_in_flight,
    .route_add = tlab__plugins_add_route,
    .exchange_header = tlab__exchange_header,
    .exchange_body = tlab__exchange_body,
    .exchange_add_header = tlab__exchange_add_header,
    .exchange_reply = tlab__exchange_reply,
    .command = tlab__plugins_command,
    .worker_state = tlab__plugins_worker_state,
    .waiting = api_waiting,
    .request_deadline_us = api_request_deadline_us,
    .request_judge = api_request_judge,
    .gate_limit = tlab__gate_limit,
    .request_promised = api_request_promised,
    .request_overhead_us = api_request_overhead_us,
    .request_priority = tlab__request_priority,
    .request_set_priority = api_request_set_priority,
    .process_spawn = tlab__svc_process_spawn,
    .process_signal = tlab__svc_process_signal,
    .http_request = tlab__svc_http_request,
    .http_cancel = tlab__svc_http_cancel,
    .fail_waiting = tlab__svc_fail_waiting,
    .yaml_load = tlab__svc_yaml_load,
    .upstream_url = tlab__svc_upstream_url,
};

const tlab_api *tlab__plugin_api(void) {
    return &api_table;
}
