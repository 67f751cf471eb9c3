/*
 * tune_predict.h - a first guess of a tlab-sim worker's capacity from `tlab-sim --predict-batch`,
 * before any probe runs. The search then starts its bracket there instead of at search.start_rate,
 * which saves the bracketing probes (each one a worker under load for tens of seconds); the measured
 * answer still comes from the probes, so a wrong guess costs probes, never correctness.
 */
#ifndef TLAB_TUNE_PREDICT_H
#define TLAB_TUNE_PREDICT_H

#include <stddef.h>

typedef struct {
    double rate;        /* predicted requests/s at the knee; 0 when no concurrency meets the bound */
    int concurrency;    /* the closed-loop concurrency at which it was predicted */
    double e2e_s;       /* predicted median E2E there */
    int fits;           /* 0: tlab-sim says vLLM would not start with these knobs */
    char error[512];    /* why, when !fits */
} tune_prediction;

/*
 * Runs worker_argv[0] (a tlab-sim) with --predict-batch on worker_argv's flags and the workload's
 * lengths, for closed loops of 1, 2, 4, ... requests up to max_num_seqs, and keeps the largest
 * concurrency whose median E2E stays within e2e_bound_s (Little's law then gives the rate the engine
 * sustains there). Returns 0 with *out filled, or -1 with a reason in why (the command failed).
 */
int tune_predict(char *const *worker_argv, long prompt_tokens, long max_tokens, double e2e_bound_s, tune_prediction *out,
                 char *why, size_t whylen);

/* The E2E bound in seconds of an SLO spec (e2e_pNN or e2e_mean), or 0 when it has none. */
double tune_predict_e2e_bound(const char *slo_spec);

#endif
