/*
 * test_bench_timeslice.c - the per-slice counts and p95 from hand-made records: each request in
 * the slice of its due time (offered, admitted, good, rejected, errors) and of its end
 * (completed, p95 e2e); and the retry accounting of the report.
 */
#include <math.h>

#include "report.h"
#include "tlab_test.h"

typedef struct {
    double sched, done;
    int status, kind, retries, admitted;
} rec_case;

static void test_slices(void) {
    /* Slices of 1 s. e2e: 0.5, 1.5 and 3 s; the SLO e2e_p95=2s makes the 3 s one not good. */
    static const rec_case cases[] = {
        {0.1, 0.6, 200, TLAB_K_OK, 0, 1},           /* due 0, done 0: good */
        {0.2, 1.7, 200, TLAB_K_OK, 0, 1},           /* due 0, done 1: good */
        {0.9, 3.9, 200, TLAB_K_OK, 0, 1},           /* due 0, done 3: e2e 3 s, not good */
        {1.1, 1.2, 429, TLAB_K_HTTP, 0, 0},         /* due 1: rejected */
        {1.2, 1.3, 503, TLAB_K_HTTP, 3, 0},         /* due 1: rejected after 3 retries */
        {1.3, 1.4, 500, TLAB_K_HTTP, 0, 1},         /* due 1: admitted, then an error */
        {1.4, -1, 0, TLAB_K_DROPPED, 0, 0},         /* due 1: never sent */
        {2.5, 3.0, 200, TLAB_K_OK, 1, 2},           /* due 2, done 3: admitted at its first retry, good */
        {2.6, 3.1, 200, TLAB_K_OK, 2, 3},           /* due 2, done 3: at a later retry, good */
    };
    tlab_run_result run = {.window_start = 0, .window_end = 3, .wall_s = 4.0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tlab_req *r = tlab_reqs_add(&run.reqs);
        r->sched = cases[i].sched;
        r->sent = cases[i].kind == TLAB_K_DROPPED ? -1 : r->sched;
        r->done = cases[i].done;
        r->status = (int16_t)cases[i].status;
        r->kind = (uint8_t)cases[i].kind;
        r->retries = (uint8_t)cases[i].retries;
        r->admitted = (uint8_t)cases[i].admitted;
        r->in_window = 1;
        r->usage_out = 10;
        r->chunks = 10;
    }
    tlab_slo_set s = {0};
    char err[128];
    CHECK(tlab_slo_parse("e2e_p95=2s", &s, err, sizeof err) == 0);
    tlab_timeslices ts;
    CHECK(tlab_timeslices_compute(&run, &s, 1.0, &ts) == 0);
    CHECK_MSG(ts.n == 5, "%zu slices", ts.n); /* 0..4: the run lasted 4 s */
    static const struct {
        size_t offered, admitted, good, rejected, errors, completed;
    } want[] = {{3, 3, 2, 0, 0, 1}, {4, 1, 0, 2, 2, 1}, {2, 2, 2, 0, 0, 0}, {0, 0, 0, 0, 0, 3}, {0, 0, 0, 0, 0, 0}};
    for (size_t k = 0; k < 5 && k < ts.n; k++) {
        const tlab_slice *v = &ts.v[k];
        CHECK_MSG(v->offered == want[k].offered && v->admitted == want[k].admitted && v->good == want[k].good &&
                      v->rejected == want[k].rejected && v->errors == want[k].errors && v->completed == want[k].completed,
                  "slice %zu: offered %zu admitted %zu good %zu rejected %zu errors %zu completed %zu", k, v->offered,
                  v->admitted, v->good, v->rejected, v->errors, v->completed);
    }
    CHECK(fabs(ts.v[0].p95_e2e_s - 0.5) < 1e-9 && fabs(ts.v[1].p95_e2e_s - 1.5) < 1e-9);
    /* slice 3: e2e 3.0, 0.5, 0.5 -> sorted 0.5 0.5 3.0; p95 = 0.5 + 0.9 * 2.5 */
    CHECK_MSG(fabs(ts.v[3].p95_e2e_s - 2.75) < 1e-9, "p95 %g", ts.v[3].p95_e2e_s);
    CHECK(ts.v[2].p95_e2e_s < 0 && ts.v[4].p95_e2e_s < 0);
    tlab_timeslices_free(&ts);

    /* Half-second slices: the same requests, twice as many slices. */
    CHECK(tlab_timeslices_compute(&run, &s, 0.5, &ts) == 0 && ts.n == 9);
    size_t total = 0;
    for (size_t k = 0; k < ts.n; k++)
        total += ts.v[k].offered;
    CHECK(total == sizeof cases / sizeof cases[0]);
    tlab_timeslices_free(&ts);
    /* Width 0: none. */
    CHECK(tlab_timeslices_compute(&run, &s, 0, &ts) == 0 && ts.n == 0 && ts.v == NULL);

    /* The report's retry accounting. */
    tlab_report rep;
    CHECK(tlab_report_compute(&run, &s, 10, &rep) == 0);
    CHECK_MSG(rep.retried == 3 && rep.admitted_first_retry == 1 && rep.admitted_later_retry == 1 && rep.never_admitted == 1,
              "retried %zu first %zu later %zu never %zu", rep.retried, rep.admitted_first_retry, rep.admitted_later_retry,
              rep.never_admitted);
    tlab_reqs_free(&run.reqs);
}

int main(void) {
    test_slices();
    return tlab_test_finish();
}
