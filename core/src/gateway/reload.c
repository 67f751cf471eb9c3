/*
 * reload.c - the config reload on SIGHUP: load a new generation, compare it key by key with the
 * running one, apply the keys that are safe to change on the loop, and say which are not.
 *
 * The running config is patched in place rather than swapped: modules keep a pointer to it
 * (upstream.c, http_server.c, auth.c), and the keys that need a restart must keep their old
 * values anyway. Strings are swapped by pointer; nothing here blocks beyond reading the files.
 */
#include "gateway/reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/auth.h"
#include "dispatch/gate.h"
#include "gateway/gateway.h"
#include "gateway/http_server.h"
#include "common/log.h"
#include "base/metrics_registry.h"
#include "policy/lua/policy_host.h"

typedef struct keylist {
    char buf[768];
    size_t len;
    int n;
} keylist;

static void note(keylist *k, const char *key) {
    int w = snprintf(k->buf + k->len, sizeof k->buf - k->len, "%s%s", k->n ? ", " : "", key);
    if (w > 0 && (size_t)w < sizeof k->buf - k->len)
        k->len += (size_t)w;
    k->n++;
}

static int str_differs(const char *a, const char *b) {
    return strcmp(a ? a : "", b ? b : "") != 0;
}

static int plugins_differ(const tlab__config *a, const tlab__config *b) {
    if (a->n_plugins != b->n_plugins)
        return 1;
    for (size_t i = 0; i < a->n_plugins; i++)
        if (str_differs(a->plugins[i].name, b->plugins[i].name) || str_differs(a->plugins[i].path, b->plugins[i].path) ||
            !json_equal(a->plugins[i].config, b->plugins[i].config))
            return 1;
    return 0;
}

/* Keys that only take effect at start-up: named in `k` when they differ. */
static int workers_differ(const tlab__config *a, const tlab__config *b) {
    if (a->n_workers != b->n_workers)
        return 1;
    for (size_t i = 0; i < a->n_workers; i++)
        if (strcmp(a->workers[i].name, b->workers[i].name) != 0 || strcmp(a->workers[i].url, b->workers[i].url) != 0 ||
            !a->workers[i].supervise != !b->workers[i].supervise ||
            (a->workers[i].supervise && !json_equal(a->workers[i].supervise, b->workers[i].supervise)))
            return 1;
    return 0;
}

static void restart_keys(const tlab__config *old, const tlab__config *next, keylist *k) {
    if (str_differs(old->listen_host, next->listen_host))
        note(k, "listen.host");
    if (old->listen_port != next->listen_port)
        note(k, "listen.port");
    if (str_differs(old->admin_host, next->admin_host))
        note(k, "admin.listen.host");
    if (old->admin_port != next->admin_port)
        note(k, "admin.listen.port");
    if (str_differs(old->upstream_url, next->upstream_url))
        note(k, "upstream.url");
    if (old->idle_keepalive_ms != next->idle_keepalive_ms)
        note(k, "upstream.idle_keepalive_ms");
    if (old->max_connections != next->max_connections)
        note(k, "upstream.max_connections");
    if (old->sse_keepalive_ms != next->sse_keepalive_ms)
        note(k, "upstream.sse_keepalive_ms");
    if (old->max_connections_in != next->max_connections_in)
        note(k, "limits.max_client_connections");
    if (str_differs(old->auth_keys_file, next->auth_keys_file))
        note(k, "auth.keys_file");
    if (str_differs(old->auth_redis, next->auth_redis) || str_differs(old->auth_redis_prefix, next->auth_redis_prefix) ||
        old->auth_redis_timeout_ms != next->auth_redis_timeout_ms)
        note(k, "auth.redis");
    if (old->policy_stats_window_s != next->policy_stats_window_s)
        note(k, "policies.stats_window_s");
    if (str_differs(old->plugin_dir, next->plugin_dir))
        note(k, "plugin_dir");
    if (plugins_differ(old, next))
        note(k, "plugins");
    if (workers_differ(old, next))
        note(k, "workers");
    if (old->pool_health_interval_ms != next->pool_health_interval_ms || old->pool_eject_after_failures != next->pool_eject_after_failures ||
        old->pool_eject_ms != next->pool_eject_ms || old->pool_min_ready != next->pool_min_ready || str_differs(old->pool_affinity_header, next->pool_affinity_header))
        note(k, "pool");
    if (str_differs(old->discovery_file, next->discovery_file) || str_differs(old->discovery_dns, next->discovery_dns) ||
        old->discovery_port != next->discovery_port || old->discovery_interval_ms != next->discovery_interval_ms ||
        str_differs(old->discovery_dns_server, next->discovery_dns_server))
        note(k, "discovery");
}

