/*
 * test_upstream.c - the upstream client of upstream.h against a scripted HTTP/1.1 server on the
 * same event_base (127.0.0.1, port 0; upstream_script_server.c). The server reads a request head
 * and its Content-Length body, then answers by the request path (see srv_handle). Each case runs the loop until its
 * callbacks are done, bounded by a watchdog so that no case can hang.
 *
 * Plain http:// to 127.0.0.1 goes through the gateway's own client (upstream_http.c); the last
 * case checks that https:// goes to libcurl (upstream_curl.c). Cases: Content-Length and reuse
 * (and the request on the wire), large request bodies, an answer before the body is all sent,
 * chunked SSE, EOF-delimited bodies, garbled and cut responses, refusal and its retry, idle
 * connections closed by the server, retries after a held-then-dropped request, first-byte and
 * total timeouts, abort and pause from inside callbacks, 100 Continue, bytes after a response,
 * idle expiry, https to libcurl.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config/config.h"
#include "base/clock.h"
#include "tlab_test.h"
#include "upstream/upstream.h"
#include "upstream/upstream_backend.h"
#include "upstream_script_server.h"

struct event_base *base;
static tlab__config cfg;
static tlab__upstream *up;

/* ---- transfers ---- */

typedef struct xres {
    tlab__xfer *x;
    int headers_calls, status;
    int has_ctype;
    char ctype[128];
    char *body;
    size_t body_len, body_cap;
    int data_calls;
    int done;
    tlab__xfer_result result;
    char detail[512];
    int calls_after_end; /* any callback after on_done or tlab__xfer_abort */
    int aborted;
    int abort_on_data;
    int abort_on_headers;
    struct xres *chain; /* started from inside on_done */
    int pause_on_data;    /* pause at the first on_data, resume from a timer */
    int paused_now;
    size_t bytes_while_paused, max_while_paused, this_pause;
    int pauses;
    struct event *resume;
    uint64_t t_start, t_done;
} xres;

static const tlab__xfer_callbacks cbs;
static int in_start;          /* inside tlab__upstream_start */
static int done_inside_start; /* on_done ran from inside it */

static void on_resume(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    xres *r = arg;
    r->paused_now = 0;
    tlab__xfer_pause(r->x, 0);
}

static void cb_headers(void *arg, int status, const char *content_type) {
    xres *r = arg;
    if (r->done || r->aborted)
        r->calls_after_end++;
    r->headers_calls++;
    r->status = status;
    r->has_ctype = content_type != NULL;
    snprintf(r->ctype, sizeof r->ctype, "%s", content_type ? content_type : "");
    if (r->abort_on_headers && !r->aborted) {
        r->aborted = 1;
        tlab__xfer_abort(r->x);
    }
}

static void cb_data(void *arg, const char *data, size_t len) {
    xres *r = arg;
    if (r->done || r->aborted)
        r->calls_after_end++;
    r->data_calls++;
    if (r->paused_now) {
        r->bytes_while_paused += len;
        r->this_pause += len;
        if (r->this_pause > r->max_while_paused)
            r->max_while_paused = r->this_pause;
    }
    if (r->body_len + len + 1 > r->body_cap) {
        r->body_cap = (r->body_len + len + 1) * 2;
        r->body = realloc(r->body, r->body_cap);
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    if (r->abort_on_data && !r->aborted) {
        r->aborted = 1;
        tlab__xfer_abort(r->x);
        return;
    }
    if (r->pause_on_data && !r->paused_now && r->pauses < 3) {
        r->pauses++;
        r->paused_now = 1;
        r->this_pause = 0;
        tlab__xfer_pause(r->x, 1);
        if (!r->resume)
            r->resume = evtimer_new(base, on_resume, r);
        struct timeval tv = {0, 40000};
        evtimer_add(r->resume, &tv);
    }
}

static void cb_done(void *arg, tlab__xfer_result result, const char *detail) {
    xres *r = arg;
    if (r->done || r->aborted)
        r->calls_after_end++;
    if (in_start)
        done_inside_start++;
    r->done = 1;
    r->result = result;
    snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "(null)");
    r->t_done = tlab__now_us();
    if (r->chain)
        r->chain->x = tlab__upstream_start(up, "GET", "/json", NULL, 0, NULL, 0, &cbs, r->chain);
}

