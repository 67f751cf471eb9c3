/*
 * autopilot.c - the SLO autopilot's controller (see autopilot.h and docs/autopilot.md).
 *
 * Each tick:
 *  1. TPOT and TTFT: from the worker's histograms when its /metrics answers (the change in sum
 *     over the change in count since the last scrape: every token the worker produced in the
 *     interval, streamed or not), else from the requests the gateway saw finish.
 *  2. The typical request's service time S = TTFT + tokens x TPOT against the target
 *     T = service_share x SLO.
 *  3. S > 1.05 T: the limit drops to in_flight x 1.025 T/S (the middle of T..1.05 T, where
 *     nothing moves). It is computed from the requests really at the worker, not from the
 *     limit: lowering a limit does not end running requests, so a rule on the limit itself
 *     would keep cutting for the seconds it takes them to finish (the collapse that
 *     Vegas-style controllers guard against with a smoothing window).
 *  4. S < T and the gate is full: the limit grows halfway to T/S (up to T, not 0.95 T: where S
 *     barely moves with the batch, 0.95 T..1.05 T spans a third of the gate, and the gate stayed
 *     wherever a cut had left it), by at most 10 % a tick (a gate at 4 reaches 64 in about 3 s
 *     of 100 ms ticks), and after a cut or a hold by at most 2 % per fresh measurement: near
 *     the knee the moving averages lag, and 10 % a tick in the meantime overshot it 1.6x per
 *     burst. Fast again once S is under 2/3 of T: a gate cut to 3 by a cold start's first
 *     measurements took 40 s to climb back at 2 %.
 *  5. vLLM keeps a waiting queue of its own (its max_num_seqs or KV cache is full): the limit is
 *     held at what it runs, so the waiting happens in the gateway.
 *  6. The worker's max_num_seqs, when the gateway started it with one, caps the limit from the
 *     start (tlab__autopilot_set_max_num_seqs); otherwise 5 infers the ceiling.
 */
#include "dispatch/autopilot.h"

#include <math.h>
#include <stdlib.h>

#define GROWTH_MAX 1.10       /* per tick, until the limit was cut or held */
#define GROWTH_NEAR_KNEE 1.02 /* per fresh measurement, after that */
#define FAR_UNDER 0.67        /* S under this share of the target: the knee seen is stale */
#define SHRINK_FLOOR 0.5      /* at most halve the in-flight count in one tick */
#define EWMA_WORKER 0.15      /* weight of a new worker reading (every ~100 ms) */
#define DEAD_BAND 0.05        /* no cut until 5 % over the target (noise is not a signal); a cut aims at half that */
#define EWMA_GATEWAY 0.2      /* weight of a tick's worth of finished requests */
#define EWMA_TOKENS 0.05      /* per request */
#define DRAIN_TAU_S 2.0       /* the measured drain rate's time constant */
#define WORKER_QUEUE_STREAK 10/* scrapes in a row with vLLM's waiting queue non-empty: it is full, not admitting */
/* The engine's ceiling is learned only below this KV-cache usage: a full KV cache also stops vLLM
 * at a running count, but one that moves with the requests' lengths. */
#define KV_CEILING_MAX 0.9
#define KV_FULL 0.95          /* no growth above this KV-cache usage */
#define DEFAULT_TOKENS 256.0  /* typical request before any sample: vLLM's own small default range */
#define SHARE_EMPTY_QUEUE 0.75 /* service target with nothing waiting: a share of the SLO */

