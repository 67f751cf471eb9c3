/*
 * stream_keepalive.h - SSE comment keep-alives for streaming requests still waiting for their
 * first byte (queued behind a worker's cold start, or held in a busy engine).
 *
 * A long silent stream gets cut by proxies and load balancers in front of the gateway. Every
 * upstream.sse_keepalive_ms, a streaming request that has received nothing yet gets
 * ": waiting for worker" (an SSE comment, which clients ignore); the first one also sends the
 * 200 and the SSE headers. After that, failures reach the client as SSE error events.
 */
#ifndef TLAB_STREAM_KEEPALIVE_H
#define TLAB_STREAM_KEEPALIVE_H

#include <event2/event.h>

#include "config/config.h"

int tlab__stream_keepalive_init(struct event_base *base, const tlab__config *cfg);
void tlab__stream_keepalive_shutdown(void);

#endif
