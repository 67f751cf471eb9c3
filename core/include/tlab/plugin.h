/*
 * tlab/plugin.h - the whole contract between tlab-gateway and its compiled plugins.
 *
 * A plugin is a shared object that exports one symbol, TLAB_PLUGIN_ENTRY_SYMBOL, returning a
 * pointer to a static tlab_plugin descriptor. The gateway dlopen()s it (RTLD_NOW|RTLD_LOCAL),
 * checks the ABI version in the descriptor, and calls init() with a table of function pointers,
 * the tlab_api. Plugins never link against gateway symbols: everything they may do goes through
 * that table, as Redis modules do through RedisModule_* pointers.
 *
 * Versioning (see docs/plugins.md):
 *  - TLAB_ABI_MAJOR changes when an existing field changes meaning or moves. The gateway refuses a
 *    plugin built for another major, naming both versions.
 *  - TLAB_ABI_MINOR grows when fields are appended. Shared structs start with their size, so each
 *    side reads only what the other side had: a plugin built against an older minor still loads,
 *    and a newer plugin tests TLAB_API_HAS(api, field) before calling a function that may be absent.
 *
 * Threading: the gateway runs one event loop on one thread. Every hook and every API call happens
 * on that thread; none of them may block. Hooks must return quickly: use api->timer_* for delays.
 *
 * Return codes follow one vocabulary everywhere (after nginx): TLAB_OK, TLAB_ERROR, TLAB_AGAIN
 * ("not yet; the plugin will call api->dispatch_wake() when that changes") and TLAB_DECLINED
 * ("not mine").
 */
#ifndef TLAB_PLUGIN_H
#define TLAB_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TLAB_ABI_MAJOR 1
#define TLAB_ABI_MINOR 4

#define TLAB_OK 0
#define TLAB_ERROR (-1)
#define TLAB_AGAIN (-2)
#define TLAB_DECLINED (-5)

/* The exported entry point. Declare it with TLAB_PLUGIN_DECLARE(descriptor). */
#define TLAB_PLUGIN_ENTRY_SYMBOL "tlab_plugin_entry"

#if defined(__GNUC__)
#define TLAB_EXPORT __attribute__((visibility("default")))
#define TLAB_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TLAB_EXPORT
#define TLAB_PRINTF(f, a)
#endif

/* True when the gateway's api table is large enough to contain `field`. */
#define TLAB_API_HAS(api, field) ((api)->size >= offsetof(tlab_api, field) + sizeof((api)->field) && (api)->field != NULL)

/* Opaque handles. A plugin only ever holds pointers to these and passes them back to the API. */
typedef struct tlab_plugin_ctx tlab_plugin_ctx; /* one per loaded plugin, for logging and ownership */
typedef struct tlab_request tlab_request;       /* one LLM request (chat or completions) */
typedef struct tlab_timer tlab_timer;           /* a timer on the gateway's loop */
typedef struct tlab_metric tlab_metric;         /* a metric family in the registry */
typedef struct tlab_exchange tlab_exchange;     /* one HTTP exchange on a plugin route */
typedef struct tlab_http_call tlab_http_call;   /* an outgoing HTTP call (api->http_request) */

/* Lifecycle events of a request, in the order they normally happen. A request that fails early
 * (validation, admission, client gone) jumps to TLAB_EV_DONE; every request that produced
 * TLAB_EV_ARRIVED produces exactly one TLAB_EV_DONE. */
typedef enum tlab_event {
    TLAB_EV_ARRIVED = 0,    /* body read, request object created */
    TLAB_EV_ADMITTED = 1,   /* passed validation and admission */
    TLAB_EV_QUEUED = 2,     /* handed to the queue (only when a queue plugin is loaded) */
    TLAB_EV_DISPATCHED = 3, /* sent to a worker */
    TLAB_EV_FIRST_BYTE = 4, /* first response byte from the worker */
    TLAB_EV_DONE = 5,       /* answered (or abandoned); tlab_api.request_status tells how */
    TLAB_EV__COUNT = 6
} tlab_event;

