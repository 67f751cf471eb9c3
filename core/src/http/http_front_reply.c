/*
 * http_front_reply.c - the front HTTP/1.x server's write side: reply heads (hand-written numbers,
 * a Date formatted once a second), whole and streamed replies, the output buffer and its write
 * event, back-pressure (backlog, drained), error and rejection replies in OpenAI's error JSON.
 * The connection side is http_front.c; shared definitions are in http_front_internal.h.
 *
 * Every reply goes out with as few system calls as it can: the head and the body of a whole
 * reply, or a chunk's size line, data and CRLF, are one sendmsg (an iovec each, no copy). Only
 * what the socket does not take is copied into the connection's evbuffer, and only then is the
 * write event added.
 */
#include "http/http_front_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "common/log.h"
#include "base/put_num.h"
#include "base/error.h"

#define MAX_IOV 24

enum { CONN_NONE, CONN_CLOSE, CONN_KEEP };

/* ---- the head ---- */

static char *put(char *p, const char *s, size_t n) {
    memcpy(p, s, n);
    return p + n;
}

static void put2(char *p, int v) {
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

#define DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* The Date value, formatted when the second changes (by hand: strftime's names follow the locale). */
static const char *http_date(void) {
    static time_t at = (time_t)-1;
    static char buf[DATE_LEN + 1];
    time_t now = time(NULL);
    if (now != at) {
        static const char days[] = "SunMonTueWedThuFriSat", months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
        struct tm tm;
        gmtime_r(&now, &tm);
        int y = tm.tm_year + 1900;
        memcpy(buf, days + 3 * tm.tm_wday, 3);
        memcpy(buf + 3, ", ", 2);
        put2(buf + 5, tm.tm_mday);
        buf[7] = ' ';
        memcpy(buf + 8, months + 3 * tm.tm_mon, 3);
        buf[11] = ' ';
        put2(buf + 12, (y / 100) % 100);
        put2(buf + 14, y % 100);
        buf[16] = ' ';
        put2(buf + 17, tm.tm_hour);
        buf[19] = ':';
        put2(buf + 20, tm.tm_min);
        buf[22] = ':';
        put2(buf + 23, tm.tm_sec);
        memcpy(buf + 25, " GMT", 4);
        at = now;
    }
    return buf;
}

/* Room for a head whose extra headers are `len` bytes of name\0value\0 in `n` entries: the
 * status line (longest reason 31), Date, Content-Length, Transfer-Encoding, Connection, CRLFs. */
static size_t head_cap(size_t len, unsigned n) {
    return 224 + len + 2 * (size_t)n;
}

/* Writes a head into `out` (head_cap bytes); returns its length. `length` < 0: no Content-Length. */
static size_t head_write(char *out, int status, const char *hdrs, unsigned n, int64_t length, int chunked, int conn) {
    char *p = put(out, "HTTP/1.1 ", 9);
    if (status < 100 || status > 999)
        status = 500;
    p = tlab_put_dec(p, (uint64_t)status);
    *p++ = ' ';
    const char *reason = http_status_str((enum http_status)status);
    if (reason[0] != '<') /* "<unknown>": an empty reason is valid */
        p = put(p, reason, strlen(reason));
    p = put(p, "\r\nDate: ", 8);
    p = put(p, http_date(), DATE_LEN);
    p = put(p, "\r\n", 2);
    for (unsigned i = 0; i < n; i++) {
        size_t nl = strlen(hdrs), vl = strlen(hdrs + nl + 1);
        p = put(p, hdrs, nl);
        p = put(p, ": ", 2);
        p = put(p, hdrs + nl + 1, vl);
        p = put(p, "\r\n", 2);
        hdrs += nl + vl + 2;
    }
    if (length >= 0) {
        p = put(p, "Content-Length: ", 16);
        p = tlab_put_dec(p, (uint64_t)length);
        p = put(p, "\r\n", 2);
    }
    if (chunked)
        p = put(p, "Transfer-Encoding: chunked\r\n", 28);
    if (conn == CONN_CLOSE)
        p = put(p, "Connection: close\r\n", 19);
    else if (conn == CONN_KEEP)
        p = put(p, "Connection: keep-alive\r\n", 24);
    p = put(p, "\r\n", 2);
    return (size_t)(p - out);
}

/* ---- output ---- */

/* Appends to c->out. -1 (rest drained) when out of memory. */
static int append(hf_conn *c, const struct iovec *iov, int n, struct evbuffer *rest) {
    if (!c->out && !(c->out = evbuffer_new()))
        goto fail;
    for (int i = 0; i < n; i++)
        if (iov[i].iov_len && evbuffer_add(c->out, iov[i].iov_base, iov[i].iov_len))
            goto fail;
    if (rest && evbuffer_get_length(rest) && evbuffer_add_buffer(c->out, rest))
        goto fail;
    return 0;
fail:
    if (rest)
        evbuffer_drain(rest, evbuffer_get_length(rest));
    return -1;
}

/* c->out has bytes the socket did not take: wait for it to be writable. */
static int start_writing(hf_conn *c) {
    /* libevent does not register an event with epoll when it is added while active (activated
     * for deferred output or a drained callback and not yet run): the activation is dropped
     * first, and its flags stay for hf_on_write to honour when the socket is writable. */
    if (c->fkicked || c->wkicked)
        event_del(&c->wev);
    if (event_add(&c->wev, NULL))
        return -1;
    c->writing = 1;
    c->wdeadline_ms = hf_now_ms() + c->s->limits.timeout_ms;
    return 0;
}

static int flush(hf_conn *c);

/* Writes what c->out holds now; the rest waits for the write event. -1 when the connection died. */
static int send_out(hf_conn *c) {
    if (flush(c) || (evbuffer_get_length(c->out) && start_writing(c))) {
        hf_conn_kill(c);
        return -1;
    }
    return 0;
}

int hf_conn_output_later(hf_conn *c, const struct iovec *iov, int n, struct evbuffer *rest) {
    if (c->state == HF_DEAD) {
        if (rest)
            evbuffer_drain(rest, evbuffer_get_length(rest));
        return -1;
    }
    if (append(c, iov, n, rest)) { /* append drained `rest` */
        hf_conn_kill(c); /* out of memory: a cut reply is all that is left to give */
        return -1;
    }
    if (c->writing || c->deferred)
        return 0; /* goes with what is already waiting */
    c->deferred = 1;
    if (!c->fkicked) {
        c->fkicked = 1;
        event_active(&c->wev, EV_WRITE, 1);
    }
    return 0;
}

int hf_conn_output(hf_conn *c, const struct iovec *iov, int n, struct evbuffer *rest) {
    size_t rest_len = rest ? evbuffer_get_length(rest) : 0;
    if (c->state == HF_DEAD)
        goto drop;
    if (c->writing || c->deferred) { /* behind what is pending: queue it all */
        if (append(c, iov, n, rest))
            goto fail;
        if (c->writing)
            return 0;
        c->deferred = 0; /* the deferred bytes go now, with these, in one sendmsg */
        return send_out(c);
    }
    struct iovec v[MAX_IOV];
    int k = 0;
    size_t own = 0;
    for (int i = 0; i < n && k < MAX_IOV - 1; i++)
        if (iov[i].iov_len) {
            v[k++] = iov[i];
            own += iov[i].iov_len;
        }
    int own_k = k;
    if (rest_len) {
        int m = evbuffer_peek(rest, -1, NULL, v + k, MAX_IOV - k);
        k += m < MAX_IOV - k ? m : MAX_IOV - k; /* the rest of `rest` waits in c->out */
    }
    ssize_t w = 0;
    if (k) {
        struct msghdr msg = {.msg_iov = v, .msg_iovlen = (size_t)k};
        w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (!hf_would_block()) {
                hf_conn_kill(c);
                goto drop;
            }
            w = 0;
        }
    }
    size_t sent = (size_t)w;
    if (sent == own + rest_len) {
        if (rest_len)
            evbuffer_drain(rest, rest_len);
        return 0;
    }
    if (!c->out && !(c->out = evbuffer_new()))
        goto fail;
    for (int i = 0; i < own_k; i++) {
        if (sent >= v[i].iov_len) {
            sent -= v[i].iov_len;
            continue;
        }
        if (evbuffer_add(c->out, (const char *)v[i].iov_base + sent, v[i].iov_len - sent))
            goto fail;
        sent = 0;
    }
    if (rest_len && (evbuffer_drain(rest, sent) || evbuffer_add_buffer(c->out, rest)))
        goto fail;
    if (start_writing(c))
        goto fail;
    return 0;
fail:
    hf_conn_kill(c); /* out of memory: a cut reply is all that is left to give */
drop:
    if (rest_len)
        evbuffer_drain(rest, evbuffer_get_length(rest));
    return -1;
}