static const tlab__xfer_callbacks cbs = {cb_headers, cb_data, cb_done};

static void xres_clear(xres *r) {
    free(r->body);
    if (r->resume)
        event_free(r->resume);
    memset(r, 0, sizeof *r);
}

static tlab__xfer *start(xres *r, const char *method, const char *path, const char *body, size_t body_len,
                        const char *const *headers, long timeout_ms) {
    r->t_start = tlab__now_us();
    in_start = 1;
    r->x = tlab__upstream_start(up, method, path, body, body_len, headers, timeout_ms, &cbs, r);
    in_start = 0;
    CHECK_MSG(r->x != NULL, "start %s", path);
    return r->x;
}

/* GET `path` and run until on_done. */
static void get(xres *r, const char *path) {
    start(r, "GET", path, NULL, 0, NULL, 0);
    CHECK_MSG(run_until(&r->done), "%s did not end within the watchdog", path);
}

static long elapsed_ms(const xres *r) {
    return (long)((r->t_done - r->t_start) / 1000);
}

static const tlab__upstream_stats *stats(void) {
    return tlab__upstream_get_stats(up);
}

static const char *transport = "own client"; /* which transport the shared cases run on */
/* The retry counter and connections_opened are the own client's exact figures. libcurl heals a
 * pooled connection that died under a request itself ("Connection died, retrying a fresh
 * connect") before our policy sees a failure, and counts only connects that succeeded, so on
 * libcurl the shared cases check outcomes, not those counters. */
static int on_curl;
#define CHECK_COUNTER(cond) CHECK(on_curl || (cond))
#define CHECK_RESULT(r, want)                                                                                              \
    CHECK_MSG((r)->result == (want), "%s: result %d, want %d (%s)", transport, (int)(r)->result, (int)(want), (r)->detail)

/* ---- cases ---- */

/* 1. Content-Length JSON; the request on the wire; a second request reuses the connection. */
static void case_json_and_reuse(void) {
    xres r = {0};
    const char *hdrs[] = {"Content-Type: application/json", "X-Tlab-Test: yes", NULL};
    const char *body = "{\"model\":\"m\",\"prompt\":\"hi\",\"max_tokens\":5}";
    uint64_t opened = stats()->connections_opened, transfers = stats()->transfers;
    start(&r, "POST", "/v1/completions", body, strlen(body), hdrs, 0);
    CHECK(stats()->active == 1);
    CHECK(run_until(&r.done));
    CHECK_RESULT(&r, TLAB_XFER_OK);
    CHECK(strcmp(r.detail, "") == 0);
    CHECK(r.headers_calls == 1);
    CHECK(r.status == 200);
    CHECK(strcmp(r.ctype, "application/json") == 0);
    CHECK(r.body && strcmp(r.body, JSON_BODY) == 0);
    CHECK(r.calls_after_end == 0);
    CHECK(done_inside_start == 0);

    char want_head[256];
    snprintf(want_head, sizeof want_head, "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", srv.port);
    CHECK_MSG(srv.last_req && strncmp(srv.last_req, want_head, strlen(want_head)) == 0, "request: %s", srv.last_req);
    CHECK_STR_CONTAINS(srv.last_req, "\r\nContent-Type: application/json\r\n");
    CHECK_STR_CONTAINS(srv.last_req, "\r\nX-Tlab-Test: yes\r\n");
    char cl[64];
    snprintf(cl, sizeof cl, "\r\nContent-Length: %zu\r\n\r\n", strlen(body));
    CHECK_STR_CONTAINS(srv.last_req, cl);
    const char *at = srv.last_req ? strstr(srv.last_req, "\r\n\r\n") : NULL;
    CHECK_MSG(at && strcmp(at + 4, body) == 0, "request body: %s", at ? at + 4 : "(none)");

    xres r2 = {0};
    start(&r2, "POST", "/v1/completions", body, strlen(body), hdrs, 0);
    CHECK(run_until(&r2.done));
    CHECK_RESULT(&r2, TLAB_XFER_OK);
    CHECK(r2.body && strcmp(r2.body, JSON_BODY) == 0);
    CHECK_MSG(stats()->connections_opened == opened + 1, "connections opened %llu, want %llu",
              (unsigned long long)stats()->connections_opened, (unsigned long long)opened + 1);
    CHECK(stats()->transfers == transfers + 2);
    CHECK(stats()->retries == 0);
    CHECK(stats()->active == 0);

    /* a GET carries no Content-Length and no body */
    xres r3 = {0};
    get(&r3, "/json");
    CHECK_RESULT(&r3, TLAB_XFER_OK);
    CHECK(srv.last_req && strstr(srv.last_req, "Content-Length") == NULL);
    CHECK(srv.last_req && strncmp(srv.last_req, "GET /json HTTP/1.1\r\n", 20) == 0);
    CHECK_COUNTER(stats()->connections_opened == opened + 1);
    xres_clear(&r);
    xres_clear(&r2);
    xres_clear(&r3);
}

