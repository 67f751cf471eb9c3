/*
 * proxy.h - sends a dispatched request to the worker and relays the answer to its client as it
 * arrives: status and headers at once; an event stream then goes out event by event as each one
 * completes (sse_relay.h), so an error event appended after a break stands alone; a non-SSE body
 * (JSON) is held until it ends (up to 1 MB) and sent whole.
 *
 * Failure mapping when nothing has reached the client yet (held JSON bodies included): worker
 * unreachable -> 503, connect / first-byte / total timeout -> 504, broken or garbled response ->
 * 502; a worker's own 4xx/5xx is relayed with its body. After the first byte has gone out, a
 * stream gets an SSE error event and a proper end, and a non-stream response past the hold limit
 * is cut (the connection closes), so a client never takes a truncated body for a whole one.
 */
#ifndef TLAB_PROXY_H
#define TLAB_PROXY_H

#include "request/request.h"

/* Sends r to the worker (r leaves the waiting phase). Always ends in an answer. */
void tlab_proxy_dispatch(tlab_request *r);
/* Ends r now with `err`, whatever its phase: an error reply before any byte went out, an SSE
 * error event and a proper end for a started stream, a cut connection for a started non-SSE body.
 * The worker's transfer is aborted. Used when the shutdown grace is over. */
void tlab_proxy_abort(tlab_request *r, const tlab_error *err);
/* Bumped at every dispatcher pass; see queue-wait accounting in proxy.c. */
extern uint64_t tlab_dispatch_pass;

#endif
