/*
 * test_queue_plugin.c - the queue plugin against the stand-in gateway: FIFO within a class,
 * strict priority between classes, the starvation bound, deadlines (503 + Retry-After, per
 * class), the depth bound (429), class choice (policy, header, API key), removal, the
 * concurrency gate, promised retries ahead of fresh arrivals, and config errors.
 */
#include "../../../plugins/queue/queue.c"

#include "plugin_harness.h"

static const tlab_queue_role *Q;

static void push(tlab_request *r, int expect) {
    int rc = Q->push(H.self, r);
    CHECK_MSG(rc == expect, "push %s: rc %d, expected %d", r->id, rc, expect);
}

static void expect_pop(const char *id) {
    tlab_request *peeked = Q->peek(H.self);
    tlab_request *r = Q->pop(H.self);
    CHECK_MSG(r && peeked == r && strcmp(r->id, id) == 0, "pop: expected %s, got %s (peek %s)", id, r ? r->id : "none",
              peeked ? peeked->id : "none");
}

static void load(const char *cfg) {
    char err[256];
    int rc = harness_load(cfg, err, sizeof err);
    CHECK_MSG(rc == TLAB_OK, "init failed: %s", err);
    Q = H.desc->queue;
}

int main(void) {
    tlab_request *r[16];
    char name[8];
    for (int i = 0; i < 16; i++) {
        snprintf(name, sizeof name, "r%d", i);
        r[i] = harness_request(name);
    }

    /* FIFO within a class; strict priority between classes (default classes high, normal, low). */
    load("{}");
    r[0]->x_priority = "low";
    r[1]->x_priority = NULL; /* default: normal */
    r[2]->x_priority = "high";
    r[3]->x_priority = NULL;
    for (int i = 0; i < 4; i++)
        push(r[i], TLAB_OK);
    CHECK(Q->depth(H.self) == 4);
    expect_pop("r2");
    expect_pop("r1");
    expect_pop("r3");
    expect_pop("r0");
    CHECK(Q->pop(H.self) == NULL && Q->depth(H.self) == 0);
    harness_unload();

    /* Anti-starvation: a waiting low request goes after being passed over starvation_limit times. */
    load("{\"starvation_limit\": 2}");
    for (int i = 0; i < 6; i++)
        r[i]->x_priority = i == 0 ? "low" : "high";
    for (int i = 0; i < 6; i++)
        push(r[i], TLAB_OK);
    expect_pop("r1");
    expect_pop("r2");
    expect_pop("r0"); /* passed over twice */
    expect_pop("r3");
    expect_pop("r4");
    expect_pop("r5");
    harness_unload();

    /* Deadlines: 503 + Retry-After when a request outwaits its class's timeout; per-class override. */
    load("{\"queue_timeout_ms\": 100, \"retry_after_s\": 3, \"classes\": [{\"name\": \"fast\", \"queue_timeout_ms\": 30}, {\"name\": \"normal\"}]}");
    for (int i = 0; i < 4; i++) {
        r[i]->x_priority = NULL;
        r[i]->rejected_status = 0;
    }
    push(r[0], TLAB_OK); /* t=0 normal */
    harness_advance(50 * 1000);
    push(r[1], TLAB_OK); /* t=50 normal */
    r[2]->x_priority = "fast";
    push(r[2], TLAB_OK); /* t=50 fast, deadline t=80 */
    harness_advance(30 * 1000);
    CHECK_MSG(r[2]->rejected_status == 503, "fast class times out at 30 ms (%d)", r[2]->rejected_status);
    CHECK(r[0]->rejected_status == 0);
    harness_advance(19 * 1000); /* t=99 */
    CHECK(r[0]->rejected_status == 0);
    harness_advance(1 * 1000); /* t=100 */
    CHECK(r[0]->rejected_status == 503 && r[0]->retry_after_s == 3 && strcmp(r[0]->reject_type, "queue_timeout") == 0);
    CHECK_STR_CONTAINS(r[0]->reject_message, "queue_timeout_ms 100");
    CHECK(r[1]->rejected_status == 0 && Q->depth(H.self) == 1);
    harness_advance(50 * 1000); /* t=150 */
    CHECK(r[1]->rejected_status == 503 && Q->depth(H.self) == 0);
    tlab_metric *timeouts = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_queue_timeouts_total", "", NULL, 0);
    CHECK(tlab__metric_value(timeouts, "class=\"normal\"") == 2 && tlab__metric_value(timeouts, "class=\"fast\"") == 1);
    harness_unload();

    /* A removed request (client gone) leaves at once and its deadline no longer fires. */
    load("{\"queue_timeout_ms\": 100}");
    for (int i = 0; i < 3; i++) {
        r[i]->x_priority = NULL;
        r[i]->rejected_status = 0;
        push(r[i], TLAB_OK);
    }
    Q->remove(H.self, r[0]);
    Q->remove(H.self, r[5]); /* never pushed: ignored */
    CHECK(Q->depth(H.self) == 2);
    expect_pop("r1");
    harness_advance(100 * 1000);
    CHECK(r[0]->rejected_status == 0 && r[2]->rejected_status == 503);
    harness_unload();

    /* Bounded: the request past max_depth gets 429 with Retry-After. */
    load("{\"max_depth\": 2, \"retry_after_s\": 2}");
    for (int i = 0; i < 3; i++) {
        r[i]->x_priority = NULL;
        r[i]->rejected_status = 0;
    }
    push(r[0], TLAB_OK);
    push(r[1], TLAB_OK);
    push(r[2], TLAB_ERROR);
    CHECK(r[2]->rejected_status == 429 && r[2]->retry_after_s == 2);
    CHECK_STR_CONTAINS(r[2]->reject_message, "queue is full");
    CHECK(Q->depth(H.self) == 2);

    harness_unload();

    /* Class choice: an unknown x-priority is a 400; a policy's choice beats the header. */
    load("{\"api_keys\": {\"sk-gold\": \"high\"}}");
    r[3]->x_priority = "urgent";
    push(r[3], TLAB_ERROR);
    CHECK(r[3]->rejected_status == 400);
    CHECK_STR_CONTAINS(r[3]->reject_message, "unknown priority class 'urgent'");
    r[4]->x_priority = NULL;
    r[4]->authorization = "Bearer sk-other";
    r[5]->x_priority = NULL;
    r[5]->authorization = "Bearer sk-gold";
    r[6]->x_priority = "high";
    h_set_priority(r[6], "low");
    push(r[4], TLAB_OK);
    push(r[5], TLAB_OK);
    push(r[6], TLAB_OK);
    expect_pop("r5"); /* API key -> high */
    expect_pop("r4"); /* normal */
    expect_pop("r6"); /* the policy said low */

    /* No cap of its own by default: the core's autopilot gates (docs/autopilot.md). */
    H.in_flight = 100000;
    CHECK(H.desc->dispatch_gate(H.self, r[0]) == TLAB_OK);
    H.in_flight = 0;
    harness_unload();

    /* A promised retry (ABI 1.3) goes after the class's earlier promised retries and before its
     * fresh arrivals, not before a higher class; the deadline timer still fires for the request
     * that waited longest, whichever run it is in. */
    load("{\"queue_timeout_ms\": 100}");
    for (int i = 0; i < 6; i++) {
        r[i]->x_priority = NULL;
        r[i]->rejected_status = 0;
        r[i]->promised = 0;
    }
    push(r[0], TLAB_OK); /* t=0 fresh */
    harness_advance(10 * 1000);
    r[1]->promised = 1;
    push(r[1], TLAB_OK); /* t=10 promised */
    push(r[2], TLAB_OK); /* t=10 fresh */
    r[3]->promised = 1;
    push(r[3], TLAB_OK); /* t=10 promised, after r1 */
    r[4]->x_priority = "high";
    push(r[4], TLAB_OK);
    expect_pop("r4"); /* a higher class still goes first */
    expect_pop("r1");
    expect_pop("r3");
    r[5]->promised = 1;
    push(r[5], TLAB_OK); /* t=10, the only promised one now: before r0 and r2 */
    harness_advance(90 * 1000); /* t=100: r0 (fresh, the oldest) times out, not the promised head */
    CHECK_MSG(r[0]->rejected_status == 503 && r[5]->rejected_status == 0 && r[2]->rejected_status == 0,
              "r0 %d r5 %d r2 %d", r[0]->rejected_status, r[5]->rejected_status, r[2]->rejected_status);
    harness_advance(10 * 1000); /* t=110: both of t=10 */
    CHECK(r[5]->rejected_status == 503 && r[2]->rejected_status == 503 && Q->depth(H.self) == 0);
    for (int i = 0; i < 6; i++)
        r[i]->promised = 0;
    harness_unload();

    /* Config errors name the key. */
    static const struct {
        const char *cfg, *msg;
    } bad[] = {
        {"{\"max_deth\": 3}", "unknown key 'max_deth'"},
        {"{\"max_depth\": 0}", "'max_depth' must be between 1"},
        {"{\"max_inflight\": \"x\"}", "'max_inflight' must be an integer"},
        {"{\"classes\": []}", "'classes' must be a non-empty list"},
        {"{\"classes\": [{\"name\": \"a\"}, {\"name\": \"a\"}]}", "class 'a' is listed twice"},
        {"{\"classes\": [{\"nme\": \"a\"}]}", "classes[0] must be a mapping with a string 'name'"},
        {"{\"default_class\": \"gold\"}", "'default_class' 'gold' is not one of the classes"},
        {"{\"api_keys\": {\"sk-1234\": \"gold\"}}", "maps to an unknown class"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256];
        CHECK_MSG(harness_load(bad[i].cfg, err, sizeof err) == TLAB_ERROR, "%s accepted", bad[i].cfg);
        CHECK_STR_CONTAINS(err, bad[i].msg);
        tlab__metrics_reset();
    }
    for (int i = 0; i < 16; i++)
        free(r[i]);
    return tlab_test_finish();
}
