/*
 * http_front.c - the front HTTP/1.x server's connection side: the listener, client connections,
 * request parsing (http-parser fed straight from one shared read buffer), pipelining, the
 * timeout sweep and the reaper. Replies and the write side are in http_front_reply.c; what both
 * share, and the lifetimes, are in http_front_internal.h. The contract is http_front.h.
 *
 * The hot path (a keep-alive request answered from its handler): one recv, the parser's
 * callbacks copying the URL and headers into the request's inline arena, the handler, one send.
 * No epoll_ctl change (the read event stays registered; the write event is only added when the
 * socket does not take a reply at once) and no timer per request (one sweep per server).
 */
#include "http_front_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "log.h"

#define ACCEPTS_PER_WAKE 64
#define EMFILE_PAUSE_MS 100

/* One read buffer for every connection: a connection keeps no buffer of its own while idle,
 * and the parser copies what it keeps. Single-threaded, like the loop. */
static char rbuf[64 * 1024];

static const char *const method_names[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"};

int64_t hf_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int method_of(unsigned m) {
    switch (m) {
    case HTTP_GET:
        return TLAB_HTTP_GET;
    case HTTP_POST:
        return TLAB_HTTP_POST;
    case HTTP_HEAD:
        return TLAB_HTTP_HEAD;
    case HTTP_PUT:
        return TLAB_HTTP_PUT;
    case HTTP_DELETE:
        return TLAB_HTTP_DELETE;
    case HTTP_OPTIONS:
        return TLAB_HTTP_OPTIONS;
    case HTTP_PATCH:
        return TLAB_HTTP_PATCH;
    default:
        return -1;
    }
}

/* ---- requests ---- */

static tlab_http_req *req_new(hf_conn *c) {
    tlab_http_req *r = malloc(sizeof *r);
    if (!r)
        return NULL;
    memset(r, 0, offsetof(tlab_http_req, inline_arena)); /* the arena needs no zeroing */
    r->c = c;
    r->arena = r->inline_arena;
    r->arena_cap = HF_INLINE_ARENA;
    r->path_off = UINT32_MAX;
    return r;
}

void hf_req_free(tlab_http_req *r) {
    if (r->arena != r->inline_arena)
        free(r->arena);
    free(r->body);
    free(r->rh);
    free(r);
}

static int arena_reserve(tlab_http_req *r, size_t n) {
    if ((size_t)r->arena_len + n <= r->arena_cap)
        return 0;
    size_t cap = r->arena_cap;
    while (cap < (size_t)r->arena_len + n)
        cap *= 2;
    if (cap > UINT32_MAX)
        return -1;
    char *a;
    if (r->arena == r->inline_arena) {
        if (!(a = malloc(cap)))
            return -1;
        memcpy(a, r->arena, r->arena_len);
    } else if (!(a = realloc(r->arena, cap))) {
        return -1;
    }
    r->arena = a;
    r->arena_cap = (uint32_t)cap;
    return 0;
}

static int arena_put(tlab_http_req *r, const char *p, size_t n) {
    if (arena_reserve(r, n))
        return -1;
    memcpy(r->arena + r->arena_len, p, n);
    r->arena_len += (uint32_t)n;
    return 0;
}

const char *hf_find_header(const char *p, unsigned n, const char *name) {
    size_t len = strlen(name);
    for (unsigned i = 0; i < n; i++) {
        size_t nl = strlen(p);
        const char *v = p + nl + 1;
        if (nl == len && strncasecmp(p, name, len) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* ---- parser callbacks ---- */

/* Records the first error a callback finds (a later one must not replace it) and stops the parser. */
static int fail(hf_conn *c, int status, const char *msg) {
    if (!c->err_status) {
        c->err_status = (uint16_t)status;
        c->err_msg = msg;
    }
    return -1;
}

static int fail_oom(hf_conn *c) {
    return fail(c, 500, "out of memory reading the request");
}

static int on_message_begin(http_parser *p) {
    hf_conn *c = p->data;
    if (!c->req && !(c->req = req_new(c)))
        return fail_oom(c);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
    hf_conn *c = p->data;
    tlab_http_req *r = c->req;
    if (r->last_cb == HF_CB_NONE) {
        int m = method_of(p->method); /* known to http-parser (TRACE, CONNECT, ...) but not served */
        if (m < 0)
            return fail(c, 501, NULL);
        r->method = (uint8_t)m;
        r->last_cb = HF_CB_URL;
        r->head_bytes = (uint32_t)strlen(method_names[m]) + 12; /* " ", " HTTP/1.x\r\n" */
    }
    if (r->arena_len + n > c->s->limits.max_header_bytes)
        return fail(c, 414, NULL);
    r->head_bytes += (uint32_t)n;
    return arena_put(r, at, n) ? fail_oom(c) : 0;
}

/* Ends the entry being written: the URL, or a header's name or value. */
static int end_entry(tlab_http_req *r) {
    if (r->last_cb == HF_CB_VALUE) { /* trailing whitespace is not part of a value */
        while (r->arena[r->arena_len - 1] == ' ' || r->arena[r->arena_len - 1] == '\t')
            r->arena_len--;
    }
    if (arena_put(r, "", 1))
        return -1;
    if (r->last_cb == HF_CB_URL)
        r->hdr_off = r->arena_len;
    return 0;
}

static int head_grow(hf_conn *c, size_t n) {
    tlab_http_req *r = c->req;
    r->head_bytes += (uint32_t)n;
    if (r->head_bytes > c->s->limits.max_header_bytes)
        return fail(c, 431, NULL);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
    hf_conn *c = p->data;
    tlab_http_req *r = c->req;
    if (r->headers_done) /* a chunked body's trailer: counted, not kept */
        return head_grow(c, n + 4);
    size_t counted = n;
    if (r->last_cb != HF_CB_FIELD) {
        if (end_entry(r))
            return fail_oom(c);
        if (r->nhdr == UINT16_MAX)
            return fail(c, 431, NULL);
        r->nhdr++;
        counted += 4; /* ": ", CRLF */
    }
    r->last_cb = HF_CB_FIELD;
    if (head_grow(c, counted))
        return -1;
    return arena_put(r, at, n) ? fail_oom(c) : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
    hf_conn *c = p->data;
    tlab_http_req *r = c->req;
    if (r->headers_done)
        return head_grow(c, n);
    if (r->last_cb == HF_CB_FIELD && end_entry(r))
        return fail_oom(c);
    r->last_cb = HF_CB_VALUE;
    if (head_grow(c, n))
        return -1;
    return arena_put(r, at, n) ? fail_oom(c) : 0;
}

/* The path out of the URL: its tail when nothing follows it, else a copy. -1 when unparsable. */
static int set_path(tlab_http_req *r) {
    struct http_parser_url u;
    size_t url_len = r->hdr_off - 1;
    http_parser_url_init(&u);
    if (http_parser_parse_url(r->arena, url_len, 0, &u))
        return -1;
    if (!(u.field_set & (1 << UF_PATH)) || u.field_data[UF_PATH].len == 0)
        return 0; /* path_off stays UINT32_MAX: "/" */
    size_t off = u.field_data[UF_PATH].off, len = u.field_data[UF_PATH].len;
    if (off + len == url_len) {
        r->path_off = (uint32_t)off;
        return 0;
    }
    if (arena_reserve(r, len + 1))
        return -2;
    r->path_off = r->arena_len;
    memcpy(r->arena + r->arena_len, r->arena + off, len);
    r->arena[r->arena_len + len] = '\0';
    r->arena_len += (uint32_t)len + 1;
    return 0;
}

static int on_headers_complete(http_parser *p) {
    hf_conn *c = p->data;
    tlab_http_req *r = c->req;
    if (r->last_cb == HF_CB_FIELD && end_entry(r)) /* a header without a value */
        return fail_oom(c);
    if (r->last_cb == HF_CB_FIELD)
        r->last_cb = HF_CB_VALUE;
    if (end_entry(r))
        return fail_oom(c);
    r->headers_done = 1;
    if (p->http_major != 1)
        return fail(c, 505, NULL);
    r->minor = p->http_minor ? 1 : 0;
    int rc = set_path(r);
    if (rc)
        return rc == -1 ? fail(c, 400, "malformed request: invalid request target") : fail_oom(c);

    uint64_t cl = p->content_length;
    int chunked = (p->flags & F_CHUNKED) != 0;
    int has_length = !chunked && cl != ULLONG_MAX && cl > 0;
    if (has_length) {
        if (cl > c->s->limits.max_body_bytes)
            return fail(c, 413, NULL);
        if (!(r->body = malloc((size_t)cl + 1))) /* the exact size: take_body hands it over as is */
            return fail_oom(c);
        r->body_cap = (size_t)cl + 1;
    }
    const char *expect = hf_find_header(r->arena + r->hdr_off, r->nhdr, "Expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0)
            return fail(c, 417, "unsupported Expect header (only 100-continue is)");
        if (r->minor >= 1 && (chunked || has_length)) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            struct iovec v = {(void *)cont, sizeof cont - 1};
            if (hf_conn_output(c, &v, 1, NULL))
                return -1; /* the connection is dead */
        }
    }
    return 0;
}

static int on_chunk_header(http_parser *p) {
    hf_conn *c = p->data; /* content_length is this chunk's size: refuse it before it arrives */
    if (p->content_length > c->s->limits.max_body_bytes - c->req->body_len)
        return fail(c, 413, NULL);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
    hf_conn *c = p->data;
    tlab_http_req *r = c->req;
    if (n > c->s->limits.max_body_bytes - r->body_len)
        return fail(c, 413, NULL);
    if (r->body_len + n + 1 > r->body_cap) { /* chunked: grow by doubling, up to the limit */
        size_t cap = r->body_cap ? r->body_cap * 2 : 4096;
        if (cap < r->body_len + n + 1)
            cap = r->body_len + n + 1;
        if (cap > c->s->limits.max_body_bytes + 1)
            cap = c->s->limits.max_body_bytes + 1;
        char *b = realloc(r->body, cap);
        if (!b)
            return fail_oom(c);
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, n);
    r->body_len += n;
    return 0;
}

static int on_message_complete(http_parser *p) {
    hf_conn *c = p->data;
    tlab_http_req *r = c->req;
    if (r->body)
        r->body[r->body_len] = '\0';
    r->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    http_parser_pause(p, 1); /* execute returns here: later bytes are the next request's */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/* ---- connections ---- */

static void reading_on(hf_conn *c) {
    if (!c->reading && event_add(&c->rev, NULL) == 0)
        c->reading = 1;
}

static void reading_off(hf_conn *c) {
    if (c->reading) {
        event_del(&c->rev);
        c->reading = 0;
    }
}

/* Parses the stash from the loop rather than from inside a reply call (the handler may still be
 * on the stack). */
static void kick(hf_conn *c) {
    c->kicked = 1;
    event_active(&c->rev, EV_READ, 1);
}

static void linger_start(hf_conn *c) {
    if (c->peer_eof) {
        hf_conn_kill(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = HF_LINGER;
    c->deadline_ms = hf_now_ms() + HF_LINGER_MS;
    reading_on(c);
}

static void linger_read(hf_conn *c) {
    for (int i = 0; i < 4; i++) {
        ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        hf_conn_kill(c);
        return;
    }
}

static void parse_error(hf_conn *c, enum http_errno e) {
    const tlab_http_limits *lim = &c->s->limits;
    int status = c->err_status;
    const char *msg = c->err_msg;
    char buf[160];
    if (!status) {
        if (e == HPE_INVALID_METHOD)
            status = 501;
        else if (e == HPE_HEADER_OVERFLOW)
            status = 431;
        else
            status = 400;
    }
    if (!msg) {
        switch (status) {
        case 400:
            snprintf(buf, sizeof buf, "malformed request: %s", http_errno_description(e));
            break;
        case 413:
            snprintf(buf, sizeof buf, "request body too large (limit %zu bytes)", lim->max_body_bytes);
            break;
        case 414:
            snprintf(buf, sizeof buf, "request target too long (limit %zu bytes)", lim->max_header_bytes);
            break;
        case 431:
            snprintf(buf, sizeof buf, "request headers too large (limit %zu bytes)", lim->max_header_bytes);
            break;
        case 501:
            snprintf(buf, sizeof buf, "method not implemented");
            break;
        case 505:
            snprintf(buf, sizeof buf, "HTTP version not supported (HTTP/1.0 and HTTP/1.1 are)");
            break;
        default:
            snprintf(buf, sizeof buf, "%s", http_status_str((enum http_status)status));
        }
        msg = buf;
    }
    if (c->req) {
        hf_req_free(c->req);
        c->req = NULL;
    }
    hf_error_reply(c, status, status >= 500 && status != 501 && status != 505 ? "server_error" : NULL, msg);
}

static void dispatch(hf_conn *c) {
    tlab_http_req *r = c->req;
    c->state = HF_SERVE;
    r->served = 1;
    c->s->on_request(r, c->s->arg);
}

/* Feeds bytes to the parser while the connection reads requests; a request answered from its
 * handler lets the rest follow at once. Returns the bytes consumed. */
static size_t conn_parse(hf_conn *c, const char *data, size_t len) {
    size_t done = 0;
    c->in_parse = 1;
    while (c->state == HF_READ && done < len) {
        size_t n = http_parser_execute(&c->parser, &settings, data + done, len - done);
        done += n;
        if (c->state == HF_DEAD)
            break;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED && !c->err_status) {
            dispatch(c);
        } else if (e != HPE_OK || c->err_status) {
            parse_error(c, e);
            break;
        } else if (n == 0) {
            break;
        }
    }
    c->in_parse = 0;
    return done;
}

static void stash_add(hf_conn *c, const char *p, size_t n) {
    if (c->stash_off) {
        memmove(c->stash, c->stash + c->stash_off, c->stash_len);
        c->stash_off = 0;
    }
    if ((size_t)c->stash_len + n > c->stash_cap) {
        size_t cap = (size_t)c->stash_len + n;
        char *s = realloc(c->stash, cap);
        if (!s) {
            hf_conn_kill(c);
            return;
        }
        c->stash = s;
        c->stash_cap = (uint32_t)cap;
    }
    memcpy(c->stash + c->stash_len, p, n);
    c->stash_len += (uint32_t)n;
    if (c->stash_len >= HF_STASH_MAX)
        reading_off(c); /* resumed when the reply ends */
}

static void parse_stash(hf_conn *c) {
    size_t done = conn_parse(c, c->stash + c->stash_off, c->stash_len);
    if (c->state == HF_DEAD)
        return;
    if (c->state == HF_CLOSING || c->state == HF_LINGER)
        done = c->stash_len;
    c->stash_off += (uint32_t)done;
    c->stash_len -= (uint32_t)done;
    if (!c->stash_len) {
        free(c->stash);
        c->stash = NULL;
        c->stash_off = c->stash_cap = 0;
    }
}

/* EOF or an error from the client. */
static void client_closed(hf_conn *c, int eof) {
    if (eof && c->state == HF_CLOSING) { /* a half-close: the reply may still be read */
        c->peer_eof = 1;
        reading_off(c);
        return;
    }
    hf_conn_kill(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    hf_conn *c = arg;
    if (c->kicked) {
        c->kicked = 0;
        if (c->state == HF_READ && c->stash_len)
            parse_stash(c);
        return; /* a readable socket is reported again: the event is level-triggered */
    }
    if (c->state == HF_LINGER) {
        linger_read(c);
        return;
    }
    ssize_t n = recv(fd, rbuf, sizeof rbuf, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        client_closed(c, n == 0);
        return;
    }
    if (c->state == HF_READ && !c->stash_len) {
        size_t done = conn_parse(c, rbuf, (size_t)n);
        if (done < (size_t)n && (c->state == HF_SERVE || c->state == HF_DRAIN))
            stash_add(c, rbuf + done, (size_t)n - done);
    } else if (c->state == HF_READ || c->state == HF_SERVE) {
        stash_add(c, rbuf, (size_t)n);
        if (c->state == HF_READ)
            parse_stash(c);
    } /* else closing: the bytes are dropped */
}

void hf_reply_done(tlab_http_req *r) {
    hf_conn *c = r->c;
    int keep = r->keep_alive && !r->close;
    c->req = NULL;
    hf_req_free(r);
    if (c->state == HF_DEAD) {
        if (c->reaped)
            hf_conn_free(c);
        return;
    }
    if (!keep) {
        c->state = HF_CLOSING;
        if (!c->writing)
            linger_start(c);
        return;
    }
    http_parser_pause(&c->parser, 0);
    c->deadline_ms = hf_now_ms() + c->s->limits.timeout_ms;
    if (c->writing) {
        c->state = HF_DRAIN;
        reading_off(c);
        return;
    }
    c->state = HF_READ;
    reading_on(c);
    if (c->stash_len && !c->in_parse)
        kick(c);
}

void hf_conn_drained(hf_conn *c) {
    switch (c->state) {
    case HF_CLOSING:
        linger_start(c);
        break;
    case HF_DRAIN:
        c->state = HF_READ;
        reading_on(c);
        if (c->stash_len)
            parse_stash(c);
        break;
    case HF_SERVE:
        if (c->req && c->req->drained) {
            tlab_http_drained_fn fn = c->req->drained;
            c->req->drained = NULL;
            fn(c->req, c->req->drained_arg);
        }
        break;
    default:
        break;
    }
}

void hf_conn_kill(hf_conn *c) {
    if (c->state == HF_DEAD)
        return;
    tlab_http_server *s = c->s;
    event_del(&c->rev); /* also takes them off the active queue */
    event_del(&c->wev);
    c->reading = c->writing = c->kicked = c->wkicked = 0;
    close(c->fd);
    c->fd = -1;
    if (c->req && !c->req->served) {
        hf_req_free(c->req);
        c->req = NULL;
    }
    if (c->out) {
        evbuffer_free(c->out);
        c->out = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->open--;
    c->state = HF_DEAD;
    c->prev = NULL;
    c->next = s->dying;
    s->dying = c;
    event_active(&s->reap_ev, EV_TIMEOUT, 1);
}

void hf_conn_free(hf_conn *c) {
    free(c->stash);
    if (c->out)
        evbuffer_free(c->out);
    free(c);
}

/* Runs the gone callbacks of the killed connections' requests and frees what nobody holds. A
 * request without a watch keeps its (dead) connection until it is answered; its drained
 * callback, if one waits, runs now: its backlog is 0 from here on. */
static void reap(tlab_http_server *s) {
    hf_conn *c;
    while ((c = s->dying) != NULL) {
        s->dying = c->next;
        c->next = NULL;
        c->reaped = 1;
        tlab_http_req *r = c->req;
        if (!r) {
            hf_conn_free(c);
        } else if (r->gone) {
            r->in_gone = 1;
            r->gone(r, r->gone_arg);
            c->req = NULL;
            hf_req_free(r);
            hf_conn_free(c);
        } else if (r->drained) {
            tlab_http_drained_fn fn = r->drained;
            r->drained = NULL;
            fn(r, r->drained_arg); /* may answer r, which frees r and c */
        }
    }
}

static void on_reap(evutil_socket_t fd, short what, void *arg) {
    reap(arg);
}

static void set_peer(hf_conn *c, const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, c->peer, sizeof c->peer);
        c->port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) /* a dual-stack listener: show the IPv4 address */
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], c->peer, sizeof c->peer);
        else
            inet_ntop(AF_INET6, &a->sin6_addr, c->peer, sizeof c->peer);
        c->port = ntohs(a->sin6_port);
    }
}

static int conn_new(tlab_http_server *s, int fd, const struct sockaddr_storage *ss) {
    hf_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->s = s;
    c->fd = fd;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, s->base, fd, EV_WRITE | EV_PERSIST, hf_on_write, c);
    if (event_add(&c->rev, NULL)) {
        free(c);
        return -1;
    }
    c->reading = 1;
    set_peer(c, ss);
    c->state = HF_READ;
    c->deadline_ms = hf_now_ms() + s->limits.timeout_ms;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->open++;
    return 0;
}

/* ---- the listener ---- */

static void on_resume(evutil_socket_t fd, short what, void *arg) {
    tlab_http_server *s = arg;
    event_add(&s->listen_ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg) {
    tlab_http_server *s = arg;
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        /* Linux: the socket inherits TCP_NODELAY from the listener. */
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The pending connection stays queued: retry after a pause rather than spin. */
                struct timeval tv = {0, EMFILE_PAUSE_MS * 1000};
                int err = errno;
                event_del(&s->listen_ev);
                evtimer_add(&s->resume_ev, &tv);
                time_t now = time(NULL);
                if (now != s->warned_emfile_at) {
                    s->warned_emfile_at = now;
                    LOG_WARN("front: cannot accept (%s); pausing accepts for %d ms", strerror(err), EMFILE_PAUSE_MS);
                }
            }
            return;
        }
        if (s->limits.max_connections > 0 && (long)s->open >= s->limits.max_connections) {
            hf_reject(s, fd);
            continue;
        }
        if (conn_new(s, fd, &ss))
            close(fd); /* out of memory: the client sees a close */
    }
}

