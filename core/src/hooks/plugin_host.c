/*
 * plugin_host.c - dlopen, ABI checks, init/shutdown order, event fan-out, gates and routes.
 *
 * A plugin's lifetime is one gateway run: loaded at start-up in config order, shut down in
 * reverse order at exit. A failed init unloads it and everything loaded before it (nothing is
 * left half-registered), as Redis does when a module's OnLoad fails.
 */
#include "hooks/plugin_host.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>


#include "common/log.h"

struct tlab_plugin_ctx {
    size_t index;
    char *name;
    char *path;
    void *dl;
    const tlab_plugin *desc;
    void *self;
    int initialized;
    struct event *tick_ev;
};

typedef struct route {
    tlab_plugin_ctx *ctx;
    char *method, *path;
    tlab_route_handler handler;
    void *arg;
    struct route *next;
} route;

static tlab_plugin_ctx **plugins;
static size_t n_plugins;
static route *routes;
static struct event_base *host_base;
static const tlab_api *host_api; /* handed to every init() */
/* Per event, the indexes of the plugins whose on_event wants it, in load order: emit walks only
 * these (the descriptor's event mask, ABI 1.1). */
static size_t *subscribers[TLAB_EV__COUNT];
static size_t n_subscribers[TLAB_EV__COUNT];
static uint64_t hook_calls; /* on_event calls so far, for tlab__plugins_hook_calls */
static size_t queue_owner = (size_t)-1;
static size_t worker_owner = (size_t)-1;

/* The core reads descriptor fields up to on_tick; later fields are read only if size covers them. */
#define DESC_MIN_SIZE (offsetof(tlab_plugin, on_tick) + sizeof(((tlab_plugin *)0)->on_tick))
/* Whether a shared struct of type `type` at p (its first field its size) has `field`: a plugin
 * built for an older minor ABI ends before the fields appended since. */
#define COVERS(p, type, field) ((p)->size >= offsetof(type, field) + sizeof((p)->field))

size_t tlab__plugins_count(void) {
    return n_plugins;
}

size_t tlab__plugin_ctx_index(const tlab_plugin_ctx *ctx) {
    return ctx->index;
}

const char *tlab__plugin_ctx_name(const tlab_plugin_ctx *ctx) {
    return ctx->desc && ctx->desc->name ? ctx->desc->name : ctx->name;
}

struct event_base *tlab__plugin_ctx_base(const tlab_plugin_ctx *ctx) {
    (void)ctx;
    return host_base;
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    tlab_plugin_ctx *ctx = arg;
    ctx->desc->on_tick(ctx->self);
}

static void free_ctx(tlab_plugin_ctx *ctx) {
    if (ctx->tick_ev)
        event_free(ctx->tick_ev);
    /* Routes point into the plugin's code: drop them before dlclose. */
    for (route **rp = &routes; *rp;) {
        route *rt = *rp;
        if (rt->ctx == ctx) {
            *rp = rt->next;
            free(rt->method);
            free(rt->path);
            free(rt);
        } else {
            rp = &rt->next;
        }
    }
    if (ctx->dl)
        dlclose(ctx->dl);
    free(ctx->name);
    free(ctx->path);
    free(ctx);
}

static int load_one(const tlab__plugin_conf *pc, size_t index, char *err, size_t errlen) {
    tlab_plugin_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx || !(ctx->name = strdup(pc->name)) || !(ctx->path = strdup(pc->path))) {
        snprintf(err, errlen, "plugin '%s': out of memory", pc->name);
        if (ctx)
            free_ctx(ctx);
        return -1;
    }
    ctx->index = index;
    plugins[index] = ctx; /* visible during init so the plugin's API calls find it */
