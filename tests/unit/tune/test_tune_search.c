/*
 * test_tune_search.c - the rate search against model workers whose sustainable rate is known:
 * it must land within the tolerance below the truth, use few probes, honour hints, report
 * infeasible and ceiling cases, re-run uncertain verdicts, and stop when a probe cannot run.
 * Also the probe helpers: Wilson interval, probe sizing, median, and reading a bench result.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tlab_test.h"
#include "tune_probe.h"
#include "tune_search.h"

typedef struct {
    double capacity;       /* rates at or below pass */
    int calls;
    double rates[64], durations[64];
    int uncertain_first;   /* the first probe's verdict is uncertain */
    int break_at;          /* this call (1-based) cannot run; 0 = never */
} model;

static int model_probe(void *ctx, const tune_probe_plan *plan, const char *phase, tune_probe *out) {
    (void)phase;
    model *m = ctx;
    memset(out, 0, sizeof *out);
    out->plan = *plan;
    if (m->calls < 64) {
        m->rates[m->calls] = plan->rate;
        m->durations[m->calls] = plan->duration_s;
    }
    m->calls++;
    if (m->break_at && m->calls == m->break_at) {
        snprintf(out->error, sizeof out->error, "worker died");
        return -1;
    }
    out->ok = 1;
    out->pass = plan->rate <= m->capacity;
    out->certain = !(m->uncertain_first && m->calls == 1);
    out->throughput = plan->rate;
    return 0;
}

static tune_search_cfg base(void) {
    return (tune_search_cfg){.start_rate = 1, .min_rate = 0.25, .max_rate = 256, .growth = 2, .tolerance = 0.05,
                             .min_requests = 300, .min_duration_s = 30, .max_duration_s = 600, .retry_uncertain = 1};
}

static void test_finds_capacity(void) {
    static const double caps[] = {0.3, 1, 3.7, 12.9, 14.2, 100, 250};
    for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
        model m = {.capacity = caps[i]};
        tune_search_cfg c = base();
        tune_search_result r;
        tune_search(&c, model_probe, &m, NULL, &r);
        CHECK_MSG(!r.infeasible && !r.aborted && !r.hit_max, "capacity %g", caps[i]);
        CHECK_MSG(r.best_rate <= caps[i] && r.best_rate >= caps[i] * (1 - c.tolerance) - 1e-9, "capacity %g: best %g", caps[i],
                  r.best_rate);
        CHECK_MSG(r.fail_rate > caps[i] && (r.fail_rate - r.best_rate) / r.best_rate <= c.tolerance, "capacity %g: fail %g",
                  caps[i], r.fail_rate);
        /* log2 steps to bracket plus log2(1/tolerance) to bisect, roughly. */
        CHECK_MSG(m.calls <= 16, "capacity %g: %d probes", caps[i], m.calls);
        CHECK(r.best_probe.pass && fabs(r.best_probe.plan.rate - r.best_rate) < 1e-12);
    }
}

static void test_edges(void) {
    model low = {.capacity = 0.1};
    tune_search_cfg c = base();
    tune_search_result r;
    tune_search(&c, model_probe, &low, NULL, &r);
    CHECK(r.infeasible && r.best_rate == 0);
    CHECK(low.rates[low.calls - 1] == c.min_rate); /* it went down to the floor before giving up */

    model high = {.capacity = 1000};
    tune_search(&c, model_probe, &high, NULL, &r);
    CHECK(r.hit_max && r.best_rate == c.max_rate && r.fail_rate == 0);

    model broken = {.capacity = 10, .break_at = 3};
    tune_search(&c, model_probe, &broken, NULL, &r);
    CHECK(r.aborted && broken.calls == 3);
}

static void test_hints(void) {
    model m = {.capacity = 12};
    tune_search_cfg c = base();
    c.hint_lo = 11;
    c.hint_hi = 13;
    tune_search_result r;
    tune_search(&c, model_probe, &m, NULL, &r);
    CHECK(m.rates[0] == 11 && m.rates[1] == 13); /* the remembered bracket is tried first */
    CHECK(r.best_rate <= 12 && r.best_rate >= 12 * 0.95);
    CHECK_MSG(m.calls <= 4, "%d probes with a good hint", m.calls);

    model wrong = {.capacity = 3};
    tune_search(&c, model_probe, &wrong, NULL, &r); /* a hint far too high still converges */
    CHECK(r.best_rate <= 3 && r.best_rate >= 3 * 0.95);
}

