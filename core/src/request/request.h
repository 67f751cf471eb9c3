/*
 * request.h - one LLM request's object and lifecycle.
 *
 * Ownership: the request holds its client's tlab__http_req (http_front.h) until it answers it
 * (or the client leaves), and owns its parsed body and its upstream transfer. Exactly one TLAB_EV_DONE is emitted per request
 * that emitted TLAB_EV_ARRIVED, then the request is freed by tlab__request_finish().
 */
#ifndef TLAB_REQUEST_H
#define TLAB_REQUEST_H

#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "http/http_front.h"

#include "sse/sse_relay.h"
#include "tlab/plugin.h"
#include "base/error.h"
#include "request/request_info.h"

struct tlab__xfer;
struct tlab__splice;

typedef enum tlab__phase {
    TLAB_PHASE_NEW = 0,        /* being validated and admitted */
    TLAB_PHASE_WAITING = 1,    /* admitted, waiting for dispatch (in the queue plugin or the core's FIFO) */
    TLAB_PHASE_UPSTREAM = 2,   /* sent to a worker, nothing relayed to the client yet */
    TLAB_PHASE_RESPONDING = 3, /* headers sent to the client, body being relayed */
    TLAB_PHASE_DONE = 4
} tlab__phase;

/*
 * A cleanup handler, nginx's ngx_http_cleanup_t: the layers a request passes through (auth, the
 * dispatcher, the relay) each register one to undo their part when the request ends, so the
 * request object never names them. Handlers run once, newest first, inside tlab__request_finish,
 * before TLAB_EV_DONE is emitted. A layer whose part ended earlier disarms its slot (fn = NULL).
 */
typedef void (*tlab__request_cleanup_fn)(tlab_request *r, void *data);
typedef struct tlab__request_cleanup {
    tlab__request_cleanup_fn fn;
    void *data;
} tlab__request_cleanup;
/* Armed at once at most: the key's settlement, the wait or the worker leg, and one spare. */
#define TLAB_REQUEST_CLEANUPS 4

typedef struct tlab__header {
    char *name, *value;
    struct tlab__header *next;
} tlab__header;

/* Ordered to leave no padding: with 10,000 requests waiting, each byte here is 10 KB. Flags
 * are single bytes. */
struct tlab_request {
    char id[32];
    const char *path;
    tlab__http_req *http; /* NULL once answered or once the client left */
    /* The body, in one or two forms (see tlab__request_body, tlab__request_compact_body):
     * raw_body is what goes to the worker unless body_dirty; body is the parsed JSON, a cache of
     * raw_body while !body_dirty, the truth when body_dirty. A waiting request keeps one form. */
    char *raw_body;
    size_t raw_len;
    json_t *body;
    tlab__request_info info;
    uint64_t t[TLAB_EV__COUNT];
    uint64_t queue_wait_us;
    uint64_t deadline_us;   /* when r must be done (tlab__now_us clock): arrival + slo.e2e_ms or the client's
                               x-request-deadline-ms; 0 = none. Set by admission, read by the queue and stats */
    uint64_t overhead_us;   /* gateway time so far, excluding waiting on the queue or the worker */
    uint64_t dispatch_pass; /* the dispatcher's pass number at submission (dispatch.c) */
    uint64_t last_client_write_us;
    uint64_t tried_workers; /* bit i: worker i failed this request before its first byte (dispatch.c) */
    uint64_t client_key;    /* what a retry of it repeats: body and Authorization (retry_promises.h) */
    struct tlab_request *fifo_next, *fifo_prev; /* the core's FIFO, when no queue plugin */
    struct tlab__xfer *xfer;
    struct tlab__splice *splice; /* a resumable stream's transcript (relay/splice.h), NULL otherwise */
    char *priority; /* set by a policy or plugin; NULL: use the x-priority header */
    tlab__header *response_headers; /* added by plugins before the reply starts */
    struct tlab_request *live_next, *live_prev; /* every request not yet done */
    char *upstream_error_body;
    size_t upstream_error_len;
    struct evbuffer *held_body; /* a non-SSE response kept whole until it ends (proxy.c), NULL otherwise */
    char *held_ctype;
    void **plugin_data;
    struct tlab__access *access; /* the API key and its token reservation (auth.c); NULL with auth off */
    /* Worker bytes relayed to the client with status 200, for a layer above that reads them (the
     * key's usage, auth.c); NULL when none does. */
    void (*on_relayed)(tlab_request *r, const char *data, size_t len);
    tlab__request_cleanup *leg_cleanup;  /* the relay's slot while the worker leg runs (relay.c) */
    tlab__request_cleanup *wait_cleanup; /* the dispatcher's slot while r waits (dispatch.c) */
    tlab__api_kind kind;
    int status;
    int worker_id;
    tlab__phase phase; /* written only by tlab__request_set_phase */
    int upstream_error_status; /* worker's non-200 status after early headers; body collected */
    int held_status;
    uint8_t internal;         /* /v1/models and other pass-through calls: no events, no queue */
    uint8_t body_dirty;       /* body changed after parsing: re-serialise before sending */
    uint8_t body_dropped;     /* the parsed copy was freed while waiting; tlab__request_body parses again */
    uint8_t body_lent;        /* a plugin holds the json_t (request_body): it lives until the request ends */
    uint8_t queued_in_plugin;
    uint8_t early_headers;    /* 200 + SSE headers already sent by the keep-alive */
    uint8_t requeued;         /* sent back to the queue once after the worker went away */
    uint8_t failed_over;      /* moved once to another worker of the pool (dispatch.c) */
    uint8_t resumable;        /* a stream another worker may continue if it is cut (dispatch.c sets it) */
    uint8_t sse_framed;       /* the body relays through `sse` (an event stream to the client) */
    uint8_t forward_authorization; /* the client's Authorization goes to the worker (gateway auth off) */
    uint8_t promised;         /* a retry at the time a Retry-After promised it: queued ahead of fresh arrivals */
    tlab__sse_relay sse;       /* holds back unfinished events; see sse_relay.h */
    tlab__request_cleanup cleanups[TLAB_REQUEST_CLEANUPS];
};

