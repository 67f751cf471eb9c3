/*
 * main.c - tlab-gateway's command line, start-up order and graceful shutdown.
 *
 * Start-up: config (exit 2 on any error, as file:line:col: message), loop, upstream client,
 * plugins (exit 1 when one fails to load), HTTP listener. Shutdown on SIGTERM/SIGINT: stop
 * taking new work (503: the listener stays open while draining), answer everything still
 * waiting for dispatch with 503, let in-flight responses finish for up to shutdown.grace_s, then
 * exit 0 (plugins shut down in reverse order: the supervisor stops its worker). A second signal
 * exits at once. SIGHUP re-reads the config file (reload.c: live keys applied, restart-only keys
 * warned about), then reloads the Lua policies and the API keys.
 */
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "policy/auth.h"
#include "base/loopback.h"
#include "config/config.h"
#include "discovery/discovery.h"
#include "dispatch/dispatch.h"
#include "dispatch/gate.h"
#include "dispatch/pool.h"
#include "dispatch/pool_health.h"
#include "dispatch/route.h"
#include "gateway/config_watch.h"
#include "gateway/gateway.h"
#include "gateway/http_server.h"
#include "common/log.h"
#include "gateway/plugin_api.h"
#include "hooks/plugin_host.h"
#include "policy/lua/policy_host.h"
#include "common/process.h"
#include "relay/relay.h"
#include "gateway/reload.h"
#include "relay/stream_keepalive.h"
#include "supervise/pool_supervisor.h"
#include "upstream/upstream.h"

/* What SIGHUP needs to load the config again exactly as at start-up. */
static struct {
    tlab__config *cfg;
    const char *path;
    const char *const *sets;
    size_t n_sets;
} reload_args;

static void usage(FILE *out) {
    fprintf(out,
            "Usage: tlab-gateway [-c FILE] [--set key=value]... [--check-config]\n"
            "\n"
            "An OpenAI-compatible gateway in front of an LLM worker (vLLM or tlab-sim).\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE    YAML config (see configs/gateway.yaml); built-in defaults when absent\n"
            "  -s, --set KEY=VALUE  override one config key, e.g. --set listen.port=9001\n"
            "                       --set upstream.url=http://127.0.0.1:8000 (repeatable)\n"
            "      --check-config   validate the config and exit (0 valid, 2 invalid)\n"
            "  -h, --help           this help\n"
            "  -V, --version        print the version\n"
            "\n"
            "Exit status: 0 clean shutdown, 1 runtime failure (listen, plugin load), 2 bad config or usage.\n");
}

static struct event *shutdown_timer;

/* Replies just finished may still sit in the front's output buffers (a client reading slowly): a
 * short last turn of the loop writes them before the listeners are freed. */
static const struct timeval flush_delay = {0, 200000};

static void check_drained(void) {
    if (tlab__gw.draining && tlab__requests_live_count() == 0)
        event_base_loopexit(tlab__gw.base, &flush_delay);
}

static void on_drain_poll(evutil_socket_t fd, short what, void *arg) {
    check_drained();
}

/* Grace over: every request still running is ended properly (503 JSON, or an SSE error event and
 * the end of the stream), so no client is left with a stream that just stops. */
static void on_grace_over(evutil_socket_t fd, short what, void *arg) {
    LOG_WARN("shutdown grace of %ld s (shutdown.grace_s) is over with %zu requests still running; ending them and exiting",
             tlab__gw.cfg->shutdown_grace_s, tlab__requests_live_count());
    tlab__error err;
    tlab__error_set(&err, 503, "service_unavailable", NULL,
                   "the gateway shut down before this request finished (shutdown.grace_s); retry on another instance");
    for (tlab_request *r = tlab__requests_live(), *next; r; r = next) {
        next = r->live_next;
        tlab__relay_abort(r, &err);
    }
    event_base_loopexit(tlab__gw.base, &flush_delay);
}

/* SIGHUP: the config file, then the Lua policies and the keys file (each keeps its old version
 * if the new one does not load). In-flight and waiting requests are not touched. */
static void reload_all(const char *why) {
    if (tlab__gw.draining)
        return; /* nothing worth changing on the way out */
    LOG_INFO("%s: reloading the config, the policies%s", why, tlab__auth_enabled() ? " and the API keys" : " (auth is off)");
    tlab__reload_config(reload_args.cfg, reload_args.path, reload_args.sets, reload_args.n_sets);
    tlab__auth_reload();
}

static void on_sighup(evutil_socket_t sig, short what, void *arg) {
    (void)sig, (void)what, (void)arg;
    reload_all("SIGHUP");
}

