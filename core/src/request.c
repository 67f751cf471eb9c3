/*
 * request.c - the request object, its lifecycle events and its error replies.
 */
#include "request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#include "auth.h"
#include "client_conns.h"
#include "dispatch.h"
#include "gateway.h"
#include "json_fast.h"
#include "log.h"
#include "plugin_host.h"
#include "stats.h"
#include "upstream.h"

static void on_client_close(struct evhttp_connection *evcon, void *arg);

static tlab_request *live_head, *live_tail;

/* Request ids and the x-tlab-overhead-us value are written on every request; these do it without
 * snprintf, which costs several times more. Each returns the end of what it wrote (no NUL). */
static char *put_dec(char *p, unsigned long long v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_hex(char *p, unsigned long long v) {
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 0xf];
        v >>= 4;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

tlab_request *tlab_requests_live(void) {
    return live_head;
}

/*
 * evhttp stops reading a connection once it has a whole request, so on its own it notices a
 * client that leaves only when a write fails - for a queued or generating request that can be
 * minutes of worker time spent for nobody. This watcher peeks at the socket: EOF or an error
 * means the client is gone, and freeing the connection runs on_client_close. Bytes instead
 * (a pipelined request) end the watch; evhttp reads them after this reply.
 */
static void on_client_readable(evutil_socket_t fd, short what, void *arg) {
    tlab_request *r = arg;
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) {
        if (n > 0)
            event_del(r->close_watch);
        return;
    }
    struct evhttp_connection *evcon = r->http ? evhttp_request_get_connection(r->http) : NULL;
    if (evcon)
        evhttp_connection_free(evcon); /* runs on_client_close */
}

static void watch_client(tlab_request *r, struct evhttp_connection *evcon) {
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return;
    r->close_watch = event_new(tlab_gw.base, fd, EV_READ | EV_PERSIST, on_client_readable, r);
    if (r->close_watch)
        event_add(r->close_watch, NULL);
}

