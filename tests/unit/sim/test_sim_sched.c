/*
 * test_sim_sched.c - the scheduler driven by explicit plan/commit calls: token budget, max_num_seqs,
 * chunked and unchunked prefill, decode, preemption when KV blocks run out, abort freeing blocks,
 * finish reasons (length, EOS, min_tokens, ignore_eos), async scheduling's admission and vLLM's
 * waiting count.
 */
#include <stdlib.h>

#include "sim_sched.h"
#include "tlab_test.h"

typedef struct rec {
    int tokens, finished, finish;
} rec;

static rec recs[64];
static sim_seq seqs[64];

static void on_tok(sim_seq *q, int idx, int finish, void *arg) {
    (void)arg;
    rec *r = &recs[q - seqs];
    CHECK(idx == r->tokens);
    r->tokens++;
    if (finish) {
        r->finished = 1;
        r->finish = finish;
    }
}

static sim_sched *mk_async(int seqs_max, int budget, long blocks, int chunked, int async) {
    sim_sched_cfg c = {.max_num_seqs = seqs_max, .max_num_batched_tokens = budget, .block_size = 16,
                       .num_blocks = blocks, .max_model_len = 100000, .chunked_prefill = chunked != 0,
                       .async_scheduling = async != 0};
    memset(recs, 0, sizeof recs);
    memset(seqs, 0, sizeof seqs);
    return sim_sched_new(&c);
}

static sim_sched *mk(int seqs_max, int budget, long blocks, int chunked) {
    return mk_async(seqs_max, budget, blocks, chunked, 0);
}

static void add(sim_sched *s, int i, int prompt, int max_tokens) {
    seqs[i].prompt_len = prompt;
    seqs[i].max_tokens = max_tokens;
    seqs[i].ignore_eos = true;
    sim_sched_add(s, &seqs[i], 0);
}

static void test_budget_and_chunking(void) {
    sim_sched *s = mk(256, 2048, 100000, 1);
    sim_step_shape sh;
    for (int i = 0; i < 3; i++)
        add(s, i, 1000, 4);
    CHECK(sim_sched_plan(s, &sh, 0) == 3); /* 1000 + 1000 + a 48-token chunk of the third */
    CHECK(sh.prefill_tokens == 2048);
    CHECK(seqs[2].scheduled == 48);
    CHECK(sh.attn_pairs == 2 * (1000LL * 1001 / 2) + 48 * 49 / 2); /* causal: token i sees i + 1 keys */
    sim_sched_commit(s, 1, on_tok, NULL);
    CHECK(recs[0].tokens == 1 && recs[1].tokens == 1 && recs[2].tokens == 0); /* a partial prefill emits nothing */
    CHECK(sim_sched_plan(s, &sh, 1) == 3); /* two decodes + the rest of the third prompt */
    CHECK(sh.decode_seqs == 2 && sh.prefill_tokens == 952);
    /* a decode sees its 1000 cached tokens and itself; the chunk's 952 tokens see the 48 before them too */
    CHECK(sh.attn_pairs == 2 * 1001 + 952LL * 48 + 952LL * 953 / 2);
    sim_sched_commit(s, 2, on_tok, NULL);
    CHECK(recs[2].tokens == 1);
    for (int k = 0; k < 10; k++) {
        if (sim_sched_plan(s, &sh, 3 + k) == 0)
            break;
        sim_sched_commit(s, 3 + k, on_tok, NULL);
    }
    CHECK(recs[0].finished && recs[0].finish == SIM_FINISH_LENGTH && recs[0].tokens == 4);
    sim_sched_stats st;
    sim_sched_get_stats(s, &st);
    CHECK(st.used_blocks == 0 && st.num_running == 0 && st.num_waiting == 0);
    sim_sched_free(s);
}

