/*
 * sim_sched.c - continuous batching after vLLM's V1 Scheduler.schedule(): one token budget per step
 * shared by decodes and prefills, KV blocks allocated per block_size tokens, recompute preemption of
 * the newest running request when the allocator is empty, FIFO admission from the waiting queue, and
 * with async scheduling (vLLM's default since v0.14) admission one step behind (admit_cutoff).
 */
#include "sim_sched.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* An intrusive list over one of a sequence's links (`link`: its offset in sim_seq), so the same
 * code keeps the waiting and running queues (sim_seq.queue) and the prefix cache's eviction order
 * (sim_seq.lru). */
typedef struct seq_list {
    sim_seq *head, *tail;
    int n;
    size_t link;
} seq_list;

struct sim_sched {
    sim_sched_cfg cfg;
    seq_list waiting, running;
    long free_blocks;  /* free, including the cached ones below */
    /* Preempted sequences whose blocks are free but still hold their KV (vLLM's prefix cache is on
     * by default in V1: a freed block keeps its hash until the allocator hands it out again).
     * Oldest preemption first, the order vLLM's free queue evicts them in; blocks that hold nothing
     * (from finished requests, never prefix hits for distinct prompts) are handed out before any. */
    seq_list cached;
    long cached_free;
    uint64_t preemptions;
    bool no_admit; /* waiting sequences stay queued (draining before a sleep) */
    double last_plan_t; /* `now` of the last sim_sched_plan(); -1 before the first */
    double last_by;     /* the last plan's admission cutoff (admit_cutoff); -1 before the first */
    double last_commit_t; /* `now` of the last sim_sched_commit(); -1 before the first */
    sim_seq **step;  /* sequences scheduled in the step under way; aborted ones become NULL */
    int step_n, step_cap;
};

static sim_seq_link *link_of(const seq_list *l, sim_seq *q) { return (sim_seq_link *)((char *)q + l->link); }

static void list_push_tail(seq_list *l, sim_seq *q) {
    sim_seq_link *k = link_of(l, q);
    k->next = NULL;
    k->prev = l->tail;
    if (l->tail)
        link_of(l, l->tail)->next = q;
    else
        l->head = q;
    l->tail = q;
    l->n++;
}

static void list_push_head(seq_list *l, sim_seq *q) {
    sim_seq_link *k = link_of(l, q);
    k->prev = NULL;
    k->next = l->head;
    if (l->head)
        link_of(l, l->head)->prev = q;
    else
        l->tail = q;
    l->head = q;
    l->n++;
}

static void list_remove(seq_list *l, sim_seq *q) {
    sim_seq_link *k = link_of(l, q);
    if (k->prev)
        link_of(l, k->prev)->next = k->next;
    else
        l->head = k->next;
    if (k->next)
        link_of(l, k->next)->prev = k->prev;
    else
        l->tail = k->prev;
    k->prev = k->next = NULL;
    l->n--;
}

sim_sched *sim_sched_new(const sim_sched_cfg *cfg) {
    sim_sched *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = *cfg;
    s->waiting.link = s->running.link = offsetof(sim_seq, queue);
    s->cached.link = offsetof(sim_seq, lru);
    s->free_blocks = cfg->num_blocks;
    s->last_plan_t = -1;
    s->last_by = -1;
    s->last_commit_t = -1;
    s->step_cap = cfg->max_num_seqs > 0 ? cfg->max_num_seqs : 1;
    s->step = calloc((size_t)s->step_cap, sizeof(*s->step));
    if (!s->step) {
        free(s);
        return NULL;
    }
    return s;
}

void sim_sched_free(sim_sched *s) {
    if (!s)
        return;
    free(s->step);
    free(s);
}

void sim_sched_add(sim_sched *s, sim_seq *seq, double now) {
    (void)now;
    seq->state = SIM_SEQ_WAITING;
    seq->scheduled = 0;
    seq->cached_blocks = 0;
    seq->lru.prev = seq->lru.next = NULL;
    list_push_tail(&s->waiting, seq);
}

