/*
 * sim_main.c - tlab-sim's entry point: parse flags, load the profiles, size the KV cache (exiting like
 * vLLM on OOM), wait out the simulated cold start with the port closed, then serve until SIGTERM/SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/listen_socket.h"
#include "sim_config.h"
#include "sim_cost.h"
#include "sim_engine.h"
#include "sim_http.h"
#include "sim_log.h"
#include "sim_predict_cli.h"
#include "sim_profile.h"

typedef struct sim_app {
    struct event_base *base;
    sim_config cfg;
    sim_hw hw;
    sim_modelp model;
    sim_memory mem;
    sim_engine *engine;
    sim_http *http;
} sim_app;

/* Formats n with thousands separators, as vLLM's logs do ("175,856"). */
static const char *commas(long n, char *buf, size_t len) {
    char raw[32];
    snprintf(raw, sizeof raw, "%ld", n);
    size_t l = strlen(raw), j = 0;
    for (size_t i = 0; i < l && j + 2 < len; i++) {
        if (i && (l - i) % 3 == 0)
            buf[j++] = ',';
        buf[j++] = raw[i];
    }
    buf[j] = '\0';
    return buf;
}

static void on_ready(evutil_socket_t unused, short what, void *arg) {
    (void)unused;
    (void)what;
    sim_app *app = arg;
    evutil_socket_t fd = tlab__listen_socket(app->cfg.host, app->cfg.port);
    if (fd < 0) {
        sim_log("ERROR", "api_server.py", "OSError: [Errno %d] error while attempting to bind on address ('%s', %d): %s",
             errno, app->cfg.host, app->cfg.port, strerror(errno));
        exit(1);
    }
    app->http = sim_http_new(app->base, &app->cfg, app->engine, fd);
    if (!app->http) {
        sim_log("ERROR", "api_server.py", "cannot start the HTTP server");
        exit(1);
    }
    sim_log("INFO", "launcher.py", "Starting vLLM API server 0 on http://%s:%d", app->cfg.host, app->cfg.port);
    sim_log("INFO", "on.py", "Application startup complete.");
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    sim_app *app = arg;
    sim_log("INFO", "launcher.py", "Shutting down FastAPI HTTP server (signal %d).", (int)sig);
    event_base_loopexit(app->base, NULL);
}

/* 1000 streaming clients need more descriptors than the usual soft limit of 1024. */
static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv) {
    static sim_app app;
    char err[1024];
    sim_config_defaults(&app.cfg);
    int rc = sim_config_parse(&app.cfg, argc, argv, err, sizeof err);
    if (rc > 0)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "%s\n", err);
        fprintf(stderr, "usage: tlab-sim [options]   (tlab-sim --help for the list)\n");
        return 2;
    }
    if (app.cfg.predict)
        return sim_predict_cli(&app.cfg);
    if (sim_config_load_profiles(&app.cfg, &app.hw, &app.model, err, sizeof err)) {
        fprintf(stderr, "tlab-sim: error: %s\n", err);
        return 2;
    }
    if (sim_config_finalize(&app.cfg, &app.hw, &app.model, err, sizeof err)) {
        sim_log("ERROR", "core.py", "%s", err);
        return 1;
    }
    sim_log("INFO", "sim_main.c",
         "tlab-sim: model=%s profile=%s hardware=%s max_model_len=%d max_num_seqs=%d max_num_batched_tokens=%d "
         "chunked_prefill=%s async_scheduling=%s block_size=%d gpu_memory_utilization=%.2f time_scale=%g",
         app.cfg.model, app.model.name, app.hw.name, app.cfg.max_model_len, app.cfg.max_num_seqs,
         app.cfg.max_num_batched_tokens, app.cfg.chunked_prefill ? "on" : "off",
         app.cfg.async_scheduling ? "on" : "off", app.cfg.block_size,
         app.cfg.gpu_memory_utilization, app.cfg.time_scale);
    if (sim_memory_plan(&app.hw, &app.model, app.cfg.gpu_memory_utilization, app.cfg.block_size, app.cfg.max_model_len,
                        &app.mem, err, sizeof err)) {
        sim_log("ERROR", "core.py", "EngineCore failed to start.");
        sim_log("ERROR", "core.py", "%s", err);
        return 1;
    }
    char a[32], b[32];
    sim_log("INFO", "gpu_model_runner.py", "Model loading took %.4f GiB", app.mem.weight_bytes / 1073741824.0);
    sim_log("INFO", "gpu_worker.py", "Available KV cache memory: %.2f GiB", app.mem.kv_avail_bytes / 1073741824.0);
    sim_log("INFO", "kv_cache_utils.py", "GPU KV cache size: %s tokens", commas(app.mem.capacity_tokens, a, sizeof a));
    sim_log("INFO", "kv_cache_utils.py", "Maximum concurrency for %s tokens per request: %.2fx",
         commas(app.cfg.max_model_len, b, sizeof b), app.mem.max_concurrency);

    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER); /* sub-ms step deadlines at high time scales */
    app.base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!app.base)
        return 1;
    app.engine = sim_engine_new(app.base, &app.cfg, &app.hw, &app.model, &app.mem);
    if (!app.engine)
        return 1;
    double startup = app.cfg.startup_seconds / app.cfg.time_scale;
    struct timeval tv = {(time_t)startup, (suseconds_t)((startup - (double)(time_t)startup) * 1e6)};
    struct event *ready = evtimer_new(app.base, on_ready, &app);
    struct event *sigterm = evsignal_new(app.base, SIGTERM, on_signal, &app);
    struct event *sigint = evsignal_new(app.base, SIGINT, on_signal, &app);
    evtimer_add(ready, &tv);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    event_base_dispatch(app.base);
    event_free(ready);
    event_free(sigterm);
    event_free(sigint);
    sim_http_free(app.http);
    sim_engine_free(app.engine);
    event_base_free(app.base);
    return 0;
}
