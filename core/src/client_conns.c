/*
 * client_conns.c - client connection accounting and limits.max_client_connections (see
 * client_conns.h for how it hooks into evhttp 2.1).
 *
 * Records are found by the connection's socket descriptor (an array index), so request.c's
 * lookups are O(1) with ten thousand connections open. A descriptor reused by the kernel while
 * its slot is still taken means evhttp closed that connection without its close callback; the
 * stale record is dropped then, so the count cannot drift upwards and lock clients out.
 */
#include "client_conns.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>

#include "gateway.h"
#include "log.h"
#include "validate.h"

typedef struct conn {
    struct evhttp_connection *evcon;
    evutil_socket_t fd;
    tlab_conn_close_fn cb; /* set while a request on this connection is in the gateway's hands */
    void *arg;
    uint64_t deadline_us;  /* the next whole request must have arrived by then */
} conn;

static conn **by_fd;
static size_t by_fd_cap;
static size_t n_open;
static uint64_t n_rejected;
static long max_open;
static uint64_t timeout_us;
static uint64_t n_cut;
static uint64_t last_warn_us;
static struct event *sweep_ev;

static struct bufferevent **pending; /* accepted this loop pass, not yet adopted */
static size_t n_pending, cap_pending;
static struct event *adopt_ev;

static void drop(conn *c) {
    if ((size_t)c->fd < by_fd_cap && by_fd[c->fd] == c)
        by_fd[c->fd] = NULL;
    n_open--;
    free(c);
}

static void on_close(struct evhttp_connection *evcon, void *arg) {
    conn *c = arg;
    tlab_conn_close_fn cb = c->cb;
    void *cb_arg = c->arg;
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    drop(c);
    if (cb)
        cb(evcon, cb_arg);
}

/* Past the limit: a 503 in OpenAI's shape straight on the socket (it is new and empty, so the
 * few hundred bytes fit its send buffer), then the connection goes. */
