/*
 * http_front_reply.c - the front HTTP/1.x server's replies: the headers a handler adds, the head
 * (status line, Date formatted once a second, framing and Connection headers, hand-written
 * numbers), the whole and streamed replies of http_front.h, and error and rejection replies in
 * OpenAI's error JSON. Bytes go out through http_front_output.c; a reply's end moves its
 * connection on through c->ops->reply_end (http_front_internal.h gives the order).
 *
 * A head is written into a stack buffer and goes out with its body (or a chunk's size line with
 * its data and CRLF) as the iovecs of one sendmsg: no copy of the body, one system call.
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
    p = tlab__put_dec(p, (uint64_t)status);
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
        p = tlab__put_dec(p, (uint64_t)length);
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

/* ---- reply headers ---- */

static int bad_value(const char *s) {
    return strpbrk(s, "\r\n") != NULL;
}

static int bad_name(const char *s) {
    if (!*s)
        return 1;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == ':' || *s == 127)
            return 1;
    return 0;
}

int tlab__http_add_header(tlab__http_req *req, const char *name, const char *value) {
    if (req->started || req->in_gone || bad_name(name) || bad_value(value))
        return -1;
    size_t nl = strlen(name);
    /* The server's own: written by it (compared only when the length matches: this runs for
     * every header of every reply). A caller's "Connection: close" is honoured. */
    if (nl == 10 && strcasecmp(name, "Connection") == 0) {
        if (strcasecmp(value, "close") == 0)
            req->close = 1;
        return 0;
    }
    if ((nl == 4 && strcasecmp(name, "Date") == 0) || (nl == 14 && strcasecmp(name, "Content-Length") == 0) ||
        (nl == 17 && strcasecmp(name, "Transfer-Encoding") == 0))
        return 0;
    size_t vl = strlen(value), need = (size_t)req->rh_len + nl + vl + 2;
    if (need > UINT32_MAX || req->nrh == UINT16_MAX)
        return -1;
    if (need > req->rh_cap) {
        size_t cap = req->rh_cap ? (size_t)req->rh_cap * 2 : 128;
        if (cap < need)
            cap = need;
        char *b = realloc(req->rh, cap);
        if (!b)
            return -1;
        req->rh = b;
        req->rh_cap = (uint32_t)cap;
    }
    memcpy(req->rh + req->rh_len, name, nl + 1);
    memcpy(req->rh + req->rh_len + nl + 1, value, vl + 1);
    req->rh_len = (uint32_t)need;
    req->nrh++;
    return 0;
}

const char *tlab__http_reply_header(const tlab__http_req *req, const char *name) {
    return hf_find_header(req->rh, req->nrh, name);
}

/* The headers a handler adds and the request's own are both name\0value\0 blocks: one lookup. */
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

/* ---- replies ---- */

/* A 1xx is interim: sent as the reply, it would leave the client waiting for the real one. */
static int final_status(int status) {
    return status < 200 ? 502 : status;
}

/* For a final status (final_status has turned any 1xx into 502). */
static int no_body_status(int status) {
    return status == 204 || status == 304;
}

static int conn_kind(const tlab__http_req *r) {
    if (!r->keep_alive || r->close)
        return r->minor >= 1 ? CONN_CLOSE : CONN_NONE;
    return r->minor == 0 ? CONN_KEEP : CONN_NONE;
}

/* Writes the head (and `body` or `rest` after it) of req's reply; `later`: at the end of the
 * loop turn (hf_conn_output_later). */
