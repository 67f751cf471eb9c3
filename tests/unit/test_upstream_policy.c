/*
 * test_upstream_policy.c - the one retry and timeout policy of both transports (upstream_policy.h),
 * each case run on the gateway's own client and then on libcurl (tlab__upstream_force_curl):
 * garbled and cut responses, refusal and its retry, idle connections closed by the server,
 * retries after a held-then-dropped request (with fresh connect budgets), first-byte and total
 * timeouts. The scripted server and the helpers are upstream_test_harness.h's.
 */
#include "upstream_test_harness.h"
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

int main(void) {
    int rc = ut_setup();
    if (rc)
        return rc;
    /* The policy is one (upstream_policy.h): the same cases on the own client, then on libcurl. */
    for (int curl = 0; curl < 2; curl++) {
        tlab__upstream_force_curl(up, curl);
        on_curl = curl;
        transport = curl ? "libcurl" : "own client";
        case_broken();
        case_refused();
        case_idle_closed_by_server();
        case_retry_after_slow_drop();
        case_retry_connect_budget();
        case_timeouts();
    }
    tlab__upstream_force_curl(up, 0);
    return ut_teardown();
}
