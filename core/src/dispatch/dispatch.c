/*
 * dispatch.c - the dispatcher: queue role or the core's FIFO, then the gates, then the proxy.
 */
#include "dispatch/dispatch.h"

#include <event2/event.h>

#include "gateway/gateway.h"
#include "common/log.h"
#include "hooks/plugin_host.h"
#include "relay/proxy.h"

static struct {
    struct event *ev;
    tlab_request *head, *tail; /* the core's FIFO (no queue plugin) */
    size_t fifo_len;
    int scheduled;
    int running; /* inside run_dispatch: a submit from a hook must not re-enter it */
} d;

static void run_dispatch(evutil_socket_t fd, short what, void *arg);

int tlab_dispatch_init(struct event_base *base) {
    d.ev = event_new(base, -1, 0, run_dispatch, NULL);
    return d.ev ? 0 : -1;
}

void tlab_dispatch_shutdown(void) {
    if (d.ev)
        event_free(d.ev);
    d.ev = NULL;
}

void tlab_dispatch_wake(void) {
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
    for (const tlab_request *l = tlab_requests_live(); l; l = l->live_next)
        if (l == r)
            return 1;
    return 0;
}

void tlab_dispatch_submit(tlab_request *r) {
    void *qself;
    const tlab_queue_role *q = tlab_plugins_queue(&qself);
    r->phase = TLAB_PHASE_WAITING;
    r->dispatch_pass = tlab_dispatch_pass;
    tlab_request_compact_body(r); /* before any hook, so r is surely alive */
    if (q) {
        r->queued_in_plugin = 1;
        tlab_request_emit(r, TLAB_EV_QUEUED);
        if (q->push(qself, r) != TLAB_OK) {
            /* The contract says the plugin answered it (request_reject), which freed it. A plugin
             * that failed without answering would leave r hanging: answer it here. */
            if (still_live(r)) {
                tlab_dispatch_forget(r);
                r->phase = TLAB_PHASE_NEW;
                tlab_error err;
                tlab_error_set(&err, 500, "internal_error", NULL, "the queue plugin failed to take the request");
                tlab_request_fail(r, &err, 0);
            }
            return;
        }
    } else {
        fifo_push(r);
    }
    /* At once rather than on the loop's next turn: under load a turn relays hundreds of stream
     * chunks first, and every request paid half a turn (milliseconds) before its worker saw it. */
    if (!d.running)
        run_dispatch(-1, 0, NULL);
    else
        tlab_dispatch_wake();
}

void tlab_dispatch_forget(tlab_request *r) {
    if (r->phase != TLAB_PHASE_WAITING)
        return;
    if (r->queued_in_plugin) {
        void *qself;
        const tlab_queue_role *q = tlab_plugins_queue(&qself);
        r->queued_in_plugin = 0;
        if (q)
            q->remove(qself, r);
    } else {
        fifo_remove(r);
    }
}

size_t tlab_dispatch_waiting(void) {
    void *qself;
    const tlab_queue_role *q = tlab_plugins_queue(&qself);
    return d.fifo_len + (q ? q->depth(qself) : 0);
}

static tlab_request *peek(const tlab_queue_role *q, void *qself) {
    return q ? q->peek(qself) : d.head;
}

static void run_dispatch(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    if (d.running)
        return;
    d.running = 1;
    d.scheduled = 0;
    tlab_dispatch_pass++;
    void *qself;
    const tlab_queue_role *q = tlab_plugins_queue(&qself);
    tlab_request *r;
    while ((r = peek(q, qself)) != NULL) {
        int rc = tlab_plugins_gate(r);
        if (rc == TLAB_AGAIN)
            break; /* a gate holds the head; it calls dispatch_wake when it opens */
        if (q) {
            q->pop(qself);
            r->queued_in_plugin = 0;
        } else {
            fifo_remove(r);
        }
        if (rc != TLAB_OK) {
            /* A failing gate would otherwise hold the head forever (it never calls dispatch_wake):
             * this request gets a clean 500 and the ones behind it go on. */
            r->phase = TLAB_PHASE_NEW;
            tlab_error err;
            tlab_error_set(&err, 500, "internal_error", NULL, "a plugin's dispatch gate failed (returned %d)", rc);
            tlab_request_fail(r, &err, 0);
            continue;
        }
        tlab_proxy_dispatch(r);
    }
    d.running = 0;
}

void tlab_dispatch_fail_all(const tlab_error *err) {
    tlab_dispatch_fail_all_retry(err, 0);
}

void tlab_dispatch_fail_all_retry(const tlab_error *err, int retry_after_s) {
    void *qself;
    const tlab_queue_role *q = tlab_plugins_queue(&qself);
    tlab_request *r;
    while ((r = peek(q, qself)) != NULL) {
        if (q) {
            q->pop(qself);
            r->queued_in_plugin = 0;
        } else {
            fifo_remove(r);
        }
        r->phase = TLAB_PHASE_NEW;
        tlab_request_fail(r, err, retry_after_s);
    }
}
