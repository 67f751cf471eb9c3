/*
 * http_client.h - many concurrent POSTs of one body to one URL, on a libevent loop, through
 * libcurl's multi interface (curl_multi_socket_action driven by libevent, as core/src/upstream.c).
 *
 * Contract: tlab_http_send either fails at once (returns -1, no callback) or, later and never
 * from inside tlab_http_send, calls on_headers at most once, on_data zero or more times, and
 * on_done exactly once. Callbacks may call tlab_http_send (closed loop does); they must not
 * free the client.
 */
#ifndef TLAB_BENCH_HTTP_CLIENT_H
#define TLAB_BENCH_HTTP_CLIENT_H

#include <stddef.h>

struct event_base;

typedef enum {
    TLAB_HTTP_DONE,        /* the response arrived complete (any status) */
    TLAB_HTTP_TIMEOUT,     /* --timeout elapsed */
    TLAB_HTTP_CONNECT,     /* could not connect (refused, unreachable) */
    TLAB_HTTP_NO_RESPONSE, /* connected, but the server closed before any response byte */
    TLAB_HTTP_BROKEN,      /* the response broke off after it had begun */
    TLAB_HTTP_FAILED,      /* anything else (out of memory, protocol error) */
} tlab_http_result;

typedef struct {
    /* retry_after_s: the response's Retry-After in seconds (delta-seconds, fractions accepted),
     * -1 when absent or an HTTP-date */
    void (*on_headers)(void *arg, int status, int is_event_stream, double retry_after_s);
    void (*on_data)(void *arg, const char *data, size_t len);
    void (*on_done)(void *arg, tlab_http_result result, const char *detail);
} tlab_http_callbacks;

typedef struct tlab_http tlab_http;

/* A client for POST url with body (not copied: it must outlive the client). timeout_ms bounds a
 * whole request; max_connections is how many idle keep-alive connections are kept.
 * Returns NULL on failure. */
tlab_http *tlab_http_new(struct event_base *base, const char *url, const char *body, size_t body_len, long timeout_ms,
                         long max_connections, const tlab_http_callbacks *cb);
/* Starts one request; arg is passed to the callbacks. Returns 0 or -1 (see the contract above). */
int tlab_http_send(tlab_http *h, void *arg);
/* The same with its own body (not copied: it must live until on_done). */
int tlab_http_send_body(tlab_http *h, const char *body, size_t body_len, void *arg);
/* Requests started and not yet done. */
size_t tlab_http_active(const tlab_http *h);
/* Connections opened so far (from libcurl's counts of finished requests). */
unsigned long tlab_http_connections(const tlab_http *h);
/* Ends every request still in flight with on_done(TLAB_HTTP_FAILED, "stopped") (a hard stop),
 * then frees the client. on_done must not start new requests from here. */
void tlab_http_free(tlab_http *h);

#endif
