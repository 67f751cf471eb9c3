/*
 * upstream_http_pool.c - the own client's connections (upstream_http_internal.h): origins, the
 * newest-first pool of kept-alive connections per origin, opening, closing and the idle sweep.
 * It knows connections, not transfers: the transfer side (upstream_http.c) hands it the read
 * and write callbacks of a new connection.
 */
#include "upstream/upstream_http_internal.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"

static void on_sweep(evutil_socket_t fd, short what, void *arg);

static void idle_unlink(hconn *c) {
    origin *o = c->org;
    if (c->idle_prev)
        c->idle_prev->idle_next = c->idle_next;
    else
        o->idle_head = c->idle_next;
    if (c->idle_next)
        c->idle_next->idle_prev = c->idle_prev;
    else
        o->idle_tail = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
    c->idle_since_us = 0; /* 0: not in the idle list */
    o->idle_count--;
}

void hpool_close(hconn *c) {
    if (c->idle_since_us)
        idle_unlink(c);
    event_del(&c->rev);
    event_del(&c->wev);
    close(c->fd);
    free(c);
}

void hpool_release(hconn *c) {
    tlab__http_client *cl = c->cl;
    origin *o = c->org;
    c->x = NULL;
    if (o->idle_count >= cl->cfg->max_connections) {
        hpool_close(c);
        return;
    }
    c->idle_since_us = tlab__now_us();
    c->idle_prev = NULL;
    c->idle_next = o->idle_head;
    if (o->idle_head)
        o->idle_head->idle_prev = c;
    else
        o->idle_tail = c;
    o->idle_head = c;
    o->idle_count++;
    if (!cl->sweep_armed) {
        struct timeval tv = {1, 0};
        event_add(&cl->sweep, &tv);
        cl->sweep_armed = 1;
    }
}

static uint64_t idle_limit_us(const tlab__http_client *cl) {
    return (uint64_t)cl->cfg->idle_keepalive_ms * 1000;
}


/* Closes connections idle past upstream.idle_keepalive_ms, so none meets the worker's own idle
 * close (vLLM's ~5 s) half way through a request. */
static void on_sweep(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    tlab__http_client *cl = arg;
    uint64_t now = tlab__now_us(), limit = idle_limit_us(cl);
    int any = 0;
    for (int i = 0; i < cl->n_origins; i++) {
        origin *o = &cl->origins[i];
        while (o->idle_tail && now - o->idle_tail->idle_since_us >= limit)
            hpool_close(o->idle_tail);
        any |= o->idle_head != NULL;
    }
    cl->sweep_armed = 0;
    if (any) {
        struct timeval tv = {1, 0};
        event_add(&cl->sweep, &tv);
        cl->sweep_armed = 1;
    }
}

hconn *hpool_take_idle(tlab__http_client *cl, origin *o, uint64_t now) {
    hconn *c;
    while ((c = o->idle_head) != NULL) {
        int fresh = now - c->idle_since_us < idle_limit_us(cl);
        idle_unlink(c);
        if (fresh)
            return c;
        hpool_close(c);
    }
    return NULL;
}

hconn *hpool_open(tlab__http_client *cl, origin *o, event_callback_fn on_read, event_callback_fn on_write) {
    int fd = socket(o->at.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    hconn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return NULL;
    }
    c->cl = cl;
    c->org = o;
    c->fd = fd;
    event_assign(&c->rev, cl->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, cl->base, fd, EV_WRITE, on_write, c);
    cl->stats->connections_opened++;
    return c;
}

origin *hpool_origin(tlab__http_client *cl, const char *url, const char **path) {
    tlab__wire_endpoint probe;
    *path = tlab__wire_parse_url(url, &probe);
    if (!*path)
        return NULL;
    for (int i = 0; i < cl->n_origins; i++) {
        origin *o = &cl->origins[i];
        if (o->at.addrlen == probe.addrlen && memcmp(&o->at.addr, &probe.addr, probe.addrlen) == 0 &&
            strcmp(o->at.hostport, probe.hostport) == 0)
            return o;
    }
    if (cl->n_origins == MAX_ORIGINS)
        return NULL;
    memset(&cl->origins[cl->n_origins], 0, sizeof cl->origins[0]);
    cl->origins[cl->n_origins].at = probe;
    return &cl->origins[cl->n_origins++];
}

void hpool_init(tlab__http_client *cl) {
    evtimer_assign(&cl->sweep, cl->base, on_sweep, cl);
}

void hpool_free(tlab__http_client *cl) {
    for (int i = 0; i < cl->n_origins; i++)
        while (cl->origins[i].idle_head)
            hpool_close(cl->origins[i].idle_head);
    event_del(&cl->sweep);
}
