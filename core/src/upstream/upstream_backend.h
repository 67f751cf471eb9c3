/*
 * upstream_backend.h - what upstream.c needs from its two transports (internal to upstream*.c).
 *
 * upstream_http.c is the gateway's own HTTP/1.1 client and carries every transfer it can: plain
 * http:// to an address (or "localhost"). upstream_curl.c, on libcurl, carries the rest (https,
 * host names that need DNS, URLs with user info). Both honour the callback contract of upstream.h.
 */
#ifndef TLAB_UPSTREAM_BACKEND_H
#define TLAB_UPSTREAM_BACKEND_H

#include <stdint.h>

#include "upstream/upstream.h"

typedef struct tlab_xfer_ops {
    void (*abort)(tlab_xfer *x);
    void (*pause)(tlab_xfer *x, int paused);
    uint64_t (*send_overhead_us)(tlab_xfer *x);
} tlab_xfer_ops;

/* Every backend's transfer starts with this, so upstream.c can route the calls of upstream.h. */
struct tlab_xfer {
    const tlab_xfer_ops *ops;
};

/* The request as upstream.c hands it to a backend. `url` is absolute. */
typedef struct tlab_xfer_request {
    const char *method;
    const char *url;
    const char *body;
    size_t body_len;
    const char *const *headers; /* NULL-terminated "Name: value" */
    long connect_ms, first_byte_ms, total_ms;
    const tlab_xfer_callbacks *cb;
    void *arg;
} tlab_xfer_request;

typedef struct tlab_http_client tlab_http_client;
tlab_http_client *tlab_http_client_new(struct event_base *base, const tlab_config *cfg, tlab_upstream_stats *stats);
void tlab_http_client_free(tlab_http_client *cl);
/* Starts req if this client can carry its URL. *unsupported is set (and NULL returned) when it
 * cannot, so the caller can hand the request to libcurl; NULL otherwise means out of memory. */
tlab_xfer *tlab_http_client_start(tlab_http_client *cl, const tlab_xfer_request *req, int *unsupported);

/* Sends every transfer through libcurl, for the tests that run the same cases on both
 * transports (tests/unit/test_upstream.c). */
void tlab_upstream_force_curl(tlab_upstream *up, int on);

typedef struct tlab_curl_client tlab_curl_client;
tlab_curl_client *tlab_curl_client_new(struct event_base *base, const tlab_config *cfg, tlab_upstream_stats *stats);
void tlab_curl_client_free(tlab_curl_client *cl);
tlab_xfer *tlab_curl_client_start(tlab_curl_client *cl, const tlab_xfer_request *req);

#endif