/* ---- the timeout sweep ---- */

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
    tlab_http_server *s = arg;
    int64_t now = hf_now_ms();
    hf_conn *c, *next;
    for (c = s->conns; c; c = next) {
        next = c->next; /* killing calls nothing of the caller's: next stays valid */
        if ((c->writing && now >= c->wdeadline_ms) || (c->state == HF_READ && now >= c->deadline_ms)) {
            s->timed_out++;
            hf_conn_kill(c);
        } else if (c->state == HF_LINGER && now >= c->deadline_ms) {
            hf_conn_kill(c);
        }
    }
}

static int arm_sweep(tlab_http_server *s) {
    long iv = s->limits.timeout_ms / 4;
    if (iv > 1000)
        iv = 1000;
    if (iv < 10)
        iv = 10;
    struct timeval tv = {iv / 1000, (iv % 1000) * 1000};
    return event_add(&s->sweep_ev, &tv);
}

static void set_limits(tlab_http_server *s, const tlab_http_limits *limits) {
    s->limits = *limits;
    if (s->limits.timeout_ms <= 0)
        s->limits.timeout_ms = 60000;
}

/* ---- servers ---- */

tlab_http_server *tlab_http_server_new(struct event_base *base, int listen_fd, const tlab_http_limits *limits,
                                       tlab_http_handler on_request, void *arg) {
    tlab_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        close(listen_fd);
        return NULL;
    }
    s->base = base;
    s->listen_fd = listen_fd;
    set_limits(s, limits);
    s->on_request = on_request;
    s->arg = arg;
    event_assign(&s->listen_ev, base, listen_fd, EV_READ | EV_PERSIST, on_accept, s);
    evtimer_assign(&s->resume_ev, base, on_resume, s);
    event_assign(&s->sweep_ev, base, -1, EV_PERSIST, on_sweep, s);
    event_assign(&s->reap_ev, base, -1, 0, on_reap, s);
    if (event_add(&s->listen_ev, NULL) || arm_sweep(s)) {
        event_del(&s->listen_ev);
        close(listen_fd);
        free(s);
        return NULL;
    }
    return s;
}

