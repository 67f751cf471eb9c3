/*
 * http_front_harness.c - the server, handler and raw client sockets that the test_http_front_*.c
 * binaries share; see http_front_harness.h.
 */
#include "http_front_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

struct event_base *base;

long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- the server side ---- */

seen g;

static void on_gone(tlab__http_req *req, void *arg) {
    g.gone_calls++;
    g.gone_req = req;
    if (req == g.held)
        g.held = NULL;
    if (req == g.held2)
        g.held2 = NULL;
    if (req == g.flood)
        g.flood = NULL;
}

static void on_flood_drained(tlab__http_req *req, void *arg) {
    g.drained_calls++;
    if (g.flood_end_on_drain) {
        tlab__http_reply_chunk(req, "END", 3);
        tlab__http_reply_end(req);
        g.flood = NULL;
    }
}

void on_drained0(tlab__http_req *req, void *arg) {
    g.drained_calls++;
    tlab__http_reply_chunk(req, "late", 4);
    tlab__http_reply_end(req);
}

char flood_chunk[64 * 1024];

static void handler(tlab__http_req *req, void *arg) {
    const char *path = tlab__http_req_path(req);
    g.calls++;
    snprintf(g.method, sizeof g.method, "%s", tlab__http_req_method_name(req));
    snprintf(g.path, sizeof g.path, "%s", path);
    const char *x = tlab__http_req_header(req, "x-TEST");
    snprintf(g.xtest, sizeof g.xtest, "%s", x ? x : "(none)");
    const char *h = tlab__http_req_header(req, "HOST");
    snprintf(g.host, sizeof g.host, "%s", h ? h : "(none)");
    snprintf(g.peer, sizeof g.peer, "%s", tlab__http_req_peer(req, &g.peer_port));
    const char *names[3] = {"X-Header-00", "x-header-29", "X-Empty"};
    for (int i = 0; i < 3; i++) {
        const char *v = tlab__http_req_header(req, names[i]);
        snprintf(g.extra[i], sizeof g.extra[i], "%s", v ? v : "(none)");
    }
    const char *t = tlab__http_req_header(req, "X-Trailer");
    g.trailer_seen = t != NULL;

    if (strcmp(path, "/hold") == 0) {
        if (g.held)
            g.held2 = req;
        else
            g.held = req;
        if (g.watch_hold)
            tlab__http_req_watch(req, on_gone, NULL);
        return;
    }
    if (strcmp(path, "/take") == 0) {
        size_t len, after_len = 99;
        char *b = tlab__http_req_take_body(req, &len);
        const char *after = tlab__http_req_body(req, &after_len);
        g.take_ok = b && after && after[0] == '\0' && after_len == 0;
        char out[2100];
        int n = snprintf(out, sizeof out, "took %zu:%s", len, b ? b : "");
        free(b);
        tlab__http_reply(req, 200, out, (size_t)n);
        return;
    }
    if (strcmp(path, "/stream") == 0) {
        struct evbuffer *eb = evbuffer_new();
        evbuffer_add(eb, "world", 5);
        tlab__http_reply_start(req, 200);
        g.add_after_start = tlab__http_add_header(req, "X-Late", "1");
        tlab__http_reply_chunk(req, "hello", 5);
        tlab__http_reply_chunk(req, "", 0);
        tlab__http_reply_chunk_buffer(req, eb);
        CHECK(evbuffer_get_length(eb) == 0);
        evbuffer_free(eb);
        tlab__http_reply_end(req);
        return;
    }
    if (strcmp(path, "/abort") == 0) {
        tlab__http_req_watch(req, on_gone, NULL);
        tlab__http_reply_start(req, 200);
        tlab__http_reply_chunk(req, "partial", 7);
        tlab__http_reply_abort(req);
        return;
    }
    if (strcmp(path, "/abort0") == 0) {
        tlab__http_req_watch(req, on_gone, NULL);
        tlab__http_reply_abort(req);
        return;
    }
    if (strcmp(path, "/close") == 0) {
        tlab__http_add_header(req, "Connection", "close");
        tlab__http_reply(req, 200, "bye", 3);
        return;
    }
    if (strcmp(path, "/flood") == 0) {
        /* Write until the socket stops taking it, then wait for the drain. */
        if (!g.flood_nowatch)
            tlab__http_req_watch(req, on_gone, NULL);
        tlab__http_reply_start(req, 200);
        g.flood = req;
        g.flood_bytes = 0;
        /* 8 MB: more than loopback's socket buffers take, so a backlog stays after the write
         * at the end of this turn (a streamed reply's output waits for it). */
        for (int i = 0; i < BIG_CHUNKS; i++) {
            tlab__http_reply_chunk(req, flood_chunk, sizeof flood_chunk);
            g.flood_bytes += sizeof flood_chunk;
        }
        CHECK(tlab__http_reply_backlog(req) > 0);
        tlab__http_reply_on_drained(req, on_flood_drained, NULL);
        return;
    }
    if (strcmp(path, "/big") == 0) { /* a whole reply larger than the socket buffers, from an evbuffer */
        struct evbuffer *eb = evbuffer_new();
        for (int i = 0; i < BIG_CHUNKS; i++) /* 8 MB: more than loopback's socket buffers take */
            evbuffer_add(eb, flood_chunk, sizeof flood_chunk);
        tlab__http_reply_buffer(req, 200, eb);
        CHECK(evbuffer_get_length(eb) == 0);
        evbuffer_free(eb);
        return;
    }
    if (strcmp(path, "/startonly") == 0) {
        tlab__http_reply_start(req, 200);
        g.started = req;
        return;
    }
    if (strcmp(path, "/drained_early") == 0) {
        /* drained registered with nothing pending, then a backlog in the same turn: it must run
         * once the backlog drains (the write event added while its activation was pending). */
        tlab__http_reply_start(req, 200);
        tlab__http_reply_on_drained(req, on_flood_drained, NULL);
        g.flood = req;
        g.flood_bytes = 0;
        /* 8 MB: more than loopback's socket buffers take, so a backlog stays after the write
         * at the end of this turn (a streamed reply's output waits for it). */
        for (int i = 0; i < BIG_CHUNKS; i++) {
            tlab__http_reply_chunk(req, flood_chunk, sizeof flood_chunk);
            g.flood_bytes += sizeof flood_chunk;
        }
        return;
    }
    if (strcmp(path, "/drained0") == 0) {
        tlab__http_reply_start(req, 200);
        int before = g.drained_calls;
        tlab__http_reply_on_drained(req, on_drained0, NULL);
        g.drained_sync = g.drained_calls != before;
        return;
    }
    /* Anything else echoes "<METHOD> <path> <body>", with a reply header or two. */
    size_t blen;
    const char *body = tlab__http_req_body(req, &blen);
    g.body_len = blen;
    snprintf(g.body, sizeof g.body, "%s", body);
    g.reply_header_ok = tlab__http_add_header(req, "X-Reply", "v1") == 0 &&
                        tlab__http_add_header(req, "Content-Type", "text/plain") == 0 &&
                        tlab__http_add_header(req, "X-Bad", "a\r\nb") == -1 &&
                        tlab__http_add_header(req, "X Bad", "v") == -1 && tlab__http_reply_header(req, "x-reply") &&
                        strcmp(tlab__http_reply_header(req, "x-reply"), "v1") == 0 &&
                        tlab__http_reply_header(req, "X-None") == NULL;
    char out[2300];
    int n = snprintf(out, sizeof out, "%s %s %s", tlab__http_req_method_name(req), path, body);
    tlab__http_reply(req, 200, out, (size_t)n);
}