#define FAIL(...)                                                                                                          \
    do {                                                                                                                   \
        int off_ = snprintf(err, errlen, "plugin '%s' (%s): ", pc->name, pc->path);                                       \
        if (off_ >= 0 && (size_t)off_ < errlen)                                                                            \
            snprintf(err + off_, errlen - (size_t)off_, __VA_ARGS__);                                                     \
        plugins[index] = NULL;                                                                                             \
        free_ctx(ctx);                                                                                                     \
        return -1;                                                                                                         \
    } while (0)

    ctx->dl = dlopen(pc->path, RTLD_NOW | RTLD_LOCAL);
    if (!ctx->dl)
        FAIL("cannot load: %s", dlerror());
    tlab_plugin_entry_fn entry;
    *(void **)&entry = dlsym(ctx->dl, TLAB_PLUGIN_ENTRY_SYMBOL);
    if (!entry)
        FAIL("missing entry symbol '%s' (declare it with TLAB_PLUGIN_DECLARE)", TLAB_PLUGIN_ENTRY_SYMBOL);
    const tlab_plugin *desc = entry();
    if (!desc)
        FAIL("entry symbol returned no descriptor");
    if (desc->abi_major != TLAB_ABI_MAJOR)
        FAIL("is not binary compatible: built for plugin ABI %u.%u, this gateway provides ABI %d.%d", desc->abi_major,
             desc->abi_minor, TLAB_ABI_MAJOR, TLAB_ABI_MINOR);
    if (desc->size < DESC_MIN_SIZE)
        FAIL("is not binary compatible: descriptor is %u bytes, ABI %d needs at least %zu", desc->size, TLAB_ABI_MAJOR,
             DESC_MIN_SIZE);
    if (!desc->name || !desc->init)
        FAIL("descriptor lacks %s", desc->name ? "init" : "a name");
    if (desc->queue) {
        if (queue_owner != (size_t)-1)
            FAIL("declares a queue role, but plugin '%s' already has it", plugins[queue_owner]->name);
        if (desc->queue->size < sizeof(tlab_queue_role) || !desc->queue->push || !desc->queue->peek ||
            !desc->queue->pop || !desc->queue->remove || !desc->queue->depth)
            FAIL("queue role is incomplete (push, peek, pop, remove and depth are required)");
    }
    if (desc->worker) {
        if (worker_owner != (size_t)-1)
            FAIL("declares a worker role, but plugin '%s' already has it", plugins[worker_owner]->name);
        if (desc->worker->size < offsetof(tlab_worker_role, max_num_seqs) || !desc->worker->state)
            FAIL("worker role is incomplete (state is required)");
    }
    if (desc->abi_minor > TLAB_ABI_MINOR)
        tlab__log(TLAB_LOG_WARN, "core", "plugin '%s' was built for ABI %u.%u, newer than this gateway's %d.%d; it must test TLAB_API_HAS",
                 pc->name, desc->abi_major, desc->abi_minor, TLAB_ABI_MAJOR, TLAB_ABI_MINOR);
    ctx->desc = desc;

    char init_err[512] = "";
    if (desc->init(ctx, host_api, pc->config, &ctx->self, init_err, sizeof init_err) != TLAB_OK)
        FAIL("init failed: %s", init_err[0] ? init_err : "(no message)");
    ctx->initialized = 1;
    if (desc->queue)
        queue_owner = index;
    if (desc->worker)
        worker_owner = index;
    if (desc->on_tick && desc->tick_interval_us) {
        ctx->tick_ev = event_new(host_base, -1, EV_PERSIST, on_tick, ctx);
        struct timeval tv = {.tv_sec = (time_t)(desc->tick_interval_us / 1000000),
                             .tv_usec = (suseconds_t)(desc->tick_interval_us % 1000000)};
        if (!ctx->tick_ev || event_add(ctx->tick_ev, &tv) != 0) {
            if (desc->shutdown)
                desc->shutdown(ctx->self);
            FAIL("cannot arm its tick timer");
        }
    }
    tlab__log(TLAB_LOG_INFO, "core", "loaded plugin '%s' %s (ABI %u.%u) from %s", desc->name, desc->version ? desc->version : "",
             desc->abi_major, desc->abi_minor, pc->path);
    return 0;
