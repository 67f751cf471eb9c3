/*
 * route.h - which worker a request goes to: filter, then score, then pick (as llm-d's scheduler
 * and vLLM's router do it), so that another scorer (prefix-cache aware) can be added as one
 * more function here.
 *
 * Filter: the worker takes requests (not ejected), was not tried already by this request, and
 * its own gate has room. Score: its load, in-flight tokens (prompt plus max_tokens) with this
 * request, over its gate's limit: a worker the autopilot found faster gets proportionally more.
 * Pick: power of two random choices among the near-equals (within 10 % of the best score), so
 * that many equal workers share a burst instead of the first one taking it all; with
 * pool.affinity_header set, a request carrying it goes to the worker its value hashes to
 * (rendezvous hashing: a worker leaving moves only its own sessions) while that one passes the
 * filter.
 */
#ifndef TLAB_ROUTE_H
#define TLAB_ROUTE_H

#include <stdint.h>

#include "config/config.h"
#include "dispatch/pool.h"
#include "request/request.h"

int tlab__route_init(const tlab__config *cfg);
void tlab__route_shutdown(void);
/* The load r puts on a worker: its prompt tokens (estimated) plus its max_tokens (or the typical
 * request's). */
double tlab__route_tokens(const tlab_request *r);
/* The worker for r at `now`, skipping the workers in `exclude` (bit i = worker i); NULL when
 * none may take it now. Changes nothing: call tlab__route_commit once r goes. */
tlab__pool_worker *tlab__route_pick(const tlab_request *r, uint64_t exclude, uint64_t now);
/* The same past the gates' limits (a stream cut midway cannot wait in the queue: its client is
 * reading); NULL only when no other worker takes requests. */
tlab__pool_worker *tlab__route_pick_now(const tlab_request *r, uint64_t exclude, uint64_t now);
/* r goes to w: takes the half-open breaker's one trial when w is on probation. */
void tlab__route_commit(tlab__pool_worker *w, uint64_t now);

#endif
