/*
 * sim_engine.c - the step loop. Simulated time is sim = (real - real0) * time_scale. A step planned at
 * simulated time t with duration d fires at the real deadline real0 + (t + d) / time_scale, and the next
 * step starts at t + d: deadlines come from the absolute clock, so timer jitter never accumulates and
 * any lag shows up in tlab_sim:step_lag_seconds and tlab_sim:realtime_ratio.
 */
#include "sim_engine.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sim_log.h"
#include "sim_sleep.h"

enum { OP_SLEEP, OP_WAKE, OP_QUERY };
enum { PHASE_IDLE, PHASE_DRAINING, PHASE_TIMED };

/* A pending sleep-mode call. */
typedef struct sim_op {
    struct sim_op *next;
    int kind, level, mode, tags;
    sim_engine_done_fn done;
    void *arg;
} sim_op;

struct sim_engine {
    struct event_base *base;
    struct event *timer;
    const sim_config *cfg;
    const sim_hw *hw;
    const sim_modelp *model;
    const sim_memory *mem;
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
    double api_free;      /* simulated time until which the API server's event loop is busy */
    /* Sleep mode: a FIFO of calls, the head one in progress. */
    struct event *op_timer;
    sim_op *op_head, *op_tail;
    int op_phase;       /* PHASE_*: head waiting for running requests to drain, or timed (GPU work) */
    double op_t0, op_dur; /* simulated start and duration of the timed phase */
    int paused;         /* no scheduling at all: asleep, falling asleep or waking */
    int sleep_level;    /* level of the current sleep; 0 when awake */
    int sleeping_tags;  /* enum sim_sleep_tag mask of what is still asleep */
};

static void op_check_drained(sim_engine *e);

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
    if (e->paused) { /* asleep: waiting requests stay queued until the wake */
        e->busy = 0;
        e->step_end = t;
        return;
    }
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
    if (finish == SIM_FINISH_ABORT) { /* aborted by /sleep: no token, just the end of the request */
        job->on_token(job, idx, finish);
        return;
    }
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
    op_check_drained(e);
}

/* ---- sleep mode ---------------------------------------------------------------------------- */

static int is_sleeping(const sim_engine *e) { return e->sleeping_tags != 0; }

/* Formats a tag mask as vLLM logs a Python list: ['weights', 'kv_cache']. */
static const char *tags_str(int tags) {
    switch (tags & SIM_TAG_ALL) {
    case SIM_TAG_WEIGHTS:
        return "['weights']";
    case SIM_TAG_KV_CACHE:
        return "['kv_cache']";
    case SIM_TAG_ALL:
        return "['weights', 'kv_cache']";
    default:
        return "[]";
    }
}

static void op_run(sim_engine *e);

/* The head call is over: reply, then start the next one. */
static void op_finish(sim_engine *e) {
    sim_op *op = e->op_head;
    e->op_head = op->next;
    if (!e->op_head)
        e->op_tail = NULL;
    e->op_phase = PHASE_IDLE;
    if (op->done)
        op->done(op->arg, is_sleeping(e));
    free(op);
    op_run(e);
}

/* Starts the GPU part of the head call (copy, free, reload), d simulated seconds long. */
static void op_start_timed(sim_engine *e, double d) {
    e->op_phase = PHASE_TIMED;
    e->op_t0 = sim_engine_now(e);
    e->op_dur = d;
    double wait = e->real0 + (e->op_t0 + d) / e->cfg->time_scale - real_now();
    if (wait < 0)
        wait = 0;
    struct timeval tv = {(time_t)wait, (suseconds_t)((wait - (double)(time_t)wait) * 1e6)};
    evtimer_add(e->op_timer, &tv);
}

/* Scheduling stops and the sleep itself starts (the KV cache is empty by now). */
static void op_begin_sleep(sim_engine *e, int level) {
    e->paused = 1;
    sim_sched_set_admit(e->sched, true); /* pausing is now e->paused's job */
    op_start_timed(e, sim_sleep_seconds(e->hw, e->model, level));
}

