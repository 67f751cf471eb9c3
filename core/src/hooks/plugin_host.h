/*
 * plugin_host.h - loads the compiled plugins named in the config and fans the core's events out
 * to them.
 *
 * Loading follows the config order. Each plugin is dlopen()ed with RTLD_NOW|RTLD_LOCAL, its
 * entry symbol is called, the descriptor's ABI is checked (a different major is refused, naming
 * both versions; a descriptor smaller than the fields the core reads is refused), then init()
 * runs. Any failure stops loading, unloads what was loaded, and reports
 * "plugin '<name>' (<path>): <message>".
 */
#ifndef TLAB_PLUGIN_HOST_H
#define TLAB_PLUGIN_HOST_H

#include <event2/event.h>

#include "config/config.h"
#include "http/http_front.h"
#include "tlab/plugin.h"

/* Loads cfg's plugins and hands each `api` (the core's functions, gateway/plugin_api.c; it must
 * outlive the plugins). Returns 0, or -1 with the reason in err. */
int tlab__plugins_load(struct event_base *base, const tlab__config *cfg, const tlab_api *api, char *err, size_t errlen);
/* Calls shutdown() in reverse order, frees timers and routes, dlclose()s. */
void tlab__plugins_unload(void);
size_t tlab__plugins_count(void);
/* Calls on_event of the plugins that want `ev` (their event mask), in load order. */
void tlab__plugins_emit(tlab_request *r, tlab_event ev);
/* on_event calls made so far (the hook calls per request: docs/performance.md). */
uint64_t tlab__plugins_hook_calls(void);
/* TLAB_OK when every dispatch gate lets r go, else the first non-OK answer. */
int tlab__plugins_gate(tlab_request *r);
/* The queue role and its self pointer, or NULL. */
const tlab_queue_role *tlab__plugins_queue(void **self);
/* Serves a plugin route if one matches; returns 1 when handled, 0 when no route matches the
 * path, -1 when the path matches but not the method (caller answers 405). */
int tlab__plugins_route(tlab__http_req *http, const char *path);
/* Runs a command through the plugins' command hooks (see tlab_api.command). */
int tlab__plugins_command(const char *verb, const json_t *args, json_t **result);
/* The worker role's state, or -1 when no plugin has the worker role. */
int tlab__plugins_worker_state(void);
/* The max_num_seqs the worker role started its worker with; 0 when unknown (no worker role, a
 * plugin older than ABI 1.4, or a command line without one). */
long tlab__plugins_worker_max_num_seqs(void);
/* Tells the worker role there is demand (no-op without one). */
void tlab__plugins_worker_demand(void);

/* Names and versions of the loaded plugins, as a JSON array (for /health). New reference. */
json_t *tlab__plugins_describe(void);

/* Exchange functions behind the tlab_api route calls. */
const char *tlab__exchange_header(tlab_exchange *ex, const char *name);
const char *tlab__exchange_body(tlab_exchange *ex, size_t *len);
int tlab__exchange_add_header(tlab_exchange *ex, const char *name, const char *value);
void tlab__exchange_reply(tlab_exchange *ex, int status, const char *content_type, const char *body, size_t len);

/* Looks up the context index used for per-request plugin data; internal to the core. */
size_t tlab__plugin_ctx_index(const tlab_plugin_ctx *ctx);
const char *tlab__plugin_ctx_name(const tlab_plugin_ctx *ctx);
struct event_base *tlab__plugin_ctx_base(const tlab_plugin_ctx *ctx);
/* Registers a route for ctx (plugin_api.c calls this). */
int tlab__plugins_add_route(tlab_plugin_ctx *ctx, const char *method, const char *path, tlab_route_handler h, void *arg);

#endif