/* A Kubernetes ConfigMap update (config_watch.h): the same reload as SIGHUP. */
static void on_config_swap(void) {
    reload_all("the config's ConfigMap volume changed (..data swapped)");
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    if (tlab__gw.draining) {
        LOG_WARN("second signal: exiting now");
        event_base_loopbreak(tlab__gw.base);
        return;
    }
    LOG_INFO("%s: draining (%zu in flight, %zu waiting)", sig == SIGINT ? "SIGINT" : "SIGTERM", tlab__requests_in_flight(),
             tlab__dispatch_waiting());
    tlab__gw.draining = 1;
    tlab__error err;
    tlab__error_set(&err, 503, "service_unavailable", NULL, TLAB_DRAINING_MESSAGE);
    tlab__dispatch_drain(&err);
    /* Poll for the last request to end; a 50 ms poll costs nothing and keeps request.c unaware of shutdown. */
    struct event *poll = event_new(tlab__gw.base, -1, EV_PERSIST, on_drain_poll, NULL);
    struct timeval p = {0, 50000}, grace = {(time_t)tlab__gw.cfg->shutdown_grace_s, 0};
    if (poll)
        event_add(poll, &p);
    shutdown_timer = poll;
    event_base_once(tlab__gw.base, -1, EV_TIMEOUT, on_grace_over, NULL, &grace);
    check_drained();
}

/* Every client connection is a descriptor: without this, a default soft limit of 1024 would cut
 * the gateway off (accept fails with EMFILE) long before limits.max_client_connections. */