static void test_no_chunking(void) {
    sim_sched *s = mk(256, 2048, 100000, 0);
    sim_step_shape sh;
    add(s, 0, 1500, 2);
    add(s, 1, 1000, 2); /* does not fit in the 548 left: waits for the next step, whole */
    CHECK(sim_sched_plan(s, &sh, 0) == 1);
    CHECK(sh.prefill_tokens == 1500);
    sim_sched_commit(s, 1, on_tok, NULL);
    CHECK(sim_sched_plan(s, &sh, 1) == 2);
    CHECK(sh.decode_seqs == 1 && sh.prefill_tokens == 1000);
    sim_sched_commit(s, 2, on_tok, NULL);
    sim_sched_free(s);
}

static void test_max_num_seqs(void) {
    sim_sched *s = mk(2, 2048, 100000, 1);
    sim_step_shape sh;
    for (int i = 0; i < 5; i++)
        add(s, i, 10, 3);
    CHECK(sim_sched_plan(s, &sh, 0) == 2);
    sim_sched_stats st;
    sim_sched_get_stats(s, &st);
    CHECK(st.num_running == 2 && st.num_waiting == 3);
    sim_sched_commit(s, 1, on_tok, NULL);
    int steps = 1;
    while (sim_sched_plan(s, &sh, steps) > 0) {
        sim_sched_get_stats(s, &st);
        CHECK(st.num_running <= 2);
        sim_sched_commit(s, steps + 1, on_tok, NULL);
        steps++;
    }
    for (int i = 0; i < 5; i++)
        CHECK(recs[i].finished && recs[i].tokens == 3);
    CHECK(seqs[4].t_scheduled > seqs[0].t_scheduled); /* FIFO admission */
    sim_sched_free(s);
}

static void test_preemption(void) {
    /* 4 blocks of 16 tokens; two sequences of 16-token prompts each want 3 blocks to finish. */
    sim_sched *s = mk(256, 2048, 4, 1);
    sim_step_shape sh;
    add(s, 0, 16, 40);
    add(s, 1, 16, 40);
    int t = 0;
    sim_sched_stats st;
    while (sim_sched_plan(s, &sh, t) > 0 && t < 500) {
        sim_sched_get_stats(s, &st);
        CHECK(st.used_blocks <= 4);
        sim_sched_commit(s, ++t, on_tok, NULL);
    }
    sim_sched_get_stats(s, &st);
    CHECK(st.preemptions_total >= 1);
    CHECK(seqs[1].preemptions >= 1); /* the newest is the victim */
    CHECK(seqs[0].preemptions == 0);
    CHECK(recs[0].finished && recs[1].finished);
    CHECK(recs[0].tokens == 40 && recs[1].tokens == 40);
    CHECK(st.used_blocks == 0);
    sim_sched_free(s);
}

static void test_abort_frees_blocks(void) {
    sim_sched *s = mk(256, 2048, 1000, 1);
    sim_step_shape sh;
    add(s, 0, 100, 50); /* 7 blocks */
    add(s, 1, 100, 50);
    sim_sched_plan(s, &sh, 0);
    sim_sched_commit(s, 1, on_tok, NULL);
    sim_sched_stats st;
    sim_sched_get_stats(s, &st);
    CHECK(st.used_blocks == 14);
    sim_sched_abort(s, &seqs[0]); /* running */
    sim_sched_get_stats(s, &st);
    CHECK(st.used_blocks == 7 && st.num_running == 1);
    CHECK(seqs[0].state == SIM_SEQ_ABORTED);
    sim_sched_plan(s, &sh, 1);
    sim_sched_abort(s, &seqs[1]); /* scheduled in the step under way */
    sim_sched_commit(s, 2, on_tok, NULL);
    CHECK(recs[1].tokens == 1); /* only the token of the first step */
    add(s, 2, 100, 5);
    sim_sched_abort(s, &seqs[2]); /* waiting */
    sim_sched_get_stats(s, &st);
    CHECK(st.used_blocks == 0 && st.num_running == 0 && st.num_waiting == 0);
    CHECK(sim_sched_plan(s, &sh, 3) == 0);
    sim_sched_free(s);
}

