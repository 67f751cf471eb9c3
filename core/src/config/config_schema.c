/*
 * config_schema.c - the config's keys, bounds and defaults (config_schema.h), and freeing a
 * loaded config. The loader that reads YAML and --set against these is config.c.
 */
#include "config/config_schema.h"

#include <stdlib.h>
#include <string.h>

#include "config/auth_keys.h"
#include "config/plugin_dir.h"

#define FLD(k, t, m, lo, hi)                                                                                                       \
    { k, t, offsetof(tlab__config, m), lo, hi }

static const field listen_fields[] = {
    FLD("host", F_STR, listen_host, 0, 0),
    FLD("port", F_INT, listen_port, 0, 65535),
};
static const field upstream_fields[] = {
    FLD("url", F_URL, upstream_url, 0, 0),
    FLD("connect_timeout_ms", F_LONG, connect_timeout_ms, 1, 600000),
    FLD("first_byte_timeout_ms", F_LONG, first_byte_timeout_ms, 1, 3600000),
    FLD("total_timeout_ms", F_LONG, total_timeout_ms, 1, 86400000),
    FLD("idle_keepalive_ms", F_LONG, idle_keepalive_ms, 100, 60000),
    FLD("max_connections", F_LONG, max_connections, 1, 100000),
    FLD("sse_keepalive_ms", F_LONG, sse_keepalive_ms, 0, 600000),
};
static const field limits_fields[] = {
    FLD("max_body_bytes", F_LLONG, max_body_bytes, 64, 1073741824LL),
    FLD("max_tokens", F_LONG, max_tokens, 1, 10000000),
    FLD("max_client_connections", F_LONG, max_connections_in, 1, 1000000),
    FLD("client_timeout_ms", F_LONG, client_timeout_ms, 1, 86400000),
};
static const field log_fields[] = {
    FLD("level", F_LEVEL, log_level, 0, 0),
};
static const field policies_fields[] = {
    FLD("admission", F_PATH, policy_admission, 0, 0),
    FLD("degradation", F_PATH, policy_degradation, 0, 0),
    FLD("tick_ms", F_LONG, policy_tick_ms, 10, 600000),
    FLD("fail_open", F_BOOL, policy_fail_open, 0, 1),
    FLD("instruction_budget", F_LONG, policy_instruction_budget, 1000, 100000000),
    FLD("memory_limit_mb", F_LONG, policy_memory_limit_mb, 1, 4096),
    FLD("stats_window_s", F_LONG, policy_stats_window_s, 1, 300),
    FLD("min_restart_interval_s", F_LONG, policy_min_restart_interval_s, 0, 86400),
};
static const field auth_fields[] = {
    FLD("keys_file", F_PATH, auth_keys_file, 0, 0),
    FLD("redis", F_HOSTPORT, auth_redis, 0, 0),
    FLD("redis_prefix", F_STR, auth_redis_prefix, 0, 0),
    FLD("redis_timeout_ms", F_LONG, auth_redis_timeout_ms, 1, 60000),
};
static const field admin_listen_fields[] = {
    FLD("host", F_STR, admin_host, 0, 0),
    FLD("port", F_OPT_INT, admin_port, 0, 65535),
};
static const field shutdown_fields[] = {
    FLD("grace_s", F_LONG, shutdown_grace_s, 0, 3600),
};
static const field slo_fields[] = {
    FLD("e2e_ms", F_LONG, slo_e2e_ms, 1, 86400000),
};
static const field autopilot_fields[] = {
    FLD("enabled", F_BOOL, autopilot_enabled, 0, 1),
    FLD("interval_ms", F_LONG, autopilot_interval_ms, 10, 60000),
    FLD("service_share_pct", F_LONG, autopilot_service_share_pct, 5, 100),
    FLD("initial_limit", F_LONG, autopilot_initial_limit, 1, 100000),
    FLD("max_limit", F_LONG, autopilot_max_limit, 1, 1000000),
    FLD("worker_metrics", F_BOOL, autopilot_worker_metrics, 0, 1),
    FLD("start_file", F_PATH, autopilot_start_file, 0, 0),
};
static const field pool_fields[] = {
    FLD("health_interval_ms", F_LONG, pool_health_interval_ms, 100, 600000),
    FLD("eject_after_failures", F_LONG, pool_eject_after_failures, 1, 1000),
    FLD("eject_ms", F_LONG, pool_eject_ms, 100, 3600000),
    FLD("stall_ms", F_LONG, pool_stall_ms, 100, 3600000),
    FLD("affinity_header", F_STR, pool_affinity_header, 0, 0),
    FLD("min_ready", F_LONG, pool_min_ready, 0, 64),
};
static const field discovery_fields[] = {
    FLD("file", F_PATH, discovery_file, 0, 0),
    FLD("dns", F_STR, discovery_dns, 0, 0),
    FLD("port", F_LONG, discovery_port, 1, 65535),
    FLD("interval_ms", F_LONG, discovery_interval_ms, 100, 3600000),
    FLD("dns_server", F_STR, discovery_dns_server, 0, 0),
};
static const field top_fields[] = {
    FLD("plugin_dir", F_STR, plugin_dir, 0, 0),
};

#define SECTION(name, f)                                                                                                           \
    { name, f, sizeof(f) / sizeof(f[0]) }
