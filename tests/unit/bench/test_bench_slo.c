/*
 * test_bench_slo.c - SLO and duration parsing (a table of good and bad inputs), and the report's
 * verdict, goodput and error accounting on hand-made records.
 */
#include <math.h>
#include <stdlib.h>

#include "report.h"
#include "slo.h"
#include "tlab_test.h"

static void test_durations(void) {
    static const struct {
        const char *in;
        double bare, want;
        int ok;
    } cases[] = {{"90", 1, 90, 1},     {"1.5s", 1, 1.5, 1}, {"250ms", 1, 0.25, 1}, {"10m", 1, 600, 1},
                 {"1h", 1, 3600, 1},   {"500", 1e-3, 0.5, 1}, {"20us", 1, 2e-5, 1}, {"", 1, 0, 0},
                 {"abc", 1, 0, 0},     {"5x", 1, 0, 0},     {"-1s", 1, 0, 0},     {"nan", 1, 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v = -1;
        int rc = tlab_parse_duration(cases[i].in, cases[i].bare, &v);
        CHECK_MSG((rc == 0) == cases[i].ok, "'%s' rc %d", cases[i].in, rc);
        if (cases[i].ok)
            CHECK_MSG(fabs(v - cases[i].want) < 1e-12, "'%s' = %g", cases[i].in, v);
    }
}

static void test_slo_parse(void) {
    tlab_slo_set s = {0};
    char err[256];
    CHECK(tlab_slo_parse("e2e_p95=5s,error_rate=0.1%,ttft=500ms,tpot_mean=50,itl_p99.9=0.2s", &s, err, sizeof err) == 0);
    CHECK(s.n == 5);
    CHECK(s.items[0].metric == TLAB_M_E2E && s.items[0].agg == TLAB_AGG_QUANTILE && fabs(s.items[0].q - 0.95) < 1e-12 &&
          s.items[0].limit == 5);
    CHECK(s.items[1].metric == TLAB_M_ERROR_RATE && fabs(s.items[1].limit - 0.001) < 1e-12);
    CHECK(s.items[2].metric == TLAB_M_TTFT && s.items[2].agg == TLAB_AGG_REQUEST && fabs(s.items[2].limit - 0.5) < 1e-12);
    CHECK(s.items[3].agg == TLAB_AGG_MEAN && fabs(s.items[3].limit - 0.05) < 1e-12);
    CHECK(fabs(s.items[4].q - 0.999) < 1e-12);
    static const char *bad[] = {"e2e_p95", "foo=1s", "e2e_p0=1s", "e2e_p100=1s", "e2e_max=1s", "e2e_p95=fast",
                                "error_rate=2", "error_rate=x%", "=5s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tlab_slo_set t = {0};
        CHECK_MSG(tlab_slo_parse(bad[i], &t, err, sizeof err) != 0, "'%s' accepted", bad[i]);
    }
    tlab_slo_set none = {0};
    CHECK(tlab_slo_parse("none", &none, err, sizeof err) == 0 && none.n == 0);
}

/* 100 requests due in a 10 s window: 97 fine (e2e 1 + 0.05 i s), 2 http 500, 1 dropped; plus two
 * outside the window that must not count. */
static void test_report(void) {
    tlab_run_result run = {.window_start = 5, .window_end = 15};
    for (int i = 0; i < 102; i++) {
        tlab_req *r = tlab_reqs_add(&run.reqs);
        r->sched = i < 100 ? 5 + i * 0.1 : 20 + i;
        r->in_window = i < 100;
        r->sent = r->sched + (i == 50 ? 0.05 : 0.001); /* one late send */
        r->first = r->sched + 0.1;
        r->done = r->sched + 1 + 0.05 * i;
        r->usage_out = 200;
        r->usage_in = 200;
        r->chunks = 200;
        r->status = 200;
        if (i == 10 || i == 20) {
            r->kind = TLAB_K_HTTP;
            r->status = 500;
        }
        if (i == 30) {
            r->kind = TLAB_K_DROPPED;
            r->sent = -1;
        }
    }
    tlab_slo_set s = {0};
    char err[128];
    CHECK(tlab_slo_parse("e2e_p95=6s,error_rate=5%", &s, err, sizeof err) == 0);
    tlab_report rep;
    CHECK(tlab_report_compute(&run, &s, 200, &rep) == 0);
    CHECK(rep.num_prompts == 100 && rep.completed == 97 && rep.failed == 3);
    CHECK(rep.by_kind[TLAB_K_HTTP] == 2 && rep.by_kind[TLAB_K_DROPPED] == 1);
    CHECK(rep.n_http == 1 && rep.http[0].status == 500 && rep.http[0].n == 2);
    CHECK(fabs(rep.error_rate - 0.03) < 1e-12);
    CHECK(fabs(rep.request_throughput - 9.7) < 1e-9);
    CHECK(rep.total_output == 97 * 200);
    CHECK(fabs(rep.ttft.p50 - 0.1) < 1e-9);
    CHECK(rep.slo_pass == 1); /* p95 e2e ~5.7 s, error rate 3% <= 5% */
    CHECK(rep.good == 97);
    CHECK(rep.dropped_all == 1 && rep.late_all == 1 && rep.n_behind_total == 2);
    /* Tighter: error rate 1% fails; e2e_p95=3s fails and makes goodput count only e2e <= 3 s. */
    tlab_slo_set t = {0};
    CHECK(tlab_slo_parse("e2e_p95=3s,error_rate=1%", &t, err, sizeof err) == 0);
    CHECK(tlab_report_compute(&run, &t, 200, &rep) == 0);
    CHECK(rep.slo_pass == 0 && !rep.slo[0].pass && !rep.slo[1].pass);
    CHECK_MSG(rep.good == 38, "good %zu", rep.good); /* e2e = 1 + 0.05 i <= 3 for i <= 40: 41, minus 10, 20, 30 */
    tlab_reqs_free(&run.reqs);
}

int main(void) {
    test_durations();
    test_slo_parse();
    test_report();
    return tlab_test_finish();
}