/* Creates a request for `http`, taking over its body and watching for the client leaving. NULL
 * on allocation failure. */
tlab_request *tlab__request_new(tlab__http_req *http, const char *path, tlab__api_kind kind);
/* The parsed body (for plugins: request_body), parsed again from raw_body when a waiting
 * request's parsed copy was dropped. NULL only when there is no body (internal requests) or on
 * allocation failure. Marks nothing: a caller that may change it sets body_dirty. */
json_t *tlab__request_body(tlab_request *r);
/* Called when the request starts waiting: keeps one form of the body. Usually the bytes: the
 * parsed JSON (about twice their memory) is freed, and a dirty one (a policy's clamp) is
 * serialised into raw_body now instead of at dispatch; info.model (borrowed from the JSON)
 * becomes NULL. A body lent to a plugin stays (the plugin may hold the pointer) and the stale
 * bytes go instead. On allocation failure nothing changes. */
void tlab__request_compact_body(tlab_request *r);
/*
 * Registers fn(r, data) to run when r ends. Returns its slot (set ->fn = NULL to disarm it, which
 * also frees the slot for reuse), or NULL when TLAB_REQUEST_CLEANUPS are armed: a programming
 * error, logged.
 */
tlab__request_cleanup *tlab__request_cleanup_add(tlab_request *r, tlab__request_cleanup_fn fn, void *data);
/* Moves r to `phase` (the one writer of r->phase). Entering UPSTREAM counts r in flight, leaving
 * UPSTREAM/RESPONDING for WAITING (sent back to the queue) or DONE uncounts it. */
void tlab__request_set_phase(tlab_request *r, tlab__phase phase);
/* Requests sent to a worker and not yet done (the gate's and the policies' in-flight count). */
size_t tlab__requests_in_flight(void);
/* Requests arrived and not yet done. */
size_t tlab__requests_live_count(void);
/* The priority class: the one a policy or plugin set, else the client's x-priority header, else
 * NULL. */
const char *tlab__request_priority(const tlab_request *r);
/* Sets (copies) the priority class; NULL clears it. Returns 0, or -1 on allocation failure. */
int tlab__request_set_priority(tlab_request *r, const char *class_name);
/* Records the event's time and tells the plugins (unless internal). */
void tlab__request_emit(tlab_request *r, tlab_event ev);
/* Answers with an OpenAI error JSON (if the client is still there) and finishes the request. */
void tlab__request_fail(tlab_request *r, const tlab__error *err, int retry_after_s);
/* Runs the cleanup handlers, emits TLAB_EV_DONE, detaches from the connection and frees. */
void tlab__request_finish(tlab_request *r);
/* Adds a header (copied) to r's reply, for when it starts: 0, or -1 on allocation failure. */
int tlab__request_add_response_header(tlab_request *r, const char *name, const char *value);
/* Adds the plugin headers and the gateway's own (x-request-id, x-tlab-overhead-us) to the reply
 * of `http` (r->http, or the one tlab__request_detach returned). */
void tlab__request_add_headers(tlab_request *r, tlab__http_req *http);
/* Takes r->http for the final answer: stops watching the client and leaves r->http NULL, so that
 * tlab__request_finish touches nothing the answer has freed. NULL when the client is gone. */
tlab__http_req *tlab__request_detach(tlab_request *r);

/* For a stream whose headers are out: sends `data: <OpenAI error JSON>` and ends the reply,
 * then finishes the request. */
void tlab__request_end_stream_with_error(tlab_request *r, const tlab__error *err);
/* Requests not yet done, oldest first (walk with ->live_next). */
tlab_request *tlab__requests_live(void);
/* Sends the SSE headers (200) now, before any worker byte; used by the stream keep-alive. */
void tlab__request_start_stream_early(tlab_request *r);

/* Answers a bare HTTP request (no tlab_request around it) with an OpenAI error JSON. */
void tlab__http_send_error(tlab__http_req *http, const tlab__error *err, int retry_after_s);

#endif
