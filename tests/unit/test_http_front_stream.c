/*
 * test_http_front_stream.c - the front HTTP/1.x server of http_front.h against raw client sockets:
 * streamed replies and back-pressure: chunked to HTTP/1.1, close-delimited to HTTP/1.0, HEAD, a
 * start with nothing sent yet; reply_abort; reply_on_drained after a backlog, registered early,
 * and with none; a big reply (whole, from an evbuffer) to a slow reader with a request behind it.
 * The server, its handler and the client side are in http_front_harness.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http_front_harness.h"

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
    tlab__http_reply_chunk(g.started, "later", 5);
    tlab__http_reply_end(g.started);
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
    tlab__http_server_free(v.s);
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
    tlab__http_server_free(v.s);
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
    tlab__http_server_free(v.s);
}

int main(void) {
    hft_setup();
    test_streams();
    test_drained();
    test_slow_reader();
    return hft_finish();
}