static void raise_fd_limit(const tlab__config *cfg) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Room for the worker connections, plugins and logs besides the clients. */
    rlim_t need = (rlim_t)cfg->max_connections_in + (rlim_t)cfg->max_connections + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        LOG_WARN("open-file limit %llu is below limits.max_client_connections + upstream.max_connections + 64 = %llu; "
                 "raise it (ulimit -n) or lower the limits",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"set", required_argument, 0, 's'},
                                         {"check-config", no_argument, 0, 'k'}, {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, 'V'},       {0, 0, 0, 0}};
    const char *config_path = NULL;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    size_t n_sets = 0;
    int check_only = 0, c;
    if (!sets)
        return 1;
    while ((c = getopt_long(argc, argv, "c:s:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 's': sets[n_sets++] = optarg; break;
        case 'k': check_only = 1; break;
        case 'h': usage(stdout); free(sets); return 0;
        case 'V': printf("tlab-gateway %s (plugin ABI %d.%d)\n", TLAB_VERSION, TLAB_ABI_MAJOR, TLAB_ABI_MINOR); free(sets); return 0;
        default: usage(stderr); free(sets); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tlab-gateway: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        free(sets);
        return 2;
    }

    tlab__config cfg;
    char err[1024];
    if (tlab__config_load(&cfg, config_path, sets, n_sets, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        free(sets);
        return 2;
    }
    if (check_only) {
        printf("%s: configuration is valid\n", config_path ? config_path : "(built-in defaults)");
        tlab__config_free(&cfg);
        free(sets);
        return 0;
    }
    reload_args.cfg = &cfg;
    reload_args.path = config_path;
    reload_args.sets = sets;
    reload_args.n_sets = n_sets;
    tlab__log_set_level((tlab_log_level)tlab__log_level_parse(cfg.log_level));
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(&cfg);

    int rc = 1;
    tlab__gw.cfg = &cfg;
    tlab__gw.started_us = tlab__now_us();
    /* epoll's change list folds the add / delete pairs of one loop turn on a socket (a write
     * event enabled for a reply and disabled once it drained) into at most one epoll_ctl. The
     * gateway never dup()s a watched socket, the list's one caveat. */
    struct event_config *evcfg = event_config_new();
    if (evcfg)
        event_config_set_flag(evcfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    tlab__gw.base = evcfg ? event_base_new_with_config(evcfg) : event_base_new();
    event_config_free(evcfg);
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    if (!tlab__gw.base || tlab__dispatch_init(tlab__gw.base) != 0 || tlab__process_init(tlab__gw.base) != 0 ||
        tlab__stream_keepalive_init(tlab__gw.base, &cfg) != 0) {
        LOG_ERROR("cannot create the event loop");
        goto out;
    }
    if (tlab__auth_init(&cfg, tlab__gw.base, err, sizeof err) != 0) {
        LOG_ERROR("%s", err);
        goto out;
    }
    tlab__gw.upstream = tlab__upstream_new(tlab__gw.base, &cfg);
    tlab__relay_init(tlab__gw.upstream);
    if (!tlab__gw.upstream) {
        LOG_ERROR("cannot initialise libcurl");
        goto out;
    }
    if (tlab__pool_init(&cfg) != 0 || tlab__route_init(&cfg) != 0 ||
        tlab__gate_init(tlab__gw.base, tlab__gw.upstream, &cfg, tlab__dispatch_waiting, tlab__dispatch_wake) != 0 ||
        tlab__pool_health_init(tlab__gw.base, tlab__gw.upstream, &cfg, tlab__dispatch_wake) != 0) {
        LOG_ERROR("out of memory setting up the autopilot");
        goto out;
    }
    if (tlab__pool_supervisor_init(tlab__gw.base, tlab__gw.upstream, &cfg, tlab__dispatch_wake, err, sizeof err) != 0) {
        LOG_ERROR("%s", err);
        rc = 2;
        goto out;
    }
    if (tlab__discovery_init(tlab__gw.base, &cfg, tlab__dispatch_wake, err, sizeof err) != 0) {
        LOG_ERROR("%s", err);
        rc = 2;
        goto out;
    }
    if (tlab__plugins_load(tlab__gw.base, &cfg, tlab__plugin_api(), err, sizeof err) != 0) {
        LOG_ERROR("%s", err);
        goto out;
    }
    if ((cfg.discovery_file[0] || cfg.discovery_dns[0]) && tlab__plugins_worker_state() >= 0) {
        LOG_ERROR("%s:%d:%d: discovery and the supervisor plugin do not go together: the supervisor runs one worker at "
                  "upstream.url; discover workers you start yourself, or drop discovery",
                  cfg.source ? cfg.source : "(config)", cfg.discovery_line, cfg.discovery_col);
        rc = 2;
        goto out;
    }
    if (cfg.n_workers && tlab__plugins_worker_state() >= 0) {
        /* One supervisor runs one worker; in a listed pool it would hold every worker's requests
         * on its own worker's state. */
        LOG_ERROR("%s:%d:%d: a workers list and the supervisor plugin do not go together yet: the supervisor runs one worker "
                  "at upstream.url; list workers you start yourself, or drop the workers list",
                  cfg.source ? cfg.source : "(config)", cfg.workers[0].line, cfg.workers[0].col);
        rc = 2;
        goto out;
    }
    /* After the plugins, so gw.set_window_ms and gw.restart_worker find them from the first call. */
    if (tlab__policies_start(tlab__gw.base, &cfg, err, sizeof err) != 0) {
        LOG_ERROR("%s", err);
        goto out;
    }
    if (tlab__http_start(&tlab__gw, err, sizeof err) != 0) {
        LOG_ERROR("%s", err);
        goto out;
    }
    sigterm = evsignal_new(tlab__gw.base, SIGTERM, on_signal, NULL);
    sigint = evsignal_new(tlab__gw.base, SIGINT, on_signal, NULL);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    sighup = evsignal_new(tlab__gw.base, SIGHUP, on_sighup, NULL);
    evsignal_add(sighup, NULL);
    tlab__config_watch_start(tlab__gw.base, reload_args.path, on_config_swap);
    char where[600];
    if (cfg.n_workers)
        snprintf(where, sizeof where, "%zu workers", cfg.n_workers);
    else if (cfg.discovery_file[0] || cfg.discovery_dns[0])
        snprintf(where, sizeof where, "workers from discovery: %s; %zu now", tlab__discovery_describe(), tlab__pool_members());
    else
        snprintf(where, sizeof where, "upstream %s", cfg.upstream_url);
    LOG_INFO("tlab-gateway %s listening on http://%s:%d (%s, %zu plugin%s)", TLAB_VERSION, cfg.listen_host, tlab__gw.port, where,
             tlab__plugins_count(), tlab__plugins_count() == 1 ? "" : "s");
    for (size_t i = 0; i < cfg.n_workers; i++)
        LOG_INFO("worker %s at %s%s", cfg.workers[i].name, cfg.workers[i].url,
                 cfg.workers[i].supervise ? " (supervised: started on demand, or for pool.min_ready)" : "");
    if (tlab__auth_enabled())
        LOG_INFO("auth on: %zu API key%s from %s", tlab__auth_key_count(), tlab__auth_key_count() == 1 ? "" : "s",
                 cfg.auth_keys_file);
    else
        LOG_INFO("auth off (auth.keys_file is empty): any client may call");
    if (!tlab__auth_enabled() && !tlab__is_loopback(cfg.listen_host))
        LOG_WARN("listen.host %s is not a loopback address and auth is off: any host that reaches port %d can call "
                 "/v1/chat/completions, /v1/completions, /v1/models, /metrics and the plugins' routes without a key; "
                 "/admin/... answers loopback clients only. Set auth.keys_file to require keys",
                 cfg.listen_host, tlab__gw.port);
    if (tlab__gw.admin_http) {
        LOG_INFO("admin routes (/metrics, /admin/...) on http://%s:%d only", cfg.admin_host, tlab__gw.admin_port);
        if (!tlab__is_loopback(cfg.admin_host))
            LOG_WARN("admin.listen.host %s is not a loopback address: the admin routes take no key there; firewall that port",
                     cfg.admin_host);
    }
    event_base_dispatch(tlab__gw.base);
    LOG_INFO("stopped");
    rc = 0;

out:
    tlab__http_stop(&tlab__gw);
    tlab__policies_stop();
    tlab__plugins_unload();
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (sighup)
        event_free(sighup);
    if (shutdown_timer)
        event_free(shutdown_timer);
    tlab__stream_keepalive_shutdown();
    tlab__pool_supervisor_shutdown();
    tlab__process_shutdown();
    tlab__config_watch_stop();
    tlab__discovery_shutdown();
    tlab__pool_health_shutdown();
    tlab__gate_shutdown();
    tlab__route_shutdown();
    tlab__pool_shutdown();
    tlab__dispatch_shutdown();
    tlab__upstream_free(tlab__gw.upstream);
    tlab__auth_shutdown();
    if (tlab__gw.base)
        event_base_free(tlab__gw.base);
    tlab__config_free(&cfg);
    free(sets);
    return rc;
}