static void free_blocks(sim_sched *s, sim_seq *q) {
    s->free_blocks += q->num_blocks;
    q->num_blocks = 0;
}

/* q's cached blocks stop being a prefix hit; they stay free. */
static void uncache(sim_sched *s, sim_seq *q) {
    if (q->cached_blocks <= 0)
        return;
    s->cached_free -= q->cached_blocks;
    q->cached_blocks = 0;
    list_remove(&s->cached, q);
}

/* Takes `need` free blocks (need <= free_blocks): empty ones first, then cached ones, oldest
 * preemption first and each sequence's last block first (vLLM frees a request's blocks in reverse,
 * so its prefix outlives its tail). */
static void take_free(sim_sched *s, long need) {
    long spill = need - (s->free_blocks - s->cached_free);
    while (spill > 0 && s->cached.head) {
        sim_seq *h = s->cached.head;
        long take = spill < h->cached_blocks ? spill : h->cached_blocks;
        h->cached_blocks -= (int)take;
        s->cached_free -= take;
        spill -= take;
        if (h->cached_blocks == 0)
            list_remove(&s->cached, h);
    }
    s->free_blocks -= need;
}

/* Drops q from the step under way, if it is in it. */
static void unschedule(sim_sched *s, sim_seq *q) {
    if (!q->scheduled)
        return;
    for (int i = 0; i < s->step_n; i++)
        if (s->step[i] == q)
            s->step[i] = NULL;
    q->scheduled = 0;
}

void sim_sched_abort(sim_sched *s, sim_seq *seq) {
    if (seq->state == SIM_SEQ_WAITING)
        list_remove(&s->waiting, seq);
    else if (seq->state == SIM_SEQ_RUNNING)
        list_remove(&s->running, seq);
    else
        return;
    unschedule(s, seq);
    free_blocks(s, seq);
    uncache(s, seq);
    seq->state = SIM_SEQ_ABORTED;
}

/* Grows q's block table to hold `tokens` tokens. Returns false, changing nothing, if blocks run out. */
static bool alloc_slots(sim_sched *s, sim_seq *q, int tokens) {
    long need = (tokens + s->cfg.block_size - 1) / s->cfg.block_size - q->num_blocks;
    if (need <= 0)
        return true;
    if (need > s->free_blocks)
        return false;
    take_free(s, need);
    q->num_blocks += (int)need;
    return true;
}

/* Recompute preemption: q frees its KV and goes back to the head of the waiting queue; its full
 * blocks stay cached until reused (prefix_admit). */
static void preempt(sim_sched *s, sim_seq *q) {
    list_remove(&s->running, q);
    unschedule(s, q);
    int full = q->num_computed / s->cfg.block_size;
    q->cached_blocks = full < q->num_blocks ? full : q->num_blocks;
    free_blocks(s, q);
    if (q->cached_blocks > 0) {
        s->cached_free += q->cached_blocks;
        list_push_tail(&s->cached, q);
    }
    q->num_computed = 0;
    q->state = SIM_SEQ_WAITING;
    q->preemptions++;
    s->preemptions++;
    list_push_head(&s->waiting, q);
}

static void add_to_step(sim_sched *s, sim_seq *q, int n, sim_step_shape *shape) {
    int total = q->prompt_len + q->num_output;
    q->scheduled = n;
    s->step[s->step_n++] = q;
    /* A sequence with all but its newest token cached decodes; anything else is (re)prefill. */
    if (q->num_output > 0 && q->num_computed == total - 1)
        shape->decode_seqs++;
    else {
        shape->prefill_tokens += n;
        shape->prefill_seqs++;
    }
    shape->ctx_tokens += q->num_computed + n;
    shape->attn_pairs += (long long)n * q->num_computed + (long long)n * (n + 1) / 2;
}