/* Event masks for tlab_plugin.events (ABI 1.1): on_event runs only for the events in the mask. */
#define TLAB_EVENT_BIT(ev) (1u << (ev))
#define TLAB_EVENTS_ALL ((1u << TLAB_EV__COUNT) - 1u)

typedef enum tlab_log_level { TLAB_LOG_DEBUG = 0, TLAB_LOG_INFO = 1, TLAB_LOG_WARN = 2, TLAB_LOG_ERROR = 3 } tlab_log_level;

typedef enum tlab_metric_kind { TLAB_METRIC_COUNTER = 0, TLAB_METRIC_GAUGE = 1, TLAB_METRIC_HISTOGRAM = 2 } tlab_metric_kind;

/* Worker states, shared with the gateway_worker_state metric. */
typedef enum tlab_worker_state {
    TLAB_WORKER_IDLE = 0,
    TLAB_WORKER_STARTING = 1,
    TLAB_WORKER_RUNNING = 2,
    TLAB_WORKER_STOPPING = 3,
    TLAB_WORKER_SLEEPING = 4,
    TLAB_WORKER_FAILED = 5
} tlab_worker_state;

/* The state's name, as logs, /health, /admin and gw.worker_state_name say it; -1 (no plugin has
 * the worker role: the worker is someone else's and assumed up) is "external". */
static inline const char *tlab_worker_state_name(int state) {
    static const char *const names[] = {"idle", "starting", "running", "stopping", "sleeping", "failed"};
    if (state == -1)
        return "external";
    return state >= 0 && state < (int)(sizeof names / sizeof names[0]) ? names[state] : "unknown";
}

/* A visitor over one sample of the metrics registry; see tlab_api.metrics_foreach.
 * `labels` is the series' label text without braces (e.g. `code="200",route="/v1/completions"`),
 * "" when it has none. For histograms, `buckets`/`bucket_counts` hold n_buckets upper bounds and
 * cumulative counts; `value` is the sum and `count` the number of observations. */
typedef struct tlab_metric_sample {
    const char *name;
    const char *help;
    tlab_metric_kind kind;
    const char *labels;
    double value;
    uint64_t count;
    size_t n_buckets;
    const double *buckets;
    const uint64_t *bucket_counts;
} tlab_metric_sample;

typedef void (*tlab_timer_cb)(void *arg);
typedef void (*tlab_route_handler)(void *arg, tlab_exchange *ex);
typedef void (*tlab_metric_visitor)(void *arg, const tlab_metric_sample *sample);

/*
 * The table the gateway hands to init(). Valid from init() until shutdown() returns.
 * Fields are only ever appended; test with TLAB_API_HAS before using one newer than your minor.
 */
