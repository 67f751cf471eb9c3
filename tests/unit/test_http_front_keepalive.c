/*
 * test_http_front_keepalive.c - the front HTTP/1.x server of http_front.h against raw client sockets:
 * keep-alive and pipelining: pipelined requests answered at once and in order; one behind a held
 * request; more than 64 KiB pipelined behind a held request; a client's and a handler's
 * Connection: close.
 * The server, its handler and the client side are in http_front_harness.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_front_harness.h"

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
    tlab__http_reply(g.held, 200, "first", 5);
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
    tlab__http_reply(g.held, 200, "first", 5);
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
    tlab__http_server_free(v.s);
}

int main(void) {
    hft_setup();
    test_keepalive_pipelining();
    return hft_finish();
}
