/*
 * http_front_harness.h - what the test_http_front_*.c binaries share: the front HTTP/1.x server of
 * http_front.h on this thread's event_base, one handler that answers by path, and raw client
 * sockets. Every wait drives the loop (EVLOOP_NONBLOCK) while it reads the client socket,
 * bounded in time, so server and client run on one thread without sleeping on each other.
 *
 * The handler's paths: /hold (kept, for later), /take (take_body), /stream, /abort, /abort0,
 * /close, /flood (8 MB streamed, then on_drained), /big (8 MB whole, from an evbuffer),
 * /startonly, /drained_early, /drained0; anything else echoes "<METHOD> <path> <body>" with
 * reply headers added and checked. What it saw goes into `g`.
 *
 * The harness's own checks (in the handler) count in its own tlab_test.h counters: a binary ends
 * with hft_finish(), which adds them to the binary's.
 */
#ifndef TLAB_HTTP_FRONT_HARNESS_H
#define TLAB_HTTP_FRONT_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- the server side ---- */

/* What the handler saw, and what the cases ask of it (watch_hold, flood_*). */
typedef struct seen {
    int calls;
    char method[16], path[512], xtest[128], host[128], peer[64];
    char body[2048];
    size_t body_len;
    uint16_t peer_port;
    int reply_header_ok;   /* add_header / reply_header checks inside the handler */
    int take_ok;           /* take_body left an empty body behind */
    int watch_hold;        /* /hold: watch the held request */
    tlab__http_req *held, *held2;
    int gone_calls;
    tlab__http_req *gone_req;
    int drained_calls, drained_sync;
    tlab__http_req *flood;
    size_t flood_bytes;
    int flood_end_on_drain;
    int flood_nowatch;
    char extra[3][64];
    int trailer_seen;
    int add_after_start; /* tlab__http_add_header's result once a stream started */
    tlab__http_req *started; /* /startonly: a streamed reply started, nothing more yet */
} seen;

extern seen g;
extern struct event_base *base;
#define BIG_CHUNKS 128
extern char flood_chunk[64 * 1024]; /* /flood and /big write BIG_CHUNKS of it: 8 MB */

typedef struct srv {
    tlab__http_server *s;
    int port;
} srv;

/* max_header_bytes 4096, max_body_bytes 1024. */
tlab__http_limits limits(long timeout_ms, long max_conns);
/* A server on a loopback port of its own, with the handler; exits the binary when it cannot. */
srv srv_start(tlab__http_limits l);
tlab__http_counters counters(const srv *v);
/* A drained callback that writes "late" and ends the reply. */
void on_drained0(tlab__http_req *req, void *arg);

/* ---- the client side ---- */

typedef struct cli {
    int fd;
    char *buf;
    size_t len, cap;
    int eof, err;
} cli;

typedef struct resp {
    int status;
    char *raw;  /* the whole response, NUL-terminated */
    size_t raw_len, head_len;
    char *body; /* de-chunked */
    size_t body_len;
} resp;

long now_ms(void);
/* A non-blocking client socket connected to `port`; rcvbuf > 0 sets SO_RCVBUF first. */
void cli_open_rcvbuf(cli *c, int port, int rcvbuf);
void cli_open(cli *c, int port);
void cli_close(cli *c);
/* The client's own port, as the server sees it. */
uint16_t cli_port(const cli *c);
/* One turn: the server's loop, then the client's socket (c may be NULL). */
void turn(cli *c);
void spin_ms(cli *c, long ms);
/* Sends all of data, turning the loop while the socket is full; stops if the server closed. */
void cli_send_n(cli *c, const char *data, size_t len);
void cli_send(cli *c, const char *s);
void resp_free(resp *r);
/* The response's head has exactly this line (case-insensitive). */
int resp_has(const resp *r, const char *header_line);
/* Waits (up to ms) for a whole response and takes it off the client's buffer. 0 on time-out. */
int read_resp(cli *c, resp *r, int head_only, long ms);
/* Waits for the server to close the connection (EOF or reset). */
int wait_closed(cli *c, long ms);
/* Wait (up to ms) for *flag, *p non-NULL, or `open` connections open. */
int wait_flag(cli *c, const int *flag, long ms);
int wait_ptr(cli *c, tlab__http_req *const *p, long ms);
int wait_open(const srv *v, size_t open, long ms);

/* ---- a binary's start and end ---- */

/* The loop and the flood chunk. */
void hft_setup(void);
/* Frees the loop; the handler's checks so far. */
void hft_teardown(int *passed, int *failed);

/* The end of main: the handler's checks go into this binary's count, which is printed. */
static inline int hft_finish(void) {
    int passed, failed;
    hft_teardown(&passed, &failed);
    tlab_test_passed += passed;
    tlab_test_failed += failed;
    return tlab_test_finish();
}

#endif