const section tlab__config_sections[] = {
    SECTION("listen", listen_fields),
    SECTION("upstream", upstream_fields),
    SECTION("limits", limits_fields),
    SECTION("log", log_fields),
    SECTION("policies", policies_fields),
    SECTION("auth", auth_fields),
    SECTION("admin.listen", admin_listen_fields),
    SECTION("shutdown", shutdown_fields),
    SECTION("slo", slo_fields),
    SECTION("autopilot", autopilot_fields),
    SECTION("pool", pool_fields),
    SECTION("discovery", discovery_fields),
};
const section tlab__config_top_section = SECTION(NULL, top_fields);
const size_t tlab__config_n_sections = sizeof(tlab__config_sections) / sizeof(tlab__config_sections[0]);

const char *const tlab__config_top_expected = "listen, upstream, limits, log, policies, auth, admin, shutdown, slo, autopilot, pool, workers, discovery, plugin_dir, plugins";
const char *const tlab__config_log_levels[] = {"debug", "info", "warn", "error", NULL};

int tlab__config_defaults(tlab__config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->listen_port = 8001;
    cfg->connect_timeout_ms = 2000;
    cfg->first_byte_timeout_ms = 120000;
    cfg->total_timeout_ms = 600000;
    cfg->idle_keepalive_ms = 4000;
    cfg->max_connections = 1024;
    cfg->sse_keepalive_ms = 5000;
    cfg->max_body_bytes = 1048576;
    cfg->max_tokens = 4096;
    cfg->max_connections_in = 10000;
    cfg->client_timeout_ms = 60000;
    cfg->policy_tick_ms = 1000;
    cfg->policy_fail_open = 1;
    cfg->policy_instruction_budget = 100000;
    cfg->policy_memory_limit_mb = 16;
    cfg->policy_stats_window_s = 10;
    cfg->policy_min_restart_interval_s = 60;
    cfg->policy_admission = strdup("");
    cfg->policy_degradation = strdup("");
    cfg->listen_host = strdup("127.0.0.1");
    cfg->upstream_url = strdup("http://127.0.0.1:8000");
    cfg->log_level = strdup("info");
    cfg->plugin_dir = tlab__default_plugin_dir();
    cfg->auth_keys_file = strdup("");
    cfg->auth_redis = strdup("");
    cfg->auth_redis_prefix = strdup("tlab:ratelimit:");
    cfg->auth_redis_timeout_ms = 100;
    cfg->admin_host = strdup("127.0.0.1");
    cfg->admin_port = -1;
    cfg->shutdown_grace_s = 30;
    cfg->slo_e2e_ms = 5000;
    cfg->autopilot_enabled = 1;
    cfg->autopilot_interval_ms = 100;
    cfg->autopilot_service_share_pct = 75;
    cfg->autopilot_initial_limit = 8;
    cfg->autopilot_max_limit = 1024;
    cfg->autopilot_worker_metrics = 1;
    cfg->autopilot_start_file = strdup("");
    cfg->pool_health_interval_ms = 1000;
    cfg->pool_eject_after_failures = 3;
    cfg->pool_eject_ms = 1000;
    cfg->pool_stall_ms = 10000;
    cfg->pool_affinity_header = strdup("");
    cfg->discovery_file = strdup("");
    cfg->discovery_dns = strdup("");
    cfg->discovery_port = 8000;
    cfg->discovery_interval_ms = 5000;
    cfg->discovery_dns_server = strdup("");
    if (!cfg->discovery_file || !cfg->discovery_dns || !cfg->discovery_dns_server ||
        !cfg->auth_keys_file || !cfg->auth_redis || !cfg->auth_redis_prefix || !cfg->admin_host || !cfg->listen_host || !cfg->upstream_url || !cfg->log_level ||
        !cfg->plugin_dir || !cfg->policy_admission || !cfg->autopilot_start_file || !cfg->pool_affinity_header ||
        !cfg->policy_degradation) {
        tlab__config_free(cfg);
        return -1;
    }
    return 0;
}

void tlab__config_free(tlab__config *cfg) {
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        free(cfg->plugins[i].name);
        free(cfg->plugins[i].path);
        json_decref(cfg->plugins[i].config);
    }
    free(cfg->plugins);
    for (size_t i = 0; i < cfg->n_workers; i++) {
        free(cfg->workers[i].name);
        free(cfg->workers[i].url);
        json_decref(cfg->workers[i].supervise);
        for (char **e = cfg->workers[i].env; e && *e; e++)
            free(*e);
        free(cfg->workers[i].env);
    }
    free(cfg->workers);
    free(cfg->pool_affinity_header);
    free(cfg->discovery_file);
    free(cfg->discovery_dns);
    free(cfg->discovery_dns_server);
    free(cfg->source);
    free(cfg->listen_host);
    free(cfg->upstream_url);
    free(cfg->log_level);
    free(cfg->plugin_dir);
    free(cfg->policy_admission);
    free(cfg->policy_degradation);
    free(cfg->auth_keys_file);
    free(cfg->auth_redis);
    free(cfg->auth_redis_prefix);
    free(cfg->admin_host);
    free(cfg->autopilot_start_file);
    tlab__keyring_free(cfg->keyring);
    memset(cfg, 0, sizeof *cfg);
}
