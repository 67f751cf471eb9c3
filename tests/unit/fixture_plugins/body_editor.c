/* Test plugin: edits request bodies through api->request_body, for gateway_queue.py's check that
 * a change made to a request that waited in the queue (whose parsed body the gateway dropped
 * while it waited) still reaches the worker.
 *
 * A body field "tlab_test_max_tokens": N makes the dispatch gate (which runs after the wait) set
 * max_tokens to N and remove the field; it also answers with x-body-editor: <the body's "model">,
 * so the test sees the plugin read the original content. With a request header
 * x-test-hold-pointer, the plugin takes the body's pointer already at TLAB_EV_ADMITTED (before the
 * wait) and edits through that pointer in the gate: the pointer must stay valid across the wait. */
#include <stdio.h>
#include <stdlib.h>
#include <tlab/plugin.h>

typedef struct {
    const tlab_api *api;
    tlab_plugin_ctx *ctx;
} editor;

static void on_event(void *self, tlab_request *r, tlab_event ev) {
    editor *e = self;
    if (ev != TLAB_EV_ADMITTED)
        return;
    if (e->api->request_header(r, "x-test-hold-pointer"))
        e->api->request_set_data(e->ctx, r, e->api->request_body(r));
}

static int gate(void *self, tlab_request *r) {
    editor *e = self;
    json_t *body = e->api->request_get_data(e->ctx, r);
    if (!body)
        body = e->api->request_body(r);
    json_t *n = body ? json_object_get(body, "tlab_test_max_tokens") : NULL;
    if (!json_is_integer(n))
        return TLAB_OK;
    json_object_set_new(body, "max_tokens", json_integer(json_integer_value(n)));
    json_object_del(body, "tlab_test_max_tokens");
    const char *model = json_string_value(json_object_get(body, "model"));
    e->api->request_add_response_header(r, "x-body-editor", model ? model : "(none)");
    return TLAB_OK;
}

static void editor_shutdown(void *self) {
    free(self);
}

static int editor_init(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *config, void **self, char *err, size_t n) {
    (void)config;
    editor *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, n, "out of memory");
        return TLAB_ERROR;
    }
    e->api = api;
    e->ctx = ctx;
    *self = e;
    return TLAB_OK;
}

static const tlab_plugin desc = {TLAB_PLUGIN_HEADER, .name = "body_editor", .version = "0", .init = editor_init,
                                 .shutdown = editor_shutdown, .on_event = on_event, .dispatch_gate = gate};
TLAB_PLUGIN_DECLARE(desc)
