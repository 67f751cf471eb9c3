/*
 * worker_scrape.c - the worker's /metrics, fetched and parsed for the autopilot (worker_scrape.h).
 *
 * Names: vLLM V1 (0.8 and later) and tlab-sim say vllm:kv_cache_usage_perc and
 * vllm:inter_token_latency_seconds; older vLLM said vllm:gpu_cache_usage_perc and
 * vllm:time_per_output_token_seconds (the same quantity). Both are read. tlab-sim also says
 * tlab_sim:time_scale: with --time-scale F its durations are simulated seconds.
 */
#include "dispatch/worker_scrape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#define MAX_BODY (4u << 20) /* a vLLM /metrics page is ~30 KiB; past this it is not one */

struct tlab__worker_scrape {
    tlab__upstream *up;
    char *url;
    long timeout_ms;
    tlab__worker_reading_fn fn;
    void *arg;
    tlab__xfer *xfer;
    int status;
    struct evbuffer *body;
    int too_big;
};

typedef struct series {
    const char *name;
    size_t off; /* into tlab__worker_reading */
    size_t seen_off; /* an int flag to set, or (size_t)-1 */
} series;

#define R(f) offsetof(tlab__worker_reading, f)
#define NONE ((size_t)-1)
static const series wanted[] = {
    {"vllm:num_requests_running", R(running), NONE},
    {"vllm:num_requests_waiting", R(waiting), NONE},
    {"vllm:kv_cache_usage_perc", R(kv_usage), NONE},
    {"vllm:gpu_cache_usage_perc", R(kv_usage), NONE},
    {"vllm:inter_token_latency_seconds_sum", R(itl_sum), R(has_itl)},
    {"vllm:inter_token_latency_seconds_count", R(itl_count), R(has_itl)},
    {"vllm:time_per_output_token_seconds_sum", R(itl_sum), R(has_itl)},
    {"vllm:time_per_output_token_seconds_count", R(itl_count), R(has_itl)},
    {"vllm:time_to_first_token_seconds_sum", R(ttft_sum), R(has_ttft)},
    {"vllm:time_to_first_token_seconds_count", R(ttft_count), R(has_ttft)},
    {"tlab_sim:time_scale", R(time_scale), NONE},
};

int tlab__worker_metrics_parse(const char *text, size_t len, tlab__worker_reading *out) {
    memset(out, 0, sizeof *out);
    int have_running = 0, have_waiting = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if (*p != '#') {
            for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
                size_t n = strlen(wanted[i].name);
                if ((size_t)(eol - p) <= n || memcmp(p, wanted[i].name, n) != 0 || (p[n] != '{' && p[n] != ' '))
                    continue;
                /* The value follows the last space before the end of the line (labels may hold spaces). */
                const char *sp = eol;
                while (sp > p + n && sp[-1] != ' ')
                    sp--;
                char num[64];
                size_t vl = (size_t)(eol - sp);
                if (vl == 0 || vl >= sizeof num)
                    break;
                memcpy(num, sp, vl);
                num[vl] = '\0';
                char *stop;
                double v = strtod(num, &stop);
                if (stop == num || (*stop && *stop != '\r') || v != v)
                    break;
                *(double *)((char *)out + wanted[i].off) += v;
                if (wanted[i].seen_off != NONE)
                    *(int *)((char *)out + wanted[i].seen_off) = 1;
                have_running |= i == 0;
                have_waiting |= i == 1;
                break;
            }
        }
        p = eol + 1;
    }
    return have_running && have_waiting ? 0 : -1;
}

static void on_headers(void *arg, int status, const char *content_type) {
    (void)content_type;
    ((tlab__worker_scrape *)arg)->status = status;
}

static void on_data(void *arg, const char *data, size_t len) {
    tlab__worker_scrape *s = arg;
    if (s->too_big || evbuffer_get_length(s->body) + len > MAX_BODY || evbuffer_add(s->body, data, len) != 0)
        s->too_big = 1;
}

static const char *body_text(tlab__worker_scrape *s) {
    const char *t = (const char *)evbuffer_pullup(s->body, -1); /* one contiguous block to parse */
    return t ? t : "";
}

static void on_done(void *arg, tlab__xfer_result result, const char *detail) {
    tlab__worker_scrape *s = arg;
    s->xfer = NULL;
    tlab__worker_reading r;
    char why[160];
    if (result != TLAB_XFER_OK)
        snprintf(why, sizeof why, "%s did not answer (%s)", s->url, detail && *detail ? detail : "no response");
    else if (s->status != 200)
        snprintf(why, sizeof why, "%s answered HTTP %d", s->url, s->status);
    else if (s->too_big)
        snprintf(why, sizeof why, "%s sent more than %u bytes", s->url, MAX_BODY);
    else if (tlab__worker_metrics_parse(body_text(s), evbuffer_get_length(s->body), &r) != 0)
        snprintf(why, sizeof why, "%s has no vllm:num_requests_running/waiting", s->url);
    else
        why[0] = '\0';
    evbuffer_drain(s->body, evbuffer_get_length(s->body));
    s->too_big = 0;
    s->fn(s->arg, why[0] ? NULL : &r, why);
}

static const tlab__xfer_callbacks callbacks = {on_headers, on_data, on_done};

tlab__worker_scrape *tlab__worker_scrape_new(tlab__upstream *up, const char *url, long timeout_ms, tlab__worker_reading_fn fn,
                                             void *arg) {
    tlab__worker_scrape *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->url = strdup(url);
    s->body = evbuffer_new();
    if (!s->url || !s->body) {
        tlab__worker_scrape_free(s);
        return NULL;
    }
    s->up = up;
    s->timeout_ms = timeout_ms;
    s->fn = fn;
    s->arg = arg;
    return s;
}

void tlab__worker_scrape_poll(tlab__worker_scrape *s) {
    if (s->xfer)
        return; /* the previous one is still under way: skipped, never piled up */
    s->status = 0;
    evbuffer_drain(s->body, evbuffer_get_length(s->body));
    s->xfer = tlab__upstream_start(s->up, "GET", s->url, NULL, 0, NULL, s->timeout_ms, &callbacks, s);
}

void tlab__worker_scrape_free(tlab__worker_scrape *s) {
    if (!s)
        return;
    if (s->xfer)
        tlab__xfer_abort(s->xfer);
    if (s->body)
        evbuffer_free(s->body);
    free(s->url);
    free(s);
}