/*
 * A waiting q starts its next chunk: the prefix of a preempted q still cached is a hit (vLLM's
 * get_computed_blocks; at most all but the last token, which is always computed), the rest needs
 * new blocks. Returns the chunk's tokens (at least 1), or 0, changing nothing, when it does not fit
 * the budget (unchunked) or the blocks. Without the hits a preempted 32K-token prompt recomputed from scratch each time and a
 * burst of them on an H100 thrashed: 288 preemptions for 100 requests.
 */
static int prefix_admit(sim_sched *s, sim_seq *q, int budget) {
    int bs = s->cfg.block_size, total = q->prompt_len + q->num_output;
    int hit = q->cached_blocks;
    if (hit > (total - 1) / bs)
        hit = (total - 1) / bs;
    int computed = hit * bs;
    int n = total - computed;
    if (!s->cfg.chunked_prefill && n > budget)
        return 0;
    if (n > budget)
        n = budget;
    long need = (computed + n + bs - 1) / bs - hit; /* new blocks beyond the hit */
    if (need > s->free_blocks - hit)
        return 0;
    uncache(s, q);         /* its cached blocks are plain free blocks now... */
    s->free_blocks -= hit; /* ...and the hit ones are q's again */
    q->num_blocks = hit;
    q->num_computed = computed;
    take_free(s, need);
    q->num_blocks += (int)need;
    return n;
}

/*
 * The time by which a waiting sequence must have reached the engine to join the step planned at now.
 * With async scheduling vLLM's engine core keeps two steps in flight (batch_queue_size 2): right after
 * launching step n it drains its input queue and schedules step n+1, then blocks on step n's output.
 * So step n+1 sees only what had arrived when step n started, unless it would have been empty (no
 * sequence left running and none ready then): the engine core then blocks on step n, drains the input
 * queue afterwards and plans at now, as without async scheduling. An idle engine plans at once.
 * One difference is left: vLLM plans step n+1 before step n's tokens are known, so a sequence that
 * stops at EOS (or is aborted) in step n still counts as work there; here it is gone, and an arrival
 * can join one step earlier than in vLLM when it was the last one running.
 */
static double admit_cutoff(const sim_sched *s, double now) {
    if (!s->cfg.async_scheduling || s->last_commit_t != now || s->last_plan_t < 0 || s->last_plan_t >= now)
        return now;
    /* Admission stops at the first waiting sequence not yet ready, so the head decides. */
    bool left_work = s->running.n > 0 || (s->waiting.head && s->waiting.head->t_ready <= s->last_plan_t);
    return left_work ? s->last_plan_t : now;
}

int sim_sched_plan(sim_sched *s, sim_step_shape *shape, double now) {
    memset(shape, 0, sizeof(*shape));
    double by = admit_cutoff(s, now);
    s->last_plan_t = now;
    s->last_by = by;
    s->step_n = 0;
    int budget = s->cfg.max_num_batched_tokens;
    bool preempted = false;

    /* 1. Running sequences, oldest first. Victims are taken from the tail, i.e. after q, so q->queue.next
     *    stays valid (list_remove relinks it). */
    sim_seq *q = s->running.head;
    while (q && budget > 0) {
        int n = q->prompt_len + q->num_output - q->num_computed;
        if (n > budget)
            n = budget;
        if (n <= 0) { /* nothing to compute (cannot happen after commit); skip */
            q = q->queue.next;
            continue;
        }
        bool ok = true;
        while (!alloc_slots(s, q, q->num_computed + n)) {
            sim_seq *victim = s->running.tail; /* the newest request */
            preempt(s, victim);
            preempted = true;
            if (victim == q) {
                ok = false;
                break;
            }
        }
        if (!ok)
            break; /* q itself was preempted: nothing after it can run either */
        add_to_step(s, q, n, shape);
        budget -= n;
        q = q->queue.next;
    }

    /* 2. Waiting sequences in FIFO order; none when this step had to preempt (as vLLM). */
    while (!preempted && !s->no_admit && s->waiting.head && budget > 0 && s->running.n < s->cfg.max_num_seqs) {
        q = s->waiting.head;
        if (q->t_ready > by)
            break; /* still in the API server; arrivals are FIFO, so nothing behind it is ready either */
        int n = prefix_admit(s, q, budget);
        if (n == 0)
            break;
        list_remove(&s->waiting, q);
        list_push_tail(&s->running, q);
        q->state = SIM_SEQ_RUNNING;
        if (q->t_scheduled == 0)
            q->t_scheduled = now;
        add_to_step(s, q, n, shape);
        budget -= n;
    }
    return s->step_n;
}