static void run_one(sim_sched *s) {
    sim_step_shape sh;
    for (int t = 0; t < 1000 && sim_sched_plan(s, &sh, t) > 0; t++)
        sim_sched_commit(s, t + 1, on_tok, NULL);
}

static void test_finish_reasons(void) {
    sim_sched *s = mk(256, 2048, 1000, 1);
    seqs[0] = (sim_seq){.prompt_len = 10, .max_tokens = 100, .eos_at = 20};
    sim_sched_add(s, &seqs[0], 0);
    seqs[1] = (sim_seq){.prompt_len = 10, .max_tokens = 100, .eos_at = 20, .min_tokens = 30};
    sim_sched_add(s, &seqs[1], 0);
    seqs[2] = (sim_seq){.prompt_len = 10, .max_tokens = 100, .eos_at = 20, .ignore_eos = true};
    sim_sched_add(s, &seqs[2], 0);
    seqs[3] = (sim_seq){.prompt_len = 10, .max_tokens = 5, .eos_at = 20};
    sim_sched_add(s, &seqs[3], 0);
    run_one(s);
    CHECK(recs[0].finish == SIM_FINISH_STOP && recs[0].tokens == 20);
    CHECK(recs[1].finish == SIM_FINISH_STOP && recs[1].tokens == 30);
    CHECK(recs[2].finish == SIM_FINISH_LENGTH && recs[2].tokens == 100);
    CHECK(recs[3].finish == SIM_FINISH_LENGTH && recs[3].tokens == 5);
    sim_sched_free(s);
}

static void test_ready_time(void) {
    sim_sched *s = mk(256, 2048, 1000, 1);
    sim_step_shape sh;
    add(s, 0, 10, 2);
    seqs[0].t_ready = 5.0; /* still being pre-processed by the API server */
    CHECK(sim_sched_plan(s, &sh, 1.0) == 0);
    CHECK(sim_sched_next_ready(s) == 5.0);
    CHECK(sim_sched_plan(s, &sh, 5.0) == 1);
    CHECK(seqs[0].t_scheduled == 5.0);
    sim_sched_commit(s, 6.0, on_tok, NULL);
    sim_sched_free(s);
}

/*
 * The async-scheduling scene: seq 0 (10 + 5 tokens) runs from t = 0 in steps of 1 s; seq 1 (10 + 2)
 * reaches the engine at 0.5, during step [0,1). Returns the scheduler after that first step.
 */
static sim_sched *one_step_then_arrival(int seqs_max, int async) {
    sim_sched *s = mk_async(seqs_max, 2048, 1000, 1, async);
    sim_step_shape sh;
    add(s, 0, 10, 5);
    add(s, 1, 10, 2);
    seqs[1].t_ready = 0.5;
    CHECK(sim_sched_plan(s, &sh, 0.0) == 1);
    sim_sched_commit(s, 1.0, on_tok, NULL);
    return s;
}

/*
 * vLLM's --async-scheduling: the step after step n is planned while step n runs, so a request that
 * reaches the engine during step n joins step n + 2, unless step n + 1 would have had no work.
 */