/* mode=wait: the sleep starts once no request is running. */
static void op_check_drained(sim_engine *e) {
    if (e->op_phase != PHASE_DRAINING)
        return;
    sim_sched_stats st;
    sim_sched_get_stats(e->sched, &st);
    if (st.num_running == 0)
        op_begin_sleep(e, e->op_head->level);
}

static void op_run(sim_engine *e) {
    while (e->op_head && e->op_phase == PHASE_IDLE) {
        sim_op *op = e->op_head;
        if (op->kind == OP_QUERY) {
            op_finish(e);
            return; /* op_finish ran the rest */
        }
        if (op->kind == OP_SLEEP) {
            if (is_sleeping(e)) {
                sim_log("WARNING", "abstract.py", "Executor is already sleeping.");
                op_finish(e);
                return;
            }
            if (op->mode == SIM_SLEEP_ABORT) {
                e->metrics.sleep_aborted += (uint64_t)sim_sched_abort_all(e->sched, on_token, e);
                op_begin_sleep(e, op->level);
            } else {
                sim_sched_set_admit(e->sched, false);
                e->op_phase = PHASE_DRAINING;
                sim_log("INFO", "core.py", "Waiting for in-flight requests to complete before sleeping...");
                op_check_drained(e);
            }
            return;
        }
        /* OP_WAKE */
        if (!is_sleeping(e)) {
            sim_log("WARNING", "abstract.py", "Executor is not sleeping.");
            op_finish(e);
            return;
        }
        op->tags = op->tags ? op->tags & e->sleeping_tags : e->sleeping_tags;
        op_start_timed(e, sim_wake_seconds(e->hw, e->model, e->sleep_level, op->tags));
        return;
    }
}

static void on_op_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    sim_engine *e = arg;
    sim_op *op = e->op_head;
    if (op->kind == OP_SLEEP) {
        e->sleeping_tags = SIM_TAG_ALL;
        e->sleep_level = op->level >= 2 ? 2 : 1;
        e->metrics.sleeps++;
        double freed = e->mem->weight_bytes + e->mem->kv_avail_bytes;
        sim_log("INFO", "gpu_worker.py", "Sleep mode freed %.2f GiB memory, %.2f GiB memory is still in use.",
                freed / 1073741824.0, (e->mem->requested_bytes - freed) / 1073741824.0);
        sim_log("INFO", "abstract.py", "It took %.6f seconds to fall asleep.", e->op_dur);
    } else {
        e->sleeping_tags &= ~op->tags;
        e->metrics.wakes++;
        sim_log("INFO", "abstract.py", "It took %.6f seconds to wake up tags %s.", e->op_dur, tags_str(op->tags));
        if (!e->sleeping_tags) { /* fully awake: the requests queued meanwhile are scheduled now */
            e->sleep_level = 0;
            e->paused = 0;
            if (!e->busy && !e->waking) {
                double now = sim_engine_now(e);
                start_step(e, now > e->step_end ? now : e->step_end, real_now());
            }
        }
    }
    op_finish(e);
}

static void op_push(sim_engine *e, int kind, int level, int mode, int tags, sim_engine_done_fn done, void *arg) {
    sim_op *op = calloc(1, sizeof(*op));
    if (!op) {
        if (done)
            done(arg, is_sleeping(e));
        return;
    }
    op->kind = kind;
    op->level = level;
    op->mode = mode;
    op->tags = tags;
    op->done = done;
    op->arg = arg;
    /* A status query is answered at once unless the engine core is busy with GPU work (a copy or
     * reload blocks vLLM's busy loop; draining does not). */
    if (kind == OP_QUERY && e->op_phase != PHASE_TIMED) {
        done(arg, is_sleeping(e));
        free(op);
        return;
    }
    if (e->op_tail)
        e->op_tail->next = op;
    else
        e->op_head = op;
    e->op_tail = op;
    if (e->op_head == op)
        op_run(e);
}

