/*
 * tune_probe.h - one probe: a tlab-bench run at one offered rate against the worker, read
 * back from its JSON, and judged against the SLO with a statement of how sure the verdict is.
 *
 * Rates and latencies here are in the workload's own clock. With tlab-sim at --time-scale F
 * the bench runs F times faster (rate x F, durations / F, SLO times / F) and its figures are
 * scaled back, so a probe means the same at any time scale.
 *
 * How sure: the SLO "p95 <= T" holds exactly when at most 5 % of requests exceed T. A probe
 * sees a sample of requests, so its verdict carries a Wilson score interval (95 %) on the
 * fraction that missed T (late or failed). The verdict is `certain` when the interval lies
 * wholly on one side of 5 %. Probes are sized so that a clear pass or fail is certain
 * (see tune_probe_duration); one that is not is re-run twice as long, once.
 */
#ifndef TLAB_TUNE_PROBE_H
#define TLAB_TUNE_PROBE_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
    const char *bench;        /* tlab-bench executable */
    const char *url;          /* worker base URL */
    const char *workload;
    const char *slo;          /* --slo, in workload time */
    double time_scale;
    double warmup_s, cooldown_s;
    const char *scratch_dir;  /* where the bench's JSON and CSV go */
    volatile int *stop_flag;
} tune_bench_env;

typedef struct {
    double rate;              /* offered, req/s */
    double duration_s;        /* measured window */
    unsigned seed;
    int early_stop;           /* tlab-bench --early-stop */
} tune_probe_plan;

typedef struct {
    tune_probe_plan plan;
    int ok;                   /* the bench ran and wrote its result (else `error`) */
    int pass;                 /* SLO verdict */
    int certain;              /* see above; an early stop is certain */
    int early_stopped;
    long due, completed, failed, good;
    double miss_lo, miss_hi;  /* Wilson interval of the missed fraction */
    double throughput, goodput, output_tps, error_rate;
    double e2e_p50_s, e2e_p95_s, ttft_p95_s, tpot_p50_s;
    double bench_s;           /* benchmark time spent, in workload seconds (warm-up etc. included) */
    char error[512];
} tune_probe;

/* Window length that gives about min_requests requests at `rate`, within [min_s, max_s]. */
double tune_probe_duration(double rate, long min_requests, double min_s, double max_s);

/* Wilson score interval (z = 1.96) for k successes in n trials. */
void tune_wilson(long k, long n, double *lo, double *hi);

/* Runs one probe. Returns 0 (p->ok set) or -1 when the bench could not run (p->error). */
int tune_probe_run(const tune_bench_env *env, const tune_probe_plan *plan, tune_probe *p);

/* Reads a tlab-bench result JSON into *p (workload time; scale = the run's time scale).
 * `miss_fraction` is the SLO's allowed share of misses (0.05 for p95), `error_limit` its error
 * rate limit. A run cut by an interruption is no measurement: -1. 0, or -1 with p->error. */
int tune_probe_parse(const json_t *bench_json, double scale, double miss_fraction, double error_limit, tune_probe *p);

json_t *tune_probe_to_json(const tune_probe *p);
#endif