tlab_request *tlab_request_new(struct evhttp_request *http, const char *path, tlab_api_kind kind) {
    tlab_request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    size_t n_plugins = tlab_plugins_count();
    if (n_plugins && !(r->plugin_data = calloc(n_plugins, sizeof *r->plugin_data))) {
        free(r);
        return NULL;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(http);
    r->raw_len = evbuffer_get_length(in);
    r->raw_body = malloc(r->raw_len + 1);
    if (!r->raw_body) {
        free(r->plugin_data);
        free(r);
        return NULL;
    }
    evbuffer_copyout(in, r->raw_body, r->raw_len);
    r->raw_body[r->raw_len] = '\0';
    /* raw_body is the copy from now on. evhttp would keep its own (in read chains of up to 4 KiB)
     * until the reply ends, which for a queued request can be minutes: about a quarter of the
     * gateway's memory per waiting request. */
    evbuffer_drain(in, r->raw_len);
    /* "req-<hex>-<seq>": at most 4 + 6 + 1 + 20 characters and the NUL, which is sizeof r->id. */
    char *id = r->id;
    memcpy(id, "req-", 4);
    id = put_hex(id + 4, (unsigned long long)(tlab_gw.started_us & 0xffffff));
    *id++ = '-';
    *put_dec(id, (unsigned long long)++tlab_gw.request_seq) = '\0';
    r->http = http;
    r->path = path;
    r->kind = kind;
    r->worker_id = -1;
    r->info.max_tokens = -1;
    tlab_sse_relay_init(&r->sse, 0);
    struct evhttp_connection *evcon = evhttp_request_get_connection(http);
    if (evcon) {
        tlab_client_conn_watch(evcon, on_client_close, r);
        watch_client(r, evcon);
    }
    tlab_gw.live_requests++;
    r->live_prev = live_tail;
    if (live_tail)
        live_tail->live_next = r;
    else
        live_head = r;
    live_tail = r;
    return r;
}

json_t *tlab_request_body(tlab_request *r) {
    if (!r->body && r->body_dropped && r->raw_body) {
        /* As tlab_validate_request parsed it: the same bytes give the same JSON. */
        json_error_t jerr;
        r->body = tlab_json_load_body(r->raw_body, r->raw_len, &jerr);
        if (r->body)
            r->body_dropped = 0;
        else
            tlab_log(TLAB_LOG_ERROR, r->id, "cannot parse the body again: %s", jerr.text);
    }
    return r->body;
}

/*
 * Why: a waiting request can wait for minutes, and 10,000 of them may wait at once. The parsed
 * JSON of a typical chat body takes about twice the memory of its bytes, and nothing needs it
 * while the request waits unless a plugin asks (then tlab_request_body parses it again). It
 * costs no CPU on the common path: the JSON would be freed at the end anyway, and a dirty body
 * would be serialised at dispatch anyway.
 */
void tlab_request_compact_body(tlab_request *r) {
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

void tlab_request_emit(tlab_request *r, tlab_event ev) {
    r->t[ev] = tlab_now_us();
    if (!r->internal) {
        tlab_stats_on_event(r, ev); /* feeds the policies' rolling windows (gw.rps, gw.e2e_p95, ...) */
        tlab_plugins_emit(r, ev);
    }
}

/* Detaches from the client connection: after this evhttp owns nothing of ours. */
static void detach_http(tlab_request *r) {
    if (r->close_watch) {
        event_free(r->close_watch);
        r->close_watch = NULL;
    }
    if (!r->http)
        return;
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->http);
    if (evcon)
        tlab_client_conn_watch(evcon, NULL, NULL);
    r->http = NULL;
}

void tlab_request_finish(tlab_request *r) {
    if (r->phase == TLAB_PHASE_DONE)
        return;
    if (r->xfer) {
        tlab_xfer_abort(r->xfer);
        r->xfer = NULL;
    }
    if (r->phase == TLAB_PHASE_UPSTREAM || r->phase == TLAB_PHASE_RESPONDING) {
        tlab_gw.in_flight--;
        tlab_dispatch_wake(); /* a worker slot opened */
    }
    tlab_dispatch_forget(r);
    r->phase = TLAB_PHASE_DONE;
    detach_http(r);
    tlab_auth_settle(r); /* before DONE, so observers of DONE see the key's settled bucket */
    tlab_request_emit(r, TLAB_EV_DONE);
    tlab_log(TLAB_LOG_DEBUG, r->id, "done status=%d e2e_us=%llu", r->status,
             (unsigned long long)(r->t[TLAB_EV_DONE] - r->t[TLAB_EV_ARRIVED]));
    tlab_gw.live_requests--;
    if (r->live_prev)
        r->live_prev->live_next = r->live_next;
    else
        live_head = r->live_next;
    if (r->live_next)
        r->live_next->live_prev = r->live_prev;
    else
        live_tail = r->live_prev;
    free(r->upstream_error_body);
    tlab_sse_relay_free(&r->sse);
    if (r->held_body)
        evbuffer_free(r->held_body);
    free(r->held_ctype);
    json_decref(r->body);
    free(r->raw_body);
    free(r->plugin_data);
    free(r->priority);
    for (tlab_header *h = r->response_headers; h;) {
        tlab_header *next = h->next;
        free(h->name);
        free(h->value);
        free(h);
        h = next;
    }
    free(r);
}

/* The client went away (evhttp frees its request after this returns). */
static void on_client_close(struct evhttp_connection *evcon, void *arg) {
    tlab_request *r = arg;
    tlab_client_conn_watch(evcon, NULL, NULL);
    /* When evhttp itself saw the failure (a write error mid-reply, a read EOF), it has already
     * detached the unfinished request from the connection and left it to us to free; when the
     * connection is freed with the request still attached (our watcher), evhttp frees it. */
    if (r->http && evhttp_request_get_connection(r->http) == NULL)
        evhttp_request_free(r->http);
    r->http = NULL;
    if (r->close_watch) {
        event_free(r->close_watch);
        r->close_watch = NULL;
    }
    if (r->status == 0)
        r->status = 499; /* nginx's "client closed request" */
    tlab_log(TLAB_LOG_INFO, r->id, "client disconnected; %s", r->xfer ? "aborting the worker's transfer" : "dropping it");
    tlab_request_finish(r);
}

/*
 * The Date header evhttp would add to an HTTP/1.1 reply, in its exact format and from the same
 * clock (time(NULL)), but formatted once per second instead of once per reply: evhttp's own
 * formatting (gmtime_r and a snprintf) is a good part of sending a reply. evhttp leaves a Date
 * that is already there alone.
 */
static void add_date(struct evhttp_request *http, struct evkeyvalq *out) {
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static char date[64];
    static time_t date_of = (time_t)-1;
    if (http->major != 1 || http->minor < 1)
        return; /* evhttp sends no Date to HTTP/1.0 clients */
    time_t now = time(NULL);
    if (now != date_of) {
        struct tm tm;
        if (!gmtime_r(&now, &tm))
            return; /* evhttp adds its own */
        snprintf(date, sizeof date, "%s, %02d %s %4d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                 1900 + tm.tm_year, tm.tm_hour, tm.tm_min, tm.tm_sec);
        date_of = now;
    }
    evhttp_add_header(out, "Date", date);
}

void tlab_request_add_headers(tlab_request *r, struct evkeyvalq *out) {
    for (tlab_header *h = r->response_headers; h; h = h->next)
        evhttp_add_header(out, h->name, h->value);
    evhttp_add_header(out, "x-request-id", r->id);
    char overhead[24];
    *put_dec(overhead, (unsigned long long)r->overhead_us) = '\0';
    evhttp_add_header(out, "x-tlab-overhead-us", overhead);
    if (r->http && evhttp_request_get_output_headers(r->http) == out && !evhttp_find_header(out, "Date"))
        add_date(r->http, out);
}

void tlab_http_send_error(struct evhttp_request *http, const tlab_error *err, int retry_after_s) {
    char *json = tlab_error_json(err);
    struct evbuffer *buf = evbuffer_new();
    struct evkeyvalq *out = evhttp_request_get_output_headers(http);
    evhttp_add_header(out, "Content-Type", "application/json");
    if (retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after_s);
        evhttp_add_header(out, "Retry-After", ra);
    }
    if (buf && json)
        evbuffer_add(buf, json, strlen(json));
    evhttp_send_reply(http, err->status, NULL, buf);
    if (buf)
        evbuffer_free(buf);
    free(json);
}

void tlab_request_start_stream_early(tlab_request *r) {
    if (!r->http || r->early_headers || r->phase >= TLAB_PHASE_RESPONDING)
        return;
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->http);
    evhttp_add_header(out, "Content-Type", "text/event-stream");
    evhttp_add_header(out, "Cache-Control", "no-cache");
    evhttp_add_header(out, "X-Accel-Buffering", "no");
    tlab_request_add_headers(r, out);
    evhttp_send_reply_start(r->http, 200, NULL);
    r->early_headers = 1;
    r->status = 200;
}

