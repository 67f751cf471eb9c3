/*
 * slo.h - service-level objectives: parsing `--slo e2e_p95=5s,error_rate=0.1%,ttft=500ms` and the
 * duration syntax shared with the command line.
 *
 * Two kinds of objective:
 *   aggregate:   METRIC_mean / METRIC_pNN (NN may have decimals, p99.9) and error_rate; judged
 *                once over the measured window and decide the verdict;
 *   per request: METRIC alone (ttft=500ms); a request meets it when its own value is within.
 * Goodput counts the successful requests that meet every latency objective, with aggregate
 * latency objectives read as per-request bounds too (e2e_p95=5s: this request's e2e <= 5 s).
 */
#ifndef TLAB_BENCH_SLO_H
#define TLAB_BENCH_SLO_H

#include <stddef.h>

typedef enum { TLAB_M_TTFT, TLAB_M_TPOT, TLAB_M_ITL, TLAB_M_E2E, TLAB_M_ERROR_RATE } tlab_metric;
typedef enum { TLAB_AGG_REQUEST, TLAB_AGG_MEAN, TLAB_AGG_QUANTILE } tlab_agg;

typedef struct {
    tlab_metric metric;
    tlab_agg agg;
    double q;     /* TLAB_AGG_QUANTILE: 0..1 */
    double limit; /* seconds, or a fraction for error_rate */
    char name[32];  /* as written: "e2e_p95" */
    char value[32]; /* as written: "5s" */
} tlab_slo;

#define TLAB_SLO_MAX 16
typedef struct {
    tlab_slo items[TLAB_SLO_MAX];
    int n;
} tlab_slo_set;

/* Parses a comma-separated list into *out (appending). "none" or "" gives an empty set.
 * Returns 0, or -1 with a message in err. Time values take units us, ms, s, m; a bare number
 * is milliseconds (as in vllm bench serve --goodput). error_rate takes "0.1%" or a fraction. */
int tlab_slo_parse(const char *spec, tlab_slo_set *out, char *err, size_t errlen);

/* Parses a duration such as "90", "1.5s", "250ms", "10m", "1h" into seconds. A bare number is
 * multiplied by bare_unit_s. Returns 0, or -1 if it is not a non-negative finite duration. */
int tlab_parse_duration(const char *text, double bare_unit_s, double *out_s);

const char *tlab_metric_name(tlab_metric m);

#endif
