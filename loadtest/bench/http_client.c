/*
 * http_client.c - libcurl multi on libevent, tuned for a load generator: easy handles are set up
 * once and reused from a free list (setting ~15 options per request costs more than the request
 * on loopback), the body and header list are shared by all requests, and nothing is copied.
 *
 * The libcurl/libevent glue is core/src/curl_loop.c, shared with the gateway. curl forbids
 * removing an easy handle from inside its own callbacks, so requests end only in on_finished(),
 * which curl_loop calls after curl_multi_socket_action has returned.
 */
#include "http_client.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "common/curl_loop.h"

typedef struct slot {
    struct tlab_http *h;
    CURL *easy;
    void *arg;
    int got_bytes;
    int headers_done;
    double retry_after_s; /* Retry-After of the response being read, -1 if none */
    double retry_after_ms; /* its retry-after-ms (read first, as the openai SDKs do), -1 if none */
    int active;
    struct slot *next_free;
} slot;


struct tlab_http {
    struct event_base *base;
    CURLM *multi;
    tlab__curl_loop *loop;
    struct curl_slist *headers;
    char *url;
    const char *body;
    size_t body_len;
    long timeout_ms;
    tlab_http_callbacks cb;
    slot *free_list;
    slot **all; /* every slot ever made, for cleanup */
    size_t n_all, cap_all;
    size_t active;
    unsigned long connections;
};

static void on_finished(void *arg, CURL *easy, CURLcode rc);

/* "Retry-After: 3\r\n" with name "retry-after:" -> 3; fractional values are accepted, an
 * HTTP-date or garbage is -1 (the caller then treats the header as absent). The line is not
 * NUL-terminated. */
static double parse_number_header(const char *line, size_t len, const char *name) {
    size_t name_len = strlen(name);
    if (len <= name_len || strncasecmp(line, name, name_len) != 0)
        return -1;
    char buf[32];
    size_t i = name_len, k = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    while (i < len && k + 1 < sizeof buf && line[i] != '\r' && line[i] != '\n')
        buf[k++] = line[i++];
    buf[k] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    while (end && (*end == ' ' || *end == '\t'))
        end++;
    return k && end && !*end && v >= 0 && v < 1e9 ? v : -1;
}

static size_t header_cb(char *data, size_t size, size_t n, void *arg) {
    slot *s = arg;
    size_t len = size * n;
    s->got_bytes = 1;
    long status;
    char *ctype;
    if (tlab__curl_final_headers(s->easy, data, len, &status, &ctype)) {
        if (!s->headers_done) {
            s->headers_done = 1;
            int sse = ctype && strncmp(ctype, "text/event-stream", 17) == 0;
            /* retry-after-ms first: the gateway's exact wait behind the whole-second Retry-After. */
            s->h->cb.on_headers(s->arg, (int)status, sse, s->retry_after_ms >= 0 ? s->retry_after_ms / 1e3 : s->retry_after_s);
        }
    } else if (!s->headers_done && len > 0 && (data[0] == 'R' || data[0] == 'r')) {
        /* One byte compared per header line: the hot path stays as it was. An interim response's
         * header would be overwritten by the final one's. */
        double v = parse_number_header(data, len, "retry-after:");
        if (v >= 0)
            s->retry_after_s = v;
        v = parse_number_header(data, len, "retry-after-ms:");
        if (v >= 0)
            s->retry_after_ms = v;
    }
    return len;
}

static size_t write_cb(char *data, size_t size, size_t n, void *arg) {
    slot *s = arg;
    size_t len = size * n;
    s->got_bytes = 1;
    s->h->cb.on_data(s->arg, data, len);
    return len;
}

tlab_http *tlab_http_new(struct event_base *base, const char *url, const char *body, size_t body_len, long timeout_ms,
                         long max_connections, const tlab_http_callbacks *cb) {
    tlab_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->base = base;
    h->url = strdup(url);
    h->body = body;
    h->body_len = body_len;
    h->timeout_ms = timeout_ms;
    h->cb = *cb;
    h->loop = tlab__curl_loop_new(base, on_finished, h);
    h->multi = h->loop ? tlab__curl_loop_multi(h->loop) : NULL;
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (h->headers)
        h->headers = curl_slist_append(h->headers, "Expect:"); /* no 100-continue round trip */
    if (!h->url || !h->multi || !h->headers) {
        tlab_http_free(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, max_connections);
    return h;
}

static slot *new_slot(tlab_http *h) {
    if (h->n_all == h->cap_all) {
        size_t cap = h->cap_all ? h->cap_all * 2 : 64;
        slot **a = realloc(h->all, cap * sizeof *a);
        if (!a)
            return NULL;
        h->all = a;
        h->cap_all = cap;
    }
    slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->h = h;
    s->easy = curl_easy_init();
    if (!s->easy) {
        free(s);
        return NULL;
    }
    CURL *e = s->easy;
    curl_easy_setopt(e, CURLOPT_URL, h->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body_len);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    h->all[h->n_all++] = s;
    return s;
}

int tlab_http_send(tlab_http *h, void *arg) {
    return tlab_http_send_body(h, h->body, h->body_len, arg);
}

int tlab_http_send_body(tlab_http *h, const char *body, size_t body_len, void *arg) {
    slot *s = h->free_list;
    if (s)
        h->free_list = s->next_free;
    else if (!(s = new_slot(h)))
        return -1;
    s->arg = arg;
    s->got_bytes = s->headers_done = 0;
    s->retry_after_s = -1;
    s->retry_after_ms = -1;
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    if (curl_multi_add_handle(h->multi, s->easy) != CURLM_OK) {
        s->next_free = h->free_list;
        h->free_list = s;
        return -1;
    }
    s->active = 1;
    h->active++;
    return 0;
}

static tlab_http_result classify(CURLcode rc, const slot *s) {
    if (rc == CURLE_OK)
        return TLAB_HTTP_DONE;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return TLAB_HTTP_TIMEOUT;
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        return TLAB_HTTP_CONNECT;
    if (!s->got_bytes && (rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR))
        return TLAB_HTTP_NO_RESPONSE;
    if (s->got_bytes)
        return TLAB_HTTP_BROKEN;
    return TLAB_HTTP_FAILED;
}

static void on_finished(void *arg, CURL *easy, CURLcode rc) {
    tlab_http *h = arg;
    slot *s = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&s);
    long connects = 0;
    if (curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
        h->connections += (unsigned long)connects;
    tlab_http_result res = classify(rc, s);
    /* Free the slot before the callback, which may start the next request on it. */
    curl_multi_remove_handle(h->multi, s->easy);
    s->active = 0;
    h->active--;
    s->next_free = h->free_list;
    h->free_list = s;
    h->cb.on_done(s->arg, res, rc == CURLE_OK ? "" : curl_easy_strerror(rc));
}

size_t tlab_http_active(const tlab_http *h) {
    return h->active;
}

unsigned long tlab_http_connections(const tlab_http *h) {
    return h->connections;
}

void tlab_http_free(tlab_http *h) {
    if (!h)
        return;
    for (size_t i = 0; i < h->n_all; i++) {
        if (h->all[i]->active) {
            curl_multi_remove_handle(h->multi, h->all[i]->easy);
            h->all[i]->active = 0;
            h->active--;
            h->cb.on_done(h->all[i]->arg, TLAB_HTTP_FAILED, "stopped");
        }
        curl_easy_cleanup(h->all[i]->easy);
        free(h->all[i]);
    }
    free(h->all);
    tlab__curl_loop_free(h->loop);
    curl_slist_free_all(h->headers);
    free(h->url);
    free(h);
}
