/*
 * sim_http.h - tlab-sim's HTTP front (libevent evhttp): the vLLM OpenAI routes, SSE streaming, and
 * aborting a request the moment its client disconnects, whether it is waiting, running, streaming or not.
 */
#ifndef SIM_HTTP_H
#define SIM_HTTP_H

#include <event2/util.h>

#include "sim_config.h"
#include "sim_engine.h"

struct event_base;
typedef struct sim_http sim_http;

/* Serves on the already listening socket fd. Returns NULL on failure. */
sim_http *sim_http_new(struct event_base *base, const sim_config *cfg, sim_engine *engine, evutil_socket_t fd);
void sim_http_free(sim_http *h);

#endif