/* Decides whether q stops after producing output token number q->num_output. */
static int finish_reason(const sim_sched *s, const sim_seq *q) {
    if (!q->ignore_eos) {
        /* The EOS token is the eos_at-th output token; min_tokens suppresses it until then. */
        int stop_at = q->eos_at > q->min_tokens ? q->eos_at : q->min_tokens;
        if (stop_at > 0 && q->num_output >= stop_at)
            return SIM_FINISH_STOP;
    }
    if (q->num_output >= q->max_tokens)
        return SIM_FINISH_LENGTH;
    if (q->prompt_len + q->num_output >= s->cfg.max_model_len)
        return SIM_FINISH_LENGTH;
    return SIM_FINISH_NONE;
}

void sim_sched_commit(sim_sched *s, double now, sim_token_fn fn, void *arg) {
    s->last_commit_t = now;
    /* fn may abort other sequences of this step: unschedule() then NULLs their slots, which is why
     * step_n stays valid until the walk is over. */
    int n = s->step_n;
    for (int i = 0; i < n; i++) {
        sim_seq *q = s->step[i];
        if (!q)
            continue;
        q->num_computed += q->scheduled;
        q->scheduled = 0;
        if (q->num_computed < q->prompt_len + q->num_output)
            continue; /* a prefill chunk that is not the last one: no token yet */
        int idx = q->num_output++;
        if (idx == 0)
            q->t_first_token = now;
        q->t_prev_token = idx == 0 ? now : q->t_last_token;
        q->t_last_token = now;
        int fin = finish_reason(s, q);
        if (fin) {
            list_remove(&s->running, q);
            free_blocks(s, q);
            q->state = SIM_SEQ_FINISHED;
            q->finish = fin;
        }
        fn(q, idx, fin, arg);
    }
    s->step_n = 0;
}

void sim_sched_get_stats(const sim_sched *s, sim_sched_stats *st) {
    st->num_running = s->running.n;
    st->num_waiting = s->waiting.n;
    st->num_blocks = s->cfg.num_blocks;
    st->used_blocks = s->cfg.num_blocks - s->free_blocks;
    st->preemptions_total = s->preemptions;
}

double sim_sched_next_ready(const sim_sched *s) { return s->waiting.head ? s->waiting.head->t_ready : -1; }

int sim_sched_num_waiting_engine(const sim_sched *s, double now, bool all_ready) {
    /* With async scheduling the last plan drained only what had arrived by its cutoff: later arrivals
     * are still in the engine core's input queue, which len(waiting) does not count. */
    double by = all_ready || s->last_by > now ? now : s->last_by;
    int n = 0;
    /* Preempted sequences go back to the head with an old t_ready, so the list is not sorted: walk it. */
    for (const sim_seq *q = s->waiting.head; q; q = q->queue.next)
        n += q->t_ready <= by;
    return n;
}

void sim_sched_set_admit(sim_sched *s, bool admit) { s->no_admit = !admit; }

int sim_sched_abort_all(sim_sched *s, sim_token_fn fn, void *arg) {
    int n = 0;
    /* Each sequence is unlinked before fn runs, since fn may free it. */
    for (seq_list *l = &s->running;; l = &s->waiting) {
        while (l->head) {
            sim_seq *q = l->head;
            sim_sched_abort(s, q);
            q->finish = SIM_FINISH_ABORT;
            n++;
            fn(q, -1, SIM_FINISH_ABORT, arg);
        }
        if (l == &s->waiting)
            break;
    }
    return n;
}