static void test_async_admission(void) {
    for (int async = 0; async <= 1; async++) {
        sim_sched *s = one_step_then_arrival(256, async);
        sim_step_shape sh;
        /* Step [1,2) was planned at t = 0 under async scheduling: seq 1 waits for step [2,3). */
        int n = sim_sched_plan(s, &sh, 1.0);
        CHECK_MSG(n == (async ? 1 : 2), "async %d: step [1,2) has %d sequences", async, n);
        sim_sched_commit(s, 2.0, on_tok, NULL);
        if (async) {
            CHECK(sim_sched_plan(s, &sh, 2.0) == 2 && sh.prefill_tokens == 10);
            sim_sched_commit(s, 3.0, on_tok, NULL);
        }
        CHECK(seqs[1].t_scheduled == (async ? 2.0 : 1.0));
        /* An idle engine plans at once: seq 2 arrives after a gap (a plan that found nothing ready). */
        while (sim_sched_plan(s, &sh, 10.0) > 0)
            sim_sched_commit(s, 10.0, on_tok, NULL);
        add(s, 2, 10, 1);
        seqs[2].t_ready = 20.0;
        CHECK(sim_sched_plan(s, &sh, 20.0) == 1 && seqs[2].t_scheduled == 20.0);
        sim_sched_commit(s, 21.0, on_tok, NULL);
        /* Back to back, but the step that just ended left no work: step [21,...) is planned at 21, not at 20. */
        add(s, 3, 10, 1);
        seqs[3].t_ready = 20.5;
        CHECK_MSG(sim_sched_plan(s, &sh, 21.0) == 1, "async %d: a request ready during a last step waits", async);
        sim_sched_free(s);

        /* A plan that does not follow a commit at the same instant (the engine was asleep in between)
         * admits all that is ready, though work was left running: no step is in flight to plan behind. */
        s = one_step_then_arrival(256, async);
        n = sim_sched_plan(s, &sh, 5.0); /* woken at 5 */
        CHECK_MSG(n == 2 && seqs[1].t_scheduled == 5.0, "async %d: the plan after a wake has %d sequences", async, n);
        sim_sched_free(s);
    }
}

/* Runs seq 0 (16-token prompt, `decode` tokens) beside seq 1 (a 96-token prompt) on 6 blocks of 16:
 * seq 1 (one output token) is preempted after its first 48-token chunk. Returns what seq 1 had computed, and the
 * prefill scheduled with it, at the plan that brought it back. */
static void preempt_then_readmit(int decode, int *computed_back, int *prefill_back) {
    sim_sched *s = mk(256, 64, 6, 1);
    sim_step_shape sh;
    add(s, 0, 16, decode);
    add(s, 1, 96, 1);
    *computed_back = *prefill_back = -1;
    int was_waiting = 0;
    for (int t = 0; t < 500 && sim_sched_plan(s, &sh, t) > 0; t++) {
        if (seqs[1].preemptions > 0 && was_waiting && seqs[1].state == SIM_SEQ_RUNNING && *computed_back < 0) {
            *computed_back = seqs[1].num_computed;
            *prefill_back = sh.prefill_tokens;
            /* Attention prices the chunk after the cached prefix (n x c + n (n + 1) / 2); the rest of the
             * step, if anything, is seq 0's decode (its context and itself). */
            long long n = sh.prefill_tokens, c = seqs[1].num_computed, other = sh.attn_pairs - (n * c + n * (n + 1) / 2);
            CHECK_MSG(other == 0 || other == seqs[0].num_computed + 1, "attention pairs %lld, %lld beside the chunk",
                      sh.attn_pairs, other);
        }
        was_waiting = seqs[1].state == SIM_SEQ_WAITING;
        sim_sched_commit(s, t + 1, on_tok, NULL);
    }
    sim_sched_stats st;
    sim_sched_get_stats(s, &st);
    CHECK(seqs[1].preemptions == 1 && recs[0].finished && recs[1].finished);
    CHECK(recs[0].tokens == decode && recs[1].tokens == 1);
    CHECK(st.used_blocks == 0);
    sim_sched_free(s);
}

/* vLLM's prefix cache keeps a preempted request's blocks until they are handed out again. */
static void test_preempted_prefix_is_a_hit(void) {
    int computed, prefill;
    /* seq 0 needs one more block (3 in all): a free one, seq 1's 3 cached blocks survive. */
    preempt_then_readmit(20, &computed, &prefill);
    CHECK(computed == 48 && prefill == 48); /* back where it was: the other 48 tokens only */
    /* seq 0 grows to 5 blocks: it takes two of seq 1's cached blocks, the last ones first. */
    preempt_then_readmit(64, &computed, &prefill);
    CHECK(computed == 16 && prefill == 64); /* the first block survived; one 64-token chunk */
    /* seq 0 grows to all 6 blocks: nothing of seq 1 survives, it recomputes from scratch. */
    preempt_then_readmit(80, &computed, &prefill);
    CHECK(computed == 0 && prefill == 64);
}