void tlab_request_end_stream_with_error(tlab_request *r, const tlab_error *err) {
    r->status = err->status;
    if (r->http) {
        char *json = tlab_error_json(err);
        struct evbuffer *b = evbuffer_new();
        if (b && json) {
            evbuffer_add_printf(b, "%sdata: %s\n\n", tlab_sse_relay_event_prefix(&r->sse), json);
            evhttp_send_reply_chunk(r->http, b);
        }
        if (b)
            evbuffer_free(b);
        free(json);
        struct evhttp_request *http = r->http;
        detach_http(r);
        evhttp_send_reply_end(http);
    }
    tlab_request_finish(r);
}

void tlab_request_fail(tlab_request *r, const tlab_error *err, int retry_after_s) {
    if (r->phase == TLAB_PHASE_DONE)
        return;
    r->status = err->status;
    tlab_log(err->status >= 500 ? TLAB_LOG_WARN : TLAB_LOG_INFO, r->id, "%d %s", err->status, err->message);
    if (r->early_headers && r->phase != TLAB_PHASE_RESPONDING) {
        /* The 200 is out: the error can only travel as an SSE event. */
        tlab_request_end_stream_with_error(r, err);
        return;
    }
    if (r->http && r->phase != TLAB_PHASE_RESPONDING) {
        struct evhttp_request *http = r->http;
        detach_http(r);
        struct evkeyvalq *out = evhttp_request_get_output_headers(http);
        tlab_request_add_headers(r, out);
        tlab_http_send_error(http, err, retry_after_s);
    }
    tlab_request_finish(r);
}
