/*
 * dispatch.c - the dispatcher: queue role or the core's FIFO, then a worker with room (route.h,
 * each worker's autopilot gate), then the plugins' gates, then the relay; and the failover of a
 * request that failed before its first byte.
 */
#include "dispatch/dispatch.h"

#include <event2/event.h>

#include "base/clock.h"
#include "common/log.h"
#include "dispatch/gate.h"
#include "dispatch/retry_promises.h"
#include "dispatch/pool.h"
#include "dispatch/route.h"
#include "hooks/plugin_host.h"
#include "relay/relay.h"

#define SWEEP_US 250000 /* how often the core's FIFO is checked for requests past their deadline */

static struct {
    struct event *ev, *sweep;
    tlab_request *head, *tail; /* the core's FIFO (no queue plugin) */
    tlab_request *promised_tail; /* its promised retries come first (retry_promises.h); the last of them */
    size_t fifo_len, promised_len;
    int scheduled;
    int running; /* inside run_dispatch: a submit from a hook must not re-enter it */
    int draining; /* tlab__dispatch_drain: nothing is sent back to the queue any more */
    uint64_t pass; /* bumped at every dispatcher pass; see the queue-wait accounting in send_to_worker() */
} d;

static void run_dispatch(evutil_socket_t fd, short what, void *arg);

/* The core's FIFO (no queue plugin) has no timeout of its own: a request that waits past its
 * deadline, because no worker took requests (all ejected, or discovery has found none yet), is
 * answered 503 then rather than held until its client gives up. Its Retry-After is the soonest
 * measured start of a worker, else 1 s. */
static void sweep_fifo(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    uint64_t now = tlab__now_us();
    tlab_request *next;
    for (tlab_request *r = d.head; r; r = next) {
        next = r->fifo_next;
        if (!r->deadline_us || now < r->deadline_us)
            continue;
        double cold = tlab__gate_cold_wait_s();
        tlab__error err;
        tlab__error_set(&err, 503, "service_unavailable", NULL,
                        "no worker took the request before its deadline: %zu worker(s) in the pool, none with room", tlab__pool_members());
        tlab__request_fail(r, &err, cold > 1 ? (int)(cold + 0.999) : 1); /* its cleanup takes it out of the FIFO */
    }
}

int tlab__dispatch_init(struct event_base *base) {
    d.ev = event_new(base, -1, 0, run_dispatch, NULL);
    d.sweep = event_new(base, -1, EV_PERSIST, sweep_fifo, NULL);
    struct timeval tv = {0, SWEEP_US};
    if (!d.ev || !d.sweep || event_add(d.sweep, &tv) != 0)
        return -1;
    return 0;
}

void tlab__dispatch_shutdown(void) {
    if (d.ev)
        event_free(d.ev);
    if (d.sweep)
        event_free(d.sweep);
    d.ev = d.sweep = NULL;
}

void tlab__dispatch_wake(void) {
    if (d.ev && !d.scheduled) {
        d.scheduled = 1;
        event_active(d.ev, 0, 0);
    }
}

/* A promised retry goes after the other promised ones, before every fresh arrival. */
static void fifo_push(tlab_request *r) {
    tlab_request *after = r->promised ? d.promised_tail : d.tail;
    r->fifo_prev = after;
    r->fifo_next = after ? after->fifo_next : d.head;
    if (r->fifo_next)
        r->fifo_next->fifo_prev = r;
    else
        d.tail = r;
    if (after)
        after->fifo_next = r;
    else
        d.head = r;
    if (r->promised) {
        d.promised_tail = r;
        d.promised_len++;
    }
    d.fifo_len++;
}

static void fifo_remove(tlab_request *r) {
    if (r->promised) {
        if (d.promised_tail == r)
            d.promised_tail = r->fifo_prev; /* the promised ones are a prefix */
        d.promised_len--;
    }
    if (r->fifo_prev)
        r->fifo_prev->fifo_next = r->fifo_next;
    else
        d.head = r->fifo_next;
    if (r->fifo_next)
        r->fifo_next->fifo_prev = r->fifo_prev;
    else
        d.tail = r->fifo_prev;
    r->fifo_next = r->fifo_prev = NULL;
    d.fifo_len--;
}

/* Whether r has not been finished (freed). Only for the rare error path: a walk of the live list. */
static int still_live(const tlab_request *r) {
    for (const tlab_request *l = tlab__requests_live(); l; l = l->live_next)
        if (l == r)
            return 1;
    return 0;
}

static void forget(tlab_request *r);

/* The wait's cleanup handler: a request that ends while waiting (its client left, a policy or
 * plugin rejected it, shutdown) leaves the queue before it is freed. */
static void wait_cleanup(tlab_request *r, void *data) {
    (void)data;
    r->wait_cleanup = NULL;
    forget(r);
}

/* r leaves the queue for good (dispatched, or failed by the dispatcher itself). */
static void stop_waiting(tlab_request *r) {
    if (r->wait_cleanup)
        r->wait_cleanup->fn = NULL;
    r->wait_cleanup = NULL;
}