void sim_engine_sleep(sim_engine *e, int level, int mode, sim_engine_done_fn done, void *arg) {
    op_push(e, OP_SLEEP, level, mode, 0, done, arg);
}

void sim_engine_wake_up(sim_engine *e, int tags, sim_engine_done_fn done, void *arg) {
    op_push(e, OP_WAKE, 0, 0, tags, done, arg);
}

void sim_engine_is_sleeping(sim_engine *e, sim_engine_done_fn done, void *arg) {
    op_push(e, OP_QUERY, 0, 0, 0, done, arg);
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
    e->mem = mem;
    sim_sched_cfg sc = sim_config_sched(cfg, mem->num_blocks);
    e->sched = sim_sched_new(&sc);
    e->timer = evtimer_new(base, on_timer, e);
    e->op_timer = evtimer_new(base, on_op_timer, e);
    if (!e->sched || !e->timer || !e->op_timer) {
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
    if (e->op_timer)
        event_free(e->op_timer);
    while (e->op_head) { /* shutting down: pending calls get no reply, as when vLLM exits */
        sim_op *op = e->op_head;
        e->op_head = op->next;
        free(op);
    }
    sim_sched_free(e->sched);
    free(e);
}

void sim_engine_submit(sim_engine *e, sim_job *job) {
    double now = sim_engine_now(e);
    job->seq.id = ++e->next_id;
    job->seq.t_arrival = now;
    job->seq.t_ready = sim_api_ready(e->hw, &e->api_free, now);
    sim_sched_add(e->sched, &job->seq, now);
    sim_sched_stats st;
    sim_sched_get_stats(e->sched, &st);
    if ((uint64_t)(st.num_running + st.num_waiting) > e->metrics.peak_requests)
        e->metrics.peak_requests = (uint64_t)(st.num_running + st.num_waiting);
    if (!e->busy && !e->waking && !e->paused) {
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
    op_check_drained(e);
}

void sim_engine_count_rejected(sim_engine *e) { e->metrics.rejected++; }

void sim_engine_render_metrics(sim_engine *e, struct evbuffer *out) {
    sim_sched_stats st;
    sim_sched_get_stats(e->sched, &st);
    /* The gauge is vLLM's view: left waiting by the last step, not still in the API server. Asleep
     * no step runs, so everything that reached the engine counts. */
    st.num_waiting = sim_sched_num_waiting_engine(e->sched, sim_engine_now(e), e->paused != 0);
    sim_metrics_render(&e->metrics, &st, e->cfg->model, e->cfg->time_scale, sim_engine_now(e), out);
    /* vLLM's info gauge: what the KV cache was sized to at start-up. */
    evbuffer_add_printf(out,
                        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
                        "# TYPE vllm:cache_config_info gauge\n"
                        "vllm:cache_config_info{block_size=\"%d\",engine=\"0\",gpu_memory_utilization=\"%g\","
                        "num_gpu_blocks=\"%ld\"} 1.0\n",
                        e->cfg->block_size, e->cfg->gpu_memory_utilization, st.num_blocks);
    evbuffer_add_printf(out,
                        "# HELP tlab_sim:is_sleeping 1 while the engine is asleep (sleep mode), else 0.\n"
                        "# TYPE tlab_sim:is_sleeping gauge\n"
                        "tlab_sim:is_sleeping{engine=\"0\",model_name=\"%s\"} %d\n"
                        "# HELP tlab_sim:sleep_level Level of the current sleep (1 weights offloaded, 2 discarded), 0 awake.\n"
                        "# TYPE tlab_sim:sleep_level gauge\n"
                        "tlab_sim:sleep_level{engine=\"0\",model_name=\"%s\"} %d\n",
                        e->cfg->model, is_sleeping(e), e->cfg->model, e->sleep_level);
}
