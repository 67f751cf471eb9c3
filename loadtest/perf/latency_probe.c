/*
 * latency_probe.c - tlab-perf-latency: concurrency-1 latency of several HTTP endpoints measured
 * side by side, for loadtest/perf/side_by_side.py.
 *
 * Each round sends the same POST once to every URL, one request at a time, each URL over its own
 * kept-alive connection (one libcurl easy handle per URL). The order rotates every round, so no
 * URL always follows another (a cache or scheduler that favours "second in line" cancels out).
 * Rounds interleave the targets, so a burst of load from elsewhere on the machine lands on all
 * of them alike; the per-round difference (through - direct) is then a paired measurement.
 *
 * Output, stdout: one line per measured round, the latency of each URL in microseconds in the
 * order the URLs were given ("123.4 150.2 171.9"). Exit 1 (with the reason on stderr) on any
 * transfer error or non-2xx answer: a latency of a failed request means nothing.
 *
 * With --ttft, each figure is the time to the first byte of the response body instead (for an
 * SSE response: its first event, i.e. the time to first token).
 *
 * Usage: tlab-perf-latency --body FILE --rounds N [--warmup N] [--ttft] URL...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "perf_flags.h"

#define MAX_URLS 8

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static double first_body_us; /* when the current transfer's first body byte arrived; 0 = not yet */

static size_t discard(char *data, size_t size, size_t n, void *arg) {
    (void)data, (void)arg;
    if (first_body_us == 0 && size * n > 0)
        first_body_us = now_us();
    return size * n;
}

static int opt_ttft;

/* Reads a whole file into a NUL-terminated buffer; NULL on error. */
static char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = *len >= 0 ? malloc((size_t)*len + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)*len, f) != (size_t)*len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        buf[*len] = '\0';
    return buf;
}

/* One request on `e`; returns its latency in µs, or -1 after printing why it failed. */
static double one(CURL *e, const char *url) {
    first_body_us = 0;
    double t0 = now_us();
    CURLcode rc = curl_easy_perform(e);
    double dt = (opt_ttft && first_body_us > 0 ? first_body_us : now_us()) - t0;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status < 200 || status > 299) {
        fprintf(stderr, "tlab-perf-latency: %s: %s (HTTP %ld)\n", url, curl_easy_strerror(rc), status);
        return -1;
    }
    return dt;
}

static const char usage[] =
    "usage: tlab-perf-latency --body FILE --rounds N [--warmup N] [--ttft] URL...\n"
    "\n"
    "Concurrency-1 latency of up to 8 URLs, interleaved round by round: one line per measured\n"
    "round with each URL's latency in microseconds (--ttft: time to the first body byte).\n"
    "  -h, --help, -V, --version\n";

int main(int argc, char **argv) {
    const char *body_path = NULL, *urls[MAX_URLS];
    if (perf_help_or_version(argc, argv, "tlab-perf-latency", usage))
        return 0;
    long rounds = 1000, warmup = 200;
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--body") && i + 1 < argc)
            body_path = argv[++i];
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atol(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
            warmup = atol(argv[++i]);
        else if (!strcmp(argv[i], "--ttft"))
            opt_ttft = 1;
        else if (argv[i][0] != '-' && n < MAX_URLS)
            urls[n++] = argv[i];
        else {
            fprintf(stderr, "usage: tlab-perf-latency --body FILE --rounds N [--warmup N] [--ttft] URL... (at most %d URLs)\n", MAX_URLS);
            return 2;
        }
    }
    long body_len = 0;
    char *body = body_path ? slurp(body_path, &body_len) : NULL;
    if (!body || n == 0 || rounds < 1) {
        fprintf(stderr, "tlab-perf-latency: need --body FILE (readable), --rounds >= 1 and at least one URL\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *easy[MAX_URLS];
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    for (int u = 0; u < n; u++) {
        CURL *e = easy[u] = curl_easy_init();
        curl_easy_setopt(e, CURLOPT_URL, urls[u]);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    }
    double lat[MAX_URLS];
    int rc = 0;
    for (long r = -warmup; r < rounds && !rc; r++) {
        long shift = (r % n + n) % n;
        for (int k = 0; k < n; k++) {
            int u = (int)((k + shift) % n);
            if ((lat[u] = one(easy[u], urls[u])) < 0) {
                rc = 1;
                break;
            }
        }
        if (r >= 0 && !rc) {
            for (int u = 0; u < n; u++)
                printf(u ? " %.1f" : "%.1f", lat[u]);
            putchar('\n');
        }
    }
    for (int u = 0; u < n; u++)
        curl_easy_cleanup(easy[u]);
    curl_slist_free_all(hdrs);
    free(body);
    curl_global_cleanup();
    return rc;
}
