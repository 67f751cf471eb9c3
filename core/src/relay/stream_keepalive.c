/*
 * stream_keepalive.c - one timer walks the live requests; see stream_keepalive.h for why.
 * The walk is O(live requests) once per tick (at most every second), far below the cost of
 * the requests themselves.
 */
#include "relay/stream_keepalive.h"

#include "base/clock.h"
#include "request/request.h"

static struct event *tick;
static uint64_t interval_us;

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    uint64_t now = tlab__now_us();
    for (tlab_request *r = tlab__requests_live(); r; r = r->live_next) {
        if (!r->info.stream || r->internal || !r->http || r->t[TLAB_EV_FIRST_BYTE] ||
            (r->phase != TLAB_PHASE_WAITING && r->phase != TLAB_PHASE_UPSTREAM))
            continue;
        uint64_t since = r->last_client_write_us ? r->last_client_write_us : r->t[TLAB_EV_ARRIVED];
        if (now - since < interval_us)
            continue;
        tlab__request_start_stream_early(r);
        static const char comment[] = ": waiting for worker\n\n";
        tlab__http_reply_chunk(r->http, comment, sizeof comment - 1);
        r->last_client_write_us = now;
    }
}

int tlab__stream_keepalive_init(struct event_base *base, const tlab__config *cfg) {
    if (cfg->sse_keepalive_ms <= 0)
        return 0;
    interval_us = (uint64_t)cfg->sse_keepalive_ms * 1000;
    uint64_t period_us = interval_us / 4 < 1000000 ? interval_us / 4 : 1000000;
    if (period_us < 10000)
        period_us = 10000;
    tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {.tv_sec = (time_t)(period_us / 1000000), .tv_usec = (suseconds_t)(period_us % 1000000)};
    return tick && event_add(tick, &tv) == 0 ? 0 : -1;
}

void tlab__stream_keepalive_shutdown(void) {
    if (tick)
        event_free(tick);
    tick = NULL;
}