static void test_uncertain_retry_and_sizing(void) {
    model m = {.capacity = 5, .uncertain_first = 1};
    tune_search_cfg c = base();
    tune_search_result r;
    tune_search(&c, model_probe, &m, NULL, &r);
    CHECK(m.rates[0] == m.rates[1]);                      /* the same rate again ... */
    CHECK(fabs(m.durations[1] - 2 * m.durations[0]) < 1e-9); /* ... twice as long */
    CHECK(fabs(m.durations[0] - 300) < 1e-9);             /* 300 requests at 1 req/s */
    CHECK(fabs(tune_probe_duration(100, 300, 30, 600) - 30) < 1e-9);
    CHECK(fabs(tune_probe_duration(0.1, 300, 30, 600) - 600) < 1e-9);
    CHECK(fabs(tune_probe_duration(5, 300, 30, 600) - 60) < 1e-9);
}

static void test_wilson_and_median(void) {
    double lo, hi;
    tune_wilson(0, 300, &lo, &hi);
    CHECK(lo == 0 && hi < 0.05 && hi > 0.005); /* 0 misses of 300: surely under 5 % */
    tune_wilson(15, 300, &lo, &hi);
    CHECK(lo < 0.05 && hi > 0.05);             /* exactly 5 %: uncertain */
    tune_wilson(60, 300, &lo, &hi);
    CHECK(lo > 0.05);                          /* 20 %: surely over */
    tune_wilson(0, 0, &lo, &hi);
    CHECK(lo == 0 && hi == 1);
    double v[] = {3, 1, 2}, w[] = {4, 1, 3, 2};
    CHECK(tune_median(v, 3) == 2 && tune_median(w, 4) == 2.5 && tune_median(NULL, 0) == 0);
}

static void test_parse_bench_result(void) {
    /* A run at time scale 10: the bench saw 10x the rate and a tenth of the latencies. */
    json_t *j = json_pack("{s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:{s:i, s:s}, s:{s:f}, s:n}", "num_prompts", 300,
                          "completed", 300, "failed", 0, "request_throughput", 120.0, "request_goodput", 118.0,
                          "output_throughput", 24000.0, "error_rate", 0.0, "median_e2el_ms", 200.0, "p95_e2el_ms", 420.0,
                          "p95_ttft_ms", 30.0, "median_tpot_ms", 1.0, "slo", "good_requests", 295, "verdict", "pass",
                          "generator", "wall_seconds", 4.5, "early_stop");
    tune_probe p = {0};
    CHECK(tune_probe_parse(j, 10, 0.05, 0.001, &p) == 0);
    CHECK(p.ok && p.pass && p.due == 300 && p.good == 295);
    CHECK(fabs(p.throughput - 12) < 1e-9 && fabs(p.goodput - 11.8) < 1e-9 && fabs(p.output_tps - 2400) < 1e-9);
    CHECK(fabs(p.e2e_p95_s - 4.2) < 1e-9 && fabs(p.ttft_p95_s - 0.3) < 1e-9 && fabs(p.bench_s - 45) < 1e-9);
    CHECK(p.certain); /* 5 misses of 300: the interval is wholly under 5 % */
    json_object_set_new(json_object_get(j, "slo"), "good_requests", json_integer(287));
    CHECK(tune_probe_parse(j, 10, 0.05, 0.001, &p) == 0 && p.pass && !p.certain); /* 13 of 300: too close to call */
    json_t *round = tune_probe_to_json(&p);
    CHECK(round && json_is_true(json_object_get(round, "certain")) == p.certain &&
          json_integer_value(json_object_get(round, "due")) == 300);
    json_decref(round);
    /* An interrupted bench run is no measurement. */
    json_object_set_new(json_object_get(j, "generator"), "interrupted", json_true());
    CHECK(tune_probe_parse(j, 10, 0.05, 0.001, &p) == -1 && strstr(p.error, "interrupted"));
    json_object_del(json_object_get(j, "generator"), "interrupted");
    /* One failed request of 300 is under a 1 % error limit: an uncertain latency FAIL stays uncertain. */
    json_object_set_new(j, "error_rate", json_real(1.0 / 300));
    json_object_set_new(json_object_get(j, "slo"), "verdict", json_string("fail"));
    json_object_set_new(json_object_get(j, "slo"), "good_requests", json_integer(283));
    CHECK(tune_probe_parse(j, 10, 0.05, 0.01, &p) == 0 && !p.pass && !p.certain);
    CHECK(tune_probe_parse(j, 10, 0.05, 0.001, &p) == 0 && !p.pass && p.certain); /* over a 0.1 % limit: certain */
    json_decref(j);
    json_t *junk = json_pack("{s:s}", "hello", "world");
    CHECK(tune_probe_parse(junk, 1, 0.05, 0.001, &p) == -1 && strstr(p.error, "no usable result"));
    json_decref(junk);
}

int main(void) {
    test_finds_capacity();
    test_edges();
    test_hints();
    test_uncertain_retry_and_sizing();
    test_wilson_and_median();
    test_parse_bench_result();
    return tlab_test_finish();
}
