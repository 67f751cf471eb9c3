/*
 * test_http_front_conn.c - the front HTTP/1.x server of http_front.h against raw client sockets:
 * a connection's life and its limits: the gone callback; a request whose client left answered
 * later (and its drained callback); tlab__http_server_free with requests outstanding; timeouts
 * (idle, trickling, a served request not cut, a stalled reply cut, the lingering close's limit);
 * max_connections; running out of file descriptors.
 * The server, its handler and the client side are in http_front_harness.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "http_front_harness.h"

static void test_gone_orphans(void) {
    srv v = srv_start(limits(5000, 0));
    cli c;
    /* Watched: the client leaves, gone runs at once and the request is freed after it. */
    g.watch_hold = 1;
    g.gone_calls = 0;
    cli_open(&c, v.port);
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held, 5000));
    tlab__http_req *held = g.held;
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
    CHECK(strcmp(tlab__http_req_peer(g.held, NULL), "127.0.0.1") == 0);
    CHECK(tlab__http_reply_backlog(g.held) == 0);
    tlab__http_reply(g.held, 200, "nobody", 6);
    tlab__http_reply_start(g.held2, 200);
    tlab__http_reply_chunk(g.held2, "x", 1);
    tlab__http_reply_end(g.held2);
    g.held = g.held2 = NULL;
    cli_open(&c, v.port);
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held, 5000));
    cli_close(&c);
    CHECK(wait_open(&v, 0, 5000));
    tlab__http_reply_abort(g.held);
    g.held = NULL;
    /* ... or registers drained afterwards: it runs once, from the loop. */
    cli_open(&c, v.port);
    cli_send(&c, "GET /hold HTTP/1.1\r\n\r\n");
    CHECK(wait_ptr(&c, &g.held, 5000));
    cli_close(&c);
    CHECK(wait_open(&v, 0, 5000));
    spin_ms(NULL, 10);
    g.drained_calls = 0;
    tlab__http_reply_start(g.held, 200);
    tlab__http_reply_on_drained(g.held, on_drained0, NULL); /* ends the reply */
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
    tlab__http_reply_start(g.held, 200);
    tlab__http_reply_on_drained(g.held, on_drained0, NULL);
    tlab__http_reply_end(g.held);
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

    /* tlab__http_server_free with requests outstanding: gone runs for the watched one; the other
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
    tlab__http_req *unwatched = g.held2;
    tlab__http_server_free(v.s);
    CHECK(g.gone_calls == 2 && g.held == NULL);
    CHECK(g.held2 == unwatched);
    tlab__http_reply(unwatched, 200, "late", 4);
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
    tlab__http_reply(g.held, 200, "slow", 4);
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
    tlab__http_server_free(v.s);
}

/* Out of file descriptors: accepting pauses for 100 ms, then the waiting client is served.
 * Not under valgrind: it emulates RLIMIT_NOFILE by closing the fd accept4 returned, so the
 * waiting connection is lost rather than left queued. */

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
    tlab__http_counters k = counters(&v);
    CHECK(k.rejected == 1 && k.open == 2);
    cli_close(&a);
    CHECK(wait_open(&v, 1, 5000));
    cli_open(&c, v.port);
    cli_send(&c, "GET /fine HTTP/1.1\r\n\r\n");
    CHECK(read_resp(&c, &r, 0, 5000) && r.status == 200);
    resp_free(&r);
    cli_close(&c);
    cli_close(&b);
    tlab__http_server_free(v.s);
}

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
        tlab__http_server_free(v.s);
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
    tlab__http_server_free(v.s);
}

int main(void) {
    hft_setup();
    test_gone_orphans();
    test_timeouts();
    test_max_connections();
    test_emfile();
    return hft_finish();
}
