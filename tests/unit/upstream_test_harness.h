/*
 * upstream_test_harness.h - what test_upstream.c and test_upstream_policy.c share: the scripted
 * HTTP/1.1 server (upstream_script_server.c; it answers by the request path, see srv_handle) on
 * the test's event_base, one upstream toward it, a transfer's recorded callbacks (xres), and
 * start/get that run the loop until a transfer ends, bounded by a watchdog so no case can hang.
 * Header-only and static: each test is one binary that includes it once.
 */
#ifndef TLAB_UPSTREAM_TEST_HARNESS_H
#define TLAB_UPSTREAM_TEST_HARNESS_H

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

static inline void xres_clear(xres *r) {
    free(r->body);
    if (r->resume)
        event_free(r->resume);
    memset(r, 0, sizeof *r);
}

static inline tlab__xfer *start(xres *r, const char *method, const char *path, const char *body, size_t body_len,
                        const char *const *headers, long timeout_ms) {
    r->t_start = tlab__now_us();
    in_start = 1;
    r->x = tlab__upstream_start(up, method, path, body, body_len, headers, timeout_ms, &cbs, r);
    in_start = 0;
    CHECK_MSG(r->x != NULL, "start %s", path);
    return r->x;
}

/* GET `path` and run until on_done. */
static inline void get(xres *r, const char *path) {
    start(r, "GET", path, NULL, 0, NULL, 0);
    CHECK_MSG(run_until(&r->done), "%s did not end within the watchdog", path);
}

static inline long elapsed_ms(const xres *r) {
    return (long)((r->t_done - r->t_start) / 1000);
}

static inline const tlab__upstream_stats *stats(void) {
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

/* The server, the config and the upstream every case uses; 2 when they cannot be set up. */
static inline int ut_setup(void) {
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
    return up ? 0 : 1;
}

static inline int ut_teardown(void) {
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

#endif