/* 1b. A request body larger than the socket buffers goes out whole (partial sends). */
static void case_large_request(void) {
    size_t n = 8u << 20;
    char *body = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        body[i] = pattern_byte(i);
    body[n] = '\0';
    xres r = {0};
    start(&r, "POST", "/json", body, n, NULL, 0);
    CHECK(run_until(&r.done));
    CHECK_RESULT(&r, TLAB_XFER_OK);
    const char *at = srv.last_req ? strstr(srv.last_req, "\r\n\r\n") : NULL;
    CHECK(at && srv.last_req_len - (size_t)(at + 4 - srv.last_req) == n && memcmp(at + 4, body, n) == 0);
    CHECK(stats()->active == 0);
    free(body);
    xres_clear(&r);
}

/* 1c. The worker answers before the request body is all sent (a 413 from the head): the rest of
 * the body never goes out, so the connection must not carry the next request. */
static void case_answer_before_body_sent(void) {
    size_t n = 16u << 20;
    char *body = calloc(1, n);
    memset(body, 'x', n);
    xres r = {0};
    start(&r, "POST", "/early", body, n, NULL, 0);
    CHECK(run_until(&r.done));
    CHECK_RESULT(&r, TLAB_XFER_OK);
    CHECK(r.status == 413);
    free(body);
    xres r2 = {0};
    start(&r2, "GET", "/json", NULL, 0, NULL, 2000);
    CHECK(run_until(&r2.done));
    CHECK_RESULT(&r2, TLAB_XFER_OK);
    CHECK(r2.body && strcmp(r2.body, JSON_BODY) == 0);
    CHECK(stats()->active == 0);
    xres_clear(&r);
    xres_clear(&r2);
}