/* Writes pending output until the socket stops taking it. -1 on a write error. */
static int flush(hf_conn *c) {
    for (int round = 0; round < 4; round++) {
        struct iovec v[MAX_IOV];
        int n = evbuffer_peek(c->out, -1, NULL, v, MAX_IOV);
        if (n > MAX_IOV)
            n = MAX_IOV;
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += v[i].iov_len;
        struct msghdr msg = {.msg_iov = v, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (w < 0)
            return hf_would_block() ? 0 : -1;
        evbuffer_drain(c->out, (size_t)w);
        c->wdeadline_ms = hf_now_ms() + c->s->limits.timeout_ms;
        if ((size_t)w < total || evbuffer_get_length(c->out) == 0)
            return 0;
    }
    return 0;
}

void hf_on_write(evutil_socket_t fd, short what, void *arg) {
    hf_conn *c = arg;
    if (c->fkicked) { /* the end of the loop turn: what was deferred goes in one sendmsg */
        c->fkicked = 0;
        if (c->deferred && c->state != HF_DEAD) {
            c->deferred = 0;
            if (send_out(c))
                return;
        }
        if (c->writing || !c->wkicked)
            return; /* a drained callback waits for the write event */
    }
    c->wkicked = 0;
    if (c->state == HF_DEAD) { /* activated for the drained callback of an unwatched request */
        tlab_http_req *r = c->req;
        if (r && r->drained) {
            tlab_http_drained_fn fn = r->drained;
            r->drained = NULL;
            fn(r, r->drained_arg);
        }
        return;
    }
    if (c->writing) {
        if (flush(c)) {
            hf_conn_kill(c);
            return;
        }
        if (evbuffer_get_length(c->out))
            return;
        event_del(&c->wev);
        c->writing = 0;
    }
    hf_conn_drained(c);
}

/* ---- replies ---- */

/* A 1xx is interim: sent as the reply, it would leave the client waiting for the real one. */
static int final_status(int status) {
    return status < 200 ? 502 : status;
}

/* For a final status (final_status has turned any 1xx into 502). */
static int no_body_status(int status) {
    return status == 204 || status == 304;
}

static int conn_kind(const tlab_http_req *r) {
    if (!r->keep_alive || r->close)
        return r->minor >= 1 ? CONN_CLOSE : CONN_NONE;
    return r->minor == 0 ? CONN_KEEP : CONN_NONE;
}

/* Writes the head (and `body` or `rest` after it) of req's reply; `later`: at the end of the
 * loop turn (hf_conn_output_later). */
static void send_head(tlab_http_req *r, int status, int64_t length, int chunked, const char *body, size_t blen,
                      struct evbuffer *rest, int later) {
    char small[512];
    size_t cap = head_cap(r->rh_len, r->nrh);
    char *head = cap <= sizeof small ? small : malloc(cap);
    if (!head) {
        hf_conn_kill(r->c);
        if (rest)
            evbuffer_drain(rest, evbuffer_get_length(rest));
        return;
    }
    size_t hl = head_write(head, status, r->rh, r->nrh, length, chunked, conn_kind(r));
    struct iovec iov[2] = {{head, hl}, {(void *)body, blen}};
    if (later)
        hf_conn_output_later(r->c, iov, 2, rest);
    else
        hf_conn_output(r->c, iov, 2, rest);
    if (head != small)
        free(head);
}

void tlab_http_reply(tlab_http_req *req, int status, const char *body, size_t len) {
    status = final_status(status);
    if (req->in_gone)
        return;
    if (req->started) { /* misuse; still answer */
        tlab_http_reply_chunk(req, body, len);
        tlab_http_reply_end(req);
        return;
    }
    if (req->c->state != HF_DEAD) {
        int bodyless = no_body_status(status);
        int send_body = !bodyless && req->method != TLAB_HTTP_HEAD;
        send_head(req, status, bodyless ? -1 : (int64_t)len, 0, send_body ? body : NULL, send_body ? len : 0, NULL, 0);
    }
    hf_reply_done(req);
}

void tlab_http_reply_buffer(tlab_http_req *req, int status, struct evbuffer *body) {
    status = final_status(status);
    size_t len = evbuffer_get_length(body);
    if (req->in_gone) {
        evbuffer_drain(body, len);
        return;
    }
    if (req->started) { /* misuse; still answer */
        tlab_http_reply_chunk_buffer(req, body);
        tlab_http_reply_end(req);
        return;
    }
    int bodyless = no_body_status(status);
    int send_body = !bodyless && req->method != TLAB_HTTP_HEAD && req->c->state != HF_DEAD;
    if (!send_body)
        evbuffer_drain(body, len);
    if (req->c->state != HF_DEAD)
        send_head(req, status, bodyless ? -1 : (int64_t)len, 0, NULL, 0, send_body ? body : NULL, 0);
    hf_reply_done(req);
}

/*
 * A streamed reply's output (head and chunks) goes out at the end of the loop turn that wrote it,
 * in one sendmsg: a worker's headers and its first events often come in one read, and sent apart
 * they cost a send each and the client a wake-up each, on the time to first token. The end of
 * the reply (or any whole reply) sends at once, taking what waits with it.
 */
void tlab_http_reply_start(tlab_http_req *req, int status) {
    status = final_status(status);
    if (req->in_gone || req->started)
        return;
    req->started = 1;
    req->no_body = req->method == TLAB_HTTP_HEAD || no_body_status(status);
    req->chunked = req->minor >= 1 && !no_body_status(status);
    if (req->minor == 0 && !req->no_body)
        req->close = 1; /* HTTP/1.0: the body ends with the connection */
    if (req->c->state != HF_DEAD)
        send_head(req, status, -1, req->chunked, NULL, 0, NULL, 1);
}

static int chunk_ignored(const tlab_http_req *req) {
    return req->in_gone || !req->started || req->no_body || req->c->state == HF_DEAD;
}

void tlab_http_reply_chunk(tlab_http_req *req, const char *data, size_t len) {
    if (len == 0 || chunk_ignored(req))
        return;
    if (!req->chunked) {
        struct iovec v = {(void *)data, len};
        hf_conn_output_later(req->c, &v, 1, NULL);
        return;
    }
    char size[20];
    char *p = tlab_put_hex(size, len);
    p = put(p, "\r\n", 2);
    struct iovec v[3] = {{size, (size_t)(p - size)}, {(void *)data, len}, {(void *)"\r\n", 2}};
    hf_conn_output_later(req->c, v, 3, NULL);
}

void tlab_http_reply_chunk_buffer(tlab_http_req *req, struct evbuffer *chunk) {
    size_t len = evbuffer_get_length(chunk);
    if (len == 0 || chunk_ignored(req)) {
        evbuffer_drain(chunk, len);
        return;
    }
    if (!req->chunked) {
        hf_conn_output_later(req->c, NULL, 0, chunk);
        return;
    }
    char size[20];
    char *p = tlab_put_hex(size, len);
    p = put(p, "\r\n", 2);
    if (evbuffer_add(chunk, "\r\n", 2)) {
        evbuffer_drain(chunk, evbuffer_get_length(chunk));
        hf_conn_kill(req->c);
        return;
    }
    struct iovec v = {size, (size_t)(p - size)};
    hf_conn_output_later(req->c, &v, 1, chunk);
}

/* What waits for the end of the loop turn goes now (the reply ends: its last bytes follow). */
static void send_deferred(hf_conn *c) {
    if (c->deferred && c->state != HF_DEAD) {
        c->deferred = 0;
        send_out(c);
    }
}

size_t tlab_http_reply_backlog(const tlab_http_req *req) {
    const hf_conn *c = req->c;
    return c->state != HF_DEAD && c->out ? evbuffer_get_length(c->out) : 0;
}

/* drained runs once, always from the loop (never inside this call): when the pending output
 * next empties; soon, when nothing is pending now (a caller registering just after the backlog
 * emptied must not wait forever); for a request whose client left, once it is noticed (from
 * the reaper) or soon (registered afterwards): its backlog is 0 for good. */
void tlab_http_reply_on_drained(tlab_http_req *req, tlab_http_drained_fn drained, void *arg) {
    hf_conn *c = req->c;
    req->drained = drained;
    req->drained_arg = arg;
    if (!drained || c->writing || c->wkicked)
        return;
    if (c->state == HF_SERVE || (c->state == HF_DEAD && c->reaped)) { /* dead, not reaped: the reaper */
        c->wkicked = 1;
        event_active(&c->wev, EV_WRITE, 1);
    }
}

void tlab_http_reply_end(tlab_http_req *req) {
    if (req->in_gone)
        return;
    if (!req->started) /* misuse; an empty streamed reply still answers */
        tlab_http_reply_start(req, 200);
    if (req->chunked && !req->no_body && req->c->state != HF_DEAD) {
        struct iovec v = {(void *)"0\r\n\r\n", 5};
        hf_conn_output(req->c, &v, 1, NULL); /* takes what was deferred with it */
    }
    send_deferred(req->c); /* a close-delimited or bodiless stream */
    hf_reply_done(req);
}

void tlab_http_reply_abort(tlab_http_req *req) {
    if (req->in_gone)
        return;
    hf_conn *c = req->c;
    if (c->state == HF_DEAD) {
        hf_reply_done(req);
        return;
    }
    send_deferred(c); /* what the client was due; the cut says the rest is missing */
    if (c->state == HF_DEAD) {
        hf_reply_done(req);
        return;
    }
    if (req->started && !req->chunked && !req->no_body) {
        /* A close-delimited body that stops looks complete; only a reset says it is not. */
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    c->req = NULL; /* answered: no gone callback */
    hf_req_free(req);
    hf_conn_kill(c);
}

/* ---- errors ---- */

void hf_error_reply(hf_conn *c, int status, const char *type, const char *message) {
    static const char hdrs[] = "Content-Type\0application/json";
    tlab_error err;
    tlab_error_set(&err, status, type ? type : "invalid_request_error", NULL, "%s", message);
    char *json = tlab_error_json(&err);
    c->state = HF_CLOSING;
    if (json) {
        char head[256 + sizeof hdrs];
        size_t len = strlen(json);
        size_t hl = head_write(head, status, hdrs, 1, (int64_t)len, 0, CONN_CLOSE);
        struct iovec iov[2] = {{head, hl}, {json, len}};
        hf_conn_output(c, iov, 2, NULL);
        free(json);
    }
    if (c->state == HF_CLOSING && !c->writing)
        hf_conn_drained(c); /* nothing pending: the lingering close starts */
}

void hf_reject(tlab_http_server *s, int fd) {
    static const char hdrs[] = "Content-Type\0application/json\0Retry-After\0"
                               "1";
    tlab_error err;
    tlab_error_set(&err, 503, "service_unavailable", NULL,
                   "too many client connections (limits.max_client_connections is %ld); retry later",
                   s->limits.max_connections);
    char *json = tlab_error_json(&err);
    if (json) {
        char head[256 + sizeof hdrs];
        size_t len = strlen(json);
        size_t hl = head_write(head, 503, hdrs, 2, (int64_t)len, 0, CONN_CLOSE);
        struct iovec iov[2] = {{head, hl}, {json, len}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
        (void)!sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        free(json);
    }
    /* Unread bytes at close() make it a reset, which can destroy the reply before the client reads it. */
    char junk[4096];
    for (int i = 0; i < 4; i++)
        if (recv(fd, junk, sizeof junk, MSG_DONTWAIT) <= 0)
            break;
    close(fd);
    s->rejected++;
    time_t now = time(NULL);
    if (now != s->warned_reject_at) {
        s->warned_reject_at = now;
        LOG_WARN("front: %ld client connections open; turning new ones away (503)", s->limits.max_connections);
    }
}
