/*
 * http_server.c - routing and the front half of a request's walk: read, authenticate,
 * validate, admit, submit.
 *
 * Two listeners can share the routes. The main one serves clients; the admin one (when
 * admin.listen.port is set) serves /health and the operator routes, /metrics and /admin/..., and
 * those are then 404 on the main one. The split is made here by path prefix, for core and plugin
 * routes alike, so no plugin has to know which port it is on.
 */
#include "gateway/http_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "policy/admission.h"
#include "policy/auth.h"
#include "policy/validate.h"
#include "dispatch/dispatch.h"
#include "base/loopback.h"
#include "dispatch/gate.h"
#include "dispatch/pool.h"
#include "dispatch/retry_promises.h"
#include "http/http_front.h"
#include "common/listen_socket.h"
#include "common/log.h"
#include "hooks/plugin_host.h"
#include "policy/lua/policy_host.h"
#include "relay/relay.h"
#include "request/request.h"
#include "upstream/upstream.h"

static void send_json(tlab__http_req *http, int status, json_t *obj) {
    char *text = json_dumps(obj, JSON_COMPACT);
    tlab__http_add_header(http, "Content-Type", "application/json");
    tlab__http_reply(http, text ? status : 500, text ? text : "{}", text ? strlen(text) : 2);
    free(text);
}

static void send_error(tlab__http_req *http, int status, const char *type, const char *fmt, const char *arg) {
    tlab__error err;
    tlab__error_set(&err, status, type, NULL, fmt, arg);
    tlab__http_send_error(http, &err, status == 503 ? 1 : 0);
}

static void method_not_allowed(tlab__http_req *http, const char *path, const char *allow) {
    tlab__http_add_header(http, "Allow", allow);
    send_error(http, 405, "invalid_request_error", "Method not allowed on %s", path);
}

static void handle_health(tlab__gateway *gw, tlab__http_req *http) {
    const tlab__upstream_stats *st = tlab__upstream_get_stats(gw->upstream);
    tlab__http_counters clients = {0};
    tlab__http_server_counters(gw->http, &clients);
    json_t *o = json_pack("{s:s, s:s, s:f, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I}, s:{s:s, s:I, s:I, s:I, s:I, s:I}, s:o, s:I}", "status",
                          gw->draining ? "draining" : "ok", "version", TLAB_VERSION, "uptime_s",
                          (double)(tlab__now_us() - gw->started_us) / 1e6, "in_flight", (json_int_t)tlab__requests_in_flight(), "waiting",
                          (json_int_t)tlab__dispatch_waiting(), "live_requests", (json_int_t)tlab__requests_live_count(), "clients", "open",
                          (json_int_t)clients.open, "max", (json_int_t)gw->cfg->max_connections_in, "rejected",
                          (json_int_t)clients.rejected, "timed_out", (json_int_t)clients.timed_out, "upstream",
                          "url", gw->cfg->upstream_url, "transfers", (json_int_t)st->transfers, "connections_opened",
                          (json_int_t)st->connections_opened, "retries", (json_int_t)st->retries, "aborted",
                          (json_int_t)st->aborted, "active", (json_int_t)st->active, "plugins", tlab__plugins_describe(),
                          "plugin_hook_calls", (json_int_t)tlab__plugins_hook_calls());
    if (!o)
        return send_error(http, 500, "internal_error", "%s", "out of memory");
    send_json(http, gw->draining ? 503 : 200, o);
    json_decref(o);
}

/* Past every check: the request joins the queue. With auth.redis this runs when Redis answers,
 * which may be after the drain began: the queue was answered 503 then, and so is this request. */
static void admitted(tlab_request *r) {
    if (tlab__gw.draining) {
        tlab__error err;
        tlab__error_set(&err, 503, "service_unavailable", NULL, TLAB_DRAINING_MESSAGE);
        tlab__request_fail(r, &err, 1);
        return;
    }
    tlab__request_emit(r, TLAB_EV_ADMITTED);
    r->overhead_us += r->t[TLAB_EV_ADMITTED] - r->t[TLAB_EV_ARRIVED];
    tlab__dispatch_submit(r);
}

