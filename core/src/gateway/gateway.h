/*
 * gateway.h - the gateway's process-wide wiring: the loop, the listeners, the config in force
 * and the upstream. There is one loop on one thread, so there is one gateway. Only gateway/
 * reads it; the layers below are handed what they need at init (the request counts live in
 * request/, the dispatcher's drain flag in dispatch/).
 */
#ifndef TLAB_GATEWAY_H
#define TLAB_GATEWAY_H

#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "base/clock.h"
#include "config/config.h"

struct tlab__upstream;
struct tlab__http_server;

typedef struct tlab__gateway {
    struct event_base *base;
    struct tlab__http_server *http; /* the clients' listener (http_front.h) */
    const tlab__config *cfg;
    struct tlab__upstream *upstream;
    int port;                /* the port actually bound (listen.port may be 0) */
    struct tlab__http_server *admin_http; /* the admin listener (/metrics, /admin/...), NULL when admin.listen.port is none */
    int admin_port;          /* its bound port, -1 without one */
    uint64_t started_us;
    int draining;            /* shutdown started: new requests get 503 */
} tlab__gateway;

extern tlab__gateway tlab__gw;

/* The 503 of every request refused or cut short by the drain (new, queued, or admitted by Redis
 * after the drain began). */
#define TLAB_DRAINING_MESSAGE "the gateway is shutting down; retry on another instance"

#endif
