/*
 * upstream_http.c - the gateway's own HTTP/1.1 client toward the worker: non-blocking sockets
 * watched by the loop, responses parsed by http-parser (Debian's libhttp-parser), a LIFO pool of
 * kept-alive connections per origin.
 *
 * Why not libcurl here: under callgrind libcurl's own work was about 40 % of a proxied request's
 * instructions (URL parsing, its printf, header matching, proxy environment lookups) and it added
 * system calls per transfer (a liveness poll of a reused connection, epoll add and remove). This
 * client builds the request once into one buffer, writes it at once, keeps every connection's
 * read event registered for its whole life, and hands body bytes to the caller straight from the
 * parser. libcurl still carries what this does not (upstream_curl.c). The connections and their
 * pool are upstream_http_pool.c's.
 *
 * Re-entrancy: callbacks run from the parser; a caller may abort or pause from inside them, so a
 * transfer is only freed after http_parser_execute returns (hconn.in_parser).
 */
#include "upstream/upstream_http_internal.h"
#include "upstream/upstream_policy.h"
#include "upstream/upstream_wire.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event_struct.h> /* events embedded in their owners: no malloc per transfer */
#include <http_parser.h>

#include "base/clock.h"
#include "common/log.h"

#define READ_CHUNK 16384

static http_parser_settings parser_settings;

static void xfer_abort(tlab__xfer *base);
static void xfer_pause(tlab__xfer *base, int paused);
static uint64_t xfer_send_overhead_us(tlab__xfer *base);
static const tlab__xfer_ops http_ops = {xfer_abort, xfer_pause, xfer_send_overhead_us};

static void conn_attach(hxfer *x, int fresh_only);
static void arm_timer(hxfer *x);






/* ---- ending a transfer ---- */

static void xfer_free(hxfer *x) {
    event_del(&x->timer);
    free(x->req);
    x->cl->stats->active--;
    free(x);
}

static void detach_and_close(hxfer *x) {
    hconn *c = x->conn;
    x->conn = NULL;
    if (c) {
        c->x = NULL;
        hpool_close(c);
    }
}

/* Ends x: its connection goes back to the pool when `reuse`, else it is closed. */
static void finish(hxfer *x, tlab__xfer_result result, const char *detail, int reuse) {
    if (reuse && x->conn) {
        hpool_release(x->conn);
        x->conn = NULL;
    } else {
        detach_and_close(x);
    }
    tlab__xfer_callbacks cb = x->cb;
    void *arg = x->arg;
    xfer_free(x);
    cb.on_done(arg, result, detail);
}

/* A failure before any response byte: retried once on a fresh connection when `retryable`. */
static void fail_before_bytes(hxfer *x, int retryable, const char *why) {
    if (x->in_start) { /* tlab__http_client_start has not returned yet: go on from the loop */
        detach_and_close(x);
        x->pending_fail = 1;
        snprintf(x->pending_detail, sizeof x->pending_detail, "%s", why);
        event_active(&x->timer, EV_TIMEOUT, 0);
        return;
    }
    if (tlab__attempt_retry(&x->at, retryable, tlab__now_us())) {
        detach_and_close(x);
        x->cl->stats->retries++;
        x->req_sent = 0;
        LOG_DEBUG("upstream: %s before any response byte; retrying on a fresh connection", why);
        conn_attach(x, 1);
        return;
    }
    char detail[512];
    snprintf(detail, sizeof detail, "the worker at %s is not reachable: %s", x->org->at.hostport, why);
    finish(x, TLAB_XFER_UNREACHABLE, detail, 0);
}

static void fail_broken(hxfer *x, const char *why) {
    char detail[256];
    snprintf(detail, sizeof detail, "the worker's response broke off: %s", why);
    finish(x, TLAB_XFER_BROKEN, detail, 0);
}

/* ---- timers ---- */

static void arm_timer(hxfer *x) {
    uint64_t due = x->at.total_deadline;
    if (x->conn && x->conn->connecting && x->at.connect_deadline < due)
        due = x->at.connect_deadline;
    if (!x->at.got_bytes && x->at.first_byte_deadline < due)
        due = x->at.first_byte_deadline;
    uint64_t now = tlab__now_us();
    uint64_t wait = due > now ? due - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(wait / 1000000), .tv_usec = (suseconds_t)(wait % 1000000)};
    event_add(&x->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    hxfer *x = arg;
    if (x->pending_fail) {
        x->pending_fail = 0;
        fail_before_bytes(x, 1, x->pending_detail);
        return;
    }
    uint64_t now = tlab__now_us();
    char detail[160];
    x->cl->stats->aborted++;
    tlab__xfer_result timeout = TLAB_XFER_OK;
    if (x->conn && x->conn->connecting && now >= x->at.connect_deadline)
        timeout = TLAB_XFER_CONNECT_TIMEOUT;
    else if (!x->at.got_bytes && now >= x->at.first_byte_deadline && x->at.first_byte_deadline <= x->at.total_deadline)
        timeout = TLAB_XFER_FIRST_BYTE_TIMEOUT;
    else if (now >= x->at.total_deadline)
        timeout = TLAB_XFER_TOTAL_TIMEOUT;
    if (timeout != TLAB_XFER_OK) {
        tlab__attempt_timeout_detail(&x->at, timeout, detail, sizeof detail);
        finish(x, timeout, detail, 0);
    } else {
        x->cl->stats->aborted--;
        arm_timer(x); /* woke early (clock granularity) */
    }
}

