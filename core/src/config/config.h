/*
 * config.h - the gateway's configuration: loaded from YAML (libyaml), checked against a fixed
 * schema, with --set overrides applied on top.
 *
 * Every error names where it is: "file:line:col: message" (1-based line and column of the
 * offending key or value). An unknown key, a wrong type or an out-of-range value is an error;
 * the caller exits with status 2.
 */
#ifndef TLAB_CONFIG_H
#define TLAB_CONFIG_H

#include <stddef.h>
#include <jansson.h>

struct tlab__keyring;

typedef struct tlab__plugin_conf {
    char *name;     /* plugins[i].name, required */
    char *path;     /* plugins[i].path, or "<plugin_dir>/<name>.so" when absent */
    json_t *config; /* plugins[i].config as a JSON object ({} when absent); owned */
    int line, col;  /* where the entry starts, for error messages */
} tlab__plugin_conf;

/* One worker of the pool (docs/workers.md): external (a url) or supervised (a port). */
typedef struct tlab__worker_conf {
    char *name;     /* workers[i].name, required, unique: letters, digits, '.', '_', '-' (a metric label) */
    char *url;      /* workers[i].url: its base URL, as upstream.url; http://127.0.0.1:<port> when supervised */
    json_t *supervise; /* supervised: the supervisor's options for it (engine, profile, ...: worker_cmd.h); NULL: external */
    char **env;     /* supervised: workers[i].env as "NAME=value", NULL-terminated; NULL when none */
    int port;       /* supervised: workers[i].port */
    int line, col;  /* where the entry starts */
} tlab__worker_conf;

