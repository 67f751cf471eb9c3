/*
 * dispatch.h - from "admitted" to "sent to a worker".
 *
 * An admitted request goes to the queue plugin when one is loaded, else to the core's FIFO.
 * The dispatcher then takes requests in order while every dispatch gate says TLAB_OK, and hands
 * each to the relay. TLAB_AGAIN from a gate holds the head; any other answer (TLAB_ERROR, an
 * unknown code) fails that one request with a 500 and the dispatcher goes on.
 *
 * tlab__dispatch_submit() runs the dispatcher at once (unless it is already running), so an
 * admitted request the gates let through is on its way to the worker before the HTTP handler
 * returns. tlab__dispatch_wake() runs it on the loop instead, after the current callbacks, so a
 * hook that wakes it never re-enters it.
 */
#ifndef TLAB_DISPATCH_H
#define TLAB_DISPATCH_H

#include "request/request.h"

int tlab__dispatch_init(struct event_base *base);
void tlab__dispatch_shutdown(void);
/* Takes an admitted request: queues it (TLAB_EV_QUEUED when a queue plugin holds it) and wakes
 * the dispatcher. If the queue plugin refuses it, the plugin has already answered it. */
void tlab__dispatch_submit(tlab_request *r);
void tlab__dispatch_wake(void);
/* Sends r to the worker at once, past the queue and the gates: for calls that are not LLM
 * requests (/v1/models). Its end still wakes the dispatcher. */
void tlab__dispatch_send_now(tlab_request *r);
/* Requests admitted and not yet dispatched. */
size_t tlab__dispatch_waiting(void);
/* Shutdown: answers every waiting request with `err`, and from now on a request whose worker
 * went away is answered instead of being sent back to the queue. */
void tlab__dispatch_drain(const tlab__error *err);
/* The same, with a Retry-After header when retry_after_s > 0. */
void tlab__dispatch_fail_all_retry(const tlab__error *err, int retry_after_s);

#endif
