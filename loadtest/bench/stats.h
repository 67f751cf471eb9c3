/*
 * stats.h - summary statistics over a sample: mean, standard deviation and quantiles.
 *
 * Quantiles interpolate linearly between order statistics (numpy.percentile's default, which
 * `vllm bench serve` uses), so our p99 and vLLM's p99 of the same data agree.
 */
#ifndef TLAB_BENCH_STATS_H
#define TLAB_BENCH_STATS_H

#include <stddef.h>

/* A growable array of samples. Zero-initialise, then push; free with tlab_samples_free. */
typedef struct {
    double *v;
    size_t n, cap;
} tlab_samples;

/* Appends x; returns 0, or -1 when out of memory (the sample is then unchanged). */
int tlab_samples_push(tlab_samples *s, double x);
void tlab_samples_free(tlab_samples *s);

typedef struct {
    size_t n;
    double mean, std, min, max, p50, p90, p95, p99;
} tlab_summary;

/* Sorts v in place and summarises it. With n == 0 every field is 0. */
tlab_summary tlab_summarize(double *v, size_t n);
/* The q-quantile (0 <= q <= 1) of v[0..n), which must be sorted ascending; 0 when n == 0. */
double tlab_quantile_sorted(const double *v, size_t n, double q);
/* Sorts v ascending in place. */
void tlab_sort(double *v, size_t n);

#endif
