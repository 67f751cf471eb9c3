/*
 * sim_engine.h - the simulated engine: a simulated clock tied to the real one by --time-scale, and the
 * step loop that drives the scheduler on libevent timers, pricing each step with the cost model and
 * delivering each decoded token at the step's end. Never blocks.
 */
#ifndef SIM_ENGINE_H
#define SIM_ENGINE_H

#include "sim_config.h"
#include "sim_cost.h"
#include "sim_metrics.h"
#include "sim_sched.h"

struct event_base;
struct evbuffer;

typedef struct sim_engine sim_engine;
typedef struct sim_job sim_job;

/*
 * Called for each token of job (token_index from 0). When finish is set the job has left the engine
 * and may be freed by the callee.
 */
typedef void (*sim_job_token_fn)(sim_job *job, int token_index, int finish);

/* A request as the engine sees it; embed it first in the caller's request struct. */
struct sim_job {
    sim_seq seq;
    sim_job_token_fn on_token;
};

/* Creates the engine on base. Returns NULL on failure. Configuration objects must outlive it. */
sim_engine *sim_engine_new(struct event_base *base, const sim_config *cfg, const sim_hw *hw, const sim_modelp *m,
                           const sim_memory *mem);
void sim_engine_free(sim_engine *e);

/* Queues job (seq fields filled by the caller) and starts a step if the engine was idle. */
void sim_engine_submit(sim_engine *e, sim_job *job);

/* Aborts job (client went away): removes it and frees its KV blocks now; counted in metrics. */
void sim_engine_abort(sim_engine *e, sim_job *job);

/* Current simulated time in seconds since the engine started. */
double sim_engine_now(const sim_engine *e);

/* Appends the /metrics text. */
void sim_engine_render_metrics(sim_engine *e, struct evbuffer *out);

/*
 * Sleep mode. Sleep, wake and status calls run one at a time in arrival order, as utility calls on
 * vLLM's engine core do; done(arg, is_sleeping) is called when one is over (the HTTP reply).
 *
 * sim_engine_sleep: mode SIM_SLEEP_ABORT aborts every waiting and running request at once (they
 * finish with finish_reason "abort"); SIM_SLEEP_WAIT stops admitting waiting requests and falls
 * asleep when the running ones have finished. Either way the KV cache is empty while asleep, and
 * requests that arrive meanwhile queue in the waiting list until the engine is fully awake.
 * sim_engine_wake_up: tags is a mask of enum sim_sleep_tag; 0 = everything still asleep.
 */
enum sim_sleep_mode { SIM_SLEEP_ABORT = 0, SIM_SLEEP_WAIT };
typedef void (*sim_engine_done_fn)(void *arg, int is_sleeping);
void sim_engine_sleep(sim_engine *e, int level, int mode, sim_engine_done_fn done, void *arg);
void sim_engine_wake_up(sim_engine *e, int tags, sim_engine_done_fn done, void *arg);
void sim_engine_is_sleeping(sim_engine *e, sim_engine_done_fn done, void *arg);

/* Counts a request rejected before scheduling (4xx). */
void sim_engine_count_rejected(sim_engine *e);

#endif