typedef struct tlab_api {
    uint32_t size; /* sizeof(tlab_api) as the gateway was built */
    uint16_t abi_major;
    uint16_t abi_minor;

    /* ---- logging and time ---- */
    /* One line on stderr, prefixed with the level and the plugin's name. */
    void (*log)(tlab_plugin_ctx *ctx, tlab_log_level level, const char *fmt, ...) TLAB_PRINTF(3, 4);
    /* Monotonic microseconds (CLOCK_MONOTONIC); the clock of every request timestamp. */
    uint64_t (*now_us)(void);

    /* ---- timers on the loop ---- */
    /* Returns NULL on allocation failure. The timer is owned by the plugin: free it in shutdown(). */
    tlab_timer *(*timer_new)(tlab_plugin_ctx *ctx, tlab_timer_cb cb, void *arg);
    /* (Re)arm: fire after `after_us`, then every `after_us` again when `repeat` is non-zero. */
    int (*timer_start)(tlab_timer *t, uint64_t after_us, int repeat);
    void (*timer_stop)(tlab_timer *t);
    void (*timer_free)(tlab_timer *t);

    /* ---- metrics registry (rendered by the metrics plugin) ---- */
    /* Registers a family, or returns the existing one when name and kind match (NULL otherwise).
     * `buckets` (ascending upper bounds, +Inf implied) are used for histograms only. */
    tlab_metric *(*metric_register)(tlab_plugin_ctx *ctx, tlab_metric_kind kind, const char *name, const char *help,
                                    const double *buckets, size_t n_buckets);
    /* `labels` is label text without braces, or NULL/"" for the unlabelled series. */
    /* Counters and gauges. A delta of 0 creates the series without changing it (histograms too:
     * an empty series with count 0), so a family shows in /metrics before its first event. */
    void (*metric_add)(tlab_metric *m, const char *labels, double delta);
    void (*metric_set)(tlab_metric *m, const char *labels, double value); /* gauges */
    void (*metric_observe)(tlab_metric *m, const char *labels, double value); /* histograms */
    /* Visits every series of every family in registration order. */
    void (*metrics_foreach)(tlab_metric_visitor visit, void *arg);

    /* ---- request accessors (valid from TLAB_EV_ARRIVED until the TLAB_EV_DONE hooks return) ---- */
    const char *(*request_id)(const tlab_request *r);
    const char *(*request_path)(const tlab_request *r); /* "/v1/chat/completions" or "/v1/completions" */
    /* Monotonic microseconds at which `ev` happened, or 0 if it has not happened. */
    uint64_t (*request_time_us)(const tlab_request *r, tlab_event ev);
    /* Request header by name (case-insensitive), NULL if absent. */
    const char *(*request_header)(const tlab_request *r, const char *name);
    /* The validated JSON body. Plugins may read it; changes before dispatch go to the worker.
     * The pointer stays valid until the TLAB_EV_DONE hooks return. A waiting request holds only
     * the body's bytes, so the first call while or after it waits parses them again; NULL if
     * that runs out of memory. */
    json_t *(*request_body)(tlab_request *r);
    int (*request_is_stream)(const tlab_request *r);
    /* HTTP status sent to the client so far (0 before headers went out). */
    int (*request_status)(const tlab_request *r);
    /* Id of the worker the request went to (0 while there is one worker), -1 before dispatch. */
    int (*request_worker_id)(const tlab_request *r);
    /* Adds a header to the response; TLAB_ERROR once headers have been sent. */
    int (*request_add_response_header)(tlab_request *r, const char *name, const char *value);
    /* One pointer of plugin data per request per plugin. */
    void (*request_set_data)(tlab_plugin_ctx *ctx, tlab_request *r, void *data);
    void *(*request_get_data)(tlab_plugin_ctx *ctx, const tlab_request *r);
    /* Answers the request now with an OpenAI error JSON and ends it (TLAB_EV_DONE follows).
     * `retry_after_s` > 0 adds a Retry-After header. Only before dispatch. */
    int (*request_reject)(tlab_request *r, int status, const char *type, const char *message, int retry_after_s);

    /* ---- dispatch (queue and gate roles) ---- */
    /* Asks the gateway to re-run its dispatcher: call after a TLAB_AGAIN gate may have opened or
     * after the queue plugin gained a request. Safe to call from any hook; runs on the next loop turn. */
    void (*dispatch_wake)(void);
    /* Requests sent to workers and not yet done. */
    size_t (*in_flight)(void);

    /* ---- routes ---- */
    /* Serves `method` `path` (exact match) from `handler`. TLAB_ERROR when the route is taken. */
    int (*route_add)(tlab_plugin_ctx *ctx, const char *method, const char *path, tlab_route_handler handler, void *arg);
    const char *(*exchange_header)(tlab_exchange *ex, const char *name);
    /* Body of the request, NUL-terminated; *len receives its length when len is not NULL. */
    const char *(*exchange_body)(tlab_exchange *ex, size_t *len);
    int (*exchange_add_header)(tlab_exchange *ex, const char *name, const char *value);
    /* Sends the whole reply. Call exactly once per exchange, now or later from a timer. */
    void (*exchange_reply)(tlab_exchange *ex, int status, const char *content_type, const char *body, size_t len);

    /* ---- commands between plugins (and from Lua policies), the worker, the queue ---- */
    /* Offers `verb` with `args` (borrowed, may be NULL) to each plugin's command hook in load
     * order until one answers other than TLAB_DECLINED; returns that answer, or TLAB_DECLINED
     * when no plugin takes the verb. *result, when result is not NULL, receives the handler's
     * new reference (or NULL). Verbs in use: "set_window_ms" {"ms"}, "restart_worker" {knobs}. */
    int (*command)(const char *verb, const json_t *args, json_t **result);
    /* The worker role's state (tlab_worker_state), or -1 when no plugin owns the worker. */
    int (*worker_state)(void);
    /* Requests admitted and not yet dispatched (the queue's depth, or the core FIFO's). */
    size_t (*waiting)(void);

    /* ---- more request accessors ---- */
    /* Gateway time spent on r so far (what x-tlab-overhead-us reports), in microseconds. */
    uint64_t (*request_overhead_us)(const tlab_request *r);
    /* The request's priority class name: set by a policy or plugin, else the x-priority header,
     * else NULL (the queue's default applies). */
    const char *(*request_priority)(const tlab_request *r);
    int (*request_set_priority)(tlab_request *r, const char *class_name);

    /* ---- worker processes (the supervisor) ---- */
    /* Starts argv (argv[0] looked up in PATH) in its own process group (the process itself gets
     * SIGTERM when the gateway dies, even by SIGKILL: Linux's parent-death signal), stdout and
     * stderr appended to log_path (rotated to "<log_path>.1" first when larger than log_max_bytes;
     * 0: no cap). env adds "NAME=value" entries (NULL-terminated, may be NULL). Returns the pid,
     * or -1 with a message in err when it could not be started. on_exit(arg, pid, wait_status)
     * runs once on the loop when the process exits. */
    long (*process_spawn)(tlab_plugin_ctx *ctx, const char *const *argv, const char *const *env, const char *log_path,
                          size_t log_max_bytes, void (*on_exit)(void *arg, long pid, int wait_status), void *arg, char *err,
                          size_t errlen);
    /* Signals the process group of pid. TLAB_OK or TLAB_ERROR. */
    int (*process_signal)(long pid, int sig);

    /* ---- HTTP client on the loop ---- */
    /* Sends method to an absolute URL; cb(arg, status, body, len) runs once on the loop with the
     * HTTP status, or 0 when no response came (refused, reset, timeout). The body passed to cb is
     * capped at 64 KiB. NULL on allocation failure (cb never runs). */
    tlab_http_call *(*http_request)(tlab_plugin_ctx *ctx, const char *method, const char *url, const char *body, long timeout_ms,
                                    void (*cb)(void *arg, int status, const char *body, size_t len), void *arg);
    /* Cancels a call whose callback has not run yet; its callback never runs. */
    void (*http_cancel)(tlab_http_call *call);

    /* ---- misc ---- */
    /* Answers every request waiting for dispatch with an OpenAI error; returns how many. */
    size_t (*fail_waiting)(int status, const char *type, const char *message, int retry_after_s);
    /* Reads a YAML file into a new JSON value, or NULL with "file:line:col: message" in err. */
    json_t *(*yaml_load)(const char *path, char *err, size_t errlen);
    /* The configured upstream.url (the worker's base URL). */
    const char *(*upstream_url)(void);

    /* ---- ABI 1.2: the SLO autopilot (docs/autopilot.md) ---- */
    /* When r must be done, in now_us() microseconds: its arrival plus slo.e2e_ms, or the client's
     * x-request-deadline-ms, or what the admission policy set; 0 = none. */
    uint64_t (*request_deadline_us)(const tlab_request *r);
    /* Whether r, with `ahead` requests dispatched before it, can finish by its deadline using
     * `share` (0..2] of the time it has left (above 1: a tolerance), judged from the measured drain rate, time per token
     * and TTFT (and the worker's measured start time while it is cold). TLAB_OK: yes, or unknown
     * (nothing measured yet). TLAB_DECLINED: no; `msg` says why and *retry_after_s when a retry
     * would make it (0: a retry cannot help). */
    int (*request_judge)(const tlab_request *r, double ahead, double share, char *msg, size_t msglen, int *retry_after_s);
    /* The autopilot's gate: most requests at the worker at once, now. */
    int (*gate_limit)(void);

    /* ---- ABI 1.3 ---- */
    /* 1 when r is a client's retry that came back when a deadline refusal's Retry-After told it
     * to (same body and Authorization, inside the promise's window): a queue keeps the promise
     * by putting r ahead of the requests that arrived fresh in its class, and judges it with
     * only those promised retries ahead (docs/autopilot.md, "Retry-After"). */
    int (*request_promised)(const tlab_request *r);
} tlab_api;