static void reject(struct evhttp_connection *evcon, evutil_socket_t fd) {
    n_rejected++;
    tlab_error err;
    tlab_error_set(&err, 503, "service_unavailable", NULL,
                   "too many client connections (limits.max_client_connections is %ld); retry later", max_open);
    char *json = tlab_error_json(&err);
    char reply[1024];
    int n = snprintf(reply, sizeof reply,
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                     "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                     json ? strlen(json) : 0, json ? json : "");
    free(json);
    if (n > 0 && (size_t)n < sizeof reply)
        (void)send(fd, reply, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    /* Closing with unread input sends a reset, which can destroy the 503 before the client reads
     * it; the request it already sent is read away first (bounded: this runs on the loop). */
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
        ;
    evhttp_connection_free(evcon);
    uint64_t now = tlab_now_us();
    if (now - last_warn_us > 1000000) { /* at most one line a second under a flood */
        last_warn_us = now;
        LOG_WARN("client connection refused: limits.max_client_connections (%ld) reached; %llu refused so far", max_open,
                 (unsigned long long)n_rejected);
    }
}

static int grow_slots(size_t need) {
    if (need <= by_fd_cap)
        return 0;
    size_t cap = by_fd_cap ? by_fd_cap : 1024;
    while (cap < need)
        cap *= 2;
    conn **b = realloc(by_fd, cap * sizeof *b);
    if (!b)
        return -1;
    memset(b + by_fd_cap, 0, (cap - by_fd_cap) * sizeof *b);
    by_fd = b;
    by_fd_cap = cap;
    return 0;
}

static void adopt(struct bufferevent *bev) {
    void *cbarg = NULL;
    bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
    struct evhttp_connection *evcon = cbarg;
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (!evcon || fd < 0 || evhttp_connection_get_bufferevent(evcon) != bev)
        return; /* evhttp did not finish setting it up; nothing to count */
    if ((size_t)fd < by_fd_cap && by_fd[fd])
        drop(by_fd[fd]); /* stale: see the file comment */
    if ((long)n_open >= max_open) {
        reject(evcon, fd);
        return;
    }
    conn *c = calloc(1, sizeof *c);
    if (!c || grow_slots((size_t)fd + 1) != 0) {
        free(c);
        return; /* out of memory: served, but not counted */
    }
    c->evcon = evcon;
    c->fd = fd;
    c->deadline_us = tlab_now_us() + timeout_us;
    by_fd[fd] = c;
    n_open++;
    evhttp_connection_set_closecb(evcon, on_close, c);
}

static void on_adopt(evutil_socket_t fd, short what, void *arg) {
    for (size_t i = 0; i < n_pending; i++) {
        adopt(pending[i]);
        bufferevent_decref(pending[i]);
    }
    n_pending = 0;
}

/* evhttp's bevcb: the same bufferevent evhttp would make, noted for adoption this loop pass. */
static struct bufferevent *new_bev(struct event_base *base, void *arg) {
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL;
    if (n_pending == cap_pending) {
        size_t cap = cap_pending ? cap_pending * 2 : 64;
        struct bufferevent **p = realloc(pending, cap * sizeof *p);
        if (!p)
            return bev; /* served, not counted */
        pending = p;
        cap_pending = cap;
    }
    /* Our reference keeps the struct valid even if evhttp fails the set-up and frees it before
     * on_adopt: its callbacks are then cleared, and adopt() sees no connection. */
    bufferevent_incref(bev);
    pending[n_pending++] = bev;
    event_active(adopt_ev, EV_TIMEOUT, 1);
    return bev;
}

/* Cuts connections whose next request is overdue. evhttp's own timeout restarts at every byte
 * read, so a client trickling one header byte a second (slowloris) would hold its connection
 * forever; this one runs from the connection's start or its last request, whatever it sends. */
static void on_sweep(evutil_socket_t fd, short what, void *arg) {
    uint64_t now = tlab_now_us();
    for (size_t i = 0; i < by_fd_cap; i++) {
        conn *c = by_fd[i];
        if (!c || c->cb || now < c->deadline_us)
            continue;
        n_cut++;
        evhttp_connection_free(c->evcon); /* runs on_close, which frees c */
    }
}

int tlab_client_conns_init(struct evhttp *http, struct event_base *base, long max, long timeout_ms) {
    max_open = max > 0 ? max : 1;
    timeout_us = (uint64_t)(timeout_ms > 0 ? timeout_ms : 1) * 1000;
    adopt_ev = event_new(base, -1, 0, on_adopt, NULL);
    sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, NULL);
    if (!adopt_ev || !sweep_ev)
        return -1;
    /* A quarter of the timeout (at most 1 s, at least 10 ms): a late client is cut within 25 %. */
    uint64_t period = timeout_us / 4 < 1000000 ? timeout_us / 4 : 1000000;
    if (period < 10000)
        period = 10000;
    struct timeval tv = {.tv_sec = (time_t)(period / 1000000), .tv_usec = (suseconds_t)(period % 1000000)};
    event_add(sweep_ev, &tv);
    evhttp_set_bevcb(http, new_bev, NULL);
    return 0;
}

void tlab_client_conns_shutdown(void) {
    for (size_t i = 0; i < n_pending; i++)
        bufferevent_decref(pending[i]);
    n_pending = 0;
    for (size_t i = 0; i < by_fd_cap; i++)
        if (by_fd[i])
            drop(by_fd[i]);
    free(by_fd);
    free(pending);
    by_fd = NULL;
    pending = NULL;
    by_fd_cap = n_pending = cap_pending = 0;
    if (adopt_ev)
        event_free(adopt_ev);
    if (sweep_ev)
        event_free(sweep_ev);
    adopt_ev = sweep_ev = NULL;
}

static conn *find(struct evhttp_connection *evcon) {
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    conn *c = fd >= 0 && (size_t)fd < by_fd_cap ? by_fd[fd] : NULL;
    return c && c->evcon == evcon ? c : NULL;
}

void tlab_client_conn_watch(struct evhttp_connection *evcon, tlab_conn_close_fn cb, void *arg) {
    conn *c = find(evcon);
    if (!c) {
        evhttp_connection_set_closecb(evcon, cb, arg);
        return;
    }
    c->cb = cb;
    c->arg = arg;
    if (!cb) /* the request is done: the next one gets a whole timeout */
        c->deadline_us = tlab_now_us() + timeout_us;
}

void tlab_client_conn_request_arrived(struct evhttp_connection *evcon) {
    conn *c = find(evcon);
    if (c)
        c->deadline_us = tlab_now_us() + timeout_us;
}

uint64_t tlab_client_conns_cut(void) {
    return n_cut;
}

size_t tlab_client_conns_open(void) {
    return n_open;
}

uint64_t tlab_client_conns_rejected(void) {
    return n_rejected;
}
