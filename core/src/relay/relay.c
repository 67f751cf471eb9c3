/*
 * relay.c - the worker leg of a request and the relay back to the client.
 *
 * Gateway overhead (x-tlab-overhead-us) counts the time a request spends in gateway code:
 * validation and admission, the dispatch step, libcurl's work before the request is on the wire
 * (minus TCP connect), and relaying the response headers. It excludes time waiting on the worker
 * and time held by a dispatch gate (queue wait).
 */
#include "relay/relay.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "base/clock.h"
#include "common/log.h"
#include "relay/resume_body.h"
#include "relay/splice.h"
#include "upstream/upstream.h"

/* A client this far behind gets no more bytes until it catches up: the worker's transfer is
 * paused (TCP back-pressure reaches the worker) instead of buffering without bound. */
#define CLIENT_BACKLOG_LIMIT (1u << 20)

/*
 * A non-SSE response (a whole JSON completion, or the worker's own error) is held until it ends
 * and then sent in one reply. A client cannot use half a JSON document anyway, and holding it
 * means a worker that dies, hangs or cuts the body mid-way still gets the client a clean 502/504
 * OpenAI error instead of a truncated 200. Bodies past this size are relayed as they come (the
 * old behaviour: a cut connection is then the only way to say the body is incomplete).
 */
#define HOLD_LIMIT (1u << 20)

static struct tlab__upstream *upstream;

void tlab__relay_init(struct tlab__upstream *u) {
    upstream = u;
}

/* The leg's cleanup handler (request.h): the request ended with the transfer still running (the
 * client left, a shutdown) or after it ended; either way the caller hears that the slot is free. */
static void leg_cleanup(tlab_request *r, void *data) {
    const tlab__relay_report *report = data;
    if (r->xfer) {
        tlab__xfer_abort(r->xfer);
        r->xfer = NULL;
    }
    if (r->splice) {
        tlab__splice_free(r->splice);
        free(r->splice);
        r->splice = NULL;
    }
    if (report && report->leg_done)
        report->leg_done(r);
}

/* A stream that another worker may continue if this one cuts it: its transcript starts now. */
static void start_transcript(tlab_request *r) {
    if (!r->resumable || r->splice || !(r->splice = malloc(sizeof *r->splice)))
        return;
    tlab__splice_init(r->splice, r->kind == TLAB_KIND_CHAT);
}

static int is_event_stream(const char *ctype) {
    return ctype && strncmp(ctype, "text/event-stream", 17) == 0;
}

static void on_headers(void *arg, int status, const char *ctype) {
    tlab_request *r = arg;
    uint64_t start = tlab__now_us();
    r->overhead_us += tlab__xfer_send_overhead_us(r->xfer);
    if (r->splice && r->splice->resuming && r->phase == TLAB_PHASE_RESPONDING) {
        /* A continuation: the client has its headers. Anything but a stream now can only be
         * told in an SSE event, as after early headers. */
        if (status != 200 || !is_event_stream(ctype))
            r->upstream_error_status = status != 200 ? status : 502;
        return;
    }
    if (r->early_headers) {
        /* The keep-alive already sent 200 and SSE headers. A worker error can now only be told
         * in an SSE event: collect its body (on_data) and send it at the end (on_done). */
        if (status != 200) {
            r->upstream_error_status = status;
        } else {
            r->sse_framed = 1;
            start_transcript(r);
        }
        tlab__request_set_phase(r, TLAB_PHASE_RESPONDING);
        return;
    }
    r->status = status;
    if (!is_event_stream(ctype) && (r->held_body = evbuffer_new()) != NULL) {
        r->held_status = status;
        r->held_ctype = strdup(ctype ? ctype : "application/json");
        /* The response has begun, and the SSE keep-alive must not start a stream on top of it. */
        if (!r->t[TLAB_EV_FIRST_BYTE])
            tlab__request_emit(r, TLAB_EV_FIRST_BYTE);
        r->overhead_us += tlab__now_us() - start;
        return; /* phase stays UPSTREAM: nothing has reached the client */
    }
    tlab__request_set_phase(r, TLAB_PHASE_RESPONDING);
    if (!r->http)
        return; /* the client left; the relay has nowhere to go and on_done finishes */
    tlab__http_add_header(r->http, "Content-Type", ctype ? ctype : "application/json");
    if (is_event_stream(ctype)) {
        tlab__http_add_header(r->http, "Cache-Control", "no-cache");
        tlab__http_add_header(r->http, "X-Accel-Buffering", "no");
        r->sse_framed = 1;
        if (status == 200)
            start_transcript(r);
    }
    r->overhead_us += tlab__now_us() - start;
    tlab__request_add_headers(r, r->http);
    tlab__http_reply_start(r->http, status);
}