static void send_head(tlab__http_req *r, int status, int64_t length, int chunked, const char *body, size_t blen,
                      struct evbuffer *rest, int later) {
    char small[512];
    size_t cap = head_cap(r->rh_len, r->nrh);
    char *head = cap <= sizeof small ? small : malloc(cap);
    if (!head) {
        r->c->ops->kill(r->c);
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

void tlab__http_reply(tlab__http_req *req, int status, const char *body, size_t len) {
    status = final_status(status);
    if (req->in_gone)
        return;
    if (req->started) { /* misuse; still answer */
        tlab__http_reply_chunk(req, body, len);
        tlab__http_reply_end(req);
        return;
    }
    if (req->c->state != HF_DEAD) {
        int bodyless = no_body_status(status);
        int send_body = !bodyless && req->method != TLAB_HTTP_HEAD;
        send_head(req, status, bodyless ? -1 : (int64_t)len, 0, send_body ? body : NULL, send_body ? len : 0, NULL, 0);
    }
    req->c->ops->reply_end(req, HF_END_DONE);
}

void tlab__http_reply_buffer(tlab__http_req *req, int status, struct evbuffer *body) {
    status = final_status(status);
    size_t len = evbuffer_get_length(body);
    if (req->in_gone) {
        evbuffer_drain(body, len);
        return;
    }
    if (req->started) { /* misuse; still answer */
        tlab__http_reply_chunk_buffer(req, body);
        tlab__http_reply_end(req);
        return;
    }
    int bodyless = no_body_status(status);
    int send_body = !bodyless && req->method != TLAB_HTTP_HEAD && req->c->state != HF_DEAD;
    if (!send_body)
        evbuffer_drain(body, len);
    if (req->c->state != HF_DEAD)
        send_head(req, status, bodyless ? -1 : (int64_t)len, 0, NULL, 0, send_body ? body : NULL, 0);
    req->c->ops->reply_end(req, HF_END_DONE);
}

/*
 * A streamed reply's output (head and chunks) goes out at the end of the loop turn that wrote it,
 * in one sendmsg: a worker's headers and its first events often come in one read, and sent apart
 * they cost a send each and the client a wake-up each, on the time to first token. The end of
 * the reply (or any whole reply) sends at once, taking what waits with it.
 */
void tlab__http_reply_start(tlab__http_req *req, int status) {
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

static int chunk_ignored(const tlab__http_req *req) {
    return req->in_gone || !req->started || req->no_body || req->c->state == HF_DEAD;
}

void tlab__http_reply_chunk(tlab__http_req *req, const char *data, size_t len) {
    if (len == 0 || chunk_ignored(req))
        return;
    if (!req->chunked) {
        struct iovec v = {(void *)data, len};
        hf_conn_output_later(req->c, &v, 1, NULL);
        return;
    }
    char size[20];
    char *p = tlab__put_hex(size, len);
    p = put(p, "\r\n", 2);
    struct iovec v[3] = {{size, (size_t)(p - size)}, {(void *)data, len}, {(void *)"\r\n", 2}};
    hf_conn_output_later(req->c, v, 3, NULL);
}

void tlab__http_reply_chunk_buffer(tlab__http_req *req, struct evbuffer *chunk) {
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
    char *p = tlab__put_hex(size, len);
    p = put(p, "\r\n", 2);
    if (evbuffer_add(chunk, "\r\n", 2)) {
        evbuffer_drain(chunk, evbuffer_get_length(chunk));
        req->c->ops->kill(req->c);
        return;
    }
    struct iovec v = {size, (size_t)(p - size)};
    hf_conn_output_later(req->c, &v, 1, chunk);
}

void tlab__http_reply_end(tlab__http_req *req) {
    if (req->in_gone)
        return;
    if (!req->started) /* misuse; an empty streamed reply still answers */
        tlab__http_reply_start(req, 200);
    if (req->chunked && !req->no_body && req->c->state != HF_DEAD) {
        struct iovec v = {(void *)"0\r\n\r\n", 5};
        hf_conn_output(req->c, &v, 1, NULL); /* takes what was deferred with it */
    }
    hf_conn_output_now(req->c); /* a close-delimited or bodiless stream */
    req->c->ops->reply_end(req, HF_END_DONE);
}

void tlab__http_reply_abort(tlab__http_req *req) {
    if (req->in_gone)
        return;
    hf_conn *c = req->c;
    hf_conn_output_now(c); /* what the client was due; the cut says the rest is missing */
    if (c->state != HF_DEAD && req->started && !req->chunked && !req->no_body) {
        /* A close-delimited body that stops looks complete; only a reset says it is not. */
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    c->ops->reply_end(req, HF_END_CUT); /* answered: no gone callback */
}

/* ---- errors ---- */

void hf_error_reply(hf_conn *c, int status, const char *type, const char *message) {
    static const char hdrs[] = "Content-Type\0application/json";
    tlab__error err;
    tlab__error_set(&err, status, type ? type : "invalid_request_error", NULL, "%s", message);
    char *json = tlab__error_json(&err);
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
        c->ops->drained(c); /* nothing pending: the lingering close starts */
}

void hf_reject(tlab__http_server *s, int fd) {
    static const char hdrs[] = "Content-Type\0application/json\0Retry-After\0"
                               "1";
    tlab__error err;
    tlab__error_set(&err, 503, "service_unavailable", NULL,
                   "too many client connections (limits.max_client_connections is %ld); retry later",
                   s->limits.max_connections);
    char *json = tlab__error_json(&err);
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
