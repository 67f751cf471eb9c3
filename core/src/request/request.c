/*
 * request.c - the request object, its lifecycle events and its error replies.
 */
#include "request/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "base/clock.h"
#include "base/json_fast.h"
#include "base/put_num.h"
#include "common/log.h"
#include "hooks/plugin_host.h"
#include "request/stats.h"

static void on_client_gone(tlab__http_req *http, void *arg);

static tlab_request *live_head, *live_tail;
static size_t live_count, in_flight;
static uint64_t id_seed; /* the first request's clock: tells one gateway run's ids from another's */

tlab_request *tlab__requests_live(void) {
    return live_head;
}

tlab_request *tlab__request_new(tlab__http_req *http, const char *path, tlab__api_kind kind) {
    tlab_request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    size_t n_plugins = tlab__plugins_count();
    if (n_plugins && !(r->plugin_data = calloc(n_plugins, sizeof *r->plugin_data))) {
        free(r);
        return NULL;
    }
    /* The bytes move, not copied: a queued request can wait for minutes, and 10,000 may wait. */
    r->raw_body = tlab__http_req_take_body(http, &r->raw_len);
    if (!r->raw_body) {
        free(r->plugin_data);
        free(r);
        return NULL;
    }
    /* "req-<hex>-<seq>": at most 4 + 6 + 1 + 20 characters and the NUL, which is sizeof r->id. */
    char *id = r->id;
    memcpy(id, "req-", 4);
    static uint64_t seq;
    if (!id_seed)
        id_seed = tlab__now_us();
    id = tlab__put_hex(id + 4, (unsigned long long)(id_seed & 0xffffff));
    *id++ = '-';
    *tlab__put_dec(id, (unsigned long long)++seq) = '\0';
    r->http = http;
    r->path = path;
    r->kind = kind;
    r->worker_id = -1;
    r->info.max_tokens = -1;
    tlab__sse_relay_init(&r->sse, 0);
    tlab__http_req_watch(http, on_client_gone, r);
    live_count++;
    r->live_prev = live_tail;
    if (live_tail)
        live_tail->live_next = r;
    else
        live_head = r;
    live_tail = r;
    return r;
}

json_t *tlab__request_body(tlab_request *r) {
    if (!r->body && r->body_dropped && r->raw_body) {
        /* As tlab__validate_request parsed it: the same bytes give the same JSON. */
        json_error_t jerr;
        r->body = tlab__json_load_body(r->raw_body, r->raw_len, &jerr);
        if (r->body)
            r->body_dropped = 0;
        else
            tlab__log(TLAB_LOG_ERROR, r->id, "cannot parse the body again: %s", jerr.text);
    }
    return r->body;
}

/*
 * Why: a waiting request can wait for minutes, and 10,000 of them may wait at once. The parsed
 * JSON of a typical chat body takes about twice the memory of its bytes, and nothing needs it
 * while the request waits unless a plugin asks (then tlab__request_body parses it again). It
 * costs no CPU on the common path: the JSON would be freed at the end anyway, and a dirty body
 * would be serialised at dispatch anyway.
 */
void tlab__request_compact_body(tlab_request *r) {
    if (!r->body)
        return;
    if (r->body_lent) { /* lent implies dirty: the JSON is the truth, the bytes are stale */
        free(r->raw_body);
        r->raw_body = NULL;
        r->raw_len = 0;
        return;
    }
    if (r->body_dirty) {
        char *dumped = json_dumps(r->body, JSON_COMPACT);
        if (!dumped)
            return; /* keep the JSON: proxy.c serialises it at dispatch */
        free(r->raw_body);
        r->raw_body = dumped;
        r->raw_len = strlen(dumped);
        r->body_dirty = 0;
    }
    json_decref(r->body);
    r->body = NULL;
    r->body_dropped = 1;
    r->info.model = NULL;
}

