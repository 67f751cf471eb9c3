/*
 * http_server.h - the gateway's HTTP front (libevent evhttp): OpenAI routes, /health, plugin
 * routes; 404 and 405 in OpenAI's error shape.
 */
#ifndef TLAB_HTTP_SERVER_H
#define TLAB_HTTP_SERVER_H

#include "gateway.h"

/* Binds listen.host:listen.port and installs the routes. On failure returns -1 with err set. */
int tlab_http_start(tlab_gateway *gw, char *err, size_t errlen);
void tlab_http_stop(tlab_gateway *gw);

#endif