#undef FAIL
}

/* The events a plugin's on_event wants: its mask when its descriptor has one (ABI >= 1.1) and it
 * is not 0, else all of them. */
static uint32_t event_mask(const tlab_plugin *desc) {
    if (!desc->on_event)
        return 0;
    if (COVERS(desc, tlab_plugin, events) && desc->events)
        return desc->events & TLAB_EVENTS_ALL;
    return TLAB_EVENTS_ALL;
}

static int subscribe(void) {
    for (int ev = 0; ev < TLAB_EV__COUNT; ev++) {
        n_subscribers[ev] = 0;
        if (!(subscribers[ev] = calloc(n_plugins ? n_plugins : 1, sizeof *subscribers[ev])))
            return -1;
        for (size_t i = 0; i < n_plugins; i++)
            if (event_mask(plugins[i]->desc) & TLAB_EVENT_BIT(ev))
                subscribers[ev][n_subscribers[ev]++] = i;
    }
    return 0;
}

int tlab__plugins_load(struct event_base *base, const tlab__config *cfg, const tlab_api *api, char *err, size_t errlen) {
    host_base = base;
    host_api = api;
    if (cfg->n_plugins == 0)
        return 0;
    plugins = calloc(cfg->n_plugins, sizeof *plugins);
    if (!plugins) {
        snprintf(err, errlen, "out of memory loading plugins");
        return -1;
    }
    n_plugins = cfg->n_plugins;
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        if (load_one(&cfg->plugins[i], i, err, errlen) != 0) {
            n_plugins = i; /* unload only those that were initialised */
            tlab__plugins_unload();
            return -1;
        }
    }
    if (subscribe() != 0) {
        snprintf(err, errlen, "out of memory loading plugins");
        tlab__plugins_unload();
        return -1;
    }
    return 0;
}

void tlab__plugins_unload(void) {
    for (size_t i = n_plugins; i-- > 0;) {
        tlab_plugin_ctx *ctx = plugins[i];
        if (!ctx)
            continue;
        if (ctx->initialized && ctx->desc->shutdown)
            ctx->desc->shutdown(ctx->self);
        free_ctx(ctx);
    }
    for (int ev = 0; ev < TLAB_EV__COUNT; ev++) {
        free(subscribers[ev]);
        subscribers[ev] = NULL;
        n_subscribers[ev] = 0;
    }
    free(plugins);
    plugins = NULL;
    n_plugins = 0;
    queue_owner = (size_t)-1;
    worker_owner = (size_t)-1;
}

void tlab__plugins_emit(tlab_request *r, tlab_event ev) {
    const size_t *sub = subscribers[ev];
    for (size_t i = 0, n = n_subscribers[ev]; i < n; i++) {
        tlab_plugin_ctx *ctx = plugins[sub[i]];
        hook_calls++;
        ctx->desc->on_event(ctx->self, r, ev);
    }
}

uint64_t tlab__plugins_hook_calls(void) {
    return hook_calls;
}

int tlab__plugins_gate(tlab_request *r) {
    for (size_t i = 0; i < n_plugins; i++) {
        if (!plugins[i]->desc->dispatch_gate)
            continue;
        int rc = plugins[i]->desc->dispatch_gate(plugins[i]->self, r);
        if (rc != TLAB_OK && rc != TLAB_DECLINED)
            return rc;
    }
    return TLAB_OK;
}

const tlab_queue_role *tlab__plugins_queue(void **self) {
    if (queue_owner == (size_t)-1)
        return NULL;
    *self = plugins[queue_owner]->self;
    return plugins[queue_owner]->desc->queue;
}

