/*
 * pool_health.c - the listed workers' health polls (pool_health.h).
 */
#include "dispatch/pool_health.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "common/log.h"
#include "dispatch/pool.h"

static struct {
    struct event *timer;
    tlab__upstream *up;
    void (*wake)(void);
    long timeout_ms;
} h;

static void on_health_headers(void *arg, int status, const char *ctype) {
    tlab__pool_worker *w = arg;
    (void)ctype;
    w->health_answer_ok = status == 200;
}

static void on_health_data(void *arg, const char *data, size_t len) {
    (void)arg, (void)data, (void)len;
}

static void on_health_done(void *arg, tlab__xfer_result result, const char *detail) {
    tlab__pool_worker *w = arg;
    w->health_xfer = NULL;
    uint64_t now = tlab__now_us();
    int ok = result == TLAB_XFER_OK && w->health_answer_ok;
    w->health_ok = ok;
    if (ok) {
        if (w->breaker.state == TLAB_BREAKER_OPEN && now >= w->breaker.open_until_us) {
            tlab__breaker_allows(&w->breaker, now); /* the probe is the half-open trial */
            tlab__breaker_success(&w->breaker);
            w->stalled = 0;
            tlab__log(TLAB_LOG_INFO, NULL, "worker %s healthy again: back in routing", w->name);
            if (h.wake)
                h.wake();
        }
        return;
    }
    int was_routable = tlab__breaker_routable(&w->breaker, now);
    if (w->breaker.state == TLAB_BREAKER_OPEN && now >= w->breaker.open_until_us)
        tlab__breaker_allows(&w->breaker, now); /* its time is over but it still fails: a failed trial */
    if (tlab__breaker_failure(&w->breaker, now))
        tlab__pool_count_ejection(w);
    if (was_routable && !tlab__breaker_routable(&w->breaker, now))
        tlab__log(TLAB_LOG_WARN, NULL, "worker %s out of routing: /health %s", w->name,
                  result == TLAB_XFER_OK ? "did not answer 200" : detail && *detail ? detail : "failed");
}

static const tlab__xfer_callbacks health_cb = {on_health_headers, on_health_data, on_health_done};

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    for (size_t i = 0; i < tlab__pool_size(); i++) {
        tlab__pool_worker *w = tlab__pool_worker_at(i);
        if (!w->listed || !w->member || w->health_xfer || (w->supervised && w->sup_state != TLAB_WORKER_RUNNING))
            continue; /* a poll still under way is not doubled; a worker that left is not polled, nor a supervised one that is not running (its supervisor polls it) */
        char url[1100];
        snprintf(url, sizeof url, "%s/health", w->root_url);
        w->health_answer_ok = 0;
        w->health_xfer = tlab__upstream_start(h.up, "GET", url, NULL, 0, NULL, h.timeout_ms, &health_cb, w);
    }
}

int tlab__pool_health_init(struct event_base *base, tlab__upstream *up, const tlab__config *cfg, void (*wake)(void)) {
    memset(&h, 0, sizeof h);
    if ((!cfg->n_workers && !cfg->discovery_file[0] && !cfg->discovery_dns[0]) || !up)
        return 0;
    h.up = up;
    h.wake = wake;
    /* Never longer than the interval, so polls do not overlap; 2 s at most for a slow worker. */
    h.timeout_ms = cfg->pool_health_interval_ms < 2000 ? cfg->pool_health_interval_ms : 2000;
    h.timer = event_new(base, -1, EV_PERSIST, on_timer, NULL);
    if (!h.timer)
        return -1;
    struct timeval tv = {cfg->pool_health_interval_ms / 1000, (cfg->pool_health_interval_ms % 1000) * 1000};
    event_add(h.timer, &tv);
    return 0;
}

void tlab__pool_health_shutdown(void) {
    for (size_t i = 0; i < tlab__pool_size(); i++) {
        tlab__pool_worker *w = tlab__pool_worker_at(i);
        if (w->health_xfer)
            tlab__xfer_abort(w->health_xfer);
        w->health_xfer = NULL;
    }
    if (h.timer)
        event_free(h.timer);
    memset(&h, 0, sizeof h);
}