/* vLLM's waiting gauge: only what reached the engine and the last schedule left out. */
static void test_waiting_as_vllm_counts_it(void) {
    sim_sched *s = mk(1, 2048, 1000, 1); /* max_num_seqs 1 */
    sim_step_shape sh;
    add(s, 0, 10, 3);
    add(s, 1, 10, 3);
    add(s, 2, 10, 3);
    seqs[1].t_ready = 0.5;
    seqs[2].t_ready = 9.0; /* still in the API server for a long time */
    CHECK(sim_sched_num_waiting_engine(s, 0.0, false) == 0); /* no step yet */
    CHECK(sim_sched_plan(s, &sh, 0.0) == 1);                  /* seq 0 runs; seq 1 is not ready yet */
    CHECK(sim_sched_num_waiting_engine(s, 0.7, false) == 0);  /* seq 1 ready since 0.5, but no step since */
    sim_sched_commit(s, 1.0, on_tok, NULL);
    CHECK(sim_sched_plan(s, &sh, 1.0) == 1); /* seq 0 again: max_num_seqs leaves seq 1 out */
    CHECK(sim_sched_num_waiting_engine(s, 1.2, false) == 1);
    CHECK(sim_sched_num_waiting_engine(s, 9.5, true) == 2); /* asleep: all that reached the engine */
    sim_sched_stats st;
    sim_sched_get_stats(s, &st);
    CHECK(st.num_waiting == 2); /* the total still counts the one in pre-processing */
    sim_sched_abort(s, &seqs[1]);
    CHECK(sim_sched_num_waiting_engine(s, 1.2, false) == 0);
    sim_sched_free(s);

    /* A preempted sequence goes back to the head with an old t_ready, ahead of later arrivals. */
    s = mk(256, 2048, 2, 1); /* 2 blocks of 16 */
    add(s, 0, 16, 20);
    add(s, 1, 8, 20);
    add(s, 2, 8, 2);
    seqs[2].t_ready = 50.0;
    CHECK(sim_sched_plan(s, &sh, 0.0) == 2); /* seq 0 and seq 1 take a block each */
    sim_sched_commit(s, 1.0, on_tok, NULL);
    CHECK(sim_sched_plan(s, &sh, 1.0) == 1); /* seq 0 needs a second block: seq 1 is preempted */
    CHECK(seqs[1].preemptions == 1);
    CHECK(sim_sched_num_waiting_engine(s, 1.5, false) == 1);  /* seq 1; seq 2 is still in the API */
    CHECK(sim_sched_num_waiting_engine(s, 60.0, true) == 2);
    sim_sched_free(s);

    /* With async scheduling the plan at t drained only what had arrived by the previous plan: a request
     * that arrived in between is still in the engine core's input queue, not in vLLM's waiting count. */
    for (int async = 0; async <= 1; async++) {
        s = one_step_then_arrival(1, async);
        CHECK(sim_sched_plan(s, &sh, 1.0) == 1); /* seq 0; max_num_seqs 1 leaves seq 1 out either way */
        int w = sim_sched_num_waiting_engine(s, 1.2, false);
        CHECK_MSG(w == (async ? 0 : 1), "async %d: %d waiting after the plan at 1", async, w);
        sim_sched_commit(s, 2.0, on_tok, NULL);
        CHECK(sim_sched_plan(s, &sh, 2.0) == 1);
        CHECK(sim_sched_num_waiting_engine(s, 2.2, false) == 1); /* drained by now, still left out */
        sim_sched_free(s);
    }
}

int main(void) {
    test_ready_time();
    test_async_admission();
    test_waiting_as_vllm_counts_it();
    test_preempted_prefix_is_a_hit();
    test_budget_and_chunking();
    test_no_chunking();
    test_max_num_seqs();
    test_preemption();
    test_abort_frees_blocks();
    test_finish_reasons();
    return tlab_test_finish();
}