void tlab__dispatch_submit(tlab_request *r) {
    void *qself;
    const tlab_queue_role *q = tlab__plugins_queue(&qself);
    tlab__request_set_phase(r, TLAB_PHASE_WAITING);
    r->dispatch_pass = d.pass;
    r->wait_cleanup = tlab__request_cleanup_add(r, wait_cleanup, NULL);
    tlab__request_compact_body(r); /* before any hook, so r is surely alive */
    if (!r->requeued) /* a request sent back keeps its place class */
        r->promised = (uint8_t)tlab__promises_claim(r->client_key, (double)tlab__now_us() / 1e6);
    if (q) {
        r->queued_in_plugin = 1;
        tlab__request_emit(r, TLAB_EV_QUEUED);
        if (q->push(qself, r) != TLAB_OK) {
            /* The contract says the plugin answered it (request_reject), which freed it. A plugin
             * that failed without answering would leave r hanging: answer it here (its cleanup
             * takes it out of the queue). */
            if (still_live(r)) {
                tlab__error err;
                tlab__error_set(&err, 500, "internal_error", NULL, "the queue plugin failed to take the request");
                tlab__request_fail(r, &err, 0);
            }
            return;
        }
    } else {
        char why[320];
        int retry;
        double ahead = r->promised ? (double)d.promised_len : (double)d.fifo_len;
        if (!r->requeued && tlab__gate_judge(r, ahead, 1.0, why, sizeof why, &retry) != 0) {
            stop_waiting(r);
            tlab__error err;
            tlab__error_set(&err, 429, "rate_limit_exceeded", NULL, "%s", why);
            tlab__gate_add_retry_after_ms(r, retry);
            tlab__request_fail(r, &err, retry);
            return;
        }
        fifo_push(r);
    }
    /* At once rather than on the loop's next turn: under load a turn relays hundreds of stream
     * chunks first, and every request paid half a turn (milliseconds) before its worker saw it. */
    if (!d.running)
        run_dispatch(-1, 0, NULL);
    else
        tlab__dispatch_wake();
}

static void forget(tlab_request *r) {
    if (r->queued_in_plugin) {
        void *qself;
        const tlab_queue_role *q = tlab__plugins_queue(&qself);
        r->queued_in_plugin = 0;
        if (q)
            q->remove(qself, r);
    } else {
        fifo_remove(r);
    }
}

size_t tlab__dispatch_waiting(void) {
    void *qself;
    const tlab_queue_role *q = tlab__plugins_queue(&qself);
    return d.fifo_len + (q ? q->depth(qself) : 0);
}

static tlab_request *peek(const tlab_queue_role *q, void *qself) {
    return q ? q->peek(qself) : d.head;
}

static void send_to_worker(tlab_request *r, tlab__pool_worker *w);

/* r's leg at its worker is over (ended, or handed back): the worker's load and breaker. */
static void leg_over(tlab_request *r, int verdict) {
    tlab__pool_worker *w = tlab__pool_worker_of(r->worker_id);
    if (!w || r->internal)
        return;
    if (tlab__pool_leg_ended(w, tlab__route_tokens(r), verdict, tlab__now_us()))
        tlab__log(TLAB_LOG_WARN, r->id, "worker %s ejected after %d consecutive failures; trying it again in %.1f s", w->name,
                  w->breaker.threshold, (double)w->breaker.ejection_us / 1e6);
}

/* The worker went away before answering r (crash, restart, a cut whole-body answer). In a pool,
 * r goes once to another worker, never the same one: at once when one has room, else back to
 * the queue marked to avoid it. With one supervised worker, r goes back to the queue once and
 * is served when the worker is back. Otherwise the relay answers 503. */
static int on_unreachable(tlab_request *r) {
    if (d.draining)
        return 0; /* nothing is dispatched from the queue any more: answer now */
    tlab__pool_worker *w = tlab__pool_worker_of(r->worker_id);
    if (!tlab__pool_single() && w && !r->failed_over && !r->internal) {
        leg_over(r, 0);
        r->failed_over = 1;
        r->tried_workers |= 1ull << w->id;
        tlab__pool_count_failover(w);
        uint64_t now = tlab__now_us();
        tlab__pool_worker *next = tlab__route_pick(r, r->tried_workers, now);
        tlab__log(TLAB_LOG_INFO, r->id, "worker %s failed before any response byte: %s", w->name,
                  next ? "sent to another worker" : "back to the queue for another worker");
        if (next) {
            tlab__route_commit(next, now);
            send_to_worker(r, next);
        } else {
            r->requeued = 1;
            tlab__dispatch_submit(r);
        }
        return 1;
    }
    if (r->requeued || tlab__plugins_worker_state() < 0 || !tlab__pool_single())
        return 0;
    leg_over(r, 0);
    r->requeued = 1;
    tlab__log(TLAB_LOG_INFO, r->id, "worker unreachable before any response byte: back to the queue");
    tlab__dispatch_submit(r);
    return 1;
}

/* 1: the worker answered (below 500); 0: it failed; -1: no verdict (the client left first). */
static int verdict_of(const tlab_request *r) {
    int status = r->upstream_error_status ? r->upstream_error_status : r->status;
    if (status <= 0)
        return -1;
    return status < 500 ? 1 : 0;
}

