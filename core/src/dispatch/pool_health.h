/*
 * pool_health.h - active health of the listed and discovered workers: GET <root>/health of each, every
 * pool.health_interval_ms, on the loop. A failed or non-200 answer counts as a failure toward
 * the worker's ejection (breaker.h); a 200 ends an ejection whose time is over (the half-open
 * probe). A 200 never clears failures that requests saw: an engine can stop admitting while its
 * /health still answers 200 (vLLM #53130), and the requests are the better witness.
 *
 * The worker at upstream.url (no workers list) is not polled here: the supervisor plugin polls
 * its own, and a lone external worker has nowhere else to send requests anyway.
 */
#ifndef TLAB_POOL_HEALTH_H
#define TLAB_POOL_HEALTH_H

#include <event2/event.h>

#include "config/config.h"
#include "upstream/upstream.h"

/* After tlab__pool_init. `wake` re-runs the dispatcher when a worker comes back. */
int tlab__pool_health_init(struct event_base *base, tlab__upstream *up, const tlab__config *cfg, void (*wake)(void));
void tlab__pool_health_shutdown(void);

#endif
