/*
 * proxy.h - sends a dispatched request to the worker and relays the answer to its client as it
 * arrives: status and headers at once, then each body chunk. An event stream goes out event by
 * event as each one completes (sse_relay.h), so an error event appended after a break stands alone.
 *
 * Failure mapping when nothing has reached the client yet: worker unreachable -> 503,
 * connect / first-byte / total timeout -> 504, broken response -> 502; a worker's own 4xx/5xx is
 * relayed with its body. After the first byte has gone out, a stream gets an SSE error event and
 * a non-stream response is cut (the connection closes), so a client never takes a truncated body
 * for a whole one.
 */
#ifndef TLAB_PROXY_H
#define TLAB_PROXY_H

#include "request.h"

/* Sends r to the worker (r leaves the waiting phase). Always ends in an answer. */
void tlab_proxy_dispatch(tlab_request *r);
/* Bumped at every dispatcher pass; see queue-wait accounting in proxy.c. */
extern uint64_t tlab_dispatch_pass;

#endif
