/*
 * sim_engine.c - the step loop. Simulated time is sim = (real - real0) * time_scale. A step planned at
 * simulated time t with duration d fires at the real deadline real0 + (t + d) / time_scale, and the next
 * step starts at t + d: deadlines come from the absolute clock, so timer jitter never accumulates and
 * any lag shows up in tlab_sim:step_lag_seconds and tlab_sim:realtime_ratio.
 */
#include "sim_engine.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <time.h>

struct sim_engine {
    struct event_base *base;
    struct event *timer;
    const sim_config *cfg;
    const sim_hw *hw;
    const sim_modelp *model;
    sim_sched *sched;
    sim_metrics metrics;
    double real0;         /* real monotonic seconds at start */
    int busy;             /* a step is in flight */
    int waking;           /* idle, timer armed for the next request to leave the API server */
    double step_start;    /* simulated start of the step in flight */
    double step_end;      /* simulated end of the step in flight / of the last step */
    double step_real_begin; /* real time the step in flight was planned */
    double step_deadline; /* real deadline of the step in flight */
    uint64_t next_id;
};

static double real_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double sim_engine_now(const sim_engine *e) { return (real_now() - e->real0) * e->cfg->time_scale; }

/* Arms the step timer for simulated time t, from the absolute clock. */
static void arm(sim_engine *e, double t) {
    e->step_deadline = e->real0 + t / e->cfg->time_scale;
    double wait = e->step_deadline - real_now();
    if (wait < 0)
        wait = 0;
    struct timeval tv = {(time_t)wait, (suseconds_t)((wait - (double)(time_t)wait) * 1e6)};
    evtimer_add(e->timer, &tv);
}

/*
 * Plans and arms the step that starts at simulated time t, or goes idle when there is no work.
 * real_begin is when the step's real span starts: the previous timer's firing (so the time spent
 * delivering that step's tokens is counted against the clock), or now when leaving idle.
 */
static void start_step(sim_engine *e, double t, double real_begin) {
    sim_step_shape shape;
    if (sim_sched_plan(e->sched, &shape, t) == 0) {
        e->busy = 0;
        double ready = sim_sched_next_ready(e->sched);
        if (ready > t) { /* requests still in pre-processing: wake up when the first one is ready */
            e->waking = 1;
            e->step_start = e->step_end = ready;
            arm(e, ready);
        }
        return;
    }
    double d = sim_step_seconds(e->hw, e->model, &shape);
    e->busy = 1;
    e->step_start = t;
    e->step_end = t + d;
    e->step_real_begin = real_begin;
    arm(e, e->step_end);
}

/* Per-token bookkeeping shared by every job, then the job's own callback. */
static void on_token(sim_seq *seq, int idx, int finish, void *arg) {
    sim_engine *e = arg;
    sim_job *job = (sim_job *)seq;
    sim_metrics *m = &e->metrics;
    m->generation_tokens++;
    if (idx == 0) {
        m->prompt_tokens += (uint64_t)seq->prompt_len;
        sim_hist_observe(&m->ttft, seq->t_first_token - seq->t_arrival);
    } else {
        sim_hist_observe(&m->itl, seq->t_last_token - seq->t_prev_token);
    }
    if (finish) {
        sim_hist_observe(&m->e2e, seq->t_last_token - seq->t_arrival);
        /* vLLM's queue time starts when the engine core receives the request, after pre-processing. */
        sim_hist_observe(&m->queue, seq->t_scheduled - (seq->t_ready > seq->t_arrival ? seq->t_ready : seq->t_arrival));
        if (finish == SIM_FINISH_STOP)
            m->success_stop++;
        else
            m->success_length++;
    }
    job->on_token(job, idx, finish);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    sim_engine *e = arg;
    double now = real_now();
    if (e->waking) {
        e->waking = 0;
        start_step(e, e->step_end, now);
        return;
    }
    double lag = now - e->step_deadline;
    if (lag < 0)
        lag = 0;
    e->metrics.steps++;
    e->metrics.lag_last = lag;
    if (lag > e->metrics.lag_max)
        e->metrics.lag_max = lag;
    e->metrics.sim_busy += e->step_end - e->step_start;
    e->metrics.real_busy += now - e->step_real_begin;
    sim_sched_commit(e->sched, e->step_end, on_token, e);
    start_step(e, e->step_end, now);
}

sim_engine *sim_engine_new(struct event_base *base, const sim_config *cfg, const sim_hw *hw, const sim_modelp *m,
                           const sim_memory *mem) {
    sim_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->base = base;
    e->cfg = cfg;
    e->hw = hw;
    e->model = m;
    sim_sched_cfg sc = {.max_num_seqs = cfg->max_num_seqs,
                        .max_num_batched_tokens = cfg->max_num_batched_tokens,
                        .block_size = cfg->block_size,
                        .num_blocks = mem->num_blocks,
                        .max_model_len = cfg->max_model_len,
                        .chunked_prefill = cfg->chunked_prefill != 0};
    e->sched = sim_sched_new(&sc);
    e->timer = evtimer_new(base, on_timer, e);
    if (!e->sched || !e->timer) {
        sim_engine_free(e);
        return NULL;
    }
    sim_metrics_init(&e->metrics);
    e->real0 = real_now();
    return e;
}

void sim_engine_free(sim_engine *e) {
    if (!e)
        return;
    if (e->timer)
        event_free(e->timer);
    sim_sched_free(e->sched);
    free(e);
}

void sim_engine_submit(sim_engine *e, sim_job *job) {
    double now = sim_engine_now(e);
    job->seq.id = ++e->next_id;
    job->seq.t_arrival = now;
    job->seq.t_ready = now + e->hw->api_overhead_s;
    sim_sched_add(e->sched, &job->seq, now);
    sim_sched_stats st;
    sim_sched_get_stats(e->sched, &st);
    if ((uint64_t)(st.num_running + st.num_waiting) > e->metrics.peak_requests)
        e->metrics.peak_requests = (uint64_t)(st.num_running + st.num_waiting);
    if (!e->busy && !e->waking) {
        /* An idle engine starts at once, but never before the end of the previous step. */
        start_step(e, now > e->step_end ? now : e->step_end, real_now());
    }
}

void sim_engine_abort(sim_engine *e, sim_job *job) {
    int st = job->seq.state;
    if (st != SIM_SEQ_WAITING && st != SIM_SEQ_RUNNING)
        return;
    sim_sched_abort(e->sched, &job->seq);
    e->metrics.aborted++;
}

void sim_engine_count_rejected(sim_engine *e) { e->metrics.rejected++; }

void sim_engine_render_metrics(sim_engine *e, struct evbuffer *out) {
    sim_sched_stats st;
    sim_sched_get_stats(e->sched, &st);
    sim_metrics_render(&e->metrics, &st, e->cfg->model, e->cfg->time_scale, sim_engine_now(e), out);
    /* vLLM's info gauge: what the KV cache was sized to at start-up. */
    evbuffer_add_printf(out,
                        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
                        "# TYPE vllm:cache_config_info gauge\n"
                        "vllm:cache_config_info{block_size=\"%d\",engine=\"0\",gpu_memory_utilization=\"%g\","
                        "num_gpu_blocks=\"%ld\"} 1.0\n",
                        e->cfg->block_size, e->cfg->gpu_memory_utilization, st.num_blocks);
}
