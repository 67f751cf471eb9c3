/*
 * discovery.c - makes the pool match what the source found (discovery.h).
 */
#include "discovery/discovery.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "discovery/discovery_dns.h"
#include "discovery/discovery_file.h"
#include "discovery/discovery_srv.h"
#include "dispatch/gate.h"
#include "dispatch/pool.h"

static struct {
    void (*wake)(void);
    char what[600];
    int full_logged; /* the pool-is-full error is logged once per list */
} dsc = {.what = "off"};

static int listed(const tlab__discovered *list, size_t n, const tlab__pool_worker *w) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].name, w->name) == 0 && strcmp(list[i].url, w->url) == 0)
            return 1;
    return 0;
}

static void on_found(const tlab__discovered *list, size_t n, const char *source) {
    size_t joined = 0, left = 0;
    /* Leavers first: a worker that moved (same name, another URL) frees its name for the new one. */
    for (size_t i = 0; i < tlab__pool_size(); i++) {
        tlab__pool_worker *w = tlab__pool_worker_at(i);
        if (!w->member || listed(list, n, w))
            continue;
        tlab__pool_remove(w);
        left++;
        tlab__log(TLAB_LOG_INFO, NULL, "worker %s (%s) left the pool (%s)%s%zu request(s) there finish first", w->name, w->url,
                  source, w->in_flight ? ": its " : ": ", w->in_flight);
    }
    int full = 0;
    for (size_t i = 0; i < n; i++) {
        if (tlab__pool_find(list[i].name))
            continue; /* a member with that name is this entry: a new URL would have made it leave above */
        int fresh = 0;
        tlab__pool_worker *w = tlab__pool_add(list[i].name, list[i].url, &fresh);
        if (!w || (fresh && tlab__gate_worker_reset(w) != 0)) {
            if (w)
                tlab__pool_remove(w);
            full = 1;
            if (!dsc.full_logged)
                tlab__log(TLAB_LOG_ERROR, NULL, "worker %s (%s) not added: the pool holds at most %d workers, or memory ran out",
                          list[i].name, list[i].url, TLAB_POOL_MAX);
            continue;
        }
        joined++;
        tlab__log(TLAB_LOG_INFO, NULL, "worker %s joined the pool at %s (%s)%s", w->name, w->url, source,
                  fresh ? "" : ", back before its last request ended");
    }
    dsc.full_logged = full;
    if (joined || left)
        tlab__log(TLAB_LOG_INFO, NULL, "pool: %zu worker(s) (%zu joined, %zu left)", tlab__pool_members(), joined, left);
    if (joined && dsc.wake)
        dsc.wake();
}

int tlab__discovery_init(struct event_base *base, const tlab__config *cfg, void (*wake)(void), char *err, size_t errlen) {
    dsc.wake = wake;
    dsc.full_logged = 0;
    if (cfg->discovery_file[0]) {
        snprintf(dsc.what, sizeof dsc.what, "file %s", cfg->discovery_file);
        return tlab__discovery_file_start(base, cfg->discovery_file, on_found, err, errlen);
    }
    if (cfg->discovery_dns[0] == '_') {
        /* _service._proto.name: SRV records, a port each */
        snprintf(dsc.what, sizeof dsc.what, "dns SRV %s, every %ld ms", cfg->discovery_dns, cfg->discovery_interval_ms);
        return tlab__discovery_srv_start(base, cfg->discovery_dns, cfg->discovery_interval_ms, cfg->discovery_dns_server,
                                         on_found, err, errlen);
    }
    if (cfg->discovery_dns[0]) {
        snprintf(dsc.what, sizeof dsc.what, "dns %s, port %ld, every %ld ms", cfg->discovery_dns, cfg->discovery_port,
                 cfg->discovery_interval_ms);
        return tlab__discovery_dns_start(base, cfg->discovery_dns, cfg->discovery_port, cfg->discovery_interval_ms,
                                         cfg->discovery_dns_server, on_found, err, errlen);
    }
    snprintf(dsc.what, sizeof dsc.what, "off");
    return 0;
}

void tlab__discovery_shutdown(void) {
    tlab__discovery_file_stop();
    tlab__discovery_dns_stop();
    tlab__discovery_srv_stop();
    snprintf(dsc.what, sizeof dsc.what, "off");
}

const char *tlab__discovery_describe(void) {
    return dsc.what;
}
