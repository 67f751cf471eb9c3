/*
 * example.c - the smallest useful plugin: it stamps a response header on every LLM request and
 * serves GET /example/hello, which reports how many requests it has seen.
 *
 * Config block (all optional):
 *   header: x-tlab-example       # header name added to every LLM response
 *   value:  hello                # its value
 *   greeting: "hello from the example plugin"
 *
 * It shows the whole contract: the descriptor, init reading its JSON config, a route, an event
 * hook, a metric, and a shutdown that frees everything init made.
 */
#define _POSIX_C_SOURCE 200809L /* strdup under -std=c11 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tlab/plugin.h>

typedef struct example {
    const tlab_api *api;
    tlab_plugin_ctx *ctx;
    char *header, *value, *greeting;
    unsigned long long seen;
    tlab_metric *seen_total;
} example;

static char *dup_or(const json_t *config, const char *key, const char *fallback) {
    const char *s = json_string_value(json_object_get(config, key));
    return strdup(s ? s : fallback);
}

static void on_hello(void *arg, tlab_exchange *ex) {
    example *ex_self = arg;
    json_t *reply = json_pack("{s:s, s:I}", "greeting", ex_self->greeting, "requests_seen", (json_int_t)ex_self->seen);
    char *body = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    if (body)
        ex_self->api->exchange_reply(ex, 200, "application/json", body, strlen(body));
    else
        ex_self->api->exchange_reply(ex, 500, "text/plain", "out of memory", 13);
    free(body);
    json_decref(reply);
}

static void on_event(void *self, tlab_request *r, tlab_event ev) {
    example *e = self;
    if (ev != TLAB_EV_ADMITTED)
        return;
    e->seen++;
    e->api->metric_add(e->seen_total, NULL, 1);
    e->api->request_add_response_header(r, e->header, e->value);
}

static void example_shutdown(void *self) {
    example *e = self;
    if (!e)
        return;
    free(e->header);
    free(e->value);
    free(e->greeting);
    free(e);
}

static int example_init(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *config, void **self, char *err,
                        size_t errlen) {
    const json_t *greeting = json_object_get(config, "greeting");
    if (greeting && !json_is_string(greeting)) {
        snprintf(err, errlen, "'greeting' must be a string");
        return TLAB_ERROR;
    }
    example *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return TLAB_ERROR;
    }
    e->api = api;
    e->ctx = ctx;
    e->header = dup_or(config, "header", "x-tlab-example");
    e->value = dup_or(config, "value", "hello");
    e->greeting = dup_or(config, "greeting", "hello from the example plugin");
    e->seen_total = api->metric_register(ctx, TLAB_METRIC_COUNTER, "tlab_example_requests_total",
                                         "LLM requests the example plugin has seen", NULL, 0);
    if (!e->header || !e->value || !e->greeting || !e->seen_total ||
        api->route_add(ctx, "GET", "/example/hello", on_hello, e) != TLAB_OK) {
        snprintf(err, errlen, "cannot set up (out of memory, or /example/hello is taken)");
        example_shutdown(e);
        return TLAB_ERROR;
    }
    api->log(ctx, TLAB_LOG_INFO, "ready: adding '%s: %s' to responses", e->header, e->value);
    *self = e;
    return TLAB_OK;
}

static const tlab_plugin example_plugin = {
    TLAB_PLUGIN_HEADER,
    .name = "example",
    .version = "1.0.0",
    .init = example_init,
    .shutdown = example_shutdown,
    .on_event = on_event,
    .events = TLAB_EVENT_BIT(TLAB_EV_ADMITTED),
};

TLAB_PLUGIN_DECLARE(example_plugin)
