/*
 * sim_predict.h - the simulator without a server: runs the scheduler and the step model on a
 * simulated clock for a closed-loop benchmark (`vllm bench serve --request-rate inf --max-concurrency C`
 * with fixed input and output lengths and ignore_eos) and returns what that benchmark would print.
 * Same scheduler, same step model, same API-server delay as the running tlab-sim, so a prediction
 * and a measurement of tlab-sim agree up to timer jitter; no clock, no I/O, no allocation per step.
 */
#ifndef SIM_PREDICT_H
#define SIM_PREDICT_H

#include "sim_cost.h"
#include "sim_profile.h"
#include "sim_sched.h"

typedef struct sim_predict_in {
    int concurrency;  /* requests in flight (the benchmark's max-concurrency) */
    int num_prompts;  /* requests in all */
    int input_len;    /* prompt tokens per request */
    int output_len;   /* output tokens per request (ignore_eos) */
    sim_sched_cfg sched;
} sim_predict_in;

typedef struct sim_predict_out {
    double duration_s;                  /* first arrival to last token */
    double req_per_s, out_tok_per_s;   /* num_prompts / duration, output tokens / duration */
    double ttft_mean_s, ttft_median_s;
    double tpot_mean_s, tpot_median_s;  /* per request (last - first token) / (output_len - 1) */
    double e2e_mean_s, e2e_median_s;
    long steps;
    unsigned long long preemptions;
    double gpu_bound_frac;              /* share of step time where the GPU part was the longest (v2) */
} sim_predict_out;

/*
 * Runs the benchmark. Returns 0, or -1 when the inputs are out of range (err says which) or a request
 * can never be scheduled (a prompt larger than the KV cache).
 */
int sim_predict_run(const sim_hw *hw, const sim_modelp *m, const sim_predict_in *in, sim_predict_out *out, char *err,
                    size_t errlen);

#endif