struct tlab__autopilot {
    tlab__autopilot_params p;
    tlab__autopilot_view v;
    double limit;
    /* gateway samples since the last tick */
    double gw_tpot_sum, gw_ttft_sum;
    int gw_tpot_n, gw_ttft_n, completions;
    /* the worker's previous reading, for deltas */
    tlab__worker_reading prev;
    int have_prev;
    /* The worker's token-weighted means: moving averages of the histograms' sum and count deltas,
     * whose ratio is the mean over tokens (requests for TTFT). Averaging each scrape's own ratio
     * instead weighs a 100 ms interval with one prefill stall (few tokens, a 90 ms gap each) like
     * one of fourteen quick steps: on the default rtx3050 profile that read TPOT 1.5 to 2.5x
     * what the worker streamed (27 ms against 12), and the gate shrank for a slowness that was
     * not there. */
    double itl_sum_avg, itl_count_avg, ttft_sum_avg, ttft_count_avg;
    int wk_tpot_new, wk_ttft_new; /* a scrape since the last tick moved them */
    double wk_ttft_last;          /* the last scrape's own mean TTFT */
    double running, waiting_now, kv_usage;
    int waiting_streak;
    /* The engine's own ceiling: vLLM queued twice at the same running count, which is what
     * max_num_seqs looks like from outside (a KV-cache limit moves with the requests' lengths).
     * Without it the gate held at 32 after a tier-3 restart, saw vLLM's waiting count read 0 once
     * the excess had been scheduled, grew to 42-46, and was held again: a 5 s swing that never
     * settled (87 s by the +-15 % rule). Learned only while the KV cache has room; forgotten when
     * the worker restarts, or when it is seen running more (possible only when other gateways
     * share the worker: this gate keeps it at the ceiling): then the known max_num_seqs, if any,
     * is the ceiling again. */
    double held_at, engine_cap;
    double known_cap; /* max_num_seqs as the worker was started, when its supervisor says (0: not) */
    int fresh; /* the last measure() had new data */
    int knee_seen; /* cut or held since the service time was last far under the target */
    double drain_measured;
    int saturated; /* the gate is full of requests in flight: growth may help */
    int backlog;   /* requests wait or the gate is full: the measured drain rate is the gate's */
};

