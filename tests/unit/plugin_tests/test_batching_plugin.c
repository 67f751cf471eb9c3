/*
 * test_batching_plugin.c - the batching window against the stand-in gateway: pass-through at 0,
 * a group held for window_ms then released together, the max_batch flush, the guardrail halving
 * the window when p95 passes the SLO and growing it back, and the set_window_ms command.
 */
#include "../../../plugins/batching/batching.c"

#include "plugin_harness.h"

#define MS 1000

static int try_gate(tlab_request *r) {
    return H.desc->dispatch_gate(H.self, r);
}

static void event(tlab_request *r, tlab_event ev) {
    H.desc->on_event(H.self, r, ev);
}

static void finish_with_latency(tlab_request *r, double seconds) {
    r->status = 200;
    r->t[TLAB_EV_ARRIVED] = H.now - (uint64_t)(seconds * 1e6);
    r->t[TLAB_EV_DONE] = H.now;
    event(r, TLAB_EV_DONE);
}

static double window_ms(void) {
    return tlab__metric_value(tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_batch_window_seconds", "", NULL, 0), NULL) * 1000;
}

int main(void) {
    char err[256];
    tlab_request *r = harness_request("r");

    /* window 0 is a pass-through. */
    CHECK(harness_load("{}", err, sizeof err) == TLAB_OK);
    CHECK(try_gate(r) == TLAB_OK && window_ms() == 0);
    harness_unload();

    /* A window of 20 ms: the first request opens it; the group of 3 goes together at 20 ms. */
    CHECK(harness_load("{\"window_ms\": 20, \"max_batch\": 8}", err, sizeof err) == TLAB_OK);
    H.waiting = 1;
    CHECK(try_gate(r) == TLAB_AGAIN);
    event(r, TLAB_EV_ADMITTED);
    H.waiting = 2;
    event(r, TLAB_EV_ADMITTED);
    H.waiting = 3;
    harness_advance(19 * MS);
    CHECK(try_gate(r) == TLAB_AGAIN && H.wakes == 0);
    harness_advance(1 * MS);
    CHECK_MSG(H.wakes == 1, "released at 20 ms (%d wakes)", H.wakes);
    for (int i = 0; i < 3; i++) {
        CHECK(try_gate(r) == TLAB_OK);
        event(r, TLAB_EV_DISPATCHED);
        H.waiting--;
    }
    /* A gate that says OK while another gate holds the request does not use up the group. */
    H.waiting = 1;
    CHECK(try_gate(r) == TLAB_AGAIN); /* the group was 3: the 4th opens a new window */
    harness_advance(20 * MS);
    CHECK(H.wakes == 2);
    CHECK(try_gate(r) == TLAB_OK && try_gate(r) == TLAB_OK); /* not dispatched yet: still allowed */
    event(r, TLAB_EV_DISPATCHED);
    H.waiting = 0;
    harness_unload();

    /* max_batch flushes the window before the timer. */
    H.wakes = 0;
    CHECK(harness_load("{\"window_ms\": 50, \"max_batch\": 4}", err, sizeof err) == TLAB_OK);
    H.waiting = 1;
    CHECK(try_gate(r) == TLAB_AGAIN);
    for (H.waiting = 1; H.waiting < 4; H.waiting++)
        event(r, TLAB_EV_ADMITTED); /* the 4th admitted request fills the group */
    CHECK_MSG(H.wakes == 1, "max_batch released the group (%d wakes)", H.wakes);
    CHECK(try_gate(r) == TLAB_OK);
    harness_advance(50 * MS);
    CHECK(H.wakes == 1); /* the timer was cancelled */
    harness_unload();

    /* Guardrail: p95 above the SLO halves the window down to 0; below half the SLO it grows back. */
    CHECK(harness_load("{\"window_ms\": 8, \"slo_p95_ms\": 5000, \"grow_step_ms\": 2, \"min_samples\": 10, "
                       "\"p95_window_s\": 5, \"eval_interval_ms\": 1000}",
                       err, sizeof err) == TLAB_OK);
    CHECK(window_ms() == 8);
    double expect_down[] = {4, 2, 1, 0, 0};
    for (int step = 0; step < 5; step++) {
        for (int i = 0; i < 20; i++)
            finish_with_latency(r, 6.0);
        harness_advance(1000 * MS);
        CHECK_MSG(window_ms() == expect_down[step], "step %d: window %.1f ms, expected %.1f", step, window_ms(), expect_down[step]);
    }
    harness_advance(6000 * MS); /* the slow samples age out of the 5 s window */
    double expect_up[] = {2, 4, 6, 8, 8};
    for (int step = 0; step < 5; step++) {
        for (int i = 0; i < 20; i++)
            finish_with_latency(r, 1.0);
        harness_advance(1000 * MS);
        CHECK_MSG(window_ms() == expect_up[step], "recovery %d: window %.1f ms, expected %.1f", step, window_ms(), expect_up[step]);
    }
    /* Between the marks (2.5 s .. 5 s) nothing changes; too few samples, nothing changes. */
    for (int i = 0; i < 20; i++)
        finish_with_latency(r, 3.0);
    harness_advance(1000 * MS);
    CHECK(window_ms() == 8);
    tlab_metric *changes = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_batch_window_changes_total", "", NULL, 0);
    CHECK(tlab__metric_value(changes, NULL) == 8); /* 4 halvings (8 -> 0) and 4 steps back */

    /* set_window_ms, as Lua's gw.set_window_ms sends it. */
    json_t *args = json_pack("{s:i}", "ms", 50), *bad = json_pack("{s:i}", "ms", -1), *result = NULL;
    CHECK(H.desc->command(H.self, "set_window_ms", args, NULL) == TLAB_OK && window_ms() == 50);
    CHECK(H.desc->command(H.self, "set_window_ms", bad, &result) == TLAB_ERROR && json_is_string(result));
    CHECK(H.desc->command(H.self, "restart_worker", args, NULL) == TLAB_DECLINED);
    json_decref(args);
    json_decref(bad);
    json_decref(result);
    harness_unload();

    CHECK(harness_load("{\"window\": 5}", err, sizeof err) == TLAB_ERROR);
    CHECK_STR_CONTAINS(err, "unknown key 'window'");
    CHECK(harness_load("{\"window_ms\": -1}", err, sizeof err) == TLAB_ERROR);
    CHECK_STR_CONTAINS(err, "'window_ms' must be between 0 and 10000");
    tlab__metrics_reset();
    free(r);
    return tlab_test_finish();
}
