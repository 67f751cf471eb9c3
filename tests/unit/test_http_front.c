/*
 * test_http_front.c - the front HTTP/1.x server of http_front.h against raw client sockets on the
 * same thread. The server runs on this thread's event_base, so every wait drives the loop
 * (EVLOOP_NONBLOCK) while it reads the client socket, bounded in time.
 *
 * Cases: GET and POST with Content-Length; keep-alive; pipelining (answered at once, and behind a
 * held request); a chunked request body (in pieces); Expect: 100-continue and other
 * expectations; HTTP/1.0 with and without keep-alive; HEAD; the path of origin- and
 * absolute-form targets; a table of refused requests (400, 413, 414, 417, 431, 501, 505);
 * streamed replies (chunked to 1.1, close-delimited to 1.0, HEAD); reply_on_drained after a
 * backlog and with none; more than 64 KiB pipelined behind a held request; a big reply to a slow
 * reader with a request behind it; reply_abort; the gone callback; a request whose client left
 * answered later (and its drained callback); set_limits; timeouts (idle, trickling, a served
 * request not cut, a stalled reply cut, the lingering close's limit); max_connections; running
 * out of file descriptors; tlab_http_server_free with requests outstanding; headers, take_body, peer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "http/http_front.h"
#include "tlab_test.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND (getenv("LD_PRELOAD") && strstr(getenv("LD_PRELOAD"), "vgpreload"))
#endif

static struct event_base *base;

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- the server side ---- */

typedef struct seen {
    int calls;
    char method[16], path[512], xtest[128], host[128], peer[64];
    char body[2048];
    size_t body_len;
    uint16_t peer_port;
    int reply_header_ok;   /* add_header / reply_header checks inside the handler */
    int take_ok;           /* take_body left an empty body behind */
    int watch_hold;        /* /hold: watch the held request */
    tlab_http_req *held, *held2;
    int gone_calls;
    tlab_http_req *gone_req;
    int drained_calls, drained_sync;
    tlab_http_req *flood;
    size_t flood_bytes;
    int flood_end_on_drain;
    int flood_nowatch;
    char extra[3][64];
    int trailer_seen;
    int add_after_start; /* tlab_http_add_header's result once a stream started */
    tlab_http_req *started; /* /startonly: a streamed reply started, nothing more yet */
} seen;

static seen g;

static void on_gone(tlab_http_req *req, void *arg) {
    g.gone_calls++;
    g.gone_req = req;
    if (req == g.held)
        g.held = NULL;
    if (req == g.held2)
        g.held2 = NULL;
    if (req == g.flood)
        g.flood = NULL;
}

static void on_flood_drained(tlab_http_req *req, void *arg) {
    g.drained_calls++;
    if (g.flood_end_on_drain) {
        tlab_http_reply_chunk(req, "END", 3);
        tlab_http_reply_end(req);
        g.flood = NULL;
    }
}

static void on_drained0(tlab_http_req *req, void *arg) {
    g.drained_calls++;
    tlab_http_reply_chunk(req, "late", 4);
    tlab_http_reply_end(req);
}

static char flood_chunk[64 * 1024];
#define BIG_CHUNKS 128