/* A queue role: the gateway pushes admitted requests here and pops them when it may dispatch. */
typedef struct tlab_queue_role {
    uint32_t size; /* sizeof(tlab_queue_role) */
    /* TLAB_OK: the queue holds r. TLAB_ERROR: the plugin has answered r (api->request_reject). */
    int (*push)(void *self, tlab_request *r);
    tlab_request *(*peek)(void *self); /* next request to dispatch, or NULL */
    tlab_request *(*pop)(void *self);  /* removes and returns what peek() returned */
    void (*remove)(void *self, tlab_request *r); /* r's client left; drop it without answering */
    size_t (*depth)(void *self);
} tlab_queue_role;

/* A worker role: who owns the worker process (the supervisor). */
typedef struct tlab_worker_role {
    uint32_t size; /* sizeof(tlab_worker_role) */
    tlab_worker_state (*state)(void *self);
    /* Called when a request is waiting for a worker that is not running. */
    void (*demand)(void *self);
    /* Restart with knob overrides (a JSON object of model-profile keys); TLAB_ERROR when refused. */
    int (*restart)(void *self, const json_t *overrides);
    /* ABI 1.4 (optional, NULL or absent: unknown): the max_num_seqs the worker running now was
     * started with, 0 when its command line did not set one (the engine's default applies, and
     * that depends on the GPU). vLLM runs no more requests at once, so the autopilot's gate goes
     * no higher; without it the gateway infers the ceiling from vLLM queueing. */
    long (*max_num_seqs)(void *self);
} tlab_worker_role;