int tlab__plugins_command(const char *verb, const json_t *args, json_t **result) {
    if (result)
        *result = NULL;
    if (!verb)
        return TLAB_ERROR;
    for (size_t i = 0; i < n_plugins; i++) {
        if (!plugins[i]->desc->command)
            continue;
        int rc = plugins[i]->desc->command(plugins[i]->self, verb, args, result);
        if (rc != TLAB_DECLINED)
            return rc;
    }
    return TLAB_DECLINED;
}

int tlab__plugins_worker_state(void) {
    if (worker_owner == (size_t)-1)
        return -1;
    return (int)plugins[worker_owner]->desc->worker->state(plugins[worker_owner]->self);
}

long tlab__plugins_worker_max_num_seqs(void) {
    if (worker_owner == (size_t)-1)
        return 0;
    const tlab_worker_role *w = plugins[worker_owner]->desc->worker;
    if (!COVERS(w, tlab_worker_role, max_num_seqs) || !w->max_num_seqs)
        return 0; /* built for ABI 1.3 or older, or it does not say */
    long n = w->max_num_seqs(plugins[worker_owner]->self);
    return n > 0 ? n : 0;
}

void tlab__plugins_worker_demand(void) {
    if (worker_owner != (size_t)-1 && plugins[worker_owner]->desc->worker->demand)
        plugins[worker_owner]->desc->worker->demand(plugins[worker_owner]->self);
}

int tlab__plugins_add_route(tlab_plugin_ctx *ctx, const char *method, const char *path, tlab_route_handler h, void *arg) {
    if (!method || !path || path[0] != '/' || !h)
        return TLAB_ERROR;
    for (route *rt = routes; rt; rt = rt->next)
        if (strcmp(rt->path, path) == 0 && strcmp(rt->method, method) == 0)
            return TLAB_ERROR;
    route *rt = calloc(1, sizeof *rt);
    if (!rt || !(rt->method = strdup(method)) || !(rt->path = strdup(path))) {
        if (rt) {
            free(rt->method);
            free(rt);
        }
        return TLAB_ERROR;
    }
    rt->ctx = ctx;
    rt->handler = h;
    rt->arg = arg;
    rt->next = routes;
    routes = rt;
    return TLAB_OK;
}

struct tlab_exchange {
    tlab__http_req *http;
};

int tlab__plugins_route(tlab__http_req *http, const char *path) {
    const char *method = tlab__http_req_method_name(http);
    int path_seen = 0;
    for (route *rt = routes; rt; rt = rt->next) {
        if (strcmp(rt->path, path) != 0)
            continue;
        path_seen = 1;
        if (strcmp(rt->method, method) != 0)
            continue;
        tlab_exchange *ex = malloc(sizeof *ex);
        if (!ex) {
            static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"internal_error\",\"param\":null,\"code\":null}}";
            tlab__http_add_header(http, "Content-Type", "application/json");
            tlab__http_reply(http, 500, oom, sizeof oom - 1);
            return 1;
        }
        ex->http = http;
        rt->handler(rt->arg, ex);
        return 1;
    }
    return path_seen ? -1 : 0;
}

const char *tlab__exchange_header(tlab_exchange *ex, const char *name) {
    return tlab__http_req_header(ex->http, name);
}

const char *tlab__exchange_body(tlab_exchange *ex, size_t *len) {
    return tlab__http_req_body(ex->http, len);
}

int tlab__exchange_add_header(tlab_exchange *ex, const char *name, const char *value) {
    return tlab__http_add_header(ex->http, name, value) == 0 ? TLAB_OK : TLAB_ERROR;
}

void tlab__exchange_reply(tlab_exchange *ex, int status, const char *content_type, const char *body, size_t len) {
    if (content_type)
        tlab__http_add_header(ex->http, "Content-Type", content_type);
    tlab__http_reply(ex->http, status, body ? body : "", body ? len : 0);
    free(ex);
}

json_t *tlab__plugins_describe(void) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n_plugins; i++) {
        const tlab_plugin *d = plugins[i]->desc;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "name", d->name, "version", d->version ? d->version : "",
                                             "path", plugins[i]->path));
    }
    return arr;
}
