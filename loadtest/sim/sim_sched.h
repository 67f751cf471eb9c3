/*
 * sim_sched.h - a pure model of vLLM's V1 continuous-batching scheduler: FIFO waiting queue, a per-step
 * token budget, a cap on running sequences, paged KV blocks, chunked prefill, and preemption by
 * recompute, where the prefix cache keeps a preempted request's blocks until they are reused. No I/O
 * and no clock: the caller drives it with sim_sched_plan() then sim_sched_commit().
 */
#ifndef SIM_SCHED_H
#define SIM_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_cost.h"

enum sim_seq_state { SIM_SEQ_NEW = 0, SIM_SEQ_WAITING, SIM_SEQ_RUNNING, SIM_SEQ_FINISHED, SIM_SEQ_ABORTED };
enum sim_finish { SIM_FINISH_NONE = 0, SIM_FINISH_LENGTH, SIM_FINISH_STOP, SIM_FINISH_ABORT };

/* A place in one of the scheduler's lists. */
typedef struct sim_seq_link {
    struct sim_seq *prev, *next;
} sim_seq_link;

/*
 * One request. The caller owns the memory (embed it in its own struct); the scheduler only links it.
 * Fill prompt_len, max_tokens, min_tokens, ignore_eos, eos_at and t_arrival before sim_sched_add().
 */
typedef struct sim_seq {
    sim_seq_link queue; /* in the waiting or running list */
    uint64_t id;
    int prompt_len, max_tokens, min_tokens, eos_at;
    bool ignore_eos;
    int num_computed; /* tokens whose KV is in the cache (prompt and output) */
    int num_output;   /* tokens generated */
    int num_blocks;   /* KV blocks held */
    int scheduled;    /* tokens scheduled in the current step; 0 if none */
    int state, finish, preemptions;
    double t_ready; /* not admitted before this simulated time (API-server pre-processing); 0 = at once */
    /* After a preemption: its full KV blocks still in the prefix cache (freed, not yet reused), and
     * its place in the scheduler's eviction order. Managed by the scheduler. */
    int cached_blocks;
    sim_seq_link lru;
    double t_arrival, t_scheduled, t_first_token, t_last_token, t_prev_token;
} sim_seq;

typedef struct sim_sched_cfg {
    int max_num_seqs;
    int max_num_batched_tokens;
    int block_size;
    long num_blocks;
    int max_model_len;
    bool chunked_prefill;
    /* vLLM's --async-scheduling: the engine core plans step n+1 while the GPU runs step n, so a
     * request that reaches the engine during step n waits for step n+2 when n+1 has work. */
    bool async_scheduling;
} sim_sched_cfg;

typedef struct sim_sched sim_sched;

/* Counters a caller may read at any time. num_waiting counts every queued sequence, also those
 * still in pre-processing (sim_sched_num_waiting_engine has vLLM's view). */
typedef struct sim_sched_stats {
    int num_running, num_waiting;
    long used_blocks, num_blocks;
    uint64_t preemptions_total;
} sim_sched_stats;

/* Creates a scheduler; NULL on allocation failure. The config is copied. */
sim_sched *sim_sched_new(const sim_sched_cfg *cfg);
/* Frees the scheduler, not the sequences (they belong to the caller). */
void sim_sched_free(sim_sched *s);

/* Queues seq at the tail of the waiting list (FIFO admission). */
void sim_sched_add(sim_sched *s, sim_seq *seq, double now);

/*
 * Removes seq wherever it is (waiting, running, or scheduled in the step under way) and frees its KV
 * blocks at once, as vLLM does on client disconnect. Its tokens in the current step are dropped.
 * A finished or never-added seq is left alone. Afterwards the scheduler holds no pointer to seq.
 */
void sim_sched_abort(sim_sched *s, sim_seq *seq);

/*
 * Builds the next step: running sequences first (one decode token each, or the next prefill chunk),
 * preempting the newest running sequence when blocks run out, then waiting sequences in FIFO order
 * while budget, max_num_seqs and blocks allow. Returns the number of sequences scheduled (0 = idle)
 * and fills shape for the cost model. Must be followed by sim_sched_commit() before the next plan.
 * Waiting sequences are admitted when ready (t_ready) by `now`; with async_scheduling, when this step
 * follows the previous one back to back (its commit was at `now`) and that step left work behind,
 * by the previous plan's time instead: vLLM planned this step while the previous one ran.
 */
int sim_sched_plan(sim_sched *s, sim_step_shape *shape, double now);

/*
 * Called by sim_sched_commit for each scheduled sequence that produced a token (token_index is its
 * 0-based index in the output). When finish != SIM_FINISH_NONE the sequence has left the scheduler,
 * its blocks are free, and the callee may free it.
 */
typedef void (*sim_token_fn)(sim_seq *seq, int token_index, int finish, void *arg);

/* Ends the step at simulated time now: advances computed tokens, emits tokens and finishes. */
void sim_sched_commit(sim_sched *s, double now, sim_token_fn fn, void *arg);

void sim_sched_get_stats(const sim_sched *s, sim_sched_stats *st);

/*
 * Stops (false) or resumes (true) admission from the waiting queue; running sequences keep going.
 * This is vLLM's PAUSED_NEW state, used by /sleep?mode=wait to drain before sleeping.
 */
void sim_sched_set_admit(sim_sched *s, bool admit);

/*
 * Aborts every waiting and running sequence (vLLM's /sleep with mode=abort): each leaves the
 * scheduler with its blocks freed, state SIM_SEQ_ABORTED and finish SIM_FINISH_ABORT, then fn is
 * called with token_index -1. Returns the number aborted.
 */
int sim_sched_abort_all(sim_sched *s, sim_token_fn fn, void *arg);

/* The t_ready of the head of the waiting queue, or -1 when nothing waits. */
double sim_sched_next_ready(const sim_sched *s);

/*
 * What vLLM's vllm:num_requests_waiting shows: the waiting sequences that had reached the engine
 * (t_ready) by the last sim_sched_plan() (or by `now`, if that is earlier) and were left out of it;
 * 0 before the first plan. vLLM's engine core reports len(self.waiting) after each step's schedule,
 * and a request joins that queue only once the API server has handed it over. With `all_ready`
 * every waiting sequence ready by `now` counts: tlab-sim's choice for an engine that is not
 * stepping (asleep), where it keeps requests queued until the wake.
 */
int sim_sched_num_waiting_engine(const sim_sched *s, double now, bool all_ready);

#endif
