/*
 * test_bench_early_stop.c - the certain-FAIL rule behind `tlab-bench --early-stop`: a table of
 * window states with the verdict each must (or must not) force, and the rule picked from SLOs.
 */
#include "early_stop.h"
#include "tlab_test.h"

static void test_rule_from_slo(void) {
    tlab_slo_set s = {0};
    tlab_early_rule r;
    char err[128];
    CHECK(tlab_slo_parse("e2e_p95=5s,error_rate=0.1%", &s, err, sizeof err) == 0);
    CHECK(tlab_early_rule_from_slo(&s, &r) == 0);
    CHECK(r.has_latency && r.metric == TLAB_M_E2E && r.q > 0.949 && r.q < 0.951 && r.limit_s == 5.0);
    CHECK(r.has_error_rate && r.error_limit > 0.00099 && r.error_limit < 0.00101);
    tlab_slo_set t = {0};
    CHECK(tlab_slo_parse("tpot_mean=50ms", &t, err, sizeof err) == 0);
    CHECK(tlab_early_rule_from_slo(&t, &r) == -1); /* nothing early stop can judge */
    tlab_slo_set u = {0};
    CHECK(tlab_slo_parse("ttft_p99=1s", &u, err, sizeof err) == 0);
    CHECK(tlab_early_rule_from_slo(&u, &r) == 0 && r.metric == TLAB_M_TTFT && !r.has_error_rate);
}

static void test_certain_fail_table(void) {
    /* p95 <= T and error_rate <= 1 % over 100 planned requests: at most floor(5) + 1 = 6 late, at
     * most 1 failed, and 7 between them when some are still in flight. */
    tlab_early_rule r = {.has_latency = 1, .metric = TLAB_M_E2E, .q = 0.95, .limit_s = 5, .has_error_rate = 1, .error_limit = 0.01};
    static const struct {
        size_t planned, failed, late_ok, late_inflight;
        int fail;
    } cases[] = {
        {100, 0, 0, 0, 0},   {100, 0, 6, 0, 0}, {100, 0, 7, 0, 1}, {100, 1, 0, 0, 0},  {100, 2, 0, 0, 1},
        {100, 1, 6, 0, 0},   {100, 0, 0, 7, 0}, /* 7 in flight could split 6 late + 1 failed */
        {100, 0, 0, 8, 1},   {100, 1, 5, 1, 0}, {100, 1, 5, 2, 1}, {0, 50, 50, 50, 0}, /* nothing planned: never */
        {1000, 0, 51, 0, 0}, {1000, 0, 52, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tlab_early_counts c = {cases[i].planned, cases[i].failed, cases[i].late_ok, cases[i].late_inflight};
        char why[256] = "";
        int got = tlab_early_certain_fail(&r, &c, why, sizeof why);
        CHECK_MSG(got == cases[i].fail, "case %zu: planned %zu failed %zu late %zu in flight %zu -> %d", i, c.planned,
                  c.failed, c.late_ok, c.late_inflight, got);
        if (got)
            CHECK_STR_CONTAINS(why, "due in the window");
    }
    /* Without an error objective, failures never force the verdict; without latency, lateness does not. */
    tlab_early_rule lat_only = {.has_latency = 1, .metric = TLAB_M_E2E, .q = 0.95, .limit_s = 5};
    tlab_early_counts many_failed = {100, 90, 0, 0};
    CHECK(!tlab_early_certain_fail(&lat_only, &many_failed, NULL, 0));
    tlab_early_rule err_only = {.has_error_rate = 1, .error_limit = 0.01};
    tlab_early_counts many_late = {100, 0, 90, 10};
    CHECK(!tlab_early_certain_fail(&err_only, &many_late, NULL, 0));
}

int main(void) {
    test_rule_from_slo();
    test_certain_fail_table();
    return tlab_test_finish();
}
