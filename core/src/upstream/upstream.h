/*
 * upstream.h - HTTP to the worker from the gateway's libevent loop: no thread, no blocking call.
 *
 * Two transports sit behind this interface (upstream_backend.h). Plain http:// to an IP address
 * or "localhost" (the worker's usual URL) goes through the gateway's own HTTP/1.1 client
 * (upstream_http.c: non-blocking sockets, Debian's http-parser); anything else (https, a host
 * name to resolve) goes through libcurl's multi interface (upstream_curl.c).
 *
 * Connections are kept alive and reused, newest first; an idle connection is closed after
 * upstream.idle_keepalive_ms (libcurl: rounded down to whole seconds, at least 1) so that it
 * never meets vLLM's ~5 s idle close, and at most upstream.max_connections are kept idle.
 * A transfer that fails before any response byte (refused, reset, empty reply on a stale
 * connection) is retried once on a fresh connection.
 *
 * Callbacks: after tlab__upstream_start returns a transfer, its callbacks run from the loop,
 * never from inside tlab__upstream_start. on_done runs exactly once unless the caller aborts
 * first; after on_done or tlab__xfer_abort the transfer is gone.
 */
#ifndef TLAB_UPSTREAM_H
#define TLAB_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config/config.h"

typedef struct tlab__upstream tlab__upstream;
typedef struct tlab__xfer tlab__xfer;

typedef enum tlab__xfer_result {
    TLAB_XFER_OK = 0,
    TLAB_XFER_UNREACHABLE,       /* refused, reset or empty reply before any byte, after the retry */
    TLAB_XFER_CONNECT_TIMEOUT,   /* upstream.connect_timeout_ms */
    TLAB_XFER_FIRST_BYTE_TIMEOUT,/* upstream.first_byte_timeout_ms */
    TLAB_XFER_TOTAL_TIMEOUT,     /* upstream.total_timeout_ms */
    TLAB_XFER_BROKEN,            /* failed after response bytes arrived */
} tlab__xfer_result;

typedef struct tlab__xfer_callbacks {
    /* The response's status line and headers are complete. content_type may be NULL. */
    void (*on_headers)(void *arg, int status, const char *content_type);
    /* Response body bytes, as they arrive. */
    void (*on_data)(void *arg, const char *data, size_t len);
    /* The transfer ended. `detail` is a human-readable reason for failures, "" on success. */
    void (*on_done)(void *arg, tlab__xfer_result result, const char *detail);
} tlab__xfer_callbacks;

typedef struct tlab__upstream_stats {
    uint64_t transfers;           /* started */
    uint64_t connections_opened;  /* new TCP connections (reuse = transfers - connections_opened) */
    uint64_t retries;             /* transfers retried on a fresh connection */
    uint64_t aborted;             /* transfers aborted by the gateway (client gone, timeouts) */
    uint64_t active;              /* transfers under way */
} tlab__upstream_stats;

tlab__upstream *tlab__upstream_new(struct event_base *base, const tlab__config *cfg);
void tlab__upstream_free(tlab__upstream *up);

/*
 * Starts `method` upstream.url+`path` (or `path` itself when it is an absolute http(s) URL) with
 * `body` (copied; may be NULL) and extra request headers (`headers`, NULL-terminated
 * "Name: value" strings, copied). `timeout_ms` > 0 replaces the configured connect, first-byte
 * and total timeouts for this transfer (health checks). Returns NULL on allocation failure.
 */
tlab__xfer *tlab__upstream_start(tlab__upstream *up, const char *method, const char *path, const char *body, size_t body_len,
                               const char *const *headers, long timeout_ms, const tlab__xfer_callbacks *cb, void *arg);
/* Stops a transfer now and closes its connection, so the worker sees the client leave. No
 * callback runs afterwards. */
void tlab__xfer_abort(tlab__xfer *x);
/* Pauses delivery of body bytes (the client is slow) or resumes it. The own client stops
 * reading the socket (TCP back-pressure reaches the worker) but still delivers what it had
 * already read when pause came from inside on_data: at most one 16 KiB read. */
void tlab__xfer_pause(tlab__xfer *x, int paused);
/* Microseconds between start and the request being on the wire, excluding TCP connect time:
 * the part of the upstream leg that is the gateway's own work. */
uint64_t tlab__xfer_send_overhead_us(tlab__xfer *x);

const tlab__upstream_stats *tlab__upstream_get_stats(const tlab__upstream *up);

#endif