#define LIVE_LONG(field, key)                                                                                                      \
    do {                                                                                                                           \
        if (live->field != next->field) {                                                                                          \
            live->field = next->field;                                                                                             \
            note(&changed, key);                                                                                                   \
        }                                                                                                                          \
    } while (0)

#define LIVE_STR(field, key)                                                                                                       \
    do {                                                                                                                           \
        if (str_differs(live->field, next->field)) {                                                                               \
            char *tmp = live->field;                                                                                               \
            live->field = next->field;                                                                                             \
            next->field = tmp; /* freed with `next` */                                                                             \
            note(&changed, key);                                                                                                   \
        }                                                                                                                          \
    } while (0)

static void count(const char *result) {
    tlab_metric *m = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_config_reloads_total",
                                          "Config reloads on SIGHUP, by result (ok, failed: the old config kept running)", NULL, 0);
    char labels[32];
    snprintf(labels, sizeof labels, "result=\"%s\"", result);
    if (m)
        tlab__metric_add(m, labels, 1);
}

int tlab__reload_config(tlab__config *live, const char *path, const char *const *sets, size_t n_sets) {
    tlab__config nextc, *next = &nextc;
    char err[1024];
    if (tlab__config_load(next, path, sets, n_sets, err, sizeof err) != 0) {
        LOG_ERROR("config reload refused, the running config stays: %s", err);
        count("failed");
        tlab__policies_reload_all();
        return -1;
    }
    keylist restart = {.len = 0}, changed = {.len = 0};
    restart_keys(live, next, &restart);

    LIVE_STR(log_level, "log.level");
    LIVE_LONG(max_tokens, "limits.max_tokens");
    LIVE_LONG(max_body_bytes, "limits.max_body_bytes");
    LIVE_LONG(client_timeout_ms, "limits.client_timeout_ms");
    LIVE_LONG(connect_timeout_ms, "upstream.connect_timeout_ms");
    LIVE_LONG(first_byte_timeout_ms, "upstream.first_byte_timeout_ms");
    LIVE_LONG(total_timeout_ms, "upstream.total_timeout_ms");
    LIVE_STR(policy_admission, "policies.admission");
    LIVE_STR(policy_degradation, "policies.degradation");
    LIVE_LONG(policy_tick_ms, "policies.tick_ms");
    LIVE_LONG(policy_fail_open, "policies.fail_open");
    LIVE_LONG(policy_instruction_budget, "policies.instruction_budget");
    LIVE_LONG(policy_memory_limit_mb, "policies.memory_limit_mb");
    LIVE_LONG(policy_min_restart_interval_s, "policies.min_restart_interval_s");
    LIVE_LONG(shutdown_grace_s, "shutdown.grace_s");
    LIVE_LONG(slo_e2e_ms, "slo.e2e_ms");
    LIVE_LONG(autopilot_enabled, "autopilot.enabled");
    LIVE_LONG(autopilot_interval_ms, "autopilot.interval_ms");
    LIVE_LONG(autopilot_service_share_pct, "autopilot.service_share_pct");
    LIVE_LONG(autopilot_initial_limit, "autopilot.initial_limit");
    LIVE_LONG(autopilot_max_limit, "autopilot.max_limit");
    LIVE_LONG(pool_stall_ms, "pool.stall_ms");
    if (live->autopilot_worker_metrics != next->autopilot_worker_metrics)
        note(&restart, "autopilot.worker_metrics");
    if (str_differs(live->autopilot_start_file, next->autopilot_start_file) || live->autopilot_start_limit != next->autopilot_start_limit)
        note(&restart, "autopilot.start_file");
    tlab__config_free(next);
    tlab__gate_reconfigure(live);

    tlab__log_set_level((tlab_log_level)tlab__log_level_parse(live->log_level));
    tlab__auth_set_default_max_tokens(live->max_tokens);
    tlab__http_apply_limits(&tlab__gw);
    if (tlab__policies_apply(tlab__gw.base, live, err, sizeof err) != 0)
        LOG_ERROR("config reload: %s", err);

    if (restart.n)
        LOG_WARN("config reload: %s changed in %s but only take%s effect at restart; still running with the old value%s",
                 restart.buf, path ? path : "(no file)", restart.n == 1 ? "s" : "", restart.n == 1 ? "" : "s");
    LOG_INFO("config reloaded from %s: %s", path ? path : "(no file)", changed.n ? changed.buf : "no live key changed");
    count("ok");
    return 0;
}
