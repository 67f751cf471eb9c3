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

typedef struct tlab__xfer_ops {
    void (*abort)(tlab__xfer *x);
    void (*pause)(tlab__xfer *x, int paused);
    uint64_t (*send_overhead_us)(tlab__xfer *x);
} tlab__xfer_ops;

/* Every backend's transfer starts with this, so upstream.c can route the calls of upstream.h. */
struct tlab__xfer {
    const tlab__xfer_ops *ops;
};

/* The request as upstream.c hands it to a backend. `url` is absolute. */
typedef struct tlab__xfer_request {
    const char *method;
    const char *url;
    const char *body;
    size_t body_len;
    const char *const *headers; /* NULL-terminated "Name: value" */
    long connect_ms, first_byte_ms, total_ms;
    const tlab__xfer_callbacks *cb;
    void *arg;
} tlab__xfer_request;

typedef struct tlab__http_client tlab__http_client;
tlab__http_client *tlab__http_client_new(struct event_base *base, const tlab__config *cfg, tlab__upstream_stats *stats);
void tlab__http_client_free(tlab__http_client *cl);
/* Starts req if this client can carry its URL. *unsupported is set (and NULL returned) when it
 * cannot, so the caller can hand the request to libcurl; NULL otherwise means out of memory. */
tlab__xfer *tlab__http_client_start(tlab__http_client *cl, const tlab__xfer_request *req, int *unsupported);

/* Sends every transfer through libcurl, for the tests that run the same cases on both
 * transports (tests/unit/test_upstream.c). */
void tlab__upstream_force_curl(tlab__upstream *up, int on);

typedef struct tlab__curl_client tlab__curl_client;
tlab__curl_client *tlab__curl_client_new(struct event_base *base, const tlab__config *cfg, tlab__upstream_stats *stats);
void tlab__curl_client_free(tlab__curl_client *cl);
tlab__xfer *tlab__curl_client_start(tlab__curl_client *cl, const tlab__xfer_request *req);

#endif