void tlab__request_emit(tlab_request *r, tlab_event ev) {
    r->t[ev] = tlab__now_us();
    if (!r->internal) {
        tlab__stats_on_event(r, ev); /* feeds the policies' rolling windows (gw.rps, gw.e2e_p95, ...) */
        tlab__plugins_emit(r, ev);
    }
}

tlab__http_req *tlab__request_detach(tlab_request *r) {
    tlab__http_req *http = r->http;
    if (http)
        tlab__http_req_watch(http, NULL, NULL);
    r->http = NULL;
    return http;
}

void tlab__request_finish(tlab_request *r) {
    if (r->phase == TLAB_PHASE_DONE)
        return;
    tlab__request_set_phase(r, TLAB_PHASE_DONE);
    /* Newest first: the worker leg is undone before the wait, the wait before the key's
     * settlement, so observers of DONE see the key's settled bucket. */
    for (int i = TLAB_REQUEST_CLEANUPS - 1; i >= 0; i--) {
        tlab__request_cleanup *c = &r->cleanups[i];
        if (c->fn) {
            tlab__request_cleanup_fn fn = c->fn;
            c->fn = NULL;
            fn(r, c->data);
        }
    }
    /* Not answered by now (an error path that had no client to answer): the answer goes nowhere,
     * but the front's request must be answered to be freed. */
    tlab__http_req *http = tlab__request_detach(r);
    if (http)
        tlab__http_reply_abort(http);
    tlab__request_emit(r, TLAB_EV_DONE);
    tlab__log(TLAB_LOG_DEBUG, r->id, "done status=%d e2e_us=%llu", r->status,
             (unsigned long long)(r->t[TLAB_EV_DONE] - r->t[TLAB_EV_ARRIVED]));
    live_count--;
    if (r->live_prev)
        r->live_prev->live_next = r->live_next;
    else
        live_head = r->live_next;
    if (r->live_next)
        r->live_next->live_prev = r->live_prev;
    else
        live_tail = r->live_prev;
    free(r->upstream_error_body);
    tlab__sse_relay_free(&r->sse);
    if (r->held_body)
        evbuffer_free(r->held_body);
    free(r->held_ctype);
    json_decref(r->body);
    free(r->raw_body);
    free(r->plugin_data);
    free(r->priority);
    for (tlab__header *h = r->response_headers; h;) {
        tlab__header *next = h->next;
        free(h->name);
        free(h->value);
        free(h);
        h = next;
    }
    free(r);
}

tlab__request_cleanup *tlab__request_cleanup_add(tlab_request *r, tlab__request_cleanup_fn fn, void *data) {
    /* Slots are taken from the bottom, so newest-first is top-down even after one is reused. */
    for (int i = 0; i < TLAB_REQUEST_CLEANUPS; i++) {
        tlab__request_cleanup *c = &r->cleanups[i];
        if (!c->fn) {
            c->fn = fn;
            c->data = data;
            return c;
        }
    }
    tlab__log(TLAB_LOG_ERROR, r->id, "no free cleanup slot (%d are armed)", TLAB_REQUEST_CLEANUPS);
    return NULL;
}

static int counts_in_flight(tlab__phase p) {
    return p == TLAB_PHASE_UPSTREAM || p == TLAB_PHASE_RESPONDING;
}

void tlab__request_set_phase(tlab_request *r, tlab__phase phase) {
    int was = counts_in_flight(r->phase), is = counts_in_flight(phase);
    if (!was && is)
        in_flight++;
    else if (was && !is)
        in_flight--;
    r->phase = phase;
}

size_t tlab__requests_in_flight(void) {
    return in_flight;
}

size_t tlab__requests_live_count(void) {
    return live_count;
}

const char *tlab__request_priority(const tlab_request *r) {
    if (r->priority)
        return r->priority;
    return r->http ? tlab__http_req_header(r->http, "x-priority") : NULL;
}

