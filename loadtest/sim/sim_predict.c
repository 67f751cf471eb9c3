/*
 * sim_predict.c - a closed-loop benchmark run on the simulated clock alone. It drives sim_sched and
 * sim_step_seconds exactly as sim_engine.c does (plan at t, price the step, commit at t + d; an idle
 * engine waits for the next request to leave the API server), but jumps from step to step instead of
 * arming timers, so a whole `vllm bench serve` run takes milliseconds.
 */
#include "sim_predict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct run {
    const sim_hw *hw;
    const sim_predict_in *in;
    sim_sched *sched;
    sim_seq *seqs;
    int sent, finished;
    double api_free; /* the API server's event loop is busy until then */
    double *ttft, *tpot, *e2e;
} run;

/* The client side of the loop: request i is sent at t and reaches the engine when the API server is done. */
static void send_next(run *r, double t) {
    sim_seq *q = &r->seqs[r->sent];
    q->id = (uint64_t)r->sent + 1;
    q->prompt_len = r->in->input_len;
    q->max_tokens = r->in->output_len;
    q->ignore_eos = true;
    q->t_arrival = t;
    q->t_ready = sim_api_ready(r->hw, &r->api_free, t);
    r->sent++;
    sim_sched_add(r->sched, q, t);
}

/* A finished request is recorded and, as in a closed loop, replaced by the next one at once. */
static void on_token(sim_seq *q, int idx, int finish, void *arg) {
    run *r = arg;
    (void)idx;
    if (!finish)
        return;
    int k = r->finished++;
    r->ttft[k] = q->t_first_token - q->t_arrival;
    r->e2e[k] = q->t_last_token - q->t_arrival;
    r->tpot[k] = q->num_output > 1 ? (q->t_last_token - q->t_first_token) / (q->num_output - 1) : 0;
    if (r->sent < r->in->num_prompts)
        send_next(r, q->t_last_token);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Mean and median of v[0..n); sorts v. */
static void stats(double *v, int n, double *mean, double *median) {
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *mean = sum / n;
    *median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int sim_predict_run(const sim_hw *hw, const sim_modelp *m, const sim_predict_in *in, sim_predict_out *out, char *err,
                    size_t errlen) {
    memset(out, 0, sizeof *out);
    if (in->concurrency < 1 || in->num_prompts < 1 || in->input_len < 1 || in->output_len < 1) {
        snprintf(err, errlen, "concurrency, num_prompts, input_len and output_len must be >= 1");
        return -1;
    }
    if (in->input_len + in->output_len > in->sched.max_model_len) {
        snprintf(err, errlen, "input_len + output_len (%d) is above max_model_len (%d)", in->input_len + in->output_len,
                 in->sched.max_model_len);
        return -1;
    }
    run r = {.hw = hw, .in = in};
    size_t n = (size_t)in->num_prompts;
    r.sched = sim_sched_new(&in->sched);
    r.seqs = calloc(n, sizeof *r.seqs);
    r.ttft = calloc(n, sizeof(double));
    r.tpot = calloc(n, sizeof(double));
    r.e2e = calloc(n, sizeof(double));
    int rc = -1;
    if (!r.sched || !r.seqs || !r.ttft || !r.tpot || !r.e2e) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    double t = 0, busy = 0, gpu_busy = 0;
    while (r.sent < in->concurrency && r.sent < in->num_prompts)
        send_next(&r, 0);
    while (r.finished < in->num_prompts) {
        sim_step_shape shape;
        if (sim_sched_plan(r.sched, &shape, t) == 0) {
            double ready = sim_sched_next_ready(r.sched);
            if (ready > t) { /* idle until the next request is through the API server */
                t = ready;
                continue;
            }
            snprintf(err, errlen, "a %d-token request can never be scheduled (KV cache of %ld blocks of %d tokens)",
                     in->input_len + in->output_len, in->sched.num_blocks, in->sched.block_size);
            goto done;
        }
        double d = sim_step_seconds(hw, m, &shape);
        sim_step_parts p;
        sim_step_split(hw, m, &shape, &p);
        busy += d;
        if (hw->step_model == 2 && p.gpu >= p.host && p.gpu >= p.api)
            gpu_busy += d;
        t += d;
        out->steps++;
        sim_sched_commit(r.sched, t, on_token, &r);
    }
    sim_sched_stats st;
    sim_sched_get_stats(r.sched, &st);
    out->preemptions = st.preemptions_total;
    out->duration_s = t;
    out->req_per_s = in->num_prompts / t;
    out->out_tok_per_s = (double)in->num_prompts * in->output_len / t;
    out->gpu_bound_frac = busy > 0 ? gpu_busy / busy : 0;
    stats(r.ttft, in->num_prompts, &out->ttft_mean_s, &out->ttft_median_s);
    stats(r.tpot, in->num_prompts, &out->tpot_mean_s, &out->tpot_median_s);
    stats(r.e2e, in->num_prompts, &out->e2e_mean_s, &out->e2e_median_s);
    rc = 0;
done:
    sim_sched_free(r.sched);
    free(r.seqs);
    free(r.ttft);
    free(r.tpot);
    free(r.e2e);
    return rc;
}
