/*
 * upstream_http_internal.h - private to the own HTTP/1.1 client: its structures, and the pool's
 * calls. Two files, calling one way: upstream_http.c (transfers: write, parse, timers, retry)
 * -> upstream_http_pool.c (origins and connections, kept alive and swept).
 */
#ifndef TLAB_UPSTREAM_HTTP_INTERNAL_H
#define TLAB_UPSTREAM_HTTP_INTERNAL_H

#include <stdint.h>

#include <event2/event.h>
#include <event2/event_struct.h> /* events embedded in their owners: no malloc per transfer */
#include <http_parser.h>

#include "upstream/upstream_backend.h"
#include "upstream/upstream_policy.h"
#include "upstream/upstream_wire.h"

#define MAX_ORIGINS 16

typedef struct hconn hconn;
typedef struct hxfer hxfer;

typedef struct origin {
    tlab__wire_endpoint at;
    hconn *idle_head, *idle_tail; /* newest first: the warmest connection is reused */
    long idle_count;
} origin;

struct hconn {
    tlab__http_client *cl;
    origin *org;
    int fd;
    struct event rev, wev;
    int connecting;
    int in_parser;
    hxfer *x;                /* NULL while idle */
    hconn *idle_prev, *idle_next;
    uint64_t idle_since_us;  /* when it went idle; 0 while it is not in the idle list */
    http_parser parser;
};

struct hxfer {
    tlab__xfer base;
    tlab__http_client *cl;
    origin *org;
    hconn *conn;
    char *req; /* request line, headers and body in one buffer, kept for a retry */
    size_t req_len, req_sent;
    tlab__xfer_callbacks cb;
    void *arg;
    struct event timer;
    tlab__attempt at; /* budgets, deadlines, got_bytes and the one retry (upstream_policy.h) */
    uint64_t t_start, t_connect_began, connect_us, t_sent;
    int headers_done, interim, complete, paused, aborted;
    int in_start;            /* callbacks must not run yet: failures are deferred to the loop */
    int head;                /* a HEAD request: its response has headers only */
    int pending_fail;        /* such a deferred failure */
    char pending_detail[160];
    /* Content-Type is the one response header the caller needs. */
    char field[16];
    size_t field_len;
    int last_was_value, in_ctype;
    char ctype[256];
    size_t ctype_len;
    int has_ctype;
};

struct tlab__http_client {
    struct event_base *base;
    const tlab__config *cfg;
    tlab__upstream_stats *stats;
    origin origins[MAX_ORIGINS];
    int n_origins;
    struct event sweep;
    int sweep_armed;
};

/* The URL's origin (added on first use); *path is the URL's path. NULL when the URL is not the
 * own client's (https, a name to resolve) or the origin table is full. */
origin *hpool_origin(tlab__http_client *cl, const char *url, const char **path);
/* The newest idle connection of o still inside upstream.idle_keepalive_ms (older ones are
 * closed on the way), taken out of the pool; NULL when none. */
hconn *hpool_take_idle(tlab__http_client *cl, origin *o, uint64_t now);
/* A new non-blocking TCP_NODELAY socket toward o (not yet connected), its read and write events
 * set to on_read / on_write; NULL with errno set. */
hconn *hpool_open(tlab__http_client *cl, origin *o, event_callback_fn on_read, event_callback_fn on_write);
/* Back to the pool after a whole response (closed instead when the pool is full). */
void hpool_release(hconn *c);
/* Closes and frees c (out of the pool first if it is idle). */
void hpool_close(hconn *c);
void hpool_init(tlab__http_client *cl);
/* Closes every idle connection and stops the sweep. */
void hpool_free(tlab__http_client *cl);

#endif