/*
 * The descriptor a plugin returns from its entry point. Keep it static and const.
 */
typedef struct tlab_plugin {
    uint16_t abi_major; /* TLAB_ABI_MAJOR at build time */
    uint16_t abi_minor; /* TLAB_ABI_MINOR at build time */
    uint32_t size;      /* sizeof(tlab_plugin) at build time */
    const char *name;   /* short, [a-z0-9_]; used in logs and errors */
    const char *version;

    /* Required. Reads `config` (the plugin's YAML block as a JSON object, never NULL) and sets
     * *self. On failure returns TLAB_ERROR with a message in err; the plugin must then have freed
     * whatever it created, and shutdown() is not called. */
    int (*init)(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *config, void **self, char *err, size_t errlen);
    /* Called once at gateway exit, in reverse load order. */
    void (*shutdown)(void *self);

    /* Optional hooks; NULL means not interested. */
    void (*on_event)(void *self, tlab_request *r, tlab_event ev);
    /* TLAB_OK lets r go to a worker now; TLAB_AGAIN holds it (call api->dispatch_wake() later). */
    int (*dispatch_gate)(void *self, tlab_request *r);
    const tlab_queue_role *queue;   /* at most one loaded plugin may have a queue role */
    const tlab_worker_role *worker; /* at most one loaded plugin may have a worker role */
    uint64_t tick_interval_us;      /* when non-zero, on_tick runs at this interval */
    void (*on_tick)(void *self);
    /* Handles a command (see tlab_api.command): TLAB_DECLINED when `verb` is not this plugin's. */
    int (*command)(void *self, const char *verb, const json_t *args, json_t **result);

    void *spare[8]; /* reserved for future hooks; leave NULL */

    /* ABI 1.1: the events on_event acts on, as TLAB_EVENT_BIT(TLAB_EV_DONE) | ...; 0 (and every
     * plugin built for ABI 1.0, whose descriptor ends before this field) gets every event. A
     * plugin that acts on one event of six saves the gateway five calls per request. */
    uint32_t events;
} tlab_plugin;

