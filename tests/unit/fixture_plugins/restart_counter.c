/* Test plugin: stands in for the supervisor's "restart_worker" command. Counts calls in
 * test_restart_worker_total and keeps each knob's last value in test_restart_worker_knob{knob=...};
 * a knob "fail" makes it answer TLAB_ERROR with a message. Used by test_policy_gw and the
 * degradation integration test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tlab/plugin.h>

typedef struct {
    const tlab_api *api;
    tlab_metric *calls, *knobs;
} restart_counter;

static int command(void *self, const char *verb, const json_t *args, json_t **result) {
    restart_counter *c = self;
    if (strcmp(verb, "restart_worker") != 0)
        return TLAB_DECLINED;
    if (json_object_get(args, "fail")) {
        if (result)
            *result = json_string("refused on purpose");
        return TLAB_ERROR;
    }
    c->api->metric_add(c->calls, NULL, 1);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)args, k, v) {
        char labels[96];
        snprintf(labels, sizeof labels, "knob=\"%s\"", k);
        c->api->metric_set(c->knobs, labels, json_number_value(v));
    }
    return TLAB_OK;
}

static void rc_shutdown(void *self) {
    free(self);
}

static int rc_init(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *config, void **self, char *err, size_t n) {
    (void)config, (void)err, (void)n;
    restart_counter *c = calloc(1, sizeof *c);
    if (!c)
        return TLAB_ERROR;
    c->api = api;
    c->calls = api->metric_register(ctx, TLAB_METRIC_COUNTER, "test_restart_worker_total", "restart_worker commands", NULL, 0);
    c->knobs = api->metric_register(ctx, TLAB_METRIC_GAUGE, "test_restart_worker_knob", "last knob values", NULL, 0);
    api->metric_add(c->calls, NULL, 0);
    *self = c;
    return TLAB_OK;
}

static const tlab_plugin desc = {TLAB_PLUGIN_HEADER, .name = "restart_counter", .version = "0", .init = rc_init,
                                 .shutdown = rc_shutdown, .command = command};
TLAB_PLUGIN_DECLARE(desc)
