/*
 * relay.h - the worker leg: sends a dispatched request to the worker and relays the answer to its client as it
 * arrives: status and headers at once; an event stream then goes out event by event as each one
 * completes (sse_relay.h), so an error event appended after a break stands alone; a non-SSE body
 * (JSON) is held until it ends (up to 1 MB) and sent whole.
 *
 * A worker that could not be reached, or that broke off a held (non-SSE) body, has reached no
 * client yet: the report's `unreachable` may take the request back to send it elsewhere. A stream
 * cut midway can go on at another worker (`resume`, splice.h, resume_body.h): the client sees
 * one stream.
 *
 * Failure mapping when nothing has reached the client yet (held JSON bodies included): worker
 * unreachable -> 503, connect / first-byte / total timeout -> 504, broken or garbled response ->
 * 502; a worker's own 4xx/5xx is relayed with its body. After the first byte has gone out, a
 * stream gets an SSE error event and a proper end, and a non-stream response past the hold limit
 * is cut (the connection closes), so a client never takes a truncated body for a whole one.
 */
#ifndef TLAB_RELAY_H
#define TLAB_RELAY_H

#include "request/request.h"

struct tlab__upstream;

/*
 * How the relay reports to the one that started the leg (the dispatcher), given per call so the
 * relay never names its caller. Either function may be NULL.
 */
typedef struct tlab__relay_report {
    /* The worker could not be reached and nothing came back. Return 1 to take r back: the relay
     * has let go of it (no transfer, its cleanup disarmed) and r is the caller's again. Return 0
     * and the relay answers r with 503. */
    int (*unreachable)(tlab_request *r);
    /* r's worker leg is over, however it ended (r may be about to be freed: read nothing of it
     * but the pointer, its worker_id, info and status): a worker slot is free. */
    void (*leg_done)(tlab_request *r);
    /* Bytes came from r's worker (its progress: stall detection). */
    void (*progress)(tlab_request *r);
    /* r's stream was cut midway (its worker died or stalled) and can be continued: return the base
     * URL of another worker to continue it on, having recorded that worker in r->worker_id, or
     * NULL (the client then gets an SSE error event). Only for requests marked `resumable`. */
    const char *(*resume)(tlab_request *r);
} tlab__relay_report;

/* The upstream every leg goes to. */
void tlab__relay_init(struct tlab__upstream *upstream);
/* Sends r to the worker at `base_url` (r's path is appended; NULL: upstream.url), which the
 * caller has recorded in r->worker_id. r enters TLAB_PHASE_UPSTREAM, counted in flight. Always
 * ends in an answer. `report` (static storage, or NULL) hears how the leg ends. */
void tlab__relay_start(tlab_request *r, const char *base_url, const tlab__relay_report *report);
/* r's worker stalled (no byte for too long) while nothing of its answer has reached the client
 * (phase UPSTREAM): the transfer is dropped and r handed back as if unreachable, so the caller
 * may send it elsewhere; if it does not take r, r is answered with 504. */
void tlab__relay_give_up(tlab_request *r, const char *why);
/* Ends r now with `err`, whatever its phase: an error reply before any byte went out, an SSE
 * error event and a proper end for a started stream, a cut connection for a started non-SSE body.
 * The worker's transfer is aborted. Used when the shutdown grace is over. */
void tlab__relay_abort(tlab_request *r, const tlab__error *err);

#endif
