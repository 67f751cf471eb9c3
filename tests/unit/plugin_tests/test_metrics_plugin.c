/*
 * test_metrics_plugin.c - the exposition text of the metrics plugin, byte for byte for a small
 * registry (HELP escaping, label merging for histogram buckets, +Inf, _sum/_count), and the
 * series it derives from lifecycle events. promtool checks a live gateway's output in the
 * integration test.
 */
#include "../../../plugins/metrics/metrics.c"

#include "plugin_harness.h"

static char *scrape(void) {
    tlab_exchange ex = {0};
    H.route(H.route_arg, &ex);
    CHECK(ex.status == 200 && strcmp(ex.content_type, "text/plain; version=0.0.4; charset=utf-8") == 0);
    return ex.body;
}

int main(void) {
    char err[256];
    /* A registry of our own, rendered alone: families registered before the plugin come first. */
    const double b[] = {0.1, 1};
    tlab_metric *c = tlab__metric_register(TLAB_METRIC_COUNTER, "t_requests_total", "Requests \\ with\nnewline", NULL, 0);
    tlab_metric *g = tlab__metric_register(TLAB_METRIC_GAUGE, "t_depth", "Depth", NULL, 0);
    tlab_metric *h = tlab__metric_register(TLAB_METRIC_HISTOGRAM, "t_latency_seconds", "Latency", b, 2);
    tlab__metric_add(c, "code=\"200\"", 3);
    tlab__metric_add(c, "code=\"503\"", 1);
    tlab__metric_set(g, NULL, 2.5);
    tlab__metric_observe(h, "route=\"/x\"", 0.05);
    tlab__metric_observe(h, "route=\"/x\"", 0.5);
    tlab__metric_observe(h, "route=\"/x\"", 7);
    CHECK(harness_load("{}", err, sizeof err) == TLAB_OK);
    CHECK(strcmp(H.route_path, "/metrics") == 0);
    char *text = scrape();
    const char *expect = "# HELP t_requests_total Requests \\\\ with\\nnewline\n"
                         "# TYPE t_requests_total counter\n"
                         "t_requests_total{code=\"200\"} 3\n"
                         "t_requests_total{code=\"503\"} 1\n"
                         "# HELP t_depth Depth\n"
                         "# TYPE t_depth gauge\n"
                         "t_depth 2.5\n"
                         "# HELP t_latency_seconds Latency\n"
                         "# TYPE t_latency_seconds histogram\n"
                         "t_latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n"
                         "t_latency_seconds_bucket{route=\"/x\",le=\"1\"} 2\n"
                         "t_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"
                         "t_latency_seconds_sum{route=\"/x\"} 7.55\n"
                         "t_latency_seconds_count{route=\"/x\"} 3\n";
    CHECK_MSG(strncmp(text, expect, strlen(expect)) == 0, "exposition mismatch; got:\n%.900s", text);

    /* Gauges read at scrape time, and families owned by other parts present from the start. */
    CHECK_STR_CONTAINS(text, "\ngateway_queue_depth 0\n");
    CHECK_STR_CONTAINS(text, "\ngateway_in_flight 0\n");
    CHECK_STR_CONTAINS(text, "\ngateway_worker_state 2\n");
    CHECK_STR_CONTAINS(text, "\ngateway_worker_starts_total 0\n");
    CHECK_STR_CONTAINS(text, "\ngateway_degradation_tier 0\n");
    CHECK_STR_CONTAINS(text, "# TYPE gateway_worker_cold_start_seconds histogram\n");
    free(text);

    /* Lifecycle events become request counts and latency histograms. */
    tlab_request *r = harness_request("r1");
    r->path = "/v1/chat/completions";
    r->status = 200;
    r->t[TLAB_EV_ARRIVED] = 1000000;
    r->t[TLAB_EV_ADMITTED] = 1000100;
    r->t[TLAB_EV_DISPATCHED] = 1250100; /* waited 0.25 s */
    r->t[TLAB_EV_FIRST_BYTE] = 1500000;
    r->t[TLAB_EV_DONE] = 3000000;
    r->overhead_us = 80;
    H.waiting = 7;
    H.in_flight = 3;
    H.desc->on_event(H.self, r, TLAB_EV_DONE);
    text = scrape();
    CHECK_STR_CONTAINS(text, "gateway_requests_total{code=\"200\",route=\"/v1/chat/completions\"} 1\n");
    CHECK_STR_CONTAINS(text, "gateway_request_duration_seconds_sum{route=\"/v1/chat/completions\"} 2\n");
    CHECK_STR_CONTAINS(text, "gateway_ttft_seconds_sum{route=\"/v1/chat/completions\"} 0.5\n");
    CHECK_STR_CONTAINS(text, "gateway_queue_wait_seconds_bucket{le=\"0.25\"} 1\n");
    CHECK_STR_CONTAINS(text, "gateway_overhead_seconds_sum 8e-05\n");
    CHECK_STR_CONTAINS(text, "\ngateway_queue_depth 7\n");
    CHECK_STR_CONTAINS(text, "\ngateway_in_flight 3\n");
    free(text);

    /* A request rejected before dispatch counts, with no TTFT or queue wait. */
    tlab_request *rej = harness_request("r2");
    rej->status = 429;
    rej->t[TLAB_EV_ARRIVED] = 1000;
    rej->t[TLAB_EV_DONE] = 2000;
    H.desc->on_event(H.self, rej, TLAB_EV_DONE);
    text = scrape();
    CHECK_STR_CONTAINS(text, "gateway_requests_total{code=\"429\",route=\"/v1/completions\"} 1\n");
    CHECK_STR_CONTAINS(text, "gateway_queue_wait_seconds_count 1\n");
    free(text);

    harness_unload();
    CHECK(harness_load("{\"path\": \"metrics\"}", err, sizeof err) == TLAB_ERROR);
    CHECK_STR_CONTAINS(err, "'path' must be a string starting with '/'");
    tlab__metrics_reset();
    free(r);
    free(rej);
    return tlab_test_finish();
}
