/*
 * plugin_services.c - the heavier services of the plugin API: child processes, an HTTP client
 * on the loop (health checks, sleep/wake calls), failing every waiting request, YAML files.
 * Each adapts a core facility; plugin_api.c puts them in the table.
 */
#include "gateway/plugin_services.h"

#include <stdlib.h>
#include <string.h>

#include "dispatch/dispatch.h"
#include "gateway/gateway.h"
#include "common/process.h"
#include "upstream/upstream.h"
#include "common/yaml_json.h"

#define HTTP_BODY_CAP (64 * 1024)

struct tlab_http_call {
    tlab__xfer *xfer;
    int status;
    char *body;
    size_t len;
    void (*cb)(void *arg, int status, const char *body, size_t len);
    void *arg;
};

long tlab__svc_process_spawn(tlab_plugin_ctx *ctx, const char *const *argv, const char *const *env, const char *log_path,
                            size_t log_max_bytes, void (*on_exit)(void *arg, long pid, int wait_status), void *arg, char *err,
                            size_t errlen) {
    (void)ctx;
    return tlab__process_spawn(argv, env, log_path, log_max_bytes, on_exit, arg, err, errlen);
}

int tlab__svc_process_signal(long pid, int sig) {
    return tlab__process_signal(pid, sig) == 0 ? TLAB_OK : TLAB_ERROR;
}

static void call_headers(void *arg, int status, const char *ctype) {
    tlab_http_call *c = arg;
    (void)ctype;
    c->status = status;
}

static void call_data(void *arg, const char *data, size_t len) {
    tlab_http_call *c = arg;
    if (c->len + len > HTTP_BODY_CAP)
        len = HTTP_BODY_CAP - c->len;
    if (!len)
        return;
    char *grown = realloc(c->body, c->len + len + 1);
    if (!grown)
        return;
    memcpy(grown + c->len, data, len);
    c->body = grown;
    c->len += len;
    c->body[c->len] = '\0';
}

static void call_done(void *arg, tlab__xfer_result result, const char *detail) {
    tlab_http_call *c = arg;
    (void)detail;
    c->xfer = NULL;
    c->cb(c->arg, result == TLAB_XFER_OK ? c->status : 0, c->body ? c->body : "", c->len);
    free(c->body);
    free(c);
}

static const tlab__xfer_callbacks call_callbacks = {call_headers, call_data, call_done};

tlab_http_call *tlab__svc_http_request(tlab_plugin_ctx *ctx, const char *method, const char *url, const char *body,
                                      long timeout_ms, void (*cb)(void *arg, int status, const char *body, size_t len),
                                      void *arg) {
    (void)ctx;
    tlab_http_call *c = calloc(1, sizeof *c);
    if (!c || !cb || !url) {
        free(c);
        return NULL;
    }
    c->cb = cb;
    c->arg = arg;
    static const char *const json_headers[] = {"Content-Type: application/json", NULL};
    c->xfer = tlab__upstream_start(tlab__gw.upstream, method ? method : "GET", url, body, body ? strlen(body) : 0,
                                  body ? json_headers : NULL, timeout_ms, &call_callbacks, c);
    if (!c->xfer) {
        free(c);
        return NULL;
    }
    return c;
}

void tlab__svc_http_cancel(tlab_http_call *c) {
    if (!c)
        return;
    tlab__xfer_abort(c->xfer);
    free(c->body);
    free(c);
}

size_t tlab__svc_fail_waiting(int status, const char *type, const char *message, int retry_after_s) {
    size_t before = tlab__dispatch_waiting();
    tlab__error err;
    tlab__error_set(&err, status, type ? type : "service_unavailable", NULL, "%s", message ? message : "");
    tlab__dispatch_fail_all_retry(&err, retry_after_s);
    return before - tlab__dispatch_waiting();
}

json_t *tlab__svc_yaml_load(const char *path, char *err, size_t errlen) {
    return tlab__yaml_load_file(path, err, errlen);
}

const char *tlab__svc_upstream_url(void) {
    return tlab__gw.cfg->upstream_url;
}
