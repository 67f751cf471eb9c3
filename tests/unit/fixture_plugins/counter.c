/* Test plugin: counts lifecycle events and shutdowns into globals the test reads through the
 * registry (a gauge per event), and holds dispatch while its gate is closed. */
#include <stdio.h>
#include <stdlib.h>
#include <tlab/plugin.h>

typedef struct {
    const tlab_api *api;
    tlab_metric *events;
} counter;

static void on_event(void *self, tlab_request *r, tlab_event ev) {
    counter *c = self;
    char labels[32];
    snprintf(labels, sizeof labels, "event=\"%d\"", (int)ev);
    c->api->metric_add(c->events, labels, 1);
    (void)r;
}

static void counter_shutdown(void *self) {
    counter *c = self;
    c->api->metric_add(c->events, "event=\"shutdown\"", 1);
    free(c);
}

static int counter_init(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *config, void **self, char *err, size_t n) {
    (void)config, (void)err, (void)n;
    counter *c = calloc(1, sizeof *c);
    if (!c)
        return TLAB_ERROR;
    c->api = api;
    c->events = api->metric_register(ctx, TLAB_METRIC_COUNTER, "test_counter_events_total", "events seen", NULL, 0);
    *self = c;
    return TLAB_OK;
}

static const tlab_plugin desc = {TLAB_PLUGIN_HEADER, .name = "counter", .version = "0", .init = counter_init,
                                 .shutdown = counter_shutdown, .on_event = on_event};
TLAB_PLUGIN_DECLARE(desc)
