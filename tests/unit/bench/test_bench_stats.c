/*
 * test_bench_stats.c - quantiles and summaries against values computed by hand and by
 * numpy.percentile (linear interpolation), which vllm bench serve uses.
 */
#include <math.h>
#include <stdlib.h>

#include "stats.h"
#include "tlab_test.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-9)

static void test_known_quantiles(void) {
    /* numpy.percentile([1..10], [50, 90, 95, 99]) = 5.5, 9.1, 9.55, 9.91 */
    double v[10] = {7, 3, 10, 1, 5, 9, 2, 8, 6, 4};
    tlab_summary s = tlab_summarize(v, 10);
    CHECK(s.n == 10);
    CHECK(NEAR(s.mean, 5.5));
    CHECK_MSG(NEAR(s.p50, 5.5), "p50 %g", s.p50);
    CHECK_MSG(NEAR(s.p90, 9.1), "p90 %g", s.p90);
    CHECK_MSG(NEAR(s.p95, 9.55), "p95 %g", s.p95);
    CHECK_MSG(NEAR(s.p99, 9.91), "p99 %g", s.p99);
    CHECK(NEAR(s.min, 1) && NEAR(s.max, 10));
    CHECK_MSG(NEAR(s.std, sqrt(8.25)), "std %g", s.std); /* numpy.std([1..10]) */
}

static void test_edges(void) {
    tlab_summary s = tlab_summarize(NULL, 0);
    CHECK(s.n == 0 && s.mean == 0 && s.p99 == 0);
    double one[1] = {42};
    s = tlab_summarize(one, 1);
    CHECK(NEAR(s.p50, 42) && NEAR(s.p99, 42) && NEAR(s.std, 0));
    double two[2] = {10, 0};
    s = tlab_summarize(two, 2);
    CHECK(NEAR(s.p50, 5) && NEAR(s.p90, 9) && NEAR(s.p99, 9.9));
    double sorted[5] = {1, 2, 3, 4, 5};
    CHECK(NEAR(tlab_quantile_sorted(sorted, 5, 0), 1));
    CHECK(NEAR(tlab_quantile_sorted(sorted, 5, 1), 5));
    CHECK(NEAR(tlab_quantile_sorted(sorted, 5, 0.25), 2));
    CHECK(NEAR(tlab_quantile_sorted(sorted, 5, 0.3), 2.2));
}

static void test_large_uniform(void) {
    /* 0..100000: the q-quantile is exactly q * 100000. */
    tlab_samples s = {0};
    for (int i = 100000; i >= 0; i--)
        CHECK(tlab_samples_push(&s, i) == 0);
    tlab_summary sum = tlab_summarize(s.v, s.n);
    CHECK(NEAR(sum.p50, 50000) && NEAR(sum.p90, 90000) && NEAR(sum.p95, 95000) && NEAR(sum.p99, 99000));
    CHECK(NEAR(sum.mean, 50000));
    tlab_samples_free(&s);
}

static void test_duplicates(void) {
    double v[6] = {3, 3, 3, 3, 3, 100};
    tlab_summary s = tlab_summarize(v, 6);
    CHECK(NEAR(s.p50, 3));
    CHECK(NEAR(s.p90, 51.5)); /* pos 4.5: halfway between 3 and 100 */
}

int main(void) {
    test_known_quantiles();
    test_edges();
    test_large_uniform();
    test_duplicates();
    return tlab_test_finish();
}