/* 2. Chunked text/event-stream, chunks in separate writes: whole and in order; then reused. */
static void case_chunked(void) {
    xres r = {0};
    uint64_t opened = stats()->connections_opened;
    get(&r, "/sse");
    CHECK_RESULT(&r, TLAB_XFER_OK);
    CHECK(r.status == 200);
    CHECK(strcmp(r.ctype, "text/event-stream") == 0);
    CHECK_MSG(r.body && strcmp(r.body, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n") == 0, "body: %s", r.body);
    CHECK_MSG(r.data_calls >= 4, "%d on_data calls", r.data_calls);
    CHECK(r.calls_after_end == 0);
    xres r2 = {0};
    get(&r2, "/json");
    CHECK_RESULT(&r2, TLAB_XFER_OK);
    CHECK(stats()->connections_opened == opened); /* both on the connection case 1 left idle */
    CHECK(stats()->active == 0);
    xres_clear(&r);
    xres_clear(&r2);
}

/* 3. A body delimited by EOF (Connection: close, no length): OK, and the connection is gone. */
static void case_eof_body(void) {
    xres r = {0};
    uint64_t opened = stats()->connections_opened;
    get(&r, "/eof");
    CHECK_RESULT(&r, TLAB_XFER_OK);
    CHECK(r.status == 200);
    CHECK(strcmp(r.ctype, "text/plain") == 0);
    CHECK(r.body && strcmp(r.body, "until-eof-0123456789") == 0);
    xres r2 = {0};
    get(&r2, "/json");
    CHECK_RESULT(&r2, TLAB_XFER_OK);
    CHECK_MSG(stats()->connections_opened == opened + 1, "opened %llu, before %llu",
              (unsigned long long)stats()->connections_opened, (unsigned long long)opened);
    CHECK(stats()->retries == 0);
    CHECK(stats()->active == 0);
    xres_clear(&r);
    xres_clear(&r2);
}

/* 3b. A HEAD response has no body whatever its Content-Length says; the connection carries on. */
static void case_head(void) {
    xres r = {0}, r2 = {0};
    uint64_t opened = stats()->connections_opened;
    start(&r, "HEAD", "/head", NULL, 0, NULL, 0);
    CHECK_MSG(run_until(&r.done), "HEAD did not end within the watchdog");
    CHECK_RESULT(&r, TLAB_XFER_OK);
    CHECK(r.status == 200);
    CHECK(r.body_len == 0);
    get(&r2, "/json");
    CHECK_RESULT(&r2, TLAB_XFER_OK);
    CHECK_MSG(stats()->connections_opened <= opened + 1, "HEAD's connection was not reused");
    xres_clear(&r);
    xres_clear(&r2);
}

/* 4. Garbage instead of HTTP; a response cut mid-body. */
static void case_broken(void) {
    xres r = {0};
    uint64_t retries = stats()->retries;
    get(&r, "/garbage");
    CHECK_RESULT(&r, TLAB_XFER_BROKEN);
    CHECK_STR_CONTAINS(r.detail, "garbled");
    CHECK(r.headers_calls == 0);
    xres r2 = {0};
    get(&r2, "/cut");
    CHECK_RESULT(&r2, TLAB_XFER_BROKEN);
    CHECK(r2.headers_calls == 1 && r2.status == 200);
    CHECK(r2.body && strcmp(r2.body, "0123456789") == 0);
    CHECK_MSG(strlen(r2.detail) > 0, "no detail");
    CHECK_COUNTER(stats()->retries == retries); /* bytes had arrived: no retry */
    CHECK(stats()->active == 0);
    xres_clear(&r);
    xres_clear(&r2);
}

/* 5. Nothing listening: UNREACHABLE after one retry, never from inside tlab__upstream_start. */
static void case_refused(void) {
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", closed_port());
    xres r = {0};
    uint64_t retries = stats()->retries, opened = stats()->connections_opened;
    done_inside_start = 0;
    start(&r, "POST", url, "{}", 2, NULL, 0);
    CHECK(!r.done);
    CHECK(run_until(&r.done));
    CHECK(done_inside_start == 0);
    CHECK_RESULT(&r, TLAB_XFER_UNREACHABLE);
    CHECK_STR_CONTAINS(r.detail, "not reachable");
    CHECK(r.headers_calls == 0 && r.data_calls == 0);
    CHECK_COUNTER(stats()->retries == retries + 1);
    CHECK_COUNTER(stats()->connections_opened == opened + 2);
    CHECK(stats()->active == 0);
    xres_clear(&r);
}

/* 6. The server closes a kept-alive connection while it is idle. */
static void case_idle_closed_by_server(void) {
    xres r = {0};
    get(&r, "/json");
    CHECK_RESULT(&r, TLAB_XFER_OK);
    /* (a) the close is seen by the loop before the next request: not reused, no retry */
    uint64_t opened = stats()->connections_opened, retries = stats()->retries;
    srv_close_all();
    run_for(50);
    xres r2 = {0};
    get(&r2, "/json");
    CHECK_RESULT(&r2, TLAB_XFER_OK);
    CHECK_COUNTER(stats()->connections_opened == opened + 1);
    CHECK_COUNTER(stats()->retries == retries);
    /* (b) the close races the next request (no loop turn in between): the request goes out on the
     * dead connection and is retried on a fresh one */
    opened = stats()->connections_opened;
    srv_close_all();
    xres r3 = {0};
    get(&r3, "/json");
    CHECK_RESULT(&r3, TLAB_XFER_OK);
    CHECK(r3.body && strcmp(r3.body, JSON_BODY) == 0);
    CHECK(r3.headers_calls == 1);
    CHECK_COUNTER(stats()->connections_opened == opened + 1);
    CHECK_COUNTER(stats()->retries == retries + 1);
    CHECK(stats()->active == 0);
    xres_clear(&r);
    xres_clear(&r2);
    xres_clear(&r3);
}

/* 6b. The worker holds the request longer than connect_timeout_ms, then drops the connection
 * without a byte: the retry gets a fresh connect budget and succeeds. */
static void case_retry_after_slow_drop(void) {
    long saved = cfg.connect_timeout_ms;
    cfg.connect_timeout_ms = 100;
    xres r = {0};
    uint64_t retries = stats()->retries;
    get(&r, "/slow-close");
    CHECK_RESULT(&r, TLAB_XFER_OK);
    CHECK_COUNTER(stats()->retries == retries + 1);
    CHECK(stats()->active == 0);
    cfg.connect_timeout_ms = saved;
    xres_clear(&r);
}

/* 6c. As 6b, but the retry's connect cannot complete (the listener's accept queue is full, so its
 * SYN is dropped, as with a remote worker that is slow to answer): CONNECT_TIMEOUT, and only after
 * a whole connect_timeout_ms of its own, not at once because the first attempt used it up. */
static void on_accept_raw(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    int *cfd = arg;
    if (*cfd < 0)
        *cfd = accept(fd, NULL, NULL);
}

static void case_retry_connect_budget(void) {
    long saved_connect = cfg.connect_timeout_ms;
    cfg.connect_timeout_ms = 200;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(lfd, 0) != 0) {
        perror("listen");
        exit(2);
    }
    getsockname(lfd, (struct sockaddr *)&sin, &len);
    int cfd = -1;
    struct event *acc = event_new(base, lfd, EV_READ | EV_PERSIST, on_accept_raw, &cfd);
    event_add(acc, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", ntohs(sin.sin_port));
    xres r = {0};
    uint64_t retries = stats()->retries;
    start(&r, "POST", url, "{}", 2, NULL, 0);
    for (int i = 0; i < 100 && cfd < 0 && !r.done; i++)
        run_for(10);
    CHECK_MSG(cfd >= 0, "the first attempt was not accepted");
    event_del(acc);
    run_for(300); /* the request is held past connect_timeout_ms */
    CHECK(!r.done);
    /* fill the accept queue: the retry's SYN is dropped */
    int dummy[3];
    for (int i = 0; i < 3; i++) {
        dummy[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(dummy[i], (struct sockaddr *)&sin, sizeof sin);
    }
    run_for(20);
    uint64_t t_drop = tlab__now_us();
    if (cfd >= 0)
        close(cfd); /* unread request: a reset, before any response byte */
    CHECK(run_until(&r.done));
    long after_drop = (long)((r.t_done - t_drop) / 1000);
    CHECK_RESULT(&r, TLAB_XFER_CONNECT_TIMEOUT);
    CHECK_COUNTER(stats()->retries == retries + 1);
    CHECK_MSG(after_drop >= 150, "the retry's connect timed out %ld ms after it began (connect_timeout_ms 200)", after_drop);
    CHECK(stats()->active == 0);
    for (int i = 0; i < 3; i++)
        close(dummy[i]);
    event_free(acc);
    close(lfd);
    cfg.connect_timeout_ms = saved_connect;
    xres_clear(&r);
}

/* 7. First-byte and total timeouts. */
static void case_timeouts(void) {
    long saved_fb = cfg.first_byte_timeout_ms, saved_total = cfg.total_timeout_ms;
    cfg.first_byte_timeout_ms = 200;
    xres r = {0};
    get(&r, "/silent");
    CHECK_RESULT(&r, TLAB_XFER_FIRST_BYTE_TIMEOUT);
    CHECK_MSG(elapsed_ms(&r) >= 195 && elapsed_ms(&r) < 200 + 400, "first-byte timeout after %ld ms", elapsed_ms(&r));
    CHECK_STR_CONTAINS(r.detail, "first_byte_timeout_ms");
    CHECK(r.headers_calls == 0);
    cfg.first_byte_timeout_ms = saved_fb;

    cfg.total_timeout_ms = 300;
    xres r2 = {0};
    get(&r2, "/endless");
    CHECK_RESULT(&r2, TLAB_XFER_TOTAL_TIMEOUT);
    CHECK_MSG(elapsed_ms(&r2) >= 295 && elapsed_ms(&r2) < 300 + 400, "total timeout after %ld ms", elapsed_ms(&r2));
    CHECK_STR_CONTAINS(r2.detail, "total_timeout_ms");
    CHECK(r2.headers_calls == 1 && r2.body && strcmp(r2.body, "hello") == 0);
    cfg.total_timeout_ms = saved_total;

    /* the per-transfer timeout of health checks */
    xres r3 = {0};
    start(&r3, "GET", "/silent", NULL, 0, NULL, 150);
    CHECK(run_until(&r3.done));
    CHECK_RESULT(&r3, TLAB_XFER_FIRST_BYTE_TIMEOUT);
    CHECK_MSG(elapsed_ms(&r3) >= 145 && elapsed_ms(&r3) < 150 + 400, "health-check timeout after %ld ms", elapsed_ms(&r3));
    CHECK(stats()->active == 0);
    xres_clear(&r);
    xres_clear(&r2);
    xres_clear(&r3);
}

/* 8. Abort from inside on_data: no callback afterwards, and the server sees the close. */
static void case_abort_in_data(void) {
    xres r = {0};
    r.abort_on_data = 1;
    srv.stream_eof = 0;
    uint64_t aborted = stats()->aborted;
    start(&r, "GET", "/stream", NULL, 0, NULL, 0);
    CHECK_MSG(run_until(&srv.stream_eof), "the server never saw the connection close");
    run_for(60); /* a few more chunks would have come */
    CHECK(r.aborted);
    CHECK(!r.done);
    CHECK(r.data_calls == 1);
    CHECK(r.calls_after_end == 0);
    CHECK(stats()->aborted == aborted + 1);
    CHECK(stats()->active == 0);
    xres_clear(&r);

    /* abort from inside on_headers, the whole response in the same read: nothing more, and the
     * connection is closed rather than pooled */
    xres r2 = {0};
    r2.abort_on_headers = 1;
    start(&r2, "GET", "/json", NULL, 0, NULL, 0);
    run_for(100);
    CHECK(r2.aborted && r2.headers_calls == 1 && r2.data_calls == 0 && !r2.done);
    CHECK(r2.calls_after_end == 0);
    CHECK(stats()->active == 0);
    uint64_t opened = stats()->connections_opened;
    xres r3 = {0};
    get(&r3, "/json");
    CHECK_RESULT(&r3, TLAB_XFER_OK);
    CHECK_COUNTER(stats()->connections_opened == opened + 1);
    xres_clear(&r2);
    xres_clear(&r3);

    /* abort right after start, before the loop ran: to a closed port (its failure is pending) and
     * to the server (connecting or sent) */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", closed_port());
    xres r4 = {0}, r5 = {0};
    start(&r4, "GET", url, NULL, 0, NULL, 0);
    start(&r5, "GET", "/json", NULL, 0, NULL, 0);
    tlab__xfer_abort(r4.x);
    tlab__xfer_abort(r5.x);
    r4.aborted = r5.aborted = 1;
    run_for(100);
    CHECK(r4.headers_calls + r4.data_calls + r4.done == 0);
    CHECK(r5.headers_calls + r5.data_calls + r5.done == 0);
    CHECK(stats()->active == 0);
    xres_clear(&r4);
    xres_clear(&r5);

    /* a new request started from inside on_done takes the connection just pooled */
    xres r6 = {0}, r7 = {0}, warm = {0};
    r6.chain = &r7;
    get(&warm, "/json"); /* r5's abort closed the pooled connection: pool one again */
    xres_clear(&warm);
    opened = stats()->connections_opened;
    get(&r6, "/json");
    CHECK(run_until(&r7.done));
    CHECK_RESULT(&r6, TLAB_XFER_OK);
    CHECK_RESULT(&r7, TLAB_XFER_OK);
    CHECK(r7.body && strcmp(r7.body, JSON_BODY) == 0);
    CHECK(stats()->connections_opened == opened);
    CHECK(stats()->active == 0);
    xres_clear(&r6);
    xres_clear(&r7);
}

/* 9. Pause from on_data, resume from a timer: every byte arrives, in order. */
static void check_pattern(const xres *r, size_t want_len) {
    int ok = r->body_len == want_len;
    for (size_t i = 0; ok && i < want_len; i++)
        ok = r->body[i] == pattern_byte(i);
    CHECK_MSG(ok, "%zu bytes, want %zu, in pattern order", r->body_len, want_len);
}

static void case_pause(void) {
    xres r = {0};
    r.pause_on_data = 1;
    get(&r, "/big");
    CHECK_RESULT(&r, TLAB_XFER_OK);
    check_pattern(&r, BIG_LEN);
    CHECK(r.pauses >= 1);
    CHECK_MSG(r.bytes_while_paused == 0, "%zu bytes delivered while paused", r.bytes_while_paused);

    xres r2 = {0};
    r2.pause_on_data = 1;
    get(&r2, "/burst");
    CHECK_RESULT(&r2, TLAB_XFER_OK);
    check_pattern(&r2, (size_t)BURST_CHUNKS * BURST_CHUNK_LEN);
    CHECK(r2.pauses >= 1);
    /* The parser delivers what it already holds of the current read even after a pause (at most
     * one read, 16 KiB, per pause); the relay copes, so this is bounded rather than zero. */
    CHECK_MSG(r2.max_while_paused <= 16384, "%zu bytes delivered during one pause", r2.max_while_paused);
    if (r2.bytes_while_paused)
        printf("note: %zu bytes (at most %zu per pause) were delivered after tlab__xfer_pause(x, 1)\n",
               r2.bytes_while_paused, r2.max_while_paused);
    CHECK(stats()->active == 0);
    xres_clear(&r);
    xres_clear(&r2);
}

/* 10. An interim 100 Continue: on_headers sees the final status only. */
static void case_continue(void) {
    const char *paths[] = {"/continue", "/continue1"};
    for (int i = 0; i < 2; i++) {
        xres r = {0};
        start(&r, "POST", paths[i], "{}", 2, NULL, 0);
        CHECK(run_until(&r.done));
        CHECK_RESULT(&r, TLAB_XFER_OK);
        CHECK_MSG(r.headers_calls == 1 && r.status == 200, "%s: %d on_headers, status %d", paths[i], r.headers_calls, r.status);
        CHECK(strcmp(r.ctype, "application/json") == 0);
        CHECK(r.body && strcmp(r.body, JSON_BODY) == 0);
        xres_clear(&r);
    }
    CHECK(stats()->active == 0);
}

/* 11. Bytes after the response: OK, but the connection is not reused. */
static void case_extra_bytes(void) {
    const char *paths[] = {"/extra", "/extra-late"};
    for (int i = 0; i < 2; i++) {
        xres r = {0};
        get(&r, paths[i]);
        CHECK_RESULT(&r, TLAB_XFER_OK);
        CHECK(r.body && strcmp(r.body, JSON_BODY) == 0);
        run_for(80);
        uint64_t opened = stats()->connections_opened;
        xres r2 = {0};
        get(&r2, "/json");
        CHECK_RESULT(&r2, TLAB_XFER_OK);
        CHECK_MSG(stats()->connections_opened == opened + 1, "%s: the connection was reused", paths[i]);
        xres_clear(&r);
        xres_clear(&r2);
    }
    CHECK(stats()->active == 0);
}

/* 12. Connections idle longer than upstream.idle_keepalive_ms are not reused. */
static void case_idle_expiry(void) {
    long saved = cfg.idle_keepalive_ms;
    cfg.idle_keepalive_ms = 100;
    xres r = {0};
    get(&r, "/json");
    CHECK_RESULT(&r, TLAB_XFER_OK);
    uint64_t opened = stats()->connections_opened;
    xres r2 = {0};
    get(&r2, "/json"); /* at once: reused */
    CHECK(stats()->connections_opened == opened);
    run_for(250);
    xres r3 = {0};
    get(&r3, "/json");
    CHECK_RESULT(&r3, TLAB_XFER_OK);
    CHECK_MSG(stats()->connections_opened == opened + 1, "an expired idle connection was reused");
    /* the sweep (every second) closes expired idle connections with no request coming */
    run_for(1500);
    CHECK_MSG(srv.conns == NULL, "the server still holds a connection the client should have closed");
    cfg.idle_keepalive_ms = saved;
    xres_clear(&r);
    xres_clear(&r2);
    xres_clear(&r3);
}

/* 13. https goes to libcurl: it starts, and ends with a failure against a closed port. */
static void case_https_to_curl(void) {
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/health", closed_port());
    xres r = {0};
    done_inside_start = 0;
    start(&r, "GET", url, NULL, 0, NULL, 1000);
    CHECK(run_until(&r.done));
    CHECK(done_inside_start == 0);
    CHECK_MSG(r.result != TLAB_XFER_OK, "https to a closed port succeeded");
    CHECK_MSG(r.result == TLAB_XFER_UNREACHABLE, "result %d (%s)", (int)r.result, r.detail);
    CHECK(strlen(r.detail) > 0);
    CHECK(stats()->active == 0);
    xres_clear(&r);
}

int main(void) {
    base = event_base_new();
    if (!base || tlab__config_defaults(&cfg) != 0) {
        fprintf(stderr, "set-up failed\n");
        return 2;
    }
    if (srv_start() != 0) {
        fprintf(stderr, "cannot listen on 127.0.0.1\n");
        return 2;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    free(cfg.upstream_url);
    cfg.upstream_url = strdup(url);
    cfg.connect_timeout_ms = 1000;
    cfg.first_byte_timeout_ms = 2000;
    cfg.total_timeout_ms = 3000;
    up = tlab__upstream_new(base, &cfg);
    CHECK(up != NULL);
    if (!up)
        return tlab_test_finish();

    case_json_and_reuse();
    case_large_request();
    case_answer_before_body_sent();
    case_chunked();
    case_eof_body();
    case_head();
    case_broken();
    case_refused();
    case_idle_closed_by_server();
    case_retry_after_slow_drop();
    case_retry_connect_budget();
    case_timeouts();
    case_abort_in_data();
    case_pause();
    case_continue();
    case_extra_bytes();
    case_idle_expiry();
    case_https_to_curl();

    /* The retry and timeout policy (upstream_policy.h) is one: these cases ran on the own client
     * above and run again on libcurl. */
    tlab__upstream_force_curl(up, 1);
    on_curl = 1;
    transport = "libcurl";
    case_broken();
    case_refused();
    case_idle_closed_by_server();
    case_retry_after_slow_drop();
    case_retry_connect_budget();
    case_timeouts();
    tlab__upstream_force_curl(up, 0);

    CHECK(stats()->active == 0);
    tlab__upstream_free(up);
    run_for(20); /* the server sees the pool's closes */
    srv_close_all();
    evconnlistener_free(srv.lst);
    free(srv.last_req);
    tlab__config_free(&cfg);
    event_base_free(base);
    return tlab_test_finish();
}
