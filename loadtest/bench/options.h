/*
 * options.h - the command line of tlab-bench: defaults, parsing, checks and --help.
 */
#ifndef TLAB_BENCH_OPTIONS_H
#define TLAB_BENCH_OPTIONS_H

#include "runner.h"
#include "slo.h"

typedef struct {
    const char *url;        /* as given: a base URL or a full endpoint URL */
    const char *workload;
    const char *model;      /* NULL: the workload's */
    const char *profile;
    const char *output;     /* NULL: experiments/runs/YYYY-MM-DD_runXX_<profile>.json */
    const char *runs_dir;
    const char *slo_spec;
    tlab_slo_set slos;
    tlab_early_rule early;  /* used when --early-stop is given (run.early points here) */
    int fail_on_slo;
    int progress;           /* -1 auto (terminal), 0 never, 1 always */
    double timeslice_s;     /* width of the JSON's time slices; 0 = none */
    tlab_run_cfg run;       /* url inside is filled in by main */
} tlab_options;

/* Parses argv. Returns 0 to run; 1 when --help or --version was printed (exit 0);
 * 2 after printing "tlab-bench: <problem>" to stderr (exit 2). */
int tlab_options_parse(int argc, char **argv, tlab_options *o);

#endif
