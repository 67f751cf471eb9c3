/*
 * dispatch.c - the dispatcher: queue role or the core's FIFO, then the gates (the autopilot's,
 * gate.h, then the plugins'), then the relay.
 */
#include "dispatch/dispatch.h"

#include <event2/event.h>

#include "base/clock.h"
#include "common/log.h"
#include "dispatch/gate.h"
#include "hooks/plugin_host.h"
#include "relay/relay.h"

static struct {
    struct event *ev;
    tlab_request *head, *tail; /* the core's FIFO (no queue plugin) */
    size_t fifo_len;
    int scheduled;
    int running; /* inside run_dispatch: a submit from a hook must not re-enter it */
    int draining; /* tlab__dispatch_drain: nothing is sent back to the queue any more */
    uint64_t pass; /* bumped at every dispatcher pass; see the queue-wait accounting in send_to_worker() */
} d;

static void run_dispatch(evutil_socket_t fd, short what, void *arg);

int tlab__dispatch_init(struct event_base *base) {
    d.ev = event_new(base, -1, 0, run_dispatch, NULL);
    return d.ev ? 0 : -1;
}

void tlab__dispatch_shutdown(void) {
    if (d.ev)
        event_free(d.ev);
    d.ev = NULL;
}

void tlab__dispatch_wake(void) {
    if (d.ev && !d.scheduled) {
        d.scheduled = 1;
        event_active(d.ev, 0, 0);
    }
}

static void fifo_push(tlab_request *r) {
    r->fifo_prev = d.tail;
    r->fifo_next = NULL;
    if (d.tail)
        d.tail->fifo_next = r;
    else
        d.head = r;
    d.tail = r;
    d.fifo_len++;
}

static void fifo_remove(tlab_request *r) {
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
        if (!r->requeued && tlab__gate_judge(r, (double)d.fifo_len, 1.0, why, sizeof why, &retry) != 0) {
            stop_waiting(r);
            tlab__error err;
            tlab__error_set(&err, 429, "rate_limit_exceeded", NULL, "%s", why);
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

/* The worker went away before answering r (crash, restart): with a supervisor, r goes back to
 * the queue once and is served when the worker is back, instead of failing. */
static int on_unreachable(tlab_request *r) {
    if (r->requeued || tlab__plugins_worker_state() < 0 || d.draining)
        return 0; /* while draining nothing is dispatched from the queue any more: answer now */
    r->requeued = 1;
    tlab__log(TLAB_LOG_INFO, r->id, "worker unreachable before any response byte: back to the queue");
    tlab__dispatch_submit(r);
    return 1;
}

static void on_leg_done(tlab_request *r) {
    tlab__gate_on_leg_done(r);
    tlab__dispatch_wake(); /* a worker slot opened */
}

static const tlab__relay_report report = {on_unreachable, on_leg_done};

static void send_to_worker(tlab_request *r) {
    if (!r->internal && r->t[TLAB_EV_ADMITTED]) {
        /* Waiting beyond the first dispatcher pass after admission was a gate's doing. */
        uint64_t waited = tlab__now_us() - r->t[TLAB_EV_ADMITTED];
        if (r->dispatch_pass + 1 < d.pass)
            r->queue_wait_us = waited;
        else
            r->overhead_us += waited;
    }
    tlab__relay_start(r, &report);
}

void tlab__dispatch_send_now(tlab_request *r) {
    tlab__relay_start(r, &report);
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
        if (!tlab__gate_open())
            break; /* the autopilot's limit; a leg that ends or a limit that grows wakes us */
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
        send_to_worker(r);
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