/* Sends the held response's status and headers, then what was held: the whole reply (which
 * answers the client, so r->http is detached first), or its start, and relaying goes on. */
static void release_held(tlab_request *r, int whole) {
    struct evbuffer *held = r->held_body;
    r->held_body = NULL;
    tlab__request_set_phase(r, TLAB_PHASE_RESPONDING);
    tlab__http_req *http = whole ? tlab__request_detach(r) : r->http;
    if (http) {
        tlab__http_add_header(http, "Content-Type", r->held_ctype ? r->held_ctype : "application/json");
        tlab__request_add_headers(r, http);
        if (whole) {
            tlab__http_reply_buffer(http, r->held_status, held);
        } else {
            tlab__http_reply_start(http, r->held_status);
            tlab__http_reply_chunk_buffer(http, held);
        }
    }
    evbuffer_free(held);
}

static void on_client_drained(tlab__http_req *http, void *arg) {
    tlab_request *r = arg;
    (void)http;
    tlab__xfer_pause(r->xfer, 0);
}

static void add_to_chunk(void *arg, const char *data, size_t len) {
    evbuffer_add(arg, data, len);
}

typedef struct spliced_chunk {
    tlab__splice *splice;
    struct evbuffer *chunk;
} spliced_chunk;

/* Whole events on their way out go through the transcript (and a continuation's rewrite). */
static void add_through_splice(void *arg, const char *data, size_t len) {
    spliced_chunk *c = arg;
    tlab__splice_events(c->splice, data, len, add_to_chunk, c->chunk);
}

/* Sends `chunk` to the client; a client too far behind pauses the worker's transfer. */
static void send_chunk(tlab_request *r, struct evbuffer *chunk) {
    if (!r->http)
        return;
    tlab__http_reply_chunk_buffer(r->http, chunk);
    if (tlab__http_reply_backlog(r->http) > CLIENT_BACKLOG_LIMIT) {
        tlab__xfer_pause(r->xfer, 1);
        tlab__http_reply_on_drained(r->http, on_client_drained, r);
    }
}

static const tlab__relay_report *report_of(const tlab_request *r) {
    return r->leg_cleanup ? r->leg_cleanup->data : NULL;
}

static void on_data(void *arg, const char *data, size_t len) {
    tlab_request *r = arg;
    if (!r->t[TLAB_EV_FIRST_BYTE])
        tlab__request_emit(r, TLAB_EV_FIRST_BYTE);
    const tlab__relay_report *report = report_of(r);
    if (report && report->progress)
        report->progress(r);
    if (r->upstream_error_status) {
        size_t room = r->upstream_error_len < 2048 ? 2048 - r->upstream_error_len : 0;
        char *grown = room ? realloc(r->upstream_error_body, r->upstream_error_len + (len < room ? len : room) + 1) : NULL;
        if (grown) {
            memcpy(grown + r->upstream_error_len, data, len < room ? len : room);
            r->upstream_error_len += len < room ? len : room;
            grown[r->upstream_error_len] = '\0';
            r->upstream_error_body = grown;
        }
        return;
    }
    if (r->status == 200 && r->on_relayed)
        r->on_relayed(r, data, len); /* usage, to settle the key's token reservation */
    if (r->held_body) {
        evbuffer_add(r->held_body, data, len);
        if (evbuffer_get_length(r->held_body) > HOLD_LIMIT)
            release_held(r, 0);
        return;
    }
    struct evbuffer *chunk = evbuffer_new();
    if (!chunk)
        return;
    spliced_chunk sc = {r->splice, chunk};
    if (r->sse_framed && r->splice && r->sse.held_len) {
        /* An event split across reads goes out as the held part, then the rest: the transcript
         * reads whole events, so it gets them together (alone, the held part turned resume off
         * for the stream). */
        struct evbuffer *whole = evbuffer_new();
        if (!whole) {
            evbuffer_free(chunk);
            return;
        }
        tlab__sse_relay_feed(&r->sse, data, len, add_to_chunk, whole);
        size_t n = evbuffer_get_length(whole);
        if (n)
            tlab__splice_events(r->splice, (const char *)evbuffer_pullup(whole, -1), n, add_to_chunk, chunk);
        evbuffer_free(whole);
    } else if (r->sse_framed && r->splice)
        tlab__sse_relay_feed(&r->sse, data, len, add_through_splice, &sc);
    else if (r->sse_framed)
        tlab__sse_relay_feed(&r->sse, data, len, add_to_chunk, chunk);
    else
        evbuffer_add(chunk, data, len);
    if (evbuffer_get_length(chunk))
        send_chunk(r, chunk);
    evbuffer_free(chunk);
}

