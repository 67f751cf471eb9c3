/*
 * test_http_front_parse.c - the front HTTP/1.x server of http_front.h against raw client sockets:
 * message parsing and the request: GET and POST with Content-Length, the getters (headers, take_body,
 * peer) and reply headers, targets of origin and absolute form, headers past the arena's first
 * size, a chunked body with a trailer, set_limits; a chunked body arriving in pieces;
 * Expect: 100-continue and other expectations; HTTP/1.0 with and without keep-alive; HEAD; a
 * table of refused requests (400, 413, 414, 417, 431, 501, 505).
 * The server, its handler and the client side are in http_front_harness.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_front_harness.h"

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
    tlab__http_limits l = limits(5000, 0);
    l.max_body_bytes = 4;
    tlab__http_server_set_limits(v.s, &l);
    cli_send(&c, "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    CHECK(read_resp(&c, &r, 0, 5000) && r.status == 413);
    CHECK_STR_CONTAINS(r.body, "limit 4 bytes");
    resp_free(&r);
    CHECK(wait_closed(&c, 5000));
    cli_close(&c);
    tlab__http_server_free(v.s);
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
    tlab__http_server_free(v.s);
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
    tlab__http_server_free(v.s);
}

int main(void) {
    hft_setup();
    test_get_post();
    test_bodies_expect();
    test_refusals();
    return hft_finish();
}
