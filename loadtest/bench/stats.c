/*
 * stats.c - sample arrays and their summaries (see stats.h for the quantile definition).
 */
#include "stats.h"

#include <math.h>
#include <stdlib.h>

int tlab_samples_push(tlab_samples *s, double x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

void tlab_samples_free(tlab_samples *s) {
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void tlab_sort(double *v, size_t n) {
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_double);
}

double tlab_quantile_sorted(const double *v, size_t n, double q) {
    if (n == 0)
        return 0;
    if (q <= 0)
        return v[0];
    if (q >= 1)
        return v[n - 1];
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)floor(pos);
    double frac = pos - (double)lo;
    if (lo + 1 >= n)
        return v[n - 1];
    return v[lo] + (v[lo + 1] - v[lo]) * frac;
}

tlab_summary tlab_summarize(double *v, size_t n) {
    tlab_summary s = {0};
    if (n == 0)
        return s;
    tlab_sort(v, n);
    /* Welford's update keeps the variance exact when values are large and close together. */
    double mean = 0, m2 = 0;
    for (size_t i = 0; i < n; i++) {
        double d = v[i] - mean;
        mean += d / (double)(i + 1);
        m2 += d * (v[i] - mean);
    }
    s.n = n;
    s.mean = mean;
    s.std = sqrt(m2 / (double)n); /* population std, as numpy.std (vLLM's std_*_ms) */
    s.min = v[0];
    s.max = v[n - 1];
    s.p50 = tlab_quantile_sorted(v, n, 0.50);
    s.p90 = tlab_quantile_sorted(v, n, 0.90);
    s.p95 = tlab_quantile_sorted(v, n, 0.95);
    s.p99 = tlab_quantile_sorted(v, n, 0.99);
    return s;
}