static void handle_llm(tlab__gateway *gw, tlab__http_req *http, const char *path, tlab__api_kind kind, long key) {
    if (gw->draining) {
        send_error(http, 503, "service_unavailable", "%s", TLAB_DRAINING_MESSAGE);
        return;
    }
    tlab_request *r = tlab__request_new(http, path, kind);
    if (!r) {
        send_error(http, 500, "internal_error", "%s", "out of memory");
        return;
    }
    r->forward_authorization = !tlab__auth_enabled();
    tlab__request_emit(r, TLAB_EV_ARRIVED);
    /* Before any policy rewrites the body: a retry repeats what the client sent. */
    r->client_key = tlab__promise_key(r->raw_body, r->raw_len, tlab__http_req_header(http, "Authorization"));
    if (tlab__auth_attach(r, key) != 0) {
        tlab__error oom;
        tlab__error_set(&oom, 500, "internal_error", NULL, "out of memory");
        tlab__request_fail(r, &oom, 0);
        return;
    }
    tlab__validate_limits limits = {.max_body_bytes = gw->cfg->max_body_bytes, .max_tokens = gw->cfg->max_tokens};
    tlab__error err;
    if (tlab__validate_request(kind, r->raw_body, r->raw_len, &limits, &r->body, &r->info, &err) != 0) {
        tlab__request_fail(r, &err, 0);
        return;
    }
    if (tlab__policy_admit_request(r) != 0)
        return; /* admission.lua rejected it (or failed with fail_open: false); already answered */
    /* After the policy, so a clamped max_tokens is what gets reserved and a policy's refusal
     * costs the key nothing. */
    if (tlab__auth_admit(r, admitted) != 0)
        return; /* the key's rate limit: 429 already sent, or Redis decides and admitted() follows */
    admitted(r);
}

static void handle_models(tlab__http_req *http) {
    tlab_request *r = tlab__request_new(http, "/v1/models", TLAB_KIND_CHAT);
    if (!r) {
        send_error(http, 500, "internal_error", "%s", "out of memory");
        return;
    }
    r->internal = 1;
    r->forward_authorization = !tlab__auth_enabled();
    tlab__request_emit(r, TLAB_EV_ARRIVED);
    tlab__dispatch_send_now(r);
}

typedef struct listener {
    tlab__gateway *gw;
    int admin; /* the admin listener */
} listener;

static listener main_listener, admin_listener;

/* A read-only operator route: GET answers what `make` describes (a new reference, NULL when
 * memory ran out). */
static void get_json(tlab__http_req *http, tlab__http_method cmd, const char *path, json_t *(*make)(void)) {
    if (cmd != TLAB_HTTP_GET)
        return method_not_allowed(http, path, "GET");
    json_t *o = make();
    if (!o)
        return send_error(http, 500, "internal_error", "%s", "out of memory");
    send_json(http, 200, o);
    json_decref(o);
}

static json_t *describe_workers(void) {
    return json_pack("{s:o}", "workers", tlab__pool_describe());
}

/* The operator's routes: on the admin listener when there is one, else behind an admin key. */
static int is_admin_route(const char *path) {
    return strcmp(path, "/metrics") == 0 || strcmp(path, "/admin") == 0 || strncmp(path, "/admin/", 7) == 0;
}

static void not_found(tlab__http_req *http, const char *path) {
    send_error(http, 404, "invalid_request_error", "No route for %s", path);
}

static void on_request(tlab__http_req *http, void *arg) {
    const listener *l = arg;
    tlab__gateway *gw = l->gw;
    const char *path = tlab__http_req_path(http);
    tlab__http_method cmd = tlab__http_req_method(http);

    /* /health (and /livez, /readyz below) stay open on both listeners: load balancers and
     * supervisors probe them without keys. */
    if (strcmp(path, "/health") == 0) {
        if (cmd != TLAB_HTTP_GET)
            return method_not_allowed(http, path, "GET");
        return handle_health(gw, http);
    }
    /* Kubernetes' probes: alive while the loop answers (a drain is not a reason to restart it),
     * ready while it takes new requests (not while it drains: the Service stops sending). */
    if (strcmp(path, "/livez") == 0 || strcmp(path, "/readyz") == 0) {
        if (cmd != TLAB_HTTP_GET)
            return method_not_allowed(http, path, "GET");
        int ready = path[1] == 'l' || !gw->draining;
        json_t *o = json_pack("{s:s}", "status", gw->draining ? "draining" : "ok");
        if (!o)
            return send_error(http, 500, "internal_error", "%s", "out of memory");
        send_json(http, ready ? 200 : 503, o);
        json_decref(o);
        return;
    }
    int admin_route = is_admin_route(path);
    if (l->admin ? !admin_route : admin_route && gw->admin_http)
        return not_found(http, path);
    /* With auth on, every other route of the main listener needs a key (deny by default, plugin
     * routes included), and the operator's routes an admin key. The admin listener is trusted
     * by where it listens (loopback by default). */
    long key = TLAB_AUTH_OPEN;
    if (!l->admin && (key = tlab__auth_check(http, admin_route)) == -1)
        return;
    /* Auth off and no admin listener: the /admin/ routes (restarts, policies, the pool) answer this
     * machine only, whatever listen.host says; in a pod the main listener is on 0.0.0.0.
     * /metrics stays open there for Prometheus' scrape (it reads, it changes nothing). */
    if (!l->admin && !tlab__auth_enabled() && admin_route && strcmp(path, "/metrics") != 0 &&
        !tlab__is_loopback(tlab__http_req_peer(http, NULL)))
        return send_error(http, 403, "permission_error", "%s",
                          "the operator's routes (/admin/...) answer only this machine while auth is off: call from "
                          "loopback, set auth.keys_file with an admin key, or serve them on admin.listen");

    if (strcmp(path, "/v1/chat/completions") == 0 || strcmp(path, "/v1/completions") == 0) {
        if (cmd != TLAB_HTTP_POST)
            return method_not_allowed(http, path, "POST");
        return handle_llm(gw, http, path[4] == 'c' && path[5] == 'h' ? "/v1/chat/completions" : "/v1/completions",
                          path[4] == 'c' && path[5] == 'h' ? TLAB_KIND_CHAT : TLAB_KIND_COMPLETIONS, key);
    }
    if (strcmp(path, "/v1/models") == 0) {
        if (cmd != TLAB_HTTP_GET)
            return method_not_allowed(http, path, "GET");
        if (tlab__auth_admit_call(http, key) != 0)
            return;
        return handle_models(http);
    }
    if (strcmp(path, "/admin/workers") == 0)
        return get_json(http, cmd, path, describe_workers);
    if (strcmp(path, "/admin/demand") == 0)
        return get_json(http, cmd, path, tlab__gate_demand);
    if (strcmp(path, "/admin/policies") == 0)
        return get_json(http, cmd, path, tlab__policies_describe);
    int routed = tlab__plugins_route(http, path);
    if (routed == 1)
        return;
    if (routed == -1)
        return method_not_allowed(http, path, "see the plugin's documentation");
    not_found(http, path);
}