typedef const tlab_plugin *(*tlab_plugin_entry_fn)(void);

/* Declares the entry point: TLAB_PLUGIN_DECLARE(my_descriptor); */
#define TLAB_PLUGIN_DECLARE(desc)                                                                                          \
    TLAB_EXPORT const tlab_plugin *tlab_plugin_entry(void);                                                                \
    TLAB_EXPORT const tlab_plugin *tlab_plugin_entry(void) {                                                               \
        return &(desc);                                                                                                    \
    }

/* Initialiser for the version fields of a descriptor. */
#define TLAB_PLUGIN_HEADER .abi_major = TLAB_ABI_MAJOR, .abi_minor = TLAB_ABI_MINOR, .size = sizeof(tlab_plugin)

/*
 * Config helpers for init(): header-only, so plugins stay free of core symbols. Each returns
 * TLAB_OK, or TLAB_ERROR with a message naming the key in err.
 */
#include <stdio.h>
#include <string.h>

/* Fails on any key of `config` not in the NULL-terminated `allowed` list. */
static inline int tlab_config_check_keys(const json_t *config, const char *const *allowed, char *err, size_t errlen) {
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)config, key, value) {
        int known = 0;
        for (size_t i = 0; allowed[i]; i++)
            known |= strcmp(allowed[i], key) == 0;
        if (!known) {
            int off = snprintf(err, errlen, "unknown key '%s' (expected:", key);
            for (size_t i = 0; allowed[i] && off > 0 && (size_t)off < errlen; i++)
                off += snprintf(err + off, errlen - (size_t)off, "%s %s", i ? "," : "", allowed[i]);
            if (off > 0 && (size_t)off < errlen)
                snprintf(err + off, errlen - (size_t)off, ")");
            (void)value;
            return TLAB_ERROR;
        }
    }
    return TLAB_OK;
}

/* Reads an optional integer key into *out (default when absent), checking min..max. */
static inline int tlab_config_int(const json_t *config, const char *key, long long dflt, long long min, long long max,
                                  long long *out, char *err, size_t errlen) {
    const json_t *v = json_object_get(config, key);
    if (!v) {
        *out = dflt;
        return TLAB_OK;
    }
    if (!json_is_integer(v)) {
        snprintf(err, errlen, "'%s' must be an integer", key);
        return TLAB_ERROR;
    }
    long long x = (long long)json_integer_value(v);
    if (x < min || x > max) {
        snprintf(err, errlen, "'%s' must be between %lld and %lld, got %lld", key, min, max, x);
        return TLAB_ERROR;
    }
    *out = x;
    return TLAB_OK;
}

/* Reads an optional number (integer or real) key into *out, checking min..max. */
static inline int tlab_config_number(const json_t *config, const char *key, double dflt, double min, double max, double *out,
                                     char *err, size_t errlen) {
    const json_t *v = json_object_get(config, key);
    if (!v) {
        *out = dflt;
        return TLAB_OK;
    }
    if (!json_is_number(v)) {
        snprintf(err, errlen, "'%s' must be a number", key);
        return TLAB_ERROR;
    }
    double x = json_number_value(v);
    if (x < min || x > max) {
        snprintf(err, errlen, "'%s' must be between %g and %g, got %g", key, min, max, x);
        return TLAB_ERROR;
    }
    *out = x;
    return TLAB_OK;
}

#ifdef __cplusplus
}
#endif
#endif /* TLAB_PLUGIN_H */