static void on_leg_done(tlab_request *r) {
    leg_over(r, verdict_of(r));
    tlab__gate_on_leg_done(r);
    tlab__dispatch_wake(); /* a worker slot opened */
}

static void on_progress(tlab_request *r) {
    tlab__pool_worker *w = tlab__pool_worker_of(r->worker_id);
    if (w)
        tlab__pool_progress(w, tlab__now_us());
}

/* r's stream was cut midway: another worker, once, even past its gate (the client is reading). */
static const char *on_resume(tlab_request *r) {
    tlab__pool_worker *w = tlab__pool_worker_of(r->worker_id);
    if (d.draining || !w || r->failed_over)
        return NULL;
    uint64_t now = tlab__now_us();
    tlab__pool_worker *next = tlab__route_pick_now(r, r->tried_workers | 1ull << w->id, now);
    if (!next)
        return NULL;
    leg_over(r, 0);
    r->failed_over = 1;
    r->tried_workers |= 1ull << w->id;
    tlab__pool_count_failover(w);
    tlab__route_commit(next, now);
    r->worker_id = next->id;
    tlab__pool_leg_started(next, tlab__route_tokens(r), now);
    return next->url;
}

static const tlab__relay_report report = {on_unreachable, on_leg_done, on_progress, on_resume};

static void send_to_worker(tlab_request *r, tlab__pool_worker *w) {
    if (!r->internal && r->t[TLAB_EV_ADMITTED] && !r->t[TLAB_EV_DISPATCHED]) {
        /* Waiting beyond the first dispatcher pass after admission was a gate's doing. */
        uint64_t waited = tlab__now_us() - r->t[TLAB_EV_ADMITTED];
        if (r->dispatch_pass + 1 < d.pass)
            r->queue_wait_us = waited;
        else
            r->overhead_us += waited;
    }
    r->worker_id = w->id;
    r->resumable = r->info.stream && !r->internal && !tlab__pool_single();
    if (!r->internal)
        tlab__pool_leg_started(w, tlab__route_tokens(r), tlab__now_us());
    tlab__relay_start(r, w->url, &report);
}

void tlab__dispatch_send_now(tlab_request *r) {
    /* Not an LLM call (/v1/models): any worker that takes requests, past the gates. */
    uint64_t now = tlab__now_us();
    tlab__pool_worker *w = NULL, *any = NULL;
    for (size_t i = 0; i < tlab__pool_size() && !w; i++) {
        tlab__pool_worker *c = tlab__pool_worker_at(i);
        if (c->member && !any)
            any = c;
        if (tlab__pool_worker_routable(c, now))
            w = c;
    }
    if (!w)
        w = any; /* none takes requests: the first one answers for itself (503 when down) */
    if (!w) {
        tlab__error err;
        tlab__error_set(&err, 503, "service_unavailable", NULL, "%s", "no worker in the pool: discovery finds none now");
        tlab__request_fail(r, &err, 0);
        return;
    }
    send_to_worker(r, w);
}

static void run_dispatch(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    if (d.running)
        return;
    d.running = 1;
    d.scheduled = 0;
    d.pass++;
    void *qself;
    const tlab_queue_role *q = tlab__plugins_queue(&qself);
    tlab_request *r;
    while ((r = peek(q, qself)) != NULL) {
        uint64_t now = tlab__now_us();
        tlab__pool_worker *w = tlab__route_pick(r, r->tried_workers, now);
        if (!w)
            break; /* every worker is at its autopilot's limit (or out); a leg that ends, a limit
                      that grows or a worker back in wakes us */
        int rc = tlab__plugins_gate(r);
        if (rc == TLAB_AGAIN)
            break; /* a gate holds the head; it calls dispatch_wake when it opens */
        if (q) {
            q->pop(qself);
            r->queued_in_plugin = 0;
        } else {
            fifo_remove(r);
        }
        stop_waiting(r);
        if (rc != TLAB_OK) {
            /* A failing gate would otherwise hold the head forever (it never calls dispatch_wake):
             * this request gets a clean 500 and the ones behind it go on. */
            tlab__error err;
            tlab__error_set(&err, 500, "internal_error", NULL, "a plugin's dispatch gate failed (returned %d)", rc);
            tlab__request_fail(r, &err, 0);
            continue;
        }
        tlab__route_commit(w, now);
        send_to_worker(r, w);
    }
    d.running = 0;
}

void tlab__dispatch_drain(const tlab__error *err) {
    d.draining = 1;
    tlab__dispatch_fail_all_retry(err, 0);
}

void tlab__dispatch_fail_all_retry(const tlab__error *err, int retry_after_s) {
    void *qself;
    const tlab_queue_role *q = tlab__plugins_queue(&qself);
    tlab_request *r;
    while ((r = peek(q, qself)) != NULL) {
        if (q) {
            q->pop(qself);
            r->queued_in_plugin = 0;
        } else {
            fifo_remove(r);
        }
        stop_waiting(r);
        tlab__request_fail(r, err, retry_after_s);
    }
}
