/*
 * upstream_curl.c - the libcurl transport of upstream.h, on libcurl multi driven by the loop
 * (curl_loop.c): what upstream_http.c does not carry (https, host names to resolve, user info).
 * Transfers, retries, timeouts and the relay callbacks, with the same contract.
 *
 * curl forbids removing an easy handle from inside its own callbacks, so every end of a transfer
 * goes through on_transfer_finished() (curl_loop.c) or a libevent callback, never through on_data.
 */
#include "upstream/upstream_backend.h"
#include "upstream/upstream_policy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "common/curl_loop.h"
#include "base/clock.h"
#include "common/log.h"

/* Idle easy handles kept for the next transfers. curl_easy_init allocates and initialises a
 * large struct (about 5 % of a small request's instructions under callgrind); curl_easy_reset
 * on a kept handle is cheaper. The pool only bounds memory: beyond it handles are freed. */
#define EASY_POOL_MAX 64

struct tlab__curl_client {
    struct event_base *base;
    CURLM *multi;
    tlab__curl_loop *loop;
    const tlab__config *cfg;
    long maxage_s;
    tlab__upstream_stats *stats;
    CURL *easy_pool[EASY_POOL_MAX];
    int easy_pooled;
};

typedef struct curl_xfer {
    tlab__xfer base;
    tlab__curl_client *up;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    tlab__xfer_callbacks cb;
    void *arg;
    tlab__attempt at;  /* budgets, got_bytes and the one retry (upstream_policy.h); libcurl keeps the deadlines */
    int headers_done;
    int in_callback;  /* inside a curl callback: curl_multi_remove_handle is forbidden */
    int abort_pending;/* tlab__xfer_abort was called from inside a callback */
    int paused;
    struct event *first_byte_timer;
} curl_xfer;

static void xfer_free(curl_xfer *x) {
    long connects = 0;
    if (x->easy && curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
        x->up->stats->connections_opened += (uint64_t)connects;
    if (x->easy) {
        curl_multi_remove_handle(x->up->multi, x->easy);
        if (x->up->easy_pooled < EASY_POOL_MAX) {
            /* Every option back to its default (retry flags, callbacks pointing at x included);
             * the multi handle keeps the connections, so reuse of those is unaffected. */
            curl_easy_reset(x->easy);
            x->up->easy_pool[x->up->easy_pooled++] = x->easy;
        } else {
            curl_easy_cleanup(x->easy);
        }
    }
    if (x->first_byte_timer)
        event_free(x->first_byte_timer);
    curl_slist_free_all(x->headers);
    free(x->body);
    x->up->stats->active--;
    free(x);
}

static void finish(curl_xfer *x, tlab__xfer_result result, const char *detail) {
    tlab__xfer_callbacks cb = x->cb;
    void *arg = x->arg;
    xfer_free(x);
    cb.on_done(arg, result, detail);
}

static void on_transfer_finished(void *arg, CURL *easy, CURLcode rc);

tlab__curl_client *tlab__curl_client_new(struct event_base *base, const tlab__config *cfg, tlab__upstream_stats *stats) {
    tlab__curl_client *up = calloc(1, sizeof *up);
    if (!up)
        return NULL;
    up->base = base;
    up->cfg = cfg;
    up->stats = stats;
    up->maxage_s = cfg->idle_keepalive_ms / 1000 > 0 ? cfg->idle_keepalive_ms / 1000 : 1;
    up->loop = tlab__curl_loop_new(base, on_transfer_finished, up);
    if (!up->loop) {
        free(up);
        return NULL;
    }
    up->multi = tlab__curl_loop_multi(up->loop);
    curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, cfg->max_connections);
    return up;
}

void tlab__curl_client_free(tlab__curl_client *up) {
    if (!up)
        return;
    while (up->easy_pooled > 0)
        curl_easy_cleanup(up->easy_pool[--up->easy_pooled]);
    tlab__curl_loop_free(up->loop);
    free(up);
}

static size_t header_cb(char *data, size_t size, size_t n, void *arg) {
    curl_xfer *x = arg;
    size_t len = size * n;
    if (!x->at.got_bytes) {
        x->at.got_bytes = 1;
        if (x->first_byte_timer)
            evtimer_del(x->first_byte_timer);
    }
    long status;
    char *ctype;
    if (tlab__curl_final_headers(x->easy, data, len, &status, &ctype)) {
        if (!x->headers_done) {
            x->headers_done = 1;
            x->in_callback = 1;
            x->cb.on_headers(x->arg, (int)status, ctype);
            x->in_callback = 0;
            if (x->abort_pending)
                return 0;
        }
    }
    return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *arg) {
    curl_xfer *x = arg;
    size_t len = size * n;
    if (x->abort_pending)
        return 0;
    x->in_callback = 1;
    x->cb.on_data(x->arg, data, len);
    x->in_callback = 0;
    return x->abort_pending ? 0 : len;
}

static void on_first_byte_timeout(evutil_socket_t fd, short what, void *arg) {
    curl_xfer *x = arg;
    x->up->stats->aborted++;
    char detail[128];
    tlab__attempt_timeout_detail(&x->at, TLAB_XFER_FIRST_BYTE_TIMEOUT, detail, sizeof detail);
    finish(x, TLAB_XFER_FIRST_BYTE_TIMEOUT, detail);
}

