/*
 * http_server.h - the gateway's routes on its HTTP front (http_front.h): OpenAI routes, /health, plugin
 * routes; 404 and 405 in OpenAI's error shape; API keys checked before any route runs (auth.h);
 * /metrics and /admin/... on a separate listener when admin.listen.port is set.
 */
#ifndef TLAB_HTTP_SERVER_H
#define TLAB_HTTP_SERVER_H

#include "gateway/gateway.h"

/* Binds listen.host:listen.port (and admin.listen.host:port when set) and installs the routes.
 * On failure returns -1 with err set; tlab__http_stop cleans up either way. */
int tlab__http_start(tlab__gateway *gw, char *err, size_t errlen);
void tlab__http_stop(tlab__gateway *gw);
/* Re-applies gw->cfg's limits.max_body_bytes and limits.client_timeout_ms to the running servers
 * (SIGHUP); connections already open keep the timeout they had. */
void tlab__http_apply_limits(tlab__gateway *gw);

#endif
