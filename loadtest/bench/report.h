/*
 * report.h - the results of a run: computed once from the records (report.c), then printed as a
 * table (report_text.c) and written as JSON and CSV (report_files.c).
 *
 * Only requests due inside the measured window [warmup, warmup + duration) count towards the
 * summary; the generator-lag section covers the whole run. Throughputs divide by the window's
 * length (requests due in it, whenever they finished), so a run that sent on schedule reports
 * exactly the offered rate when nothing failed.
 */
#ifndef TLAB_BENCH_REPORT_H
#define TLAB_BENCH_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "record.h"
#include "runner.h"
#include "slo.h"
#include "stats.h"

#define TLAB_BEHIND_MAX 20
#define TLAB_HTTP_STATUS_MAX 16

typedef struct {
    double from_s, to_s;  /* due times of the first and last late request of the stretch */
    double max_lag_s;
    size_t late, dropped;
} tlab_behind;

typedef struct {
    const tlab_slo *slo;
    double actual;        /* seconds, or a fraction for error_rate */
    int pass;
} tlab_slo_result;

typedef struct {
    double window_s;
    size_t num_prompts;   /* due in the window */
    size_t completed, failed;
    size_t by_kind[TLAB_K_COUNT];
    struct {
        int status;
        size_t n;
    } http[TLAB_HTTP_STATUS_MAX];
    int n_http;
    long total_input, total_output;
    double request_throughput, output_throughput, total_token_throughput, request_goodput;
    size_t good;
    double error_rate;
    tlab_summary ttft, tpot, itl, e2e; /* seconds */
    /* generator */
    size_t sent_all, dropped_all, late_all;
    tlab_summary lag;     /* sent - due, over every sent request of the run */
    tlab_behind behind[TLAB_BEHIND_MAX];
    int n_behind;
    size_t n_behind_total;
    /* --retry-429, over the window's requests that were retried at least once */
    size_t retried, admitted_first_retry, admitted_later_retry, never_admitted;
    /* SLO */
    tlab_slo_result slo[TLAB_SLO_MAX];
    int n_slo;
    int n_aggregate;      /* objectives that take part in the verdict */
    int slo_pass;
} tlab_report;

/* Computes the report. declared_input is the workload's prompt length, used when the server
 * reports no usage. Returns 0, or -1 when out of memory. */
int tlab_report_compute(const tlab_run_result *run, const tlab_slo_set *slos, long declared_input, tlab_report *rep);

/* Whether one request succeeded and met every per-request reading of the latency objectives
 * (what goodput counts). */
int tlab_report_req_good(const tlab_req *r, const tlab_slo_set *slos);

/* The run cut into time slices of width_s (seconds since the start of the run, warm-up and
 * cool-down included). Each request counts in two slices: by its due time, the fate of what
 * arrived then (offered, admitted, good, rejected, errors: offered = good + not-good, with
 * admitted = answered with anything but 429/503, rejected = ended 429/503, errors = every other
 * failure); by its end, what completed then (completed = successes that ended in the slice, and
 * the p95 e2e of those). Computed after the run from the records, so the send loop pays nothing. */
typedef struct {
    size_t offered, admitted, good, rejected, errors; /* by due time */
    size_t completed;                                 /* by end time */
    double p95_e2e_s;                                 /* of `completed`; < 0 when none */
} tlab_slice;

typedef struct {
    double width_s;
    size_t n;
    tlab_slice *v;
} tlab_timeslices;

/* Fills *ts (zeroed first). Returns 0, or -1 when out of memory. Free with tlab_timeslices_free. */
int tlab_timeslices_compute(const tlab_run_result *run, const tlab_slo_set *slos, double width_s, tlab_timeslices *ts);
void tlab_timeslices_free(tlab_timeslices *ts);

/* Context the output files record besides the numbers. */
typedef struct {
    const char *url, *workload, *endpoint_type, *model, *profile;
    const tlab_run_cfg *cfg;
    const char *date;     /* ISO 8601 local time of the start */
    const char *csv_path; /* may be NULL */
    const tlab_run_result *run;
    const tlab_timeslices *slices; /* may be NULL */
} tlab_report_meta;

void tlab_report_print(const tlab_report *rep, const tlab_report_meta *meta, FILE *out);
/* Writes the JSON result; returns 0 or -1 with errno set. */
int tlab_report_write_json(const tlab_report *rep, const tlab_report_meta *meta, const char *path);
/* Writes one CSV row per request of the run; returns 0 or -1 with errno set. */
int tlab_report_write_csv(const tlab_run_result *run, const char *path);
/* Chooses experiments/runs/YYYY-MM-DD_runXX_<profile>.json (XX: next free number that day),
 * creating the folders. Returns 0, or -1 with errno set. */
int tlab_report_default_path(const char *dir, const char *profile, char *out, size_t len);

#endif