static int add_to_multi(curl_xfer *x) {
    long ms = x->at.first_byte_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(x->first_byte_timer, &tv);
    return curl_multi_add_handle(x->up->multi, x->easy) == CURLM_OK ? 0 : -1;
}

static void xfer_abort(tlab__xfer *base);
static void xfer_pause(tlab__xfer *base, int paused);
static uint64_t xfer_send_overhead_us(tlab__xfer *base);
static const tlab__xfer_ops curl_ops = {xfer_abort, xfer_pause, xfer_send_overhead_us};

tlab__xfer *tlab__curl_client_start(tlab__curl_client *up, const tlab__xfer_request *rq) {
    curl_xfer *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->base.ops = &curl_ops;
    x->up = up;
    up->stats->active++;
    x->cb = *rq->cb;
    x->arg = rq->arg;
    x->easy = up->easy_pooled > 0 ? up->easy_pool[--up->easy_pooled] : curl_easy_init();
    x->first_byte_timer = evtimer_new(up->base, on_first_byte_timeout, x);
    tlab__attempt_start(&x->at, rq->connect_ms, rq->first_byte_ms, rq->total_ms, tlab__now_us());
    if (rq->body && rq->body_len) {
        x->body = malloc(rq->body_len);
        if (x->body)
            memcpy(x->body, rq->body, rq->body_len);
        x->body_len = rq->body_len;
    }
    if (!x->easy || !x->first_byte_timer || (rq->body_len && !x->body)) {
        xfer_free(x);
        return NULL;
    }
    const char *method = rq->method;
    const char *const *headers = rq->headers;

    x->headers = curl_slist_append(NULL, "Expect:"); /* no 100-continue round trip */
    for (size_t i = 0; headers && headers[i]; i++)
        x->headers = curl_slist_append(x->headers, headers[i]);

    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, rq->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, rq->connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, rq->total_ms);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, up->maxage_s);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body ? x->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    if (add_to_multi(x) != 0) {
        xfer_free(x);
        return NULL;
    }
    up->stats->transfers++;
    return &x->base;
}

static void xfer_abort(tlab__xfer *base) {
    curl_xfer *x = (curl_xfer *)base;
    x->up->stats->aborted++;
    if (x->in_callback) {
        /* Returning 0 from the callback makes curl fail the transfer; on_transfer_finished frees it. */
        x->abort_pending = 1;
        return;
    }
    /* Removing a handle mid-transfer closes its connection: the worker sees the disconnect. */
    xfer_free(x);
}

static void xfer_pause(tlab__xfer *base, int paused) {
    curl_xfer *x = (curl_xfer *)base;
    if (x->paused == paused)
        return;
    x->paused = paused;
    curl_easy_pause(x->easy, paused ? CURLPAUSE_RECV : CURLPAUSE_CONT);
}

static uint64_t xfer_send_overhead_us(tlab__xfer *base) {
    curl_xfer *x = (curl_xfer *)base;
    curl_off_t pretransfer = 0, connect = 0;
    if (curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer) != CURLE_OK)
        return 0;
    curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &connect);
    return pretransfer > connect ? (uint64_t)(pretransfer - connect) : 0;
}

static int retryable(CURLcode rc) {
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR;
}

static void on_transfer_done(curl_xfer *x, CURLcode rc) {
    tlab__curl_client *up = x->up;
    if (x->abort_pending) {
        xfer_free(x);
        return;
    }
    if (rc == CURLE_OK) {
        finish(x, TLAB_XFER_OK, "");
        return;
    }
    if (tlab__attempt_retry(&x->at, retryable(rc), tlab__now_us())) {
        long connects = 0;
        if (curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
            up->stats->connections_opened += (uint64_t)connects;
        curl_multi_remove_handle(up->multi, x->easy);
        up->stats->retries++;
        LOG_DEBUG("upstream: %s before any response byte; retrying on a fresh connection", curl_easy_strerror(rc));
        curl_easy_setopt(x->easy, CURLOPT_FRESH_CONNECT, 1L);
        evtimer_del(x->first_byte_timer);
        if (add_to_multi(x) == 0)
            return;
    }
    char detail[256];
    tlab__xfer_result result;
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        curl_off_t connect = 0;
        curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &connect);
        result = tlab__attempt_timeout_kind(&x->at, connect != 0);
        tlab__attempt_timeout_detail(&x->at, result, detail, sizeof detail);
    } else if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_WEIRD_SERVER_REPLY) {
        /* Not HTTP/1.x on the wire (libcurl takes a garbled status line for HTTP/0.9): the worker
         * answered, so it is reachable, and its answer is broken, as the own client says. */
        result = TLAB_XFER_BROKEN;
        snprintf(detail, sizeof detail, "the worker's response broke off: garbled response (%s)", curl_easy_strerror(rc));
    } else if (!x->at.got_bytes) {
        result = TLAB_XFER_UNREACHABLE;
        snprintf(detail, sizeof detail, "the worker is not reachable: %s", curl_easy_strerror(rc));
    } else {
        result = TLAB_XFER_BROKEN;
        snprintf(detail, sizeof detail, "the worker's response broke off: %s", curl_easy_strerror(rc));
    }
    finish(x, result, detail);
}

static void on_transfer_finished(void *arg, CURL *easy, CURLcode rc) {
    (void)arg;
    curl_xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    if (x)
        on_transfer_done(x, rc);
}