typedef struct tlab__config {
    char *source;      /* path of the file loaded */
    char *listen_host; /* listen.host, default "127.0.0.1" */
    int listen_port;   /* listen.port, 0..65535 (0 = any free port), default 8001 */

    char *upstream_url;          /* upstream.url, http(s) URL, default "http://127.0.0.1:8000" */
    long connect_timeout_ms;     /* upstream.connect_timeout_ms, 1..600000, default 2000 */
    long first_byte_timeout_ms;  /* upstream.first_byte_timeout_ms, 1..3600000, default 120000 */
    long total_timeout_ms;       /* upstream.total_timeout_ms, 1..86400000, default 600000 */
    long idle_keepalive_ms;      /* upstream.idle_keepalive_ms, 100..60000, default 4000 (< vLLM's 5 s) */
    long max_connections;        /* upstream.max_connections, 1..100000, default 1024 */
    long sse_keepalive_ms;       /* upstream.sse_keepalive_ms: SSE comment to a stream still waiting for its first
                                    byte, every this often; 0 = off. 0..600000, default 5000 */

    long long max_body_bytes;    /* limits.max_body_bytes, 64..1073741824, default 1048576 */
    long max_tokens;             /* limits.max_tokens: largest max_tokens accepted, 1..10000000, default 4096 */
    long max_connections_in;     /* limits.max_client_connections, 1..1000000, default 10000 */
    long client_timeout_ms;      /* limits.client_timeout_ms: read/write timeout toward clients, 1..86400000, default 60000 */

    char *log_level;             /* log.level: debug|info|warn|error, default "info" */

    /* policies: the Lua policy host (docs/policies.md). A path "" disables that policy; a relative
     * path is taken from the config file's directory (the current directory without a file). */
    char *policy_admission;      /* policies.admission, default "" (off without a config file) */
    char *policy_degradation;    /* policies.degradation, default "" */
    long policy_tick_ms;         /* policies.tick_ms: degradation tick, 10..600000, default 1000 */
    int policy_fail_open;        /* policies.fail_open: a failing admission call admits (1) or gets 503 (0), default 1 */
    long policy_instruction_budget; /* policies.instruction_budget: Lua VM instructions per call, 1000..100000000, default 100000 */
    long policy_memory_limit_mb; /* policies.memory_limit_mb: per Lua state, 1..4096, default 16 */
    long policy_stats_window_s;  /* policies.stats_window_s: window of rps, error_rate, quantiles, 1..300, default 10 */
    long policy_min_restart_interval_s; /* policies.min_restart_interval_s: gw.restart_worker rate limit, 0..86400, default 60 */

    /* auth: API keys (docs/security.md). */
    char *auth_keys_file;        /* auth.keys_file: YAML keys file, relative to the config file's directory;
                                    "" = auth off (default) */
    char *auth_redis;            /* auth.redis: "host[:port]" of a Redis that keeps the per-key buckets, shared
                                    by the gateway's replicas; "" = each replica keeps its own (default) */
    char *auth_redis_prefix;     /* auth.redis_prefix: the buckets' key prefix in Redis ("tlab:ratelimit:") */
    long auth_redis_timeout_ms;  /* auth.redis_timeout_ms: past this the replica decides alone (100) */
    struct tlab__keyring *keyring; /* loaded from auth_keys_file when set (NULL = auth off); owned */

    /* admin: a separate listener for /metrics and /admin/... */
    char *admin_host;            /* admin.listen.host, default "127.0.0.1" */
    int admin_port;              /* admin.listen.port, 0..65535, or -1 = none (default): served on the main listener */

    /* slo and autopilot: the SLO autopilot (docs/autopilot.md). */
    long slo_e2e_ms;             /* slo.e2e_ms: a request's default deadline from arrival, 1..86400000, default 5000 */
    int autopilot_enabled;       /* autopilot.enabled: the adaptive gate (1, default) or a fixed one at max_limit (0) */
    long autopilot_interval_ms;  /* autopilot.interval_ms: control step and worker scrape, 10..60000, default 100 */
    long autopilot_service_share_pct; /* autopilot.service_share_pct: target service time, % of slo.e2e_ms, 5..100, default 75 */
    long autopilot_initial_limit; /* autopilot.initial_limit: the gate before any measurement, 1..100000, default 8 */
    long autopilot_max_limit;    /* autopilot.max_limit: ceiling of the gate, 1..1000000, default 1024 */
    int autopilot_worker_metrics; /* autopilot.worker_metrics: scrape <upstream.url>/metrics (1, default) or not (0) */
    char *autopilot_start_file; /* autopilot.start_file: tlab-tune's tuned-gateway.yaml, "" = none (default) */
    long autopilot_start_limit; /* its initial_limit, read when the config loads; 0 = none */

    /* workers and pool: more than one worker (docs/workers.md). No workers list: one worker at
     * upstream.url (supervised when the supervisor plugin is loaded). */
    tlab__worker_conf *workers;  /* workers: external workers, in order; owned */
    size_t n_workers;
    long pool_health_interval_ms; /* pool.health_interval_ms: GET /health of each listed worker, 100..600000, default 1000 */
    long pool_eject_after_failures; /* pool.eject_after_failures: consecutive failures that eject a worker, 1..1000, default 3 */
    long pool_eject_ms;          /* pool.eject_ms: the first ejection; doubles per failed trial, 100..3600000, default 1000 */
    long pool_stall_ms;          /* pool.stall_ms: in flight and no byte from the worker this long = stalled, 100..3600000,
                                    default 10000 */
    long pool_min_ready;         /* pool.min_ready: supervised workers kept running however idle, 0..64, default 0 */
    char *pool_affinity_header;  /* pool.affinity_header: requests with the same value go to the same worker; "" = off
                                    (default) */
    /* discovery: the pool's members from a watched file or a DNS name instead of a workers list
     * (docs/workers.md, "Discovery"); at most one of file and dns. */
    char *discovery_file;        /* discovery.file: one worker per line, watched with inotify; "" = off (default) */
    char *discovery_dns;         /* discovery.dns: a name whose A/AAAA records (SRV when it starts with '_') are the
                                    workers; "" = off (default) */
    long discovery_port;         /* discovery.port: the workers' port for A/AAAA records, 1..65535, default 8000 */
    long discovery_interval_ms;  /* discovery.interval_ms: how often dns is resolved again, 100..3600000, default 5000 */
    char *discovery_dns_server;  /* discovery.dns_server: "host[:port]" to ask instead of /etc/resolv.conf's; "" (default) */
    int discovery_line, discovery_col; /* where the discovery section starts, for errors naming it */

    long shutdown_grace_s;       /* shutdown.grace_s: after SIGTERM, how long in-flight requests may run, 0..3600,
                                    default 30 */

    char *plugin_dir;            /* plugin_dir: where plugins without a path are found, default next to the executable (plugin_dir.h) */
    tlab__plugin_conf *plugins;   /* plugins: list, in load order */
    size_t n_plugins;
} tlab__config;

/* Fills `cfg` with the defaults above. Never fails except on allocation (returns -1). */
int tlab__config_defaults(tlab__config *cfg);

/*
 * Loads `path` over the defaults, then applies each of `sets` ("dotted.key=value", value parsed
 * as a YAML scalar, e.g. "listen.port=0", "upstream.url=http://h:1", "log.level=debug").
 * On success returns 0. On failure returns -1 and writes "file:line:col: message" into err
 * (for a bad --set: "--set 'k=v': message"); `cfg` is then left freed and zeroed.
 * path may be NULL: defaults plus sets only. When auth.keys_file is set (after the sets), the
 * keys file is loaded into cfg->keyring; its errors name the keys file ("keys.yaml:3:7: ...").
 */
int tlab__config_load(tlab__config *cfg, const char *path, const char *const *sets, size_t n_sets, char *err, size_t errlen);

void tlab__config_free(tlab__config *cfg);

#endif