static void fail_mid_response_with(tlab_request *r, const tlab__error *err) {
    tlab__log(TLAB_LOG_WARN, r->id, "%s (after %d was sent)", err->message, r->status);
    r->status = err->status;
    if (r->sse_framed || r->early_headers) { /* the client was sent an event stream's 200 */
        tlab__request_end_stream_with_error(r, err);
        return;
    }
    /* A cut connection is the only way to tell an HTTP/1.1 client the body is incomplete. */
    tlab__http_req *http = tlab__request_detach(r);
    if (http)
        tlab__http_reply_abort(http);
    tlab__request_finish(r);
}

static void fail_mid_response(tlab_request *r, const char *detail) {
    tlab__error err;
    tlab__error_set(&err, 502, "upstream_error", NULL, "%s", detail);
    fail_mid_response_with(r, &err);
}

void tlab__relay_abort(tlab_request *r, const tlab__error *err) {
    if (r->phase == TLAB_PHASE_DONE)
        return;
    if (r->xfer) {
        tlab__xfer_abort(r->xfer);
        r->xfer = NULL;
    }
    if (r->held_body) {
        evbuffer_free(r->held_body);
        r->held_body = NULL;
    }
    if (r->phase == TLAB_PHASE_RESPONDING && !r->upstream_error_status)
        fail_mid_response_with(r, err);
    else if (r->phase == TLAB_PHASE_RESPONDING) /* early SSE headers out, the worker's error being collected */
        tlab__request_end_stream_with_error(r, err);
    else
        tlab__request_fail(r, err, 0);
}

/* The worker went away before answering (crash, restart): the caller may take r back, to send
 * it again when the worker is back, instead of failing it. */
static int hand_back(tlab_request *r) {
    tlab__request_cleanup *leg = r->leg_cleanup;
    const tlab__relay_report *report = leg ? leg->data : NULL;
    if (!report || !report->unreachable || !r->http)
        return 0;
    leg->fn = NULL; /* the leg is over; the caller owns r again (r->worker_id says where it was) */
    r->leg_cleanup = NULL;
    if (report->unreachable(r))
        return 1;
    r->leg_cleanup = tlab__request_cleanup_add(r, leg_cleanup, (void *)report);
    return 0;
}

static tlab__xfer *send_leg(tlab_request *r, const char *base_url, const char *body, size_t body_len);

/* r's stream broke (or its worker stalled) after part of it reached the client: another worker
 * may continue it from the text sent so far. 1 when one does. */
static int try_resume(tlab_request *r, const char *detail) {
    const tlab__relay_report *report = report_of(r);
    if (!r->splice || !tlab__splice_resumable(r->splice) || r->upstream_error_status || !report || !report->resume || !r->http)
        return 0;
    char why[128];
    json_t *orig = tlab__request_body(r);
    char *body = orig ? tlab__resume_body(orig, r->kind == TLAB_KIND_CHAT, r->splice->text, r->splice->len, r->splice->tokens,
                                          why, sizeof why)
                      : NULL;
    if (!body) {
        tlab__log(TLAB_LOG_INFO, r->id, "the stream cannot go on at another worker: %s", orig ? why : "no body");
        return 0;
    }
    const char *url = report->resume(r);
    if (!url) {
        free(body);
        return 0;
    }
    tlab__log(TLAB_LOG_INFO, r->id, "stream cut after %ld tokens (%s): continued at another worker", r->splice->tokens,
              detail);
    /* What reached the client ends at an event boundary; the half event the cut left is dropped. */
    tlab__sse_relay_free(&r->sse);
    tlab__sse_relay_init(&r->sse, 0);
    tlab__splice_begin_continuation(r->splice);
    r->xfer = send_leg(r, url, body, strlen(body));
    free(body);
    return r->xfer != NULL;
}