/* ---- writing the request ---- */

static void write_request(hxfer *x) {
    hconn *c = x->conn;
    while (x->req_sent < x->req_len) {
        ssize_t n = send(c->fd, x->req + x->req_sent, x->req_len - x->req_sent, MSG_NOSIGNAL);
        if (n > 0) {
            x->req_sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(&c->wev, NULL);
            return;
        }
        fail_before_bytes(x, 1, n < 0 ? strerror(errno) : "send failed");
        return;
    }
    x->t_sent = tlab__now_us();
}

static void on_writable(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    hconn *c = arg;
    hxfer *x = c->x;
    if (!x)
        return;
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err) {
            fail_before_bytes(x, 1, strerror(err));
            return;
        }
        c->connecting = 0;
        x->connect_us += tlab__now_us() - x->t_connect_began;
        arm_timer(x);
    }
    write_request(x);
}

/* ---- reading the response ---- */

static hxfer *parser_xfer(http_parser *p) {
    return ((hconn *)p->data)->x;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    hxfer *x = parser_xfer(p);
    if (x->last_was_value) {
        x->field_len = 0;
        x->last_was_value = 0;
    }
    size_t room = sizeof x->field - 1 - x->field_len;
    size_t take = len < room ? len : room;
    memcpy(x->field + x->field_len, at, take);
    x->field_len += take;
    if (len > room)
        x->field_len = sizeof x->field; /* too long to be Content-Type */
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    hxfer *x = parser_xfer(p);
    if (!x->last_was_value) {
        x->last_was_value = 1;
        x->in_ctype = x->field_len == 12 && strncasecmp(x->field, "content-type", 12) == 0;
        if (x->in_ctype) {
            x->ctype_len = 0;
            x->has_ctype = 1;
        }
    }
    if (x->in_ctype) {
        size_t room = sizeof x->ctype - 1 - x->ctype_len;
        size_t take = len < room ? len : room;
        memcpy(x->ctype + x->ctype_len, at, take);
        x->ctype_len += take;
        x->ctype[x->ctype_len] = '\0';
    }
    return 0;
}

static int on_headers_complete(http_parser *p) {
    hxfer *x = parser_xfer(p);
    if (p->status_code < 200) { /* interim 1xx: the real response follows */
        x->interim = 1;
        x->has_ctype = 0;
        x->field_len = 0;
        x->last_was_value = 0;
        return 0;
    }
    x->headers_done = 1;
    x->cb.on_headers(x->arg, p->status_code, x->has_ctype ? x->ctype : NULL);
    if (x->aborted)
        http_parser_pause(p, 1);
    return x->head; /* 1: http-parser expects no body */
}

static int on_body(http_parser *p, const char *at, size_t len) {
    hxfer *x = parser_xfer(p);
    x->cb.on_data(x->arg, at, len);
    if (x->aborted)
        http_parser_pause(p, 1);
    return 0;
}

static int on_message_complete(http_parser *p) {
    hxfer *x = parser_xfer(p);
    if (x->interim) {
        x->interim = 0;
        return 0;
    }
    x->complete = 1;
    http_parser_pause(p, 1); /* bytes after the response mean the connection cannot be reused */
    return 0;
}

/* Feeds bytes (or EOF, len 0) to the parser and acts on where the response stands after it. */
static void feed(hconn *c, const char *data, size_t len, const char *eof_reason) {
    hxfer *x = c->x;
    c->in_parser = 1;
    size_t parsed = http_parser_execute(&c->parser, &parser_settings, data, len);
    c->in_parser = 0;
    if (x->aborted) {
        detach_and_close(x);
        xfer_free(x);
        return;
    }
    if (x->complete) {
        /* Not reused when bytes follow the response, or when the worker answered before the
         * request was all written (an early 413): the rest of the body would never go out and
         * the next request on it would be read as body bytes. */
        int reuse = len > 0 && parsed == len && x->req_sent == x->req_len && http_should_keep_alive(&c->parser);
        finish(x, TLAB_XFER_OK, "", reuse);
        return;
    }
    if (len == 0) { /* EOF before the response ended */
        fail_broken(x, eof_reason);
        return;
    }
    enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
    if (err != HPE_OK) {
        char why[160];
        snprintf(why, sizeof why, "garbled HTTP from the worker (%s)", http_errno_description(err));
        fail_broken(x, why);
        return;
    }
    if (x->paused)
        event_del(&c->rev);
}