int tlab__request_set_priority(tlab_request *r, const char *class_name) {
    char *copy = class_name ? strdup(class_name) : NULL;
    if (class_name && !copy)
        return -1;
    free(r->priority);
    r->priority = copy;
    return 0;
}

/* The client went away (the front frees its request after this returns). */
static void on_client_gone(tlab__http_req *http, void *arg) {
    tlab_request *r = arg;
    (void)http;
    r->http = NULL;
    if (r->status == 0)
        r->status = 499; /* nginx's "client closed request" */
    tlab__log(TLAB_LOG_INFO, r->id, "client disconnected; %s", r->xfer ? "aborting the worker's transfer" : "dropping it");
    tlab__request_finish(r);
}

int tlab__request_add_response_header(tlab_request *r, const char *name, const char *value) {
    tlab__header *h = calloc(1, sizeof *h);
    if (!h || !(h->name = strdup(name)) || !(h->value = strdup(value))) {
        if (h)
            free(h->name);
        free(h);
        return -1;
    }
    h->next = r->response_headers;
    r->response_headers = h;
    return 0;
}

void tlab__request_add_headers(tlab_request *r, tlab__http_req *http) {
    for (tlab__header *h = r->response_headers; h; h = h->next)
        tlab__http_add_header(http, h->name, h->value);
    tlab__http_add_header(http, "x-request-id", r->id);
    char overhead[24];
    *tlab__put_dec(overhead, (unsigned long long)r->overhead_us) = '\0';
    tlab__http_add_header(http, "x-tlab-overhead-us", overhead);
}

void tlab__http_send_error(tlab__http_req *http, const tlab__error *err, int retry_after_s) {
    char *json = tlab__error_json(err);
    tlab__http_add_header(http, "Content-Type", "application/json");
    if (retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after_s);
        tlab__http_add_header(http, "Retry-After", ra);
    }
    tlab__http_reply(http, err->status, json ? json : "", json ? strlen(json) : 0);
    free(json);
}

void tlab__request_start_stream_early(tlab_request *r) {
    if (!r->http || r->early_headers || r->phase >= TLAB_PHASE_RESPONDING)
        return;
    tlab__http_add_header(r->http, "Content-Type", "text/event-stream");
    tlab__http_add_header(r->http, "Cache-Control", "no-cache");
    tlab__http_add_header(r->http, "X-Accel-Buffering", "no");
    tlab__request_add_headers(r, r->http);
    tlab__http_reply_start(r->http, 200);
    r->early_headers = 1;
    r->status = 200;
}

void tlab__request_end_stream_with_error(tlab_request *r, const tlab__error *err) {
    r->status = err->status;
    tlab__http_req *http = tlab__request_detach(r);
    if (http) {
        char *json = tlab__error_json(err);
        struct evbuffer *b = evbuffer_new();
        if (b && json) {
            evbuffer_add_printf(b, "%sdata: %s\n\n", tlab__sse_relay_event_prefix(&r->sse), json);
            tlab__http_reply_chunk_buffer(http, b);
        }
        if (b)
            evbuffer_free(b);
        free(json);
        tlab__http_reply_end(http);
    }
    tlab__request_finish(r);
}

void tlab__request_fail(tlab_request *r, const tlab__error *err, int retry_after_s) {
    if (r->phase == TLAB_PHASE_DONE)
        return;
    r->status = err->status;
    tlab__log(err->status >= 500 ? TLAB_LOG_WARN : TLAB_LOG_INFO, r->id, "%d %s", err->status, err->message);
    if (r->early_headers && r->phase != TLAB_PHASE_RESPONDING) {
        /* The 200 is out: the error can only travel as an SSE event. */
        tlab__request_end_stream_with_error(r, err);
        return;
    }
    if (r->http && r->phase != TLAB_PHASE_RESPONDING) {
        tlab__http_req *http = tlab__request_detach(r);
        tlab__request_add_headers(r, http);
        tlab__http_send_error(http, err, retry_after_s);
    }
    tlab__request_finish(r);
}