void tlab__relay_give_up(tlab_request *r, const char *why) {
    if (r->phase == TLAB_PHASE_RESPONDING && r->splice && !r->held_body) {
        if (r->xfer) {
            tlab__xfer_abort(r->xfer);
            r->xfer = NULL;
        }
        if (!try_resume(r, why))
            fail_mid_response(r, why);
        return;
    }
    if (r->phase != TLAB_PHASE_UPSTREAM)
        return;
    if (r->xfer) {
        tlab__xfer_abort(r->xfer);
        r->xfer = NULL;
    }
    if (r->held_body) {
        evbuffer_free(r->held_body);
        r->held_body = NULL;
        free(r->held_ctype);
        r->held_ctype = NULL;
    }
    r->status = 0;
    if (hand_back(r))
        return;
    tlab__error err;
    tlab__error_set(&err, 504, "timeout", NULL, "%s", why);
    tlab__request_fail(r, &err, 0);
}

static void on_done(void *arg, tlab__xfer_result result, const char *detail) {
    tlab_request *r = arg;
    r->xfer = NULL;
    if (result == TLAB_XFER_OK && r->upstream_error_status) {
        tlab__error err;
        tlab__error_set(&err, r->upstream_error_status >= 500 ? 502 : r->upstream_error_status, "upstream_error", NULL,
                       "the worker answered %d: %.1900s", r->upstream_error_status,
                       r->upstream_error_body ? r->upstream_error_body : "");
        tlab__request_end_stream_with_error(r, &err);
        return;
    }
    if (result == TLAB_XFER_UNREACHABLE && r->phase == TLAB_PHASE_UPSTREAM && hand_back(r))
        return;
    if (result == TLAB_XFER_BROKEN && r->held_body && r->phase == TLAB_PHASE_UPSTREAM) {
        /* A whole-body answer cut midway: the client saw none of it, so the request may go
         * again, whole, to another worker. */
        evbuffer_free(r->held_body);
        r->held_body = NULL;
        free(r->held_ctype);
        r->held_ctype = NULL;
        r->status = 0;
        if (hand_back(r))
            return;
    }
    if (result == TLAB_XFER_OK && r->held_body) {
        release_held(r, 1);
        tlab__request_finish(r);
        return;
    }
    if (r->held_body) {
        /* Nothing of the held response reached the client: it gets a clean error instead. */
        evbuffer_free(r->held_body);
        r->held_body = NULL;
        tlab__log(TLAB_LOG_INFO, r->id, "dropping the worker's incomplete %d response", r->held_status);
    }
    if (result == TLAB_XFER_OK) {
        if (r->phase == TLAB_PHASE_RESPONDING) {
            tlab__http_req *http = tlab__request_detach(r);
            struct evbuffer *tail = http && r->sse_framed && r->sse.held_len ? evbuffer_new() : NULL;
            if (tail) { /* the worker ended mid-event: the client gets its bytes as they were */
                tlab__sse_relay_flush(&r->sse, add_to_chunk, tail);
                tlab__http_reply_chunk_buffer(http, tail);
                evbuffer_free(tail);
            }
            if (http)
                tlab__http_reply_end(http);
            tlab__request_finish(r);
        } else {
            tlab__error err;
            tlab__error_set(&err, 502, "upstream_error", NULL, "the worker closed the connection without a response");
            tlab__request_fail(r, &err, 0);
        }
        return;
    }
    if (r->phase == TLAB_PHASE_RESPONDING) {
        if (!try_resume(r, detail))
            fail_mid_response(r, detail);
        return;
    }
    tlab__error err;
    switch (result) {
    case TLAB_XFER_UNREACHABLE:
        tlab__error_set(&err, 503, "service_unavailable", NULL, "%s", detail);
        tlab__request_fail(r, &err, 1);
        return;
    case TLAB_XFER_CONNECT_TIMEOUT:
    case TLAB_XFER_FIRST_BYTE_TIMEOUT:
    case TLAB_XFER_TOTAL_TIMEOUT:
        tlab__error_set(&err, 504, "timeout", NULL, "%s", detail);
        break;
    default:
        tlab__error_set(&err, 502, "upstream_error", NULL, "%s", detail);
        break;
    }
    tlab__request_fail(r, &err, 0);
}