void tlab_http_server_set_limits(tlab_http_server *s, const tlab_http_limits *limits) {
    set_limits(s, limits);
    arm_sweep(s);
}

void tlab_http_server_counters(const tlab_http_server *s, tlab_http_counters *out) {
    out->open = s->open;
    out->rejected = s->rejected;
    out->timed_out = s->timed_out;
}

void tlab_http_server_free(tlab_http_server *s) {
    if (!s)
        return;
    event_del(&s->listen_ev);
    event_del(&s->resume_ev);
    event_del(&s->sweep_ev);
    close(s->listen_fd);
    while (s->conns)
        hf_conn_kill(s->conns);
    reap(s); /* gone callbacks run now, as the contract says */
    event_del(&s->reap_ev);
    free(s);
}

/* ---- the request ---- */

tlab_http_method tlab_http_req_method(const tlab_http_req *req) {
    return (tlab_http_method)req->method;
}

const char *tlab_http_req_method_name(const tlab_http_req *req) {
    return method_names[req->method];
}

const char *tlab_http_req_path(const tlab_http_req *req) {
    return req->path_off == UINT32_MAX ? "/" : req->arena + req->path_off;
}

const char *tlab_http_req_header(const tlab_http_req *req, const char *name) {
    return hf_find_header(req->arena + req->hdr_off, req->nhdr, name);
}

const char *tlab_http_req_body(const tlab_http_req *req, size_t *len) {
    if (len)
        *len = req->body_len;
    return req->body ? req->body : "";
}

char *tlab_http_req_take_body(tlab_http_req *req, size_t *len) {
    char *b = req->body;
    size_t n = req->body_len;
    if (!b) {
        if (!(b = malloc(1)))
            return NULL;
        b[0] = '\0';
    }
    req->body = NULL;
    req->body_len = req->body_cap = 0;
    if (len)
        *len = n;
    return b;
}

const char *tlab_http_req_peer(const tlab_http_req *req, uint16_t *port) {
    if (port)
        *port = req->c->port;
    return req->c->peer;
}

void tlab_http_req_watch(tlab_http_req *req, tlab_http_gone_fn gone, void *arg) {
    req->gone = gone;
    req->gone_arg = arg;
}
