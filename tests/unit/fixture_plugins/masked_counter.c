/* Fixture plugin: counts the events its on_event receives, subscribed to ARRIVED and DONE only
 * (ABI 1.1's event mask). Built a second time with FIXTURE_ABI_1_0 as a plugin built for ABI 1.0:
 * its descriptor ends before `events`, so the host must ignore the mask and send every event. */
#include <stddef.h>
#include <stdlib.h>
#include <tlab/plugin.h>

#ifdef FIXTURE_ABI_1_0
#define NAME "abi10_counter"
#else
#define NAME "masked_counter"
#endif

typedef struct {
    const tlab_api *api;
    tlab_metric *events;
} counter;

static void on_event(void *self, tlab_request *r, tlab_event ev) {
    counter *c = self;
    static const char *const labels[] = {"event=\"0\"", "event=\"1\"", "event=\"2\"", "event=\"3\"", "event=\"4\"", "event=\"5\""};
    c->api->metric_add(c->events, labels[ev], 1);
    (void)r;
}

static void counter_shutdown(void *self) {
    free(self);
}

static int counter_init(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *config, void **self, char *err, size_t n) {
    (void)config, (void)err, (void)n;
    counter *c = calloc(1, sizeof *c);
    if (!c)
        return TLAB_ERROR;
    c->api = api;
    c->events = api->metric_register(ctx, TLAB_METRIC_COUNTER, "test_" NAME "_events_total", "events seen", NULL, 0);
    *self = c;
    return TLAB_OK;
}

static const tlab_plugin desc = {
#ifdef FIXTURE_ABI_1_0
    .abi_major = 1, .abi_minor = 0, .size = offsetof(tlab_plugin, events),
#else
    TLAB_PLUGIN_HEADER,
#endif
    .name = NAME, .version = "0", .init = counter_init, .shutdown = counter_shutdown, .on_event = on_event,
    .events = TLAB_EVENT_BIT(TLAB_EV_ARRIVED) | TLAB_EVENT_BIT(TLAB_EV_DONE)};
TLAB_PLUGIN_DECLARE(desc)
