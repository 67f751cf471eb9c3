/*
 * test_upstream.c - the upstream client of upstream.h (the transfer contract) against the scripted
 * server of upstream_test_harness.h. Plain http:// to 127.0.0.1 goes through the gateway's own
 * client (upstream_http.c); the last case checks that https:// goes to libcurl. Cases:
 * Content-Length and reuse (and the request on the wire), large request bodies, an answer before
 * the body is all sent, chunked SSE, EOF-delimited bodies, HEAD, abort and pause from inside
 * callbacks, 100 Continue, bytes after a response, idle expiry, https to libcurl. The retry and
 * timeout policy has its own test, on both transports: test_upstream_policy.c.
 */
#include "upstream_test_harness.h"
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
    int rc = ut_setup();
    if (rc)
        return rc;
    case_json_and_reuse();
    case_large_request();
    case_answer_before_body_sent();
    case_chunked();
    case_eof_body();
    case_head();
    case_abort_in_data();
    case_pause();
    case_continue();
    case_extra_bytes();
    case_idle_expiry();
    case_https_to_curl();
    return ut_teardown();
}