static void handler(tlab_http_req *req, void *arg) {
    const char *path = tlab_http_req_path(req);
    g.calls++;
    snprintf(g.method, sizeof g.method, "%s", tlab_http_req_method_name(req));
    snprintf(g.path, sizeof g.path, "%s", path);
    const char *x = tlab_http_req_header(req, "x-TEST");
    snprintf(g.xtest, sizeof g.xtest, "%s", x ? x : "(none)");
    const char *h = tlab_http_req_header(req, "HOST");
    snprintf(g.host, sizeof g.host, "%s", h ? h : "(none)");
    snprintf(g.peer, sizeof g.peer, "%s", tlab_http_req_peer(req, &g.peer_port));
    const char *names[3] = {"X-Header-00", "x-header-29", "X-Empty"};
    for (int i = 0; i < 3; i++) {
        const char *v = tlab_http_req_header(req, names[i]);
        snprintf(g.extra[i], sizeof g.extra[i], "%s", v ? v : "(none)");
    }
    const char *t = tlab_http_req_header(req, "X-Trailer");
    g.trailer_seen = t != NULL;

    if (strcmp(path, "/hold") == 0) {
        if (g.held)
            g.held2 = req;
        else
            g.held = req;
        if (g.watch_hold)
            tlab_http_req_watch(req, on_gone, NULL);
        return;
    }
    if (strcmp(path, "/take") == 0) {
        size_t len, after_len = 99;
        char *b = tlab_http_req_take_body(req, &len);
        const char *after = tlab_http_req_body(req, &after_len);
        g.take_ok = b && after && after[0] == '\0' && after_len == 0;
        char out[2100];
        int n = snprintf(out, sizeof out, "took %zu:%s", len, b ? b : "");
        free(b);
        tlab_http_reply(req, 200, out, (size_t)n);
        return;
    }
    if (strcmp(path, "/stream") == 0) {
        struct evbuffer *eb = evbuffer_new();
        evbuffer_add(eb, "world", 5);
        tlab_http_reply_start(req, 200);
        g.add_after_start = tlab_http_add_header(req, "X-Late", "1");
        tlab_http_reply_chunk(req, "hello", 5);
        tlab_http_reply_chunk(req, "", 0);
        tlab_http_reply_chunk_buffer(req, eb);
        CHECK(evbuffer_get_length(eb) == 0);
        evbuffer_free(eb);
        tlab_http_reply_end(req);
        return;
    }
    if (strcmp(path, "/abort") == 0) {
        tlab_http_req_watch(req, on_gone, NULL);
        tlab_http_reply_start(req, 200);
        tlab_http_reply_chunk(req, "partial", 7);
        tlab_http_reply_abort(req);
        return;
    }
    if (strcmp(path, "/abort0") == 0) {
        tlab_http_req_watch(req, on_gone, NULL);
        tlab_http_reply_abort(req);
        return;
    }
    if (strcmp(path, "/close") == 0) {
        tlab_http_add_header(req, "Connection", "close");
        tlab_http_reply(req, 200, "bye", 3);
        return;
    }
    if (strcmp(path, "/flood") == 0) {
        /* Write until the socket stops taking it, then wait for the drain. */
        if (!g.flood_nowatch)
            tlab_http_req_watch(req, on_gone, NULL);
        tlab_http_reply_start(req, 200);
        g.flood = req;
        g.flood_bytes = 0;
        /* 8 MB: more than loopback's socket buffers take, so a backlog stays after the write
         * at the end of this turn (a streamed reply's output waits for it). */
        for (int i = 0; i < BIG_CHUNKS; i++) {
            tlab_http_reply_chunk(req, flood_chunk, sizeof flood_chunk);
            g.flood_bytes += sizeof flood_chunk;
        }
        CHECK(tlab_http_reply_backlog(req) > 0);
        tlab_http_reply_on_drained(req, on_flood_drained, NULL);
        return;
    }
    if (strcmp(path, "/big") == 0) { /* a whole reply larger than the socket buffers, from an evbuffer */
        struct evbuffer *eb = evbuffer_new();
        for (int i = 0; i < BIG_CHUNKS; i++) /* 8 MB: more than loopback's socket buffers take */
            evbuffer_add(eb, flood_chunk, sizeof flood_chunk);
        tlab_http_reply_buffer(req, 200, eb);
        CHECK(evbuffer_get_length(eb) == 0);
        evbuffer_free(eb);
        return;
    }
    if (strcmp(path, "/startonly") == 0) {
        tlab_http_reply_start(req, 200);
        g.started = req;
        return;
    }
    if (strcmp(path, "/drained_early") == 0) {
        /* drained registered with nothing pending, then a backlog in the same turn: it must run
         * once the backlog drains (the write event added while its activation was pending). */
        tlab_http_reply_start(req, 200);
        tlab_http_reply_on_drained(req, on_flood_drained, NULL);
        g.flood = req;
        g.flood_bytes = 0;
        /* 8 MB: more than loopback's socket buffers take, so a backlog stays after the write
         * at the end of this turn (a streamed reply's output waits for it). */
        for (int i = 0; i < BIG_CHUNKS; i++) {
            tlab_http_reply_chunk(req, flood_chunk, sizeof flood_chunk);
            g.flood_bytes += sizeof flood_chunk;
        }
        return;
    }
    if (strcmp(path, "/drained0") == 0) {
        tlab_http_reply_start(req, 200);
        int before = g.drained_calls;
        tlab_http_reply_on_drained(req, on_drained0, NULL);
        g.drained_sync = g.drained_calls != before;
        return;
    }
    /* Anything else echoes "<METHOD> <path> <body>", with a reply header or two. */
    size_t blen;
    const char *body = tlab_http_req_body(req, &blen);
    g.body_len = blen;
    snprintf(g.body, sizeof g.body, "%s", body);
    g.reply_header_ok = tlab_http_add_header(req, "X-Reply", "v1") == 0 &&
                        tlab_http_add_header(req, "Content-Type", "text/plain") == 0 &&
                        tlab_http_add_header(req, "X-Bad", "a\r\nb") == -1 &&
                        tlab_http_add_header(req, "X Bad", "v") == -1 && tlab_http_reply_header(req, "x-reply") &&
                        strcmp(tlab_http_reply_header(req, "x-reply"), "v1") == 0 &&
                        tlab_http_reply_header(req, "X-None") == NULL;
    char out[2300];
    int n = snprintf(out, sizeof out, "%s %s %s", tlab_http_req_method_name(req), path, body);
    tlab_http_reply(req, 200, out, (size_t)n);
}

typedef struct srv {
    tlab_http_server *s;
    int port;
} srv;

static tlab_http_limits limits(long timeout_ms, long max_conns) {
    tlab_http_limits l = {.max_header_bytes = 4096, .max_body_bytes = 1024, .timeout_ms = timeout_ms, .max_connections = max_conns};
    return l;
}

static srv srv_start(tlab_http_limits l) {
    srv v = {NULL, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 128) || getsockname(fd, (struct sockaddr *)&a, &al)) {
        perror("listen");
        exit(2);
    }
    v.port = ntohs(a.sin_port);
    v.s = tlab_http_server_new(base, fd, &l, handler, NULL);
    if (!v.s) {
        fprintf(stderr, "tlab_http_server_new failed\n");
        exit(2);
    }
    return v;
}

static tlab_http_counters counters(const srv *v) {
    tlab_http_counters c;
    tlab_http_server_counters(v->s, &c);
    return c;
}

/* ---- the client side ---- */

typedef struct cli {
    int fd;
    char *buf;
    size_t len, cap;
    int eof, err;
} cli;

static void cli_open_rcvbuf(cli *c, int port, int rcvbuf) {
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a)) { /* the kernel completes it: no accept needed */
        perror("connect");
        exit(2);
    }
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

static void cli_open(cli *c, int port) {
    cli_open_rcvbuf(c, port, 0);
}

static void cli_close(cli *c) {
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

static uint16_t cli_port(const cli *c) {
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    getsockname(c->fd, (struct sockaddr *)&a, &al);
    return ntohs(a.sin_port);
}

/* Reads what has arrived. */
static void cli_pump(cli *c) {
    while (c && c->fd >= 0 && !c->eof && !c->err) {
        if (c->cap - c->len < 65536) {
            c->cap = c->cap ? c->cap * 2 : 131072;
            c->buf = realloc(c->buf, c->cap + 1);
        }
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            c->buf[c->len] = '\0';
        } else if (n == 0) {
            c->eof = 1;
        } else {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                c->err = errno;
            break;
        }
    }
}

/* One turn: the server's loop, then the client's socket. */
static void turn(cli *c) {
    event_base_loop(base, EVLOOP_NONBLOCK);
    cli_pump(c);
    usleep(300);
}

static void spin_ms(cli *c, long ms) {
    long end = now_ms() + ms;
    while (now_ms() < end)
        turn(c);
}

