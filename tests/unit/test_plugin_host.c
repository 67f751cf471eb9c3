/*
 * test_plugin_host.c - plugin loading: a good plugin loads and shuts down, and each way a plugin
 * can be wrong (missing file, missing entry symbol, wrong ABI major, failing init) stops loading
 * with the plugin's name and a message that says what is wrong, leaving nothing loaded.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "base/metrics_registry.h"
#include "gateway/plugin_api.h"
#include "hooks/plugin_host.h"
#include "request/request.h"
#include "tlab_test.h"

typedef struct {
    const char *name;
    const char *file;
    const char *config_json;
    int ok;
    const char *expect[3];
} load_case;

static const load_case cases[] = {
    {"example", TLAB_EXAMPLE_PLUGIN, "{\"value\": \"v1\"}", 1, {NULL}},
    {"counter", TLAB_FIXTURE_PLUGIN_DIR "/counter.so", "{}", 1, {NULL}},
    {"missing", TLAB_FIXTURE_PLUGIN_DIR "/does_not_exist.so", "{}", 0,
     {"plugin 'missing' (", "cannot load", "does_not_exist.so"}},
    {"no_entry", TLAB_FIXTURE_PLUGIN_DIR "/no_entry.so", "{}", 0, {"plugin 'no_entry'", "missing entry symbol 'tlab_plugin_entry'", NULL}},
    {"bad_abi", TLAB_FIXTURE_PLUGIN_DIR "/bad_abi.so", "{}", 0,
     {"plugin 'bad_abi'", "is not binary compatible: built for plugin ABI 2.3", "this gateway provides ABI 1.4"}},
    {"failing_init", TLAB_FIXTURE_PLUGIN_DIR "/failing_init.so", "{\"reason\": \"test\"}", 0,
     {"plugin 'failing_init'", "init failed: refusing on purpose: reason=test", NULL}},
    {"masked_counter", TLAB_FIXTURE_PLUGIN_DIR "/masked_counter.so", "{}", 1, {NULL}},
    {"abi10_counter", TLAB_FIXTURE_PLUGIN_DIR "/abi10_counter.so", "{}", 1, {NULL}},
};

static int load_list(struct event_base *base, const load_case *const *list, size_t n, char *err, size_t errlen) {
    tlab__config cfg;
    memset(&cfg, 0, sizeof cfg);
    tlab__plugin_conf *pcs = calloc(n, sizeof *pcs);
    for (size_t i = 0; i < n; i++) {
        pcs[i].name = (char *)list[i]->name;
        pcs[i].path = (char *)list[i]->file;
        pcs[i].config = json_loads(list[i]->config_json, 0, NULL);
    }
    cfg.plugins = pcs;
    cfg.n_plugins = n;
    int rc = tlab__plugins_load(base, &cfg, tlab__plugin_api(), err, errlen);
    for (size_t i = 0; i < n; i++)
        json_decref(pcs[i].config);
    free(pcs);
    return rc;
}

int main(void) {
    struct event_base *base = event_base_new();
    char err[1024];

    /* Each case alone. */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const load_case *list[1] = {&cases[i]};
        err[0] = '\0';
        int rc = load_list(base, list, 1, err, sizeof err);
        CHECK_MSG((rc == 0) == cases[i].ok, "case %s: rc=%d err=%s", cases[i].name, rc, err);
        for (size_t k = 0; k < 3 && cases[i].expect[k]; k++)
            CHECK_STR_CONTAINS(err, cases[i].expect[k]);
        if (rc == 0) {
            CHECK(tlab__plugins_count() == 1);
            tlab__plugins_unload();
        }
        CHECK(tlab__plugins_count() == 0);
    }

    /* A failure after good plugins unloads the good ones too (their shutdown runs). */
    const load_case *chain[] = {&cases[1], &cases[5]};
    tlab_metric *events = tlab__metric_register(TLAB_METRIC_COUNTER, "test_counter_events_total", "events seen", NULL, 0);
    double shutdowns_before = tlab__metric_value(events, "event=\"shutdown\"");
    CHECK(load_list(base, chain, 2, err, sizeof err) == -1);
    CHECK(tlab__plugins_count() == 0);
    CHECK(tlab__metric_value(events, "event=\"shutdown\"") == shutdowns_before + 1);

    /* failing_init registered /example/hello before failing: the route must be gone, so the
     * example plugin can take it. */
    const load_case *after[] = {&cases[0]};
    CHECK_MSG(load_list(base, after, 1, err, sizeof err) == 0, "example after failing_init: %s", err);
    json_t *desc = tlab__plugins_describe();
    CHECK(json_array_size(desc) == 1);
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(desc, 0), "name")), "example") == 0);
    json_decref(desc);
    tlab__plugins_unload();

    /* Event masks (ABI 1.1): on_event runs only for the events a plugin subscribed to; a plugin
     * without a mask, and one built for ABI 1.0, get all six. */
    const load_case *masked[] = {&cases[1], &cases[6], &cases[7]};
    CHECK_MSG(load_list(base, masked, 3, err, sizeof err) == 0, "masked chain: %s", err);
    tlab_metric *all = tlab__metric_register(TLAB_METRIC_COUNTER, "test_counter_events_total", "events seen", NULL, 0);
    tlab_metric *sub = tlab__metric_register(TLAB_METRIC_COUNTER, "test_masked_counter_events_total", "events seen", NULL, 0);
    tlab_metric *old = tlab__metric_register(TLAB_METRIC_COUNTER, "test_abi10_counter_events_total", "events seen", NULL, 0);
    double all_before[TLAB_EV__COUNT];
    for (int ev = 0; ev < TLAB_EV__COUNT; ev++) {
        char labels[32];
        snprintf(labels, sizeof labels, "event=\"%d\"", ev);
        all_before[ev] = tlab__metric_value(all, labels);
    }
    uint64_t calls = tlab__plugins_hook_calls();
    static tlab_request fake; /* the fixtures never look inside */
    for (int ev = 0; ev < TLAB_EV__COUNT; ev++)
        tlab__plugins_emit(&fake, (tlab_event)ev);
    for (int ev = 0; ev < TLAB_EV__COUNT; ev++) {
        char labels[32];
        snprintf(labels, sizeof labels, "event=\"%d\"", ev);
        int wanted = ev == TLAB_EV_ARRIVED || ev == TLAB_EV_DONE;
        CHECK_MSG(tlab__metric_value(all, labels) == all_before[ev] + 1, "counter missed event %d", ev);
        CHECK_MSG(tlab__metric_value(sub, labels) == (wanted ? 1 : 0), "masked_counter, event %d: %g", ev,
                  tlab__metric_value(sub, labels));
        CHECK_MSG(tlab__metric_value(old, labels) == 1, "abi10_counter missed event %d", ev);
    }
    CHECK_MSG(tlab__plugins_hook_calls() - calls == 6 + 2 + 6, "%llu hook calls for 6 events",
              (unsigned long long)(tlab__plugins_hook_calls() - calls));
    tlab__plugins_unload();

    /* Two queue roles are refused; the API table reports its own size and version. */
    const tlab_api *api = tlab__plugin_api();
    CHECK(api->size == sizeof(tlab_api));
    CHECK(api->abi_major == TLAB_ABI_MAJOR);
    CHECK(TLAB_API_HAS(api, exchange_reply));

    tlab__metrics_reset();
    event_base_free(base);
    return tlab_test_finish();
}