static void on_readable(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    hconn *c = arg;
    if (c->connecting) /* a refusal is read from SO_ERROR on the write side */
        return;
    char buf[READ_CHUNK];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    hxfer *x = c->x;
    if (!x) { /* an idle connection spoke or closed: it cannot carry a request any more */
        hpool_close(c);
        return;
    }
    if (n <= 0) {
        const char *reason = n == 0 ? "the connection was closed" : strerror(errno);
        if (!x->at.got_bytes) {
            fail_before_bytes(x, 1, reason);
            return;
        }
        feed(c, NULL, 0, reason);
        return;
    }
    if (!x->at.got_bytes) {
        x->at.got_bytes = 1;
        arm_timer(x); /* from here only the total timeout applies */
    }
    feed(c, buf, (size_t)n, NULL);
}

/* ---- starting ---- */


/* Puts x on a connection: the newest idle one unless `fresh_only`, else a new one. */
/* x's response is read on c from now on, with a fresh parser. */
static void bind_conn(hxfer *x, hconn *c) {
    c->x = x;
    x->conn = c;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
}

static void conn_attach(hxfer *x, int fresh_only) {
    origin *o = x->org;
    uint64_t now = tlab__now_us();
    hconn *c = NULL;
    if (!fresh_only)
        c = hpool_take_idle(x->cl, o, now);
    if (c) {
        bind_conn(x, c);
        arm_timer(x);
        write_request(x);
        return;
    }
    c = hpool_open(x->cl, o, on_readable, on_writable);
    if (!c) {
        char why[128];
        snprintf(why, sizeof why, "cannot open a socket: %s", strerror(errno));
        fail_before_bytes(x, 0, why);
        return;
    }
    bind_conn(x, c);
    x->t_connect_began = now;
    event_add(&c->rev, NULL);
    if (connect(c->fd, (struct sockaddr *)&o->at.addr, o->at.addrlen) == 0) {
        arm_timer(x);
        write_request(x);
        return;
    }
    if (errno == EINPROGRESS) {
        c->connecting = 1;
        event_add(&c->wev, NULL);
        arm_timer(x);
        return;
    }
    char why[128]; /* refused at once (loopback) */
    snprintf(why, sizeof why, "%s", strerror(errno));
    detach_and_close(x);
    fail_before_bytes(x, 1, why);
}


tlab__xfer *tlab__http_client_start(tlab__http_client *cl, const tlab__xfer_request *rq, int *unsupported) {
    const char *path;
    origin *o = hpool_origin(cl, rq->url, &path);
    *unsupported = o == NULL;
    if (!o)
        return NULL;
    hxfer *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->req = tlab__wire_build_request(rq, path, o->at.hostport, &x->req_len);
    if (!x->req) {
        free(x);
        return NULL;
    }
    x->base.ops = &http_ops;
    x->head = strcmp(rq->method, "HEAD") == 0;
    x->cl = cl;
    x->org = o;
    x->cb = *rq->cb;
    x->arg = rq->arg;
    x->t_start = tlab__now_us();
    tlab__attempt_start(&x->at, rq->connect_ms, rq->first_byte_ms, rq->total_ms, x->t_start);
    evtimer_assign(&x->timer, cl->base, on_timer, x);
    cl->stats->active++;
    cl->stats->transfers++;
    x->in_start = 1;
    conn_attach(x, 0);
    x->in_start = 0;
    return &x->base;
}

/* ---- the calls of upstream.h ---- */

static void xfer_abort(tlab__xfer *base) {
    hxfer *x = (hxfer *)base;
    x->cl->stats->aborted++;
    x->aborted = 1;
    hconn *c = x->conn;
    if (c && c->in_parser)
        return; /* feed() frees both once the parser has returned */
    detach_and_close(x); /* closing mid-transfer is how the worker learns the client left */
    xfer_free(x);
}

static void xfer_pause(tlab__xfer *base, int paused) {
    hxfer *x = (hxfer *)base;
    if (x->paused == paused)
        return;
    x->paused = paused;
    hconn *c = x->conn;
    if (!c || c->in_parser || c->connecting)
        return; /* feed() stops reading after the parser returns */
    if (paused)
        event_del(&c->rev);
    else
        event_add(&c->rev, NULL);
}

static uint64_t xfer_send_overhead_us(tlab__xfer *base) {
    hxfer *x = (hxfer *)base;
    if (!x->t_sent)
        return 0;
    uint64_t spent = x->t_sent - x->t_start;
    return spent > x->connect_us ? spent - x->connect_us : 0;
}

tlab__http_client *tlab__http_client_new(struct event_base *base, const tlab__config *cfg, tlab__upstream_stats *stats) {
    tlab__http_client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    cl->base = base;
    cl->cfg = cfg;
    cl->stats = stats;
    hpool_init(cl);
    parser_settings.on_header_field = on_header_field;
    parser_settings.on_header_value = on_header_value;
    parser_settings.on_headers_complete = on_headers_complete;
    parser_settings.on_body = on_body;
    parser_settings.on_message_complete = on_message_complete;
    return cl;
}

void tlab__http_client_free(tlab__http_client *cl) {
    if (!cl)
        return;
    hpool_free(cl);
    free(cl);
}