tlab__http_limits limits(long timeout_ms, long max_conns) {
    tlab__http_limits l = {.max_header_bytes = 4096, .max_body_bytes = 1024, .timeout_ms = timeout_ms, .max_connections = max_conns};
    return l;
}

srv srv_start(tlab__http_limits l) {
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
    v.s = tlab__http_server_new(base, fd, &l, handler, NULL);
    if (!v.s) {
        fprintf(stderr, "tlab__http_server_new failed\n");
        exit(2);
    }
    return v;
}

tlab__http_counters counters(const srv *v) {
    tlab__http_counters c;
    tlab__http_server_counters(v->s, &c);
    return c;
}

/* ---- the client side ---- */

void cli_open_rcvbuf(cli *c, int port, int rcvbuf) {
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

void cli_open(cli *c, int port) {
    cli_open_rcvbuf(c, port, 0);
}

void cli_close(cli *c) {
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

uint16_t cli_port(const cli *c) {
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
void turn(cli *c) {
    event_base_loop(base, EVLOOP_NONBLOCK);
    cli_pump(c);
    usleep(300);
}

void spin_ms(cli *c, long ms) {
    long end = now_ms() + ms;
    while (now_ms() < end)
        turn(c);
}

void cli_send_n(cli *c, const char *data, size_t len) {
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

void cli_send(cli *c, const char *s) {
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

void resp_free(resp *r) {
    free(r->raw);
    free(r->body);
    memset(r, 0, sizeof *r);
}

int resp_has(const resp *r, const char *header_line) {
    char want[256];
    snprintf(want, sizeof want, "\r\n%s\r\n", header_line);
    char *head = strndup(r->raw ? r->raw : "", r->head_len);
    int found = strcasestr(head, want) != NULL;
    free(head);
    return found;
}

/* Waits (up to ms) for a whole response and takes it off the client's buffer. 0 on time-out. */
int read_resp(cli *c, resp *r, int head_only, long ms) {
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
int wait_closed(cli *c, long ms) {
    long end = now_ms() + ms;
    while (!c->eof && !c->err && now_ms() < end)
        turn(c);
    return c->eof || c->err;
}

int wait_flag(cli *c, const int *flag, long ms) {
    long end = now_ms() + ms;
    while (!*flag && now_ms() < end)
        turn(c);
    return *flag;
}

int wait_ptr(cli *c, tlab__http_req *const *p, long ms) {
    long end = now_ms() + ms;
    while (!*p && now_ms() < end)
        turn(c);
    return *p != NULL;
}

int wait_open(const srv *v, size_t open, long ms) {
    long end = now_ms() + ms;
    while (counters(v).open != open && now_ms() < end)
        turn(NULL);
    return counters(v).open == open;
}

/* ---- a binary's start and end ---- */

void hft_setup(void) {
    memset(flood_chunk, 'f', sizeof flood_chunk);
    base = event_base_new();
    if (!base)
        exit(2);
}

void hft_teardown(int *passed, int *failed) {
    event_base_free(base);
    base = NULL;
    *passed = tlab_test_passed;
    *failed = tlab_test_failed;
}
