/*
 * tune_run.h - a tuning run: for each point of the grid, (re)start the worker with its knobs,
 * find its highest rate inside the SLO, confirm it, record everything, and pick the best.
 *
 * Strategies:
 *   grid  - every point gets the full search (full-length probes, the grid's tolerance) and
 *           `confirm_runs` confirming runs; the reference answer.
 *   smart - successive halving: every point is screened with short probes that stop as soon
 *           as FAIL is certain and a coarse tolerance, each search starting from the last
 *           point's answer; the best `keep_fraction` are searched again with full probes
 *           inside their screened bracket; only the `finalists` best are confirmed, and
 *           the best confirmed one wins.
 * Points that need at least as much memory as one that ran out of it are skipped.
 */
#ifndef TLAB_TUNE_RUN_H
#define TLAB_TUNE_RUN_H

#include "tune_config.h"

typedef struct {
    tune_config *cfg;
    const char *strategy;     /* "grid" or "smart" */
    const char *bench_cmd, *sim_cmd, *vllm_cmd;
    const char *run_path;     /* the run record */
    int resume;               /* run_path exists: continue it */
    const char *tuned_out;    /* model profile written for the best point ("" = none) */
    const char *config_dir;   /* for tlab-sim's profiles (--config-dir), may be NULL */
    int port;                 /* worker port; 0 = a free one */
    int tty;                  /* live progress line */
    int baseline;             /* also measure the base profile as it is, for the gain */
    const char *command_line; /* recorded in the environment */
} tune_options;

/* Runs to the end or until *stop is set. Returns the exit status: 0 done (a best point was
 * found), 1 done but no point met the SLO, 2 bad options or grid, 3 runtime failure,
 * 130 interrupted (the record says where; --resume continues). */
int tune_run(const tune_options *o, volatile int *stop);

#endif
