/*
 * gate.h - the concurrency gate toward each worker and the deadline predictions, run by the SLO
 * autopilot (autopilot.h): a timer on the loop scrapes each worker's /metrics, feeds its
 * controller with it and with the requests that came back from it, and publishes the result in
 * /metrics (gateway_autopilot_* for the pool, gateway_worker_* per worker, gateway_slo_*).
 * docs/autopilot.md explains the controller. The predictions below are the pool's: limits and
 * drain rates add up over the workers that take requests; with one worker they are its own.
 */
#ifndef TLAB_GATE_H
#define TLAB_GATE_H

#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>

#include "config/config.h"
#include "dispatch/autopilot.h"
#include "dispatch/pool.h"
#include "request/request.h"
#include "upstream/upstream.h"

/* After tlab__pool_init. Handed in, since the dispatcher calls the gate: `waiting` counts the requests waiting for
 * dispatch; `wake` re-runs the dispatcher when the limit grew. */
int tlab__gate_init(struct event_base *base, tlab__upstream *up, const tlab__config *cfg, size_t (*waiting)(void),
                    void (*wake)(void));
/* After a config reload: slo.e2e_ms and autopilot.* (but the metrics URL) apply at once. */
void tlab__gate_reconfigure(const tlab__config *cfg);
void tlab__gate_shutdown(void);

/* A worker discovery put in a fresh slot (tlab__pool_add): its own autopilot from the current
 * config's start, its scrape, its metric series; then the dispatcher runs. 0, or -1 (memory). */
int tlab__gate_worker_reset(tlab__pool_worker *w);
/* Whether one more request may go to worker w now (its autopilot's limit). */
int tlab__gate_worker_open(const tlab__pool_worker *w);
/* A request's worker leg ended: one sample for its worker's controller. */
void tlab__gate_on_leg_done(const tlab_request *r);

/* The pool's limit: the sum of the gates of the workers that take requests. */
int tlab__gate_limit(void);
/* The demand signal for an outside autoscaler (KEDA's metrics-api trigger; docs/kubernetes.md):
 * requests and tokens queued and in flight, the workers there and ready, one worker's capacity
 * (the ready workers' mean gate limit, or autopilot.initial_limit before any runs) and the
 * workers wanted for what is queued and in flight at that capacity. New reference. */
json_t *tlab__gate_demand(void);
/* The first worker's controller, for the micro-benchmark that primes it (tlab-admission-cost). */
tlab__autopilot *tlab__gate_autopilot(void);
const tlab__autopilot_view *tlab__gate_view(void);
/* The default deadline (slo.e2e_ms), in microseconds. */
uint64_t tlab__gate_slo_us(void);
/* Seconds a request with `ahead` requests before it waits for dispatch, a cold start included. */
double tlab__gate_wait_s(double ahead);
/* Seconds from dispatch to done for a request asking for `tokens` (<= 0: the typical request). */
double tlab__gate_service_s(long tokens);
/* Seconds until the worker is up: 0 when it is (or when its start time was never measured). */
double tlab__gate_cold_wait_s(void);

/* Whether r, with `ahead` requests dispatched before it, finishes by its deadline using `share`
 * (0..1] of the time it has left. 0: yes, or unknown (no measurement yet, no deadline). -1: no;
 * msg says why, and *retry_after_s when a retry would make it (0: a retry cannot help). */
int tlab__gate_judge(const tlab_request *r, double ahead, double share, char *msg, size_t len, int *retry_after_s);
/* Before r is refused with `retry_after_s`: when that is the Retry-After that the last
 * tlab__gate_judge call (with no refusal since) gave r, the reply also carries `retry-after-ms`,
 * the wait behind those whole seconds in whole milliseconds (the openai SDKs read it first; the
 * promise is kept for that time). */
void tlab__gate_add_retry_after_ms(tlab_request *r, int retry_after_s);

#endif