static void cli_send_n(cli *c, const char *data, size_t len) {
    size_t off = 0;
    long end = now_ms() + 5000;
    while (off < len && now_ms() < end) {
        ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return; /* the server closed: the reply says why */
        else
            turn(c);
    }
}

static void cli_send(cli *c, const char *s) {
    cli_send_n(c, s, strlen(s));
}

/* Length of the first whole response in b[0..n), 0 when incomplete. A response with neither
 * Content-Length nor chunked framing ends at EOF. */
static size_t resp_len(const char *b, size_t n, int head_only, int eof) {
    const char *e = memmem(b, n, "\r\n\r\n", 4);
    if (!e)
        return 0;
    size_t hl = (size_t)(e - b) + 4;
    if (strncmp(b, "HTTP/1.1 1", 10) == 0 || head_only)
        return hl;
    char head[8192];
    snprintf(head, sizeof head, "%.*s", (int)hl, b);
    const char *cl = strcasestr(head, "\r\nContent-Length: ");
    if (cl)
        return n >= hl + strtoul(cl + 18, NULL, 10) ? hl + strtoul(cl + 18, NULL, 10) : 0;
    if (strcasestr(head, "\r\nTransfer-Encoding: chunked\r\n")) {
        size_t p = hl;
        for (;;) {
            const char *le = memmem(b + p, n - p, "\r\n", 2);
            if (!le)
                return 0;
            size_t sz = strtoul(b + p, NULL, 16);
            p = (size_t)(le - b) + 2;
            if (n < p + sz + 2)
                return 0;
            p += sz + 2;
            if (sz == 0)
                return p;
        }
    }
    return eof ? n : 0;
}

typedef struct resp {
    int status;
    char *raw;  /* the whole response, NUL-terminated */
    size_t raw_len, head_len;
    char *body; /* de-chunked */
    size_t body_len;
} resp;

