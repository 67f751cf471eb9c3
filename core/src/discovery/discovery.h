/*
 * discovery.h - a pool that changes while the gateway runs (docs/workers.md, "Discovery"): the
 * configured source (discovery_file.h, discovery_dns.h or discovery_srv.h) hands over its list of workers, and
 * this file makes the pool match it. A worker that joins gets its own gate and is routed to at
 * once; a worker that leaves gets no new request and finishes those it has (no request fails
 * because its worker left the list); its slot is reused once it is idle.
 */
#ifndef TLAB_DISCOVERY_H
#define TLAB_DISCOVERY_H

#include <event2/event.h>

#include "config/config.h"

/* After tlab__pool_init and tlab__gate_init. Nothing to do without discovery.file or
 * discovery.dns. `wake` runs the dispatcher when workers join. -1 with err ("file:line:col: ..."
 * for a discovery file with an error). */
int tlab__discovery_init(struct event_base *base, const tlab__config *cfg, void (*wake)(void), char *err, size_t errlen);
void tlab__discovery_shutdown(void);
/* "file <path>", "dns <name>" or "off", for the start log. */
const char *tlab__discovery_describe(void);

#endif
