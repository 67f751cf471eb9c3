/* Test plugin: init registers a route, then fails; the gateway must report the message and the
 * route must not survive (a later plugin can register the same path). */
#include <stdio.h>
#include <tlab/plugin.h>

static void handler(void *arg, tlab_exchange *ex) {
    (void)arg, (void)ex;
}

static int failing(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *config, void **self, char *err, size_t n) {
    (void)self;
    api->route_add(ctx, "GET", "/example/hello", handler, NULL);
    snprintf(err, n, "refusing on purpose: reason=%s", json_string_value(json_object_get(config, "reason")));
    return TLAB_ERROR;
}

static const tlab_plugin desc = {TLAB_PLUGIN_HEADER, .name = "failing_init", .version = "0", .init = failing};
TLAB_PLUGIN_DECLARE(desc)