static double clampd(double x, double lo, double hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

static double ewma(double old, double x, double w, int first) {
    return first ? x : old + w * (x - old);
}

static void publish(tlab__autopilot *a) {
    a->v.limit = a->limit;
    double s = tlab__autopilot_service_s(a, 0);
    double model = s > 0 ? a->limit / s : 0;
    a->v.drain_rate = model > 0 && a->backlog && a->drain_measured > 0 ? 0.5 * (model + a->drain_measured) : model;
}

tlab__autopilot *tlab__autopilot_new(const tlab__autopilot_params *p) {
    tlab__autopilot *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->v.typical_tokens = DEFAULT_TOKENS;
    a->v.last_reason = "conservative start: no measurement yet";
    tlab__autopilot_set_params(a, p);
    a->limit = p->fixed_limit > 0 ? p->fixed_limit : clampd(p->initial_limit, 1, p->max_limit);
    publish(a);
    return a;
}

void tlab__autopilot_free(tlab__autopilot *a) {
    free(a);
}

void tlab__autopilot_set_params(tlab__autopilot *a, const tlab__autopilot_params *p) {
    a->p = *p;
    if (a->p.max_limit < 1)
        a->p.max_limit = 1;
    if (a->p.fixed_limit > 0)
        a->limit = a->p.fixed_limit;
    else if (a->limit > a->p.max_limit)
        a->limit = a->p.max_limit;
    else if (a->limit < 1)
        a->limit = 1;
}

void tlab__autopilot_on_sample(tlab__autopilot *a, const tlab__autopilot_sample *s) {
    a->completions++;
    if (!s->ok || s->service_s <= 0)
        return;
    if (s->tokens > 0) {
        a->v.typical_tokens = ewma(a->v.typical_tokens, (double)s->tokens, EWMA_TOKENS, a->v.samples == 0 && a->gw_tpot_n == 0);
        /* Without the TTFT (a response that is not streamed) the whole service time is charged
         * to the tokens: a slight overestimate, on the safe side. */
        double decode = s->ttft_s > 0 && s->ttft_s < s->service_s ? s->service_s - s->ttft_s : s->service_s;
        double n = s->ttft_s > 0 && s->tokens > 1 ? (double)(s->tokens - 1) : (double)s->tokens;
        a->gw_tpot_sum += decode / n;
        a->gw_tpot_n++;
    }
    if (s->ttft_s > 0) {
        a->gw_ttft_sum += s->ttft_s;
        a->gw_ttft_n++;
    }
}

void tlab__autopilot_on_worker(tlab__autopilot *a, const tlab__worker_reading *r) {
    if (!r) {
        a->v.worker_metrics = 0;
        a->have_prev = 0;
        return;
    }
    a->v.worker_metrics = 1;
    a->running = r->running;
    if (a->engine_cap > 0 && r->running > a->engine_cap + 0.5) {
        a->engine_cap = a->known_cap; /* it runs more (another gateway's requests too): not its ceiling */
        a->held_at = 0;
    }
    a->kv_usage = r->kv_usage;
    /* vLLM counts a request as waiting from when its engine core receives it (after the API
     * server) until a step schedules it: the prompts one step's token budget could not take, so
     * single readings of 10 or 20 are normal under load; a queue that never empties for a second
     * is a full engine (max_num_seqs or the KV cache). */
    a->waiting_streak = r->waiting >= 1 ? a->waiting_streak + 1 : 0;
    a->waiting_now = r->waiting;
    /* A count that went down is a worker that restarted: no delta across it. */
    if (a->have_prev && r->has_itl && r->itl_count > a->prev.itl_count && r->itl_sum >= a->prev.itl_sum) {
        int first = a->itl_count_avg <= 0;
        a->itl_sum_avg = ewma(a->itl_sum_avg, r->itl_sum - a->prev.itl_sum, EWMA_WORKER, first);
        a->itl_count_avg = ewma(a->itl_count_avg, r->itl_count - a->prev.itl_count, EWMA_WORKER, first);
        a->wk_tpot_new = 1;
    }
    if (a->have_prev && r->has_ttft && r->ttft_count > a->prev.ttft_count && r->ttft_sum >= a->prev.ttft_sum) {
        int first = a->ttft_count_avg <= 0;
        a->ttft_sum_avg = ewma(a->ttft_sum_avg, r->ttft_sum - a->prev.ttft_sum, EWMA_WORKER, first);
        a->ttft_count_avg = ewma(a->ttft_count_avg, r->ttft_count - a->prev.ttft_count, EWMA_WORKER, first);
        a->wk_ttft_last = (r->ttft_sum - a->prev.ttft_sum) / (r->ttft_count - a->prev.ttft_count);
        a->wk_ttft_new = 1;
    }
    a->prev = *r;
    a->have_prev = 1;
}

void tlab__autopilot_on_worker_start(tlab__autopilot *a, double start_s) {
    if (start_s > 0)
        a->v.cold_start_s = start_s;
    /* New knobs or a new process: what was measured may not hold. Measure again from half the
     * limit (never below the conservative start); the controller climbs back if it still fits. */
    a->v.samples = 0;
    a->v.tpot_s = a->v.ttft_s = a->v.ttft_min_s = 0;
    a->have_prev = 0;
    a->waiting_streak = 0;
    a->itl_sum_avg = a->itl_count_avg = a->ttft_sum_avg = a->ttft_count_avg = 0;
    a->wk_tpot_new = a->wk_ttft_new = 0;
    a->held_at = a->engine_cap = a->known_cap = 0; /* new knobs, maybe another max_num_seqs */
    a->knee_seen = 0;
    if (a->p.fixed_limit <= 0) {
        double half = a->limit / 2, start = half > a->p.initial_limit ? half : a->p.initial_limit;
        if (start < a->limit)
            a->limit = start;
        a->v.last_reason = "the worker (re)started: measuring again";
    }
    publish(a);
}

void tlab__autopilot_set_max_num_seqs(tlab__autopilot *a, double max_num_seqs) {
    if (max_num_seqs < 1)
        return;
    a->known_cap = a->engine_cap = max_num_seqs;
    a->held_at = 0;
    if (a->p.fixed_limit <= 0 && a->limit > max_num_seqs) {
        a->limit = max_num_seqs;
        a->v.last_reason = "the worker runs at most max_num_seqs at once: no more are let through";
    }
    publish(a);
}

static void measure(tlab__autopilot *a, double dt_s) {
    int first = a->v.samples == 0, samples = a->v.samples;
    if (a->v.worker_metrics && a->wk_tpot_new) {
        a->v.tpot_s = a->itl_sum_avg / a->itl_count_avg; /* already a moving average */
        a->v.samples++;
    } else if (a->gw_tpot_n > 0 && !(a->v.worker_metrics && a->prev.has_itl)) {
        /* Only without the worker's histogram: between two scrapes (4 ticks to a scrape in front
         * of --time-scale 4) the gateway's samples would mix a second, coarser estimate in. */
        a->v.tpot_s = ewma(a->v.tpot_s, a->gw_tpot_sum / a->gw_tpot_n, EWMA_GATEWAY, first || a->v.tpot_s <= 0);
        a->v.samples++;
    }
    double ttft_now = 0; /* this tick's own mean, for the fastest TTFT seen */
    if (a->v.worker_metrics && a->wk_ttft_new) {
        a->v.ttft_s = a->ttft_sum_avg / a->ttft_count_avg;
        ttft_now = a->wk_ttft_last;
    } else if (a->gw_ttft_n > 0 && !(a->v.worker_metrics && a->prev.has_ttft)) {
        ttft_now = a->gw_ttft_sum / a->gw_ttft_n;
        a->v.ttft_s = ewma(a->v.ttft_s, ttft_now, EWMA_GATEWAY, a->v.ttft_s <= 0);
    }
    if (ttft_now > 0 && (a->v.ttft_min_s <= 0 || ttft_now < a->v.ttft_min_s))
        a->v.ttft_min_s = ttft_now;
    if (dt_s > 0) {
        double w = 1.0 - exp(-dt_s / DRAIN_TAU_S);
        a->drain_measured += w * ((double)a->completions / dt_s - a->drain_measured);
    }
    a->gw_tpot_sum = a->gw_ttft_sum = 0;
    a->gw_tpot_n = a->gw_ttft_n = a->completions = 0;
    a->wk_tpot_new = a->wk_ttft_new = 0;
    a->fresh = a->v.samples > samples;
}

int tlab__autopilot_tick(tlab__autopilot *a, const tlab__gate_state *g, double dt_s) {
    double before = a->limit;
    measure(a, dt_s);
    /* The gate is what holds requests back only when it is full. Requests waiting while it has
     * room are held by something else: the supervisor draining the worker for a restart, a
     * batching window, a worker out of routing. Counting those as saturation grew the limit by
     * 10 % a tick while a tier-3 restart drained the worker (49 -> 206 in a second of workload
     * time), and the new worker, halved from there, was handed 103 requests for 32 slots. */
    a->saturated = g->in_flight + 0.5 >= floor(a->limit) || (g->waiting > 0 && g->in_flight + 1.5 >= floor(a->limit));
    /* The drain rate blends in what was measured while anything waits, also when something
     * other than the gate holds it back (a drain, a queue plugin's max_inflight): the model
     * alone (limit / service) would then promise too much. */
    a->backlog = a->saturated || g->waiting > 0;
    if (a->p.fixed_limit > 0 || a->v.samples == 0 || !g->worker_up) {
        publish(a);
        return 0;
    }
    /* The target moves with the queue: with nothing waiting the service may take 75 % of the SLO
     * (below capacity the gate must not throttle: at 0.7 of capacity the worker needed 70 % of
     * the SLO and a fixed 60 % target refused a quarter of the load); as the predicted wait
     * grows it shrinks to service_share, the efficient point under overload. */
    double s = tlab__autopilot_service_s(a, 0), floor_t = a->p.service_share * a->p.slo_s;
    double ceil_t = SHARE_EMPTY_QUEUE > a->p.service_share ? SHARE_EMPTY_QUEUE * a->p.slo_s : floor_t;
    double target = clampd(ceil_t - tlab__autopilot_wait_s(a, g->waiting, g->in_flight), floor_t, ceil_t);
    a->v.target_s = target;
    if (a->v.worker_metrics && a->waiting_streak >= WORKER_QUEUE_STREAK && a->running >= 1 && a->saturated &&
        a->limit > a->running + 1) {
        if (a->held_at > 0 && fabs(a->running - a->held_at) < 0.5 && a->kv_usage < KV_CEILING_MAX)
            a->engine_cap = a->running;
        a->held_at = a->running;
        a->limit = a->running;
        a->waiting_streak = 0;
        a->knee_seen = 1;
        a->v.last_reason = "the worker keeps a waiting queue (max_num_seqs or KV cache full): held at what it runs";
    } else if (s > target * (1 + DEAD_BAND) && g->in_flight >= 0.5 * a->limit) {
        /* Only near the limit: a few requests in flight say little about the limit, and the
         * measurement may still be from the last burst. */
        double want = g->in_flight * clampd(target * (1 + 0.5 * DEAD_BAND) / s, SHRINK_FLOOR, 1.0);
        if (want < a->limit) {
            a->limit = want;
            a->knee_seen = 1;
            a->v.last_reason = "service time over the target: in flight scaled down";
        }
    } else if (a->saturated && (a->v.worker_metrics || a->fresh) && s < target && a->kv_usage < KV_FULL &&
               (!a->v.worker_metrics || a->waiting_now < 1) && !(a->engine_cap > 0 && a->limit >= a->engine_cap)) {
        /* Not while vLLM holds requests it has not scheduled yet: one more would only wait there.
         * Without the worker's metrics, only on a tick with a request that came back: while a
         * worker restarted (no scrape answered, nothing came back) growing on the last estimate
         * took the limit from 54 to 208 in half a second. */
        if (s < FAR_UNDER * target)
            a->knee_seen = 0;
        double most = !a->knee_seen ? GROWTH_MAX : a->fresh ? GROWTH_NEAR_KNEE : 1.0;
        a->limit *= clampd(1.0 + 0.5 * (target / s - 1.0), 1.0, most);
        if (a->engine_cap > 0 && a->limit > a->engine_cap)
            a->limit = a->engine_cap;
        a->v.last_reason = !(a->engine_cap > 0 && a->limit >= a->engine_cap) ? "room under the target and the gate is full: growing"
                           : a->engine_cap == a->known_cap ? "room under the target: grown to the engine's max_num_seqs"
                                                            : "room under the target: grown to the engine's ceiling (it queued twice at this many running)";
    }
    a->limit = clampd(a->limit, 1, a->p.max_limit);
    publish(a);
    return floor(a->limit) != floor(before);
}

int tlab__autopilot_limit(const tlab__autopilot *a) {
    return (int)floor(a->limit);
}

const tlab__autopilot_view *tlab__autopilot_view_get(const tlab__autopilot *a) {
    return &a->v;
}

double tlab__autopilot_service_s(const tlab__autopilot *a, long tokens) {
    if (a->v.tpot_s <= 0)
        return 0; /* unknown: nothing is judged on it */
    double n = tokens > 0 ? (double)tokens : a->v.typical_tokens;
    double ttft = a->v.ttft_s > 0 ? a->v.ttft_s : a->v.tpot_s;
    return ttft + n * a->v.tpot_s;
}

double tlab__autopilot_wait_s(const tlab__autopilot *a, double ahead, double in_flight) {
    double free_slots = floor(a->limit) - in_flight;
    if (ahead < free_slots)
        return 0;
    if (a->v.drain_rate <= 0)
        return 0; /* unknown */
    return (ahead - (free_slots > 0 ? free_slots : 0) + 1) / a->v.drain_rate;
}
