/*
 * client_conns.h - the gateway's client connections: counts them, enforces
 * limits.max_client_connections, and owns each connection's evhttp close callback.
 *
 * libevent 2.1's evhttp has no connection limit (evhttp_set_max_connections came in 2.2) and no
 * hook at accept or close. The gateway gets both anyway: evhttp_set_bevcb runs for every
 * accepted connection, and evhttp has built the connection object by the time its accept
 * callback returns, so a one-shot event activated for the same loop pass (before any I/O on
 * the new socket) takes the connection over: counts it and sets its close callback. A
 * connection past the limit gets a 503 in OpenAI's error JSON and is closed at once, so one
 * client holding thousands of idle sockets cannot exhaust the gateway's descriptors.
 *
 * It also bounds the time a client may take to send a whole request: limits.client_timeout_ms
 * from the connection's start or the end of its previous request, however it trickles bytes
 * (evhttp's own timeout restarts at every byte, so slowloris clients would stay forever). A
 * request being served (a long stream) is never cut by this.
 *
 * evhttp allows one close callback per connection, so code that must learn when a client leaves
 * (request.c) registers with tlab_client_conn_watch instead of evhttp_connection_set_closecb.
 */
#ifndef TLAB_CLIENT_CONNS_H
#define TLAB_CLIENT_CONNS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>

typedef void (*tlab_conn_close_fn)(struct evhttp_connection *evcon, void *arg);

/* Starts counting http's connections (call before it accepts any): at most `max` open, each
 * request whole within timeout_ms. 0, or -1 when out of memory. */
int tlab_client_conns_init(struct evhttp *http, struct event_base *base, long max, long timeout_ms);
/* After evhttp_free: frees what is left. */
void tlab_client_conns_shutdown(void);
/* Calls cb(evcon, arg) once when evcon closes, replacing any earlier watch; cb NULL removes it.
 * A connection the gateway does not track (none yet: tests) falls back to evhttp's own callback. */
void tlab_client_conn_watch(struct evhttp_connection *evcon, tlab_conn_close_fn cb, void *arg);
/* A whole request arrived on evcon (from the request callback): its deadline restarts. */
void tlab_client_conn_request_arrived(struct evhttp_connection *evcon);
/* Client connections open now. */
size_t tlab_client_conns_open(void);
/* Connections turned away at limits.max_client_connections since start. */
uint64_t tlab_client_conns_rejected(void);
/* Connections cut because a request did not arrive whole within limits.client_timeout_ms. */
uint64_t tlab_client_conns_cut(void);

#endif