/* The front's limits from the config. Bodies between max_body_bytes and the hard cap get the
 * validator's OpenAI-shaped 413 naming limits.max_body_bytes; beyond the cap the front answers
 * 413 itself without reading them, so memory per connection stays bounded. */
static tlab__http_limits front_limits(const tlab__config *cfg, int admin) {
    long long hard_cap = cfg->max_body_bytes * 2 > cfg->max_body_bytes + (1 << 20) ? cfg->max_body_bytes * 2
                                                                                   : cfg->max_body_bytes + (1 << 20);
    return (tlab__http_limits){.max_header_bytes = 64 * 1024,
                              .max_body_bytes = (size_t)hard_cap,
                              .timeout_ms = cfg->client_timeout_ms,
                              /* operators on loopback are not counted against the clients' cap */
                              .max_connections = admin ? 0 : cfg->max_connections_in};
}

/* Listens on host:port and serves it through `l`; stores the bound port. On failure returns
 * NULL with err set. */
static tlab__http_server *serve(listener *l, const char *what, const char *host, int port, int *bound_port, char *err,
                               size_t errlen) {
    evutil_socket_t fd = tlab__listen_socket(host, port);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s%s:%d: %s", what, host, port, strerror(errno));
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *bound_port = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *bound_port =
            ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    tlab__http_limits limits = front_limits(l->gw->cfg, l->admin);
    tlab__http_server *s = tlab__http_server_new(l->gw->base, fd, &limits, on_request, l);
    if (!s)
        snprintf(err, errlen, "cannot create the HTTP server for %s%s:%d: out of memory", what, host, port);
    return s;
}

int tlab__http_start(tlab__gateway *gw, char *err, size_t errlen) {
    const tlab__config *cfg = gw->cfg;
    main_listener = (listener){gw, 0};
    admin_listener = (listener){gw, 1};
    gw->admin_port = -1;
    gw->http = serve(&main_listener, "", cfg->listen_host, cfg->listen_port, &gw->port, err, errlen);
    if (!gw->http)
        return -1;
    if (cfg->admin_port >= 0 &&
        !(gw->admin_http = serve(&admin_listener, "admin.listen ", cfg->admin_host, cfg->admin_port, &gw->admin_port, err, errlen)))
        return -1;
    return 0;
}

void tlab__http_apply_limits(tlab__gateway *gw) {
    tlab__http_limits limits = front_limits(gw->cfg, 0);
    if (gw->http)
        tlab__http_server_set_limits(gw->http, &limits);
    limits = front_limits(gw->cfg, 1);
    if (gw->admin_http)
        tlab__http_server_set_limits(gw->admin_http, &limits);
}

void tlab__http_stop(tlab__gateway *gw) {
    if (gw->http)
        tlab__http_server_free(gw->http);
    gw->http = NULL;
    if (gw->admin_http)
        tlab__http_server_free(gw->admin_http);
    gw->admin_http = NULL;
}