static void resp_free(resp *r) {
    free(r->raw);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static int resp_has(const resp *r, const char *header_line) {
    char want[256];
    snprintf(want, sizeof want, "\r\n%s\r\n", header_line);
    char *head = strndup(r->raw ? r->raw : "", r->head_len);
    int found = strcasestr(head, want) != NULL;
    free(head);
    return found;
}

/* Waits (up to ms) for a whole response and takes it off the client's buffer. 0 on time-out. */
static int read_resp(cli *c, resp *r, int head_only, long ms) {
    memset(r, 0, sizeof *r);
    long end = now_ms() + ms;
    size_t n;
    for (;;) {
        cli_pump(c);
        n = c->len ? resp_len(c->buf, c->len, head_only, c->eof || c->err) : 0;
        if (n || now_ms() >= end || ((c->eof || c->err) && !c->len))
            break;
        turn(c);
    }
    if (!n)
        return 0;
    r->raw = malloc(n + 1); /* bodies may hold NUL bytes: no strndup */
    memcpy(r->raw, c->buf, n);
    r->raw[n] = '\0';
    r->raw_len = n;
    r->head_len = (size_t)((char *)memmem(r->raw, n, "\r\n\r\n", 4) - r->raw) + 4;
    r->status = atoi(r->raw + 9);
    r->body = malloc(n + 1);
    char *head = strndup(r->raw, r->head_len);
    int chunked = !head_only && r->status >= 200 && strcasestr(head, "\r\nTransfer-Encoding: chunked\r\n");
    free(head);
    if (chunked) {
        size_t p = r->head_len;
        while (p < n) {
            size_t sz = strtoul(r->raw + p, NULL, 16);
            p = (size_t)((char *)memmem(r->raw + p, n - p, "\r\n", 2) - r->raw) + 2;
            memcpy(r->body + r->body_len, r->raw + p, sz);
            r->body_len += sz;
            p += sz + 2;
            if (!sz)
                break;
        }
    } else {
        r->body_len = n - r->head_len;
        memcpy(r->body, r->raw + r->head_len, r->body_len);
    }
    r->body[r->body_len] = '\0';
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    return 1;
}

/* Waits for the server to close the connection (EOF or reset). */
static int wait_closed(cli *c, long ms) {
    long end = now_ms() + ms;
    while (!c->eof && !c->err && now_ms() < end)
        turn(c);
    return c->eof || c->err;
}

static int wait_flag(cli *c, const int *flag, long ms) {
    long end = now_ms() + ms;
    while (!*flag && now_ms() < end)
        turn(c);
    return *flag;
}

static int wait_ptr(cli *c, tlab_http_req *const *p, long ms) {
    long end = now_ms() + ms;
    while (!*p && now_ms() < end)
        turn(c);
    return *p != NULL;
}

static int wait_open(const srv *v, size_t open, long ms) {
    long end = now_ms() + ms;
    while (counters(v).open != open && now_ms() < end)
        turn(NULL);
    return counters(v).open == open;
}

/* ---- cases ---- */

static void test_get_post(void) {
    srv v = srv_start(limits(5000, 0));
    cli c;
    resp r;
    cli_open(&c, v.port);
    cli_send(&c, "GET /echo?x=1 HTTP/1.1\r\nHost: h1\r\nx-test:  Value1  \r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000));
    CHECK(r.status == 200);
    CHECK_MSG(strcmp(r.body, "GET /echo ") == 0, "body '%s'", r.body);
    CHECK(resp_has(&r, "Content-Length: 10"));
    CHECK(resp_has(&r, "X-Reply: v1"));
    CHECK(resp_has(&r, "Content-Type: text/plain"));
    CHECK_STR_CONTAINS(r.raw, "HTTP/1.1 200 OK\r\nDate: ");
    CHECK_STR_CONTAINS(r.raw, " GMT\r\n");
    CHECK(!strcasestr(r.raw, "Connection:"));
    CHECK(strcmp(g.xtest, "Value1") == 0);
    CHECK(strcmp(g.host, "h1") == 0);
    CHECK(strcmp(g.path, "/echo") == 0);
    CHECK(strcmp(g.method, "GET") == 0);
    CHECK(g.reply_header_ok);
    CHECK(strcmp(g.peer, "127.0.0.1") == 0);
    CHECK(g.peer_port == cli_port(&c));
    resp_free(&r);

    cli_send(&c, "POST /echo HTTP/1.1\r\nHost: h1\r\nContent-Length: 5\r\n\r\nhello");
    CHECK(read_resp(&c, &r, 0, 5000));
    CHECK(r.status == 200);
    CHECK_MSG(strcmp(r.body, "POST /echo hello") == 0, "body '%s'", r.body);
    CHECK(g.body_len == 5);
    CHECK(strcmp(g.xtest, "(none)") == 0);
    resp_free(&r);

    /* take_body: the block is handed over; a request without a body gives "". */
    cli_send(&c, "POST /take HTTP/1.1\r\nContent-Length: 5\r\n\r\nworld");
    CHECK(read_resp(&c, &r, 0, 5000));
    CHECK_MSG(strcmp(r.body, "took 5:world") == 0, "body '%s'", r.body);
    CHECK(g.take_ok);
    resp_free(&r);
    cli_send(&c, "GET /take HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000));
    CHECK_MSG(strcmp(r.body, "took 0:") == 0, "body '%s'", r.body);
    resp_free(&r);

    /* Targets: absolute form, no path, a query; keep-alive all along (one connection). */
    cli_send(&c, "OPTIONS http://example.com/abs/path?q=1 HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000));
    CHECK(strcmp(g.path, "/abs/path") == 0);
    CHECK(strcmp(g.method, "OPTIONS") == 0);
    resp_free(&r);
    cli_send(&c, "DELETE http://example.com HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000));
    CHECK(strcmp(g.path, "/") == 0);
    CHECK(strcmp(g.method, "DELETE") == 0);
    resp_free(&r);
    CHECK(counters(&v).open == 1);
    CHECK(!c.eof);

    /* Headers past the arena's first size (it grows, the request moves), a header without a
     * value last, a long target with a query (the path is copied). */
    char req_buf[4096];
    size_t off = (size_t)snprintf(req_buf, sizeof req_buf, "GET /%0300d?q=1 HTTP/1.1\r\n", 7);
    for (int i = 0; i < 30; i++)
        off += (size_t)snprintf(req_buf + off, sizeof req_buf - off, "X-Header-%02d: value-%02d-xxxxxxxxxxxxxxxx\r\n", i, i);
    snprintf(req_buf + off, sizeof req_buf - off, "X-Empty:\r\n\r\n");
    cli_send(&c, req_buf);
    CHECK(read_resp(&c, &r, 0, 5000) && r.status == 200);
    resp_free(&r);
    CHECK(strlen(g.path) == 301 && g.path[0] == '/' && g.path[300] == '7');
    CHECK(strcmp(g.extra[0], "value-00-xxxxxxxxxxxxxxxx") == 0);
    CHECK(strcmp(g.extra[1], "value-29-xxxxxxxxxxxxxxxx") == 0);
    CHECK_MSG(strcmp(g.extra[2], "") == 0, "X-Empty '%s'", g.extra[2]);

    /* A chunked body with a trailer: the trailer is read, not kept. */
    cli_send(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "POST /echo abc") == 0);
    CHECK(!g.trailer_seen);
    resp_free(&r);

    /* New limits apply to the next request. */
    tlab_http_limits l = limits(5000, 0);
    l.max_body_bytes = 4;
    tlab_http_server_set_limits(v.s, &l);
    cli_send(&c, "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    CHECK(read_resp(&c, &r, 0, 5000) && r.status == 413);
    CHECK_STR_CONTAINS(r.body, "limit 4 bytes");
    resp_free(&r);
    CHECK(wait_closed(&c, 5000));
    cli_close(&c);
    tlab_http_server_free(v.s);
}

static void test_keepalive_pipelining(void) {
    srv v = srv_start(limits(5000, 0));
    cli c;
    resp r;
    int calls = g.calls;
    cli_open(&c, v.port);
    cli_send(&c, "GET /one HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "GET /one ") == 0);
    resp_free(&r);
    cli_send(&c, "GET /two HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "GET /two ") == 0);
    resp_free(&r);
    CHECK(g.calls == calls + 2);
    CHECK(counters(&v).open == 1);

    /* Three at once, one with a body: answered in order. */
    cli_send(&c, "GET /p1 HTTP/1.1\r\n\r\nPOST /p2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /p3 HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "GET /p1 ") == 0);
    resp_free(&r);
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "POST /p2 abc") == 0);
    resp_free(&r);
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "GET /p3 ") == 0);
    resp_free(&r);

    /* Behind a held request: the second waits until the first is answered from outside. */
    g.watch_hold = 0;
    calls = g.calls;
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held, 5000));
    spin_ms(&c, 50);
    CHECK(g.calls == calls + 1);
    CHECK(c.len == 0);
    tlab_http_reply(g.held, 200, "first", 5);
    g.held = NULL;
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "first") == 0);
    resp_free(&r);
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "GET /after ") == 0);
    resp_free(&r);
    CHECK(g.calls == calls + 2);

    /* More than the 64 KiB a connection holds behind a served request: reading waits for the
     * reply, then every request is answered, in order. */
    enum { MANY = 3500 };
    static const char one[] = "GET /s HTTP/1.1\r\n\r\n";
    char *batch = malloc(MANY * (sizeof one - 1));
    for (int i = 0; i < MANY; i++)
        memcpy(batch + i * (sizeof one - 1), one, sizeof one - 1);
    calls = g.calls;
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held, 5000));
    cli_send_n(&c, batch, MANY * (sizeof one - 1));
    free(batch);
    spin_ms(&c, 50);
    CHECK(g.calls == calls + 1 && c.len == 0);
    tlab_http_reply(g.held, 200, "first", 5);
    g.held = NULL;
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "first") == 0);
    resp_free(&r);
    int in_order = 0;
    for (int i = 0; i < MANY; i++) {
        if (read_resp(&c, &r, 0, 10000) && strcmp(r.body, "GET /s ") == 0)
            in_order++;
        resp_free(&r);
    }
    CHECK_MSG(in_order == MANY, "%d of %d answered", in_order, MANY);
    CHECK(g.calls == calls + 1 + MANY);

    /* A client asking to close. */
    cli_send(&c, "GET /last HTTP/1.1\r\nConnection: close\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && resp_has(&r, "Connection: close"));
    resp_free(&r);
    CHECK(wait_closed(&c, 5000));
    cli_close(&c);

    /* A handler saying Connection: close. */
    cli_open(&c, v.port);
    cli_send(&c, "GET /close HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && resp_has(&r, "Connection: close") && strcmp(r.body, "bye") == 0);
    resp_free(&r);
    CHECK(wait_closed(&c, 5000));
    cli_close(&c);
    tlab_http_server_free(v.s);
}

static void test_bodies_expect(void) {
    srv v = srv_start(limits(5000, 0));
    cli c;
    resp r;
    cli_open(&c, v.port);
    /* A chunked body, arriving in pieces. */
    cli_send(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    spin_ms(&c, 20);
    cli_send(&c, "lo\r\n6\r\n world\r");
    spin_ms(&c, 20);
    cli_send(&c, "\n0\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000));
    CHECK_MSG(strcmp(r.body, "POST /echo hello world") == 0, "body '%s'", r.body);
    resp_free(&r);

    /* Expect: 100-continue: the 100 comes before the body is sent. */
    cli_send(&c, "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000));
    CHECK(r.status == 100 && strcmp(r.raw, "HTTP/1.1 100 Continue\r\n\r\n") == 0);
    resp_free(&r);
    cli_send(&c, "hello");
    CHECK(read_resp(&c, &r, 0, 5000));
    CHECK(r.status == 200 && strcmp(r.body, "POST /echo hello") == 0);
    resp_free(&r);
    cli_close(&c);

    /* HTTP/1.0: closed after the reply; kept with Connection: keep-alive. */
    cli_open(&c, v.port);
    cli_send(&c, "GET /ten HTTP/1.0\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "GET /ten ") == 0);
    CHECK(!strcasestr(r.raw, "Connection:"));
    resp_free(&r);
    CHECK(wait_closed(&c, 5000));
    cli_close(&c);
    cli_open(&c, v.port);
    cli_send(&c, "GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && resp_has(&r, "Connection: keep-alive"));
    resp_free(&r);
    cli_send(&c, "GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "GET /again ") == 0);
    resp_free(&r);
    CHECK(!c.eof);
    cli_close(&c);

    /* HEAD: the length a GET would have, no body; the connection goes on. */
    cli_open(&c, v.port);
    cli_send(&c, "HEAD /echo HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 1, 5000));
    CHECK(r.status == 200 && resp_has(&r, "Content-Length: 11") && r.body_len == 0);
    resp_free(&r);
    cli_send(&c, "GET /echo HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000));
    CHECK_MSG(r.status == 200 && strcmp(r.body, "GET /echo ") == 0, "after HEAD: %s", r.raw);
    resp_free(&r);
    cli_close(&c);
    tlab_http_server_free(v.s);
}

typedef struct bad_case {
    const char *name;
    const char *request; /* NULL: built in the test */
    int status;
    const char *message;
} bad_case;

static void test_refusals(void) {
    static char big_header[6000], big_target[6000];
    snprintf(big_header, sizeof big_header, "GET / HTTP/1.1\r\nX-Big: %05000d\r\n\r\n", 0);
    snprintf(big_target, sizeof big_target, "GET /%05000d HTTP/1.1\r\n\r\n", 0);
    const bad_case cases[] = {
        {"request line", "GET / HTTP/1.1x\r\n\r\n", 400, "malformed request"},
        {"space in target", "GET /a b HTTP/1.1\r\n\r\n", 400, "malformed request"},
        {"unknown method", "FOO / HTTP/1.1\r\n\r\n", 501, "not implemented"},
        {"TRACE", "TRACE / HTTP/1.1\r\n\r\n", 501, "not implemented"},
        {"CONNECT", "CONNECT a:443 HTTP/1.1\r\n\r\n", 501, "not implemented"},
        {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 505, "version"},
        {"header too big", big_header, 431, "headers too large"},
        {"target too big", big_target, 414, "target too long"},
        {"body too big", "POST / HTTP/1.1\r\nContent-Length: 2000\r\n\r\n", 413, "body too large"},
        {"chunk too big", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n", 413, "body too large"},
        {"chunks too big", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n200\r\n%0512d\r\n200\r\n%0512d\r\n1\r\n", 413,
         "body too large"},
        {"two lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400, "malformed request"},
        {"length and chunked", "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
         "malformed request"},
        {"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "malformed request"},
        {"other expectation", "POST / HTTP/1.1\r\nContent-Length: 1\r\nExpect: bogus\r\n\r\n", 417, "Expect"},
        {"space before a colon", "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400,
         "whitespace in a header name"},
        {"tab in a name", "GET / HTTP/1.1\r\nX-A\tB: 1\r\n\r\n", 400, "malformed request"},
    };
    srv v = srv_start(limits(5000, 0));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *k = &cases[i];
        char req[8192];
        if (strstr(k->request, "%0512d"))
            snprintf(req, sizeof req, k->request, 0, 0);
        else
            snprintf(req, sizeof req, "%s", k->request);
        int calls = g.calls;
        cli c;
        resp r;
        cli_open(&c, v.port);
        cli_send(&c, req);
        CHECK_MSG(read_resp(&c, &r, 0, 5000), "%s: no response", k->name);
        CHECK_MSG(r.status == k->status, "%s: status %d, want %d", k->name, r.status, k->status);
        CHECK_MSG(resp_has(&r, "Content-Type: application/json"), "%s: %s", k->name, r.raw);
        CHECK_MSG(resp_has(&r, "Connection: close"), "%s: %s", k->name, r.raw);
        CHECK_MSG(r.body && strncmp(r.body, "{\"error\":{\"message\":", 20) == 0 && strstr(r.body, k->message) &&
                      strstr(r.body, "\"type\":\"invalid_request_error\""),
                  "%s: body %s", k->name, r.body);
        CHECK_MSG(wait_closed(&c, 5000), "%s: not closed", k->name);
        CHECK_MSG(g.calls == calls, "%s: the handler ran", k->name);
        resp_free(&r);
        cli_close(&c);
    }
    CHECK(wait_open(&v, 0, 5000));
    tlab_http_server_free(v.s);
}

static void test_streams(void) {
    srv v = srv_start(limits(5000, 0));
    cli c;
    resp r;
    cli_open(&c, v.port);
    cli_send(&c, "GET /stream HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000));
    CHECK(resp_has(&r, "Transfer-Encoding: chunked") && !strcasestr(r.raw, "Content-Length"));
    CHECK_MSG(strcmp(r.raw + r.head_len, "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n") == 0, "framing: %s", r.raw + r.head_len);
    CHECK(g.add_after_start == -1 && !strstr(r.raw, "X-Late"));
    resp_free(&r);
    /* HEAD of a stream: the head alone, and the connection goes on. */
    cli_send(&c, "HEAD /stream HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 1, 5000) && r.status == 200);
    resp_free(&r);
    cli_send(&c, "GET /stream HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "helloworld") == 0);
    resp_free(&r);
    cli_close(&c);

    /* A started stream with nothing to send yet: the head is held for the turn only, and the
     * client has it (status and headers) before any chunk. */
    cli_open(&c, v.port);
    g.started = NULL;
    cli_send(&c, "GET /startonly HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.started, 5000));
    spin_ms(&c, 30);
    CHECK_MSG(c.len > 0 && memmem(c.buf, c.len, "\r\n\r\n", 4) && c.buf[c.len - 1] == '\n' &&
                  memmem(c.buf, c.len, "Transfer-Encoding: chunked", 26),
              "got %zu bytes", c.len);
    CHECK(read_resp(&c, &r, 1, 100) && r.status == 200);
    resp_free(&r);
    tlab_http_reply_chunk(g.started, "later", 5);
    tlab_http_reply_end(g.started);
    c.len = 0; /* the head was read above; what follows is the chunked body */
    spin_ms(&c, 30);
    CHECK_MSG(c.len == 15 && memcmp(c.buf, "5\r\nlater\r\n0\r\n\r\n", 15) == 0, "body bytes %zu", c.len);
    c.len = 0;
    cli_send(&c, "GET /stream HTTP/1.1\r\n\r\n"); /* and the connection goes on */
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "helloworld") == 0);
    resp_free(&r);
    cli_close(&c);

    /* HTTP/1.0, even asking for keep-alive: the body ends with the connection. */
    cli_open(&c, v.port);
    cli_send(&c, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK(wait_closed(&c, 5000));
    CHECK(read_resp(&c, &r, 0, 100));
    CHECK(!strcasestr(r.raw, "Transfer-Encoding") && !strcasestr(r.raw, "Content-Length") &&
          !strcasestr(r.raw, "keep-alive"));
    CHECK_MSG(strcmp(r.body, "helloworld") == 0, "body '%s'", r.body);
    resp_free(&r);
    cli_close(&c);

    /* reply_abort: the body stops without its last chunk; no gone callback. */
    int gone = g.gone_calls;
    cli_open(&c, v.port);
    cli_send(&c, "GET /abort HTTP/1.1\r\n\r\n");
    CHECK(wait_closed(&c, 5000));
    CHECK_STR_CONTAINS(c.buf, "\r\n\r\n7\r\npartial\r\n");
    CHECK(c.buf && !strstr(c.buf, "0\r\n\r\n"));
    cli_close(&c);
    /* To HTTP/1.0 a cut body would look whole at EOF: the abort resets the connection. */
    cli_open(&c, v.port);
    cli_send(&c, "GET /abort HTTP/1.0\r\n\r\n");
    CHECK(wait_closed(&c, 5000));
    CHECK_MSG(c.err == ECONNRESET, "err %d, eof %d", c.err, c.eof);
    cli_close(&c);
    cli_open(&c, v.port);
    cli_send(&c, "GET /abort0 HTTP/1.1\r\n\r\n");
    CHECK(wait_closed(&c, 5000));
    CHECK(c.len == 0);
    cli_close(&c);
    spin_ms(NULL, 20);
    CHECK(g.gone_calls == gone);
    CHECK(wait_open(&v, 0, 5000));
    tlab_http_server_free(v.s);
}

static void test_drained(void) {
    srv v = srv_start(limits(5000, 0));
    cli c;
    resp r;
    /* A backlog, then the client reads: drained runs once and the handler ends the reply. */
    g.drained_calls = 0;
    g.flood_end_on_drain = 1;
    cli_open_rcvbuf(&c, v.port, 16384);
    cli_send(&c, "GET /flood HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(NULL, &g.flood, 5000)); /* the client does not read yet */
    CHECK(g.drained_calls == 0);
    CHECK(read_resp(&c, &r, 0, 20000));
    CHECK(g.drained_calls == 1);
    CHECK(g.flood == NULL);
    CHECK_MSG(r.body_len == g.flood_bytes + 3, "body %zu, written %zu", r.body_len, g.flood_bytes + 3);
    CHECK(r.body_len >= 3 && memcmp(r.body + r.body_len - 3, "END", 3) == 0);
    resp_free(&r);

    /* Registered with nothing pending and a backlog right after: runs when that backlog drains. */
    g.drained_calls = 0;
    cli_send(&c, "GET /drained_early HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(NULL, &g.flood, 5000));
    CHECK(read_resp(&c, &r, 0, 20000));
    CHECK(g.drained_calls == 1);
    CHECK(g.flood == NULL);
    CHECK_MSG(r.body_len == g.flood_bytes + 3, "body %zu, written %zu", r.body_len, g.flood_bytes + 3);
    resp_free(&r);

    /* Registered with nothing pending: runs from the loop, not inside the call. */
    g.drained_calls = 0;
    cli_send(&c, "GET /drained0 HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000));
    CHECK(g.drained_sync == 0);
    CHECK(g.drained_calls == 1);
    CHECK(strcmp(r.body, "late") == 0);
    resp_free(&r);
    cli_close(&c);
    tlab_http_server_free(v.s);
}

/* A whole reply the socket does not take at once, with a request pipelined behind it: the
 * second waits for the drain, then is answered. */
static void test_slow_reader(void) {
    srv v = srv_start(limits(5000, 0));
    cli c;
    resp r;
    cli_open_rcvbuf(&c, v.port, 16384);
    static const char two[] = "GET /big HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n";
    CHECK(send(c.fd, two, sizeof two - 1, 0) == (ssize_t)sizeof two - 1);
    spin_ms(NULL, 100); /* the client does not read yet */
    CHECK(read_resp(&c, &r, 0, 20000));
    CHECK(r.status == 200 && r.body_len == BIG_CHUNKS * sizeof flood_chunk && resp_has(&r, "Content-Length: 8388608"));
    CHECK(r.body_len && r.body[0] == 'f' && r.body[r.body_len - 1] == 'f');
    resp_free(&r);
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "GET /after ") == 0);
    resp_free(&r);
    /* HEAD of it: the length, no body. */
    cli_send(&c, "HEAD /big HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 1, 5000) && resp_has(&r, "Content-Length: 8388608"));
    resp_free(&r);
    cli_send(&c, "GET /after HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "GET /after ") == 0);
    resp_free(&r);
    cli_close(&c);
    tlab_http_server_free(v.s);
}

static void test_gone_orphans(void) {
    srv v = srv_start(limits(5000, 0));
    cli c;
    /* Watched: the client leaves, gone runs at once and the request is freed after it. */
    g.watch_hold = 1;
    g.gone_calls = 0;
    cli_open(&c, v.port);
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held, 5000));
    tlab_http_req *held = g.held;
    cli_close(&c);
    CHECK(wait_flag(NULL, &g.gone_calls, 5000));
    CHECK(g.gone_calls == 1 && g.gone_req == held && g.held == NULL);
    CHECK(wait_open(&v, 0, 5000));

    /* Unwatched: the request outlives its client and can still be answered (whole or streamed). */
    g.watch_hold = 0;
    cli_open(&c, v.port);
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held, 5000));
    cli_close(&c);
    cli_open(&c, v.port);
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held2, 5000));
    cli_close(&c);
    CHECK(wait_open(&v, 0, 5000));
    spin_ms(NULL, 20);
    CHECK(g.gone_calls == 1);
    CHECK(strcmp(tlab_http_req_peer(g.held, NULL), "127.0.0.1") == 0);
    CHECK(tlab_http_reply_backlog(g.held) == 0);
    tlab_http_reply(g.held, 200, "nobody", 6);
    tlab_http_reply_start(g.held2, 200);
    tlab_http_reply_chunk(g.held2, "x", 1);
    tlab_http_reply_end(g.held2);
    g.held = g.held2 = NULL;
    cli_open(&c, v.port);
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held, 5000));
    cli_close(&c);
    CHECK(wait_open(&v, 0, 5000));
    tlab_http_reply_abort(g.held);
    g.held = NULL;
    /* ... or registers drained afterwards: it runs once, from the loop. */
    cli_open(&c, v.port);
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held, 5000));
    cli_close(&c);
    CHECK(wait_open(&v, 0, 5000));
    spin_ms(NULL, 10);
    g.drained_calls = 0;
    tlab_http_reply_start(g.held, 200);
    tlab_http_reply_on_drained(g.held, on_drained0, NULL); /* ends the reply */
    CHECK(g.drained_calls == 0);
    g.held = NULL;
    CHECK(wait_flag(NULL, &g.drained_calls, 5000));
    /* ... and one answered before that activation ran: nothing runs. */
    cli_open(&c, v.port);
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held, 5000));
    cli_close(&c);
    CHECK(wait_open(&v, 0, 5000));
    spin_ms(NULL, 10);
    g.drained_calls = 0;
    tlab_http_reply_start(g.held, 200);
    tlab_http_reply_on_drained(g.held, on_drained0, NULL);
    tlab_http_reply_end(g.held);
    g.held = NULL;
    spin_ms(NULL, 20);
    CHECK(g.drained_calls == 0);

    /* Unwatched with a drained callback waiting: it runs when the client leaves (the backlog is
     * 0 from then on), and the reply it ends goes nowhere. */
    g.flood_nowatch = 1;
    g.flood_end_on_drain = 1;
    g.drained_calls = 0;
    cli_open_rcvbuf(&c, v.port, 16384);
    cli_send(&c, "GET /flood HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(NULL, &g.flood, 5000));
    cli_close(&c);
    CHECK(wait_flag(NULL, &g.drained_calls, 5000));
    CHECK(g.flood == NULL && g.gone_calls == 1);
    g.flood_nowatch = 0;

    /* tlab_http_server_free with requests outstanding: gone runs for the watched one; the other
     * is answered afterwards. */
    cli c2;
    g.watch_hold = 1;
    cli_open(&c, v.port);
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held, 5000));
    g.watch_hold = 0;
    cli_open(&c2, v.port);
    cli_send(&c2, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c2, &g.held2, 5000));
    tlab_http_req *unwatched = g.held2;
    tlab_http_server_free(v.s);
    CHECK(g.gone_calls == 2 && g.held == NULL);
    CHECK(g.held2 == unwatched);
    tlab_http_reply(unwatched, 200, "late", 4);
    g.held2 = NULL;
    CHECK(wait_closed(&c, 5000) && c.len == 0);
    CHECK(wait_closed(&c2, 5000) && c2.len == 0);
    cli_close(&c);
    cli_close(&c2);
}

static void test_timeouts(void) {
    srv v = srv_start(limits(200, 0));
    cli c;
    resp r;
    /* Idle: cut silently. */
    long t0 = now_ms();
    cli_open(&c, v.port);
    CHECK(wait_closed(&c, 3000));
    long took = now_ms() - t0;
    CHECK_MSG(took >= 150 && took < 2000, "idle cut after %ld ms", took);
    CHECK(c.len == 0);
    CHECK(counters(&v).timed_out == 1);
    cli_close(&c);

    /* Trickling headers (slowloris): the whole request must arrive in time. */
    t0 = now_ms();
    cli_open(&c, v.port);
    cli_send(&c, "GET / HTTP/1.1\r\n");
    while (!c.eof && !c.err && now_ms() - t0 < 3000) {
        cli_send(&c, "X-A: 1\r\n");
        spin_ms(&c, 40);
    }
    took = now_ms() - t0;
    CHECK_MSG((c.eof || c.err) && took < 2000, "trickle cut after %ld ms", took);
    CHECK(counters(&v).timed_out == 2);
    cli_close(&c);

    /* A request being served is not cut by time. */
    g.watch_hold = 1;
    g.gone_calls = 0;
    cli_open(&c, v.port);
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held, 5000));
    spin_ms(&c, 500);
    CHECK(!c.eof && g.held && g.gone_calls == 0);
    tlab_http_reply(g.held, 200, "slow", 4);
    g.held = NULL;
    CHECK(read_resp(&c, &r, 0, 5000) && strcmp(r.body, "slow") == 0);
    resp_free(&r);
    /* ... and the next request has timeout_ms again from that reply. */
    CHECK(wait_closed(&c, 3000));
    CHECK(counters(&v).timed_out == 3);
    cli_close(&c);

    /* A reply the client stops reading: cut, gone runs. */
    g.flood_end_on_drain = 0;
    g.drained_calls = 0;
    cli_open_rcvbuf(&c, v.port, 16384);
    CHECK(send(c.fd, "GET /flood HTTP/1.1\r\n\r\n", 23, 0) == 23);
    t0 = now_ms();
    while (!g.flood && now_ms() - t0 < 5000)
        turn(NULL);
    CHECK(g.flood != NULL);
    while (g.flood && now_ms() - t0 < 5000)
        turn(NULL); /* not reading */
    CHECK(g.flood == NULL);
    CHECK(g.gone_calls == 1 && g.drained_calls == 0);
    CHECK(counters(&v).timed_out == 4);
    cli_close(&c);
    CHECK(wait_open(&v, 0, 5000));

    /* After an error reply the server lingers for a client that neither reads on nor closes,
     * up to 2 s. */
    cli_open(&c, v.port);
    cli_send(&c, "BAD\r\n\r\n");
    CHECK(wait_closed(&c, 5000) && c.eof);
    t0 = now_ms();
    CHECK(counters(&v).open == 1);
    CHECK(wait_open(&v, 0, 5000));
    took = now_ms() - t0;
    CHECK_MSG(took > 1000, "lingered %ld ms", took);
    CHECK(counters(&v).timed_out == 4);
    cli_close(&c);
    tlab_http_server_free(v.s);
}

/* Out of file descriptors: accepting pauses for 100 ms, then the waiting client is served.
 * Not under valgrind: it emulates RLIMIT_NOFILE by closing the fd accept4 returned, so the
 * waiting connection is lost rather than left queued. */
static void test_emfile(void) {
    struct rlimit old, low;
    if (RUNNING_ON_VALGRIND) {
        printf("test_emfile: skipped under valgrind\n");
        return;
    }
    if (getrlimit(RLIMIT_NOFILE, &old))
        return;
    srv v = srv_start(limits(5000, 0));
    int probe = dup(0);
    close(probe);
    low = old;
    low.rlim_cur = (rlim_t)probe + 8;
    if (setrlimit(RLIMIT_NOFILE, &low)) {
        printf("test_emfile: setrlimit refused, skipped\n");
        tlab_http_server_free(v.s);
        return;
    }
    int fill[16], nf = 0, d;
    while (nf < 16 && (d = dup(0)) >= 0)
        fill[nf++] = d;
    CHECK(nf >= 2 && nf < 16);
    close(fill[--nf]); /* room for the client's socket only */
    cli c;
    resp r;
    cli_open(&c, v.port);
    cli_send(&c, "GET /fd HTTP/1.1\r\n\r\n");
    spin_ms(&c, 30);
    CHECK(counters(&v).open == 0 && c.len == 0);
    while (nf)
        close(fill[--nf]);
    setrlimit(RLIMIT_NOFILE, &old);
    CHECK(read_resp(&c, &r, 0, 5000) && r.status == 200 && strcmp(r.body, "GET /fd ") == 0);
    resp_free(&r);
    cli_close(&c);
    tlab_http_server_free(v.s);
}

static void test_max_connections(void) {
    srv v = srv_start(limits(5000, 2));
    cli a, b, c;
    resp r;
    cli_open(&a, v.port);
    cli_open(&b, v.port);
    CHECK(wait_open(&v, 2, 5000));
    cli_open(&c, v.port);
    cli_send(&c, "GET / HTTP/1.1\r\n\r\n");
    CHECK(wait_closed(&c, 5000));
    CHECK(read_resp(&c, &r, 0, 100));
    CHECK(r.status == 503);
    CHECK(resp_has(&r, "Retry-After: 1") && resp_has(&r, "Connection: close") &&
          resp_has(&r, "Content-Type: application/json"));
    CHECK_STR_CONTAINS(r.body, "max_client_connections is 2");
    CHECK_STR_CONTAINS(r.body, "\"type\":\"service_unavailable\"");
    resp_free(&r);
    cli_close(&c);
    tlab_http_counters k = counters(&v);
    CHECK(k.rejected == 1 && k.open == 2);
    cli_close(&a);
    CHECK(wait_open(&v, 1, 5000));
    cli_open(&c, v.port);
    cli_send(&c, "GET /fine HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && r.status == 200);
    resp_free(&r);
    cli_close(&c);
    cli_close(&b);
    tlab_http_server_free(v.s);
}

int main(void) {
    memset(flood_chunk, 'f', sizeof flood_chunk);
    base = event_base_new();
    if (!base)
        return 2;
    test_get_post();
    test_keepalive_pipelining();
    test_bodies_expect();
    test_refusals();
    test_streams();
    test_drained();
    test_slow_reader();
    test_gone_orphans();
    test_timeouts();
    test_max_connections();
    test_emfile();
    event_base_free(base);
    return tlab_test_finish();
}
