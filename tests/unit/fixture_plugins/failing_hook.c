/* Test plugin: a dispatch gate that fails on demand, for the fault tests (gateway_chaos.py).
 * A request carrying "x-test-gate: error" gets TLAB_ERROR from the gate, "x-test-gate: bogus" an
 * out-of-vocabulary code (7); every other request is TLAB_DECLINED (not this plugin's business).
 * The gateway must answer the failed ones with a clean 500 and keep serving the rest. */
#include <stdlib.h>
#include <string.h>
#include <tlab/plugin.h>

typedef struct {
    const tlab_api *api;
    tlab_metric *failed;
} failing_hook;

static int gate(void *self, tlab_request *r) {
    failing_hook *f = self;
    const char *v = f->api->request_header(r, "x-test-gate");
    if (!v)
        return TLAB_DECLINED;
    f->api->metric_add(f->failed, NULL, 1);
    return strcmp(v, "bogus") == 0 ? 7 : TLAB_ERROR;
}

static void fh_shutdown(void *self) {
    free(self);
}

static int fh_init(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *config, void **self, char *err, size_t n) {
    (void)config, (void)err, (void)n;
    failing_hook *f = calloc(1, sizeof *f);
    if (!f)
        return TLAB_ERROR;
    f->api = api;
    f->failed =
        api->metric_register(ctx, TLAB_METRIC_COUNTER, "test_gate_failures_total", "gate calls that failed on purpose", NULL, 0);
    *self = f;
    return TLAB_OK;
}

static const tlab_plugin desc = {TLAB_PLUGIN_HEADER, .name = "failing_hook",  .version = "0",
                                 .init = fh_init,    .shutdown = fh_shutdown, .dispatch_gate = gate};
TLAB_PLUGIN_DECLARE(desc)