static const tlab__xfer_callbacks relay_callbacks = {on_headers, on_data, on_done};

/* "<name_colon><value>" into buf (on every request: no snprintf); NULL when it does not fit. */
static const char *header_line(char *buf, size_t cap, const char *name_colon, const char *value) {
    size_t nl = strlen(name_colon), vl = strlen(value);
    if (nl + vl + 1 > cap)
        return NULL;
    memcpy(buf, name_colon, nl);
    memcpy(buf + nl, value, vl + 1);
    return buf;
}

/* Starts r's transfer of `body` to the worker at base_url (NULL: upstream.url). */
static tlab__xfer *send_leg(tlab_request *r, const char *base_url, const char *body, size_t body_len) {
    const char *headers[5];
    size_t n = 0;
    char idh[64], auth[1024], accept[256];
    headers[n++] = header_line(idh, sizeof idh, "X-Request-Id: ", r->id);
    if (!r->internal)
        headers[n++] = "Content-Type: application/json";
    /* With gateway auth on, the client's key is the gateway's business: the worker never sees it. */
    const char *v = r->forward_authorization && r->http ? tlab__http_req_header(r->http, "Authorization") : NULL;
    if (v && header_line(auth, sizeof auth, "Authorization: ", v))
        headers[n++] = auth;
    v = r->http ? tlab__http_req_header(r->http, "Accept") : NULL;
    if (v && header_line(accept, sizeof accept, "Accept: ", v))
        headers[n++] = accept;
    headers[n] = NULL;
    /* A pool worker's URL plus the path: the upstream takes an absolute URL as it is. */
    char url_buf[1024], *url = NULL;
    const char *target = r->path;
    if (base_url) {
        size_t bl = strlen(base_url), pl = strlen(r->path);
        url = bl + pl + 1 <= sizeof url_buf ? url_buf : malloc(bl + pl + 1);
        if (url) {
            memcpy(url, base_url, bl);
            memcpy(url + bl, r->path, pl + 1);
            target = url;
        }
    }
    tlab__xfer *x = tlab__upstream_start(upstream, r->internal ? "GET" : "POST", target, r->internal ? NULL : body,
                                        r->internal ? 0 : body_len, headers, 0, &relay_callbacks, r);
    if (url && url != url_buf)
        free(url);
    return x;
}

void tlab__relay_start(tlab_request *r, const char *base_url, const tlab__relay_report *report) {
    uint64_t start = tlab__now_us();
    tlab__request_set_phase(r, TLAB_PHASE_UPSTREAM);
    r->leg_cleanup = tlab__request_cleanup_add(r, leg_cleanup, (void *)report);
    tlab__request_emit(r, TLAB_EV_DISPATCHED);

    char *dumped = NULL;
    const char *body = r->raw_body;
    size_t body_len = r->raw_len;
    if (r->body_dirty && r->body) {
        /* No fallback to raw_body: its bytes lack the change, and a waiting request may have none. */
        body = dumped = json_dumps(r->body, JSON_COMPACT);
        body_len = dumped ? strlen(dumped) : 0;
    }
    if (!body && !r->internal) {
        tlab__error err;
        tlab__error_set(&err, 500, "internal_error", NULL, "out of memory serialising the request body");
        tlab__request_fail(r, &err, 0);
        return;
    }
    r->xfer = send_leg(r, base_url, body, body_len);
    free(dumped);
    r->overhead_us += tlab__now_us() - start;
    if (!r->xfer) {
        tlab__error err;
        tlab__error_set(&err, 500, "internal_error", NULL, "out of memory starting the upstream transfer");
        tlab__request_fail(r, &err, 0);
    }
}
