/*
 * pool_supervisor.h - the pool's supervised workers (docs/workers.md, "Supervised workers"): a
 * `workers:` entry with a port instead of a url is a worker the gateway starts, stops and
 * restarts itself, one state machine per worker, on the loop:
 *
 *   idle -> starting -> running -> stopping -> idle; running -> sleeping -> starting (woken) or
 *   stopping; failed (a start that did not reach READY, retried after a backoff that doubles,
 *   from backoff_min_ms to backoff_max_ms).
 *
 * It keeps pool.min_ready workers running (default 0: scale to zero) and starts one more when
 * requests wait and no running worker has room under its gate (or admission refused a request
 * for lack of a started worker), one start at a time, in the list's order, a sleeping worker
 * woken before an idle one is started. The idle ladder, as the supervisor plugin's: a running
 * worker idle (nothing in flight) for sleep_after_s sleeps (vLLM's POST /sleep: the GPU freed,
 * the process kept; a 404 turns the rung off), and idle for idle_timeout_s in all it stops;
 * never below min_ready running, never while requests wait. A worker that crashes is started again when there is demand; a worker the pool found
 * stalled (pool.stall_ms) is killed and started again. A starting worker gets no request: it is
 * READY at its first 200 from /health, and only when the port's listener is in its own process
 * group (an impostor on its port is never taken for it); a port already in use fails the start.
 * Every worker gets SIGTERM when the gateway dies, even by kill -9 (process.h).
 */
#ifndef TLAB_POOL_SUPERVISOR_H
#define TLAB_POOL_SUPERVISOR_H

#include <stddef.h>

#include <event2/event.h>

#include "config/config.h"
#include "upstream/upstream.h"

/* After tlab__pool_init and tlab__gate_init; nothing to do without supervised entries. `wake`
 * runs the dispatcher when a worker becomes ready. -1 with err (a profile that does not load). */
int tlab__pool_supervisor_init(struct event_base *base, tlab__upstream *up, const tlab__config *cfg, void (*wake)(void),
                               char *err, size_t errlen);
/* SIGTERM to every worker it started; called last, after the drain. */
void tlab__pool_supervisor_shutdown(void);
/* How many workers it supervises. */
size_t tlab__pool_supervisor_count(void);

#endif
