/*
 * upstream.c - routes each transfer of upstream.h to a transport: the gateway's own HTTP/1.1
 * client (upstream_http.c) when it can carry the URL, libcurl (upstream_curl.c) otherwise. The
 * libcurl side is created on first use, so a gateway in front of a plain-http worker never
 * starts it.
 */
#include "upstream/upstream.h"

#include <stdlib.h>
#include <string.h>

#include "upstream/upstream_backend.h"

struct tlab__upstream {
    struct event_base *base;
    const tlab__config *cfg;
    tlab__http_client *http;
    tlab__curl_client *curl;
    int force_curl; /* tlab__upstream_force_curl: the tests run the shared cases on both transports */
    tlab__upstream_stats stats;
};

tlab__upstream *tlab__upstream_new(struct event_base *base, const tlab__config *cfg) {
    tlab__upstream *up = calloc(1, sizeof *up);
    if (!up)
        return NULL;
    up->base = base;
    up->cfg = cfg;
    up->http = tlab__http_client_new(base, cfg, &up->stats);
    if (!up->http) {
        free(up);
        return NULL;
    }
    return up;
}

void tlab__upstream_free(tlab__upstream *up) {
    if (!up)
        return;
    tlab__http_client_free(up->http);
    tlab__curl_client_free(up->curl);
    free(up);
}

static int is_absolute(const char *path) {
    return strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0;
}

tlab__xfer *tlab__upstream_start(tlab__upstream *up, const char *method, const char *path, const char *body, size_t body_len,
                               const char *const *headers, long timeout_ms, const tlab__xfer_callbacks *cb, void *arg) {
    char stack_url[512], *url = stack_url;
    if (is_absolute(path)) {
        url = (char *)path;
    } else {
        /* upstream.url may end in '/'; path always starts with one. */
        const char *base_url = up->cfg->upstream_url;
        size_t blen = strlen(base_url), plen = strlen(path);
        if (blen && base_url[blen - 1] == '/')
            blen--;
        if (blen + plen + 1 > sizeof stack_url && !(url = malloc(blen + plen + 1)))
            return NULL;
        memcpy(url, base_url, blen);
        memcpy(url + blen, path, plen + 1);
    }
    tlab__xfer_request rq = {
        .method = method,
        .url = url,
        .body = body,
        .body_len = body_len,
        .headers = headers,
        .connect_ms = timeout_ms > 0 ? timeout_ms : up->cfg->connect_timeout_ms,
        .first_byte_ms = timeout_ms > 0 ? timeout_ms : up->cfg->first_byte_timeout_ms,
        .total_ms = timeout_ms > 0 ? timeout_ms : up->cfg->total_timeout_ms,
        .cb = cb,
        .arg = arg,
    };
    int unsupported = up->force_curl;
    tlab__xfer *x = unsupported ? NULL : tlab__http_client_start(up->http, &rq, &unsupported);
    if (unsupported) {
        if (!up->curl)
            up->curl = tlab__curl_client_new(up->base, up->cfg, &up->stats);
        x = up->curl ? tlab__curl_client_start(up->curl, &rq) : NULL;
    }
    if (url != stack_url && url != path)
        free(url);
    return x;
}

void tlab__upstream_force_curl(tlab__upstream *up, int on) {
    up->force_curl = on;
}

void tlab__xfer_abort(tlab__xfer *x) {
    if (x)
        x->ops->abort(x);
}

void tlab__xfer_pause(tlab__xfer *x, int paused) {
    if (x)
        x->ops->pause(x, paused);
}

uint64_t tlab__xfer_send_overhead_us(tlab__xfer *x) {
    return x ? x->ops->send_overhead_us(x) : 0;
}

const tlab__upstream_stats *tlab__upstream_get_stats(const tlab__upstream *up) {
    return &up->stats;
}
