/*
 * runner.h - one measurement run on one libevent loop: sends requests on their schedule (open
 * loop) or keeps N in flight (closed loop), reads the responses into records, and shows a live
 * progress line. Nothing on the loop blocks; sending never waits for earlier responses.
 */
#ifndef TLAB_BENCH_RUNNER_H
#define TLAB_BENCH_RUNNER_H

#include <stdint.h>

#include "arrival.h"
#include "early_stop.h"
#include "record.h"
#include "workload.h"

typedef struct {
    const char *url;       /* full request URL */
    tlab_arrival_cfg arrival;
    long concurrency;      /* closed loop */
    double warmup_s, duration_s, cooldown_s;
    uint64_t seed;
    double timeout_s;
    long max_inflight;
    int progress;          /* print the live line (stdout is a terminal) */
    const tlab_early_rule *early; /* open loop: stop once the verdict can only be FAIL; NULL = off */
    long retry_max;        /* --retry-429: retries of a rejected request (0 = off), see runner.c */
    double retry_default_s; /* wait before retrying a 429 that has no Retry-After */
} tlab_run_cfg;

typedef struct {
    tlab_reqs reqs;        /* in schedule order */
    double window_start;   /* measured window, seconds since start */
    double window_end;
    double wall_s;         /* from start until the last response */
    double send_end_s;     /* when scheduling stopped */
    long peak_inflight;
    unsigned long connections;
    int interrupted;       /* SIGINT/SIGTERM cut the run short */
    size_t retries_sent;   /* --retry-429: retry attempts sent, whole run */
    size_t retries_dropped; /* retries due while at --max-inflight (the request ends as dropped) */
    int early_stop;        /* cfg->early fired: the verdict is FAIL whatever the figures say */
    double early_stop_s;   /* when */
    char early_why[256];
} tlab_run_result;

/* Runs to completion (all sent requests answered or failed). Returns 0, or -1 with a message
 * in err when the run could not start. *res is filled in either way; free with tlab_run_result_free. */
int tlab_run(const tlab_run_cfg *cfg, const tlab_workload *w, tlab_run_result *res, char *err, size_t errlen);
void tlab_run_result_free(tlab_run_result *res);

/* Generator lag worth reporting: a request sent this late (or dropped) counts as "behind". */
#define TLAB_LAG_THRESHOLD_S 0.010

#endif
