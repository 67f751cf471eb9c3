/*
 * gateway.h - the gateway's process-wide state. There is one loop on one thread, so there is
 * one gateway: the plugin API (dispatch_wake, in_flight) needs it without a handle.
 */
#ifndef TLAB_GATEWAY_H
#define TLAB_GATEWAY_H

#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "config/config.h"

struct tlab_upstream;
struct tlab_http_server;

typedef struct tlab_gateway {
    struct event_base *base;
    struct tlab_http_server *http; /* the clients' listener (http_front.h) */
    const tlab_config *cfg;
    struct tlab_upstream *upstream;
    int port;                /* the port actually bound (listen.port may be 0) */
    struct tlab_http_server *admin_http; /* the admin listener (/metrics, /admin/...), NULL when admin.listen.port is none */
    int admin_port;          /* its bound port, -1 without one */
    uint64_t started_us;
    uint64_t request_seq;    /* for request ids */
    size_t in_flight;        /* dispatched to a worker, not yet done */
    size_t live_requests;    /* arrived, not yet done */
    int draining;            /* shutdown started: new requests get 503 */
    struct event *dispatch_ev;
} tlab_gateway;

extern tlab_gateway tlab_gw;

/* Monotonic clock in microseconds. */
static inline uint64_t tlab_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#endif
