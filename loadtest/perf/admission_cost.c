/*
 * admission_cost.c - the per-request cost of the Lua admission call: loads an admission script
 * (default scripts-lua/admission.lua) into the policy host exactly as the gateway does, then
 * times N calls of tlab__policy_admission() one by one and prints the median, p90, p99 and max in
 * microseconds; then the same for the autopilot's deadline judgement (tlab__gate_judge, what the
 * queue asks at every push), on a gate primed with measurements and a busy worker, also with a
 * full book of Retry-After promises; and the retry key every request's body is hashed into.
 * Usage: tlab-admission-cost [script] [calls]   (docs/performance.md)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config/config.h"
#include "base/clock.h"
#include "dispatch/gate.h"
#include "dispatch/pool.h"
#include "dispatch/retry_promises.h"
#include "request/request.h"
#include "gateway/gateway.h"
#include "base/metrics_registry.h"
#include "perf_flags.h"
#include "policy/lua/policy_host.h"

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ns, long n, long rejects) {
    qsort(ns, (size_t)n, sizeof *ns, cmp_u64);
    printf("%s, %ld calls: median %.2f us, p90 %.2f us, p99 %.2f us, max %.2f us (%ld rejected)\n", what, n, ns[n / 2] / 1e3,
           ns[n * 90 / 100] / 1e3, ns[n * 99 / 100] / 1e3, ns[n - 1] / 1e3, rejects);
}

static uint64_t elapsed_ns(const struct timespec *a, const struct timespec *b) {
    return (uint64_t)(b->tv_sec - a->tv_sec) * 1000000000u + (uint64_t)(b->tv_nsec - a->tv_nsec);
}

static size_t none_waiting(void) {
    return 50;
}

static void no_wake(void) {
}

/* The deadline judgement: a gate whose controller has measured a TPOT of 10 ms and a TTFT of
 * 80 ms with 32 requests at the worker, judging a 200-token request with 5 and 50 ahead of it. */
static void time_judge(tlab__config *cfg, uint64_t *ns, long n) {
    struct event_base *base = event_base_new();
    cfg->autopilot_worker_metrics = 0; /* no scrape: nothing to answer it here */
    if (!base || tlab__pool_init(cfg) != 0 || tlab__gate_init(base, NULL, cfg, none_waiting, no_wake) != 0) {
        fprintf(stderr, "cannot set up the gate\n");
        return;
    }
    tlab__autopilot *ap = tlab__gate_autopilot();
    for (int i = 0; i < 50; i++) {
        tlab__autopilot_sample s = {.service_s = 2.07, .ttft_s = 0.08, .tokens = 200, .ok = 1};
        tlab__autopilot_on_sample(ap, &s);
    }
    tlab__gate_state st = {.in_flight = 32, .waiting = 50, .worker_up = 1};
    tlab__autopilot_tick(ap, &st, 0.1);
    tlab__pool_worker_at(0)->in_flight = 32;
    static tlab_request r;
    r.info.max_tokens = 200;
    char msg[320];
    int retry;
    /* 5 ahead: admitted (the common path); 50 ahead: refused, with its message written */
    for (int ahead = 5; ahead <= 50; ahead += 45) {
        long rejects = 0;
        for (long i = 0; i < n; i++) {
            struct timespec a, b;
            r.deadline_us = tlab__now_us() + 5000000;
            clock_gettime(CLOCK_MONOTONIC, &a);
            rejects += tlab__gate_judge(&r, ahead, 1.0, msg, sizeof msg, &retry) != 0;
            clock_gettime(CLOCK_MONOTONIC, &b);
            ns[i] = elapsed_ns(&a, &b);
        }
        char what[96];
        snprintf(what, sizeof what, "deadline judgement (tlab__gate_judge), %d ahead", ahead);
        report(what, ns, n, rejects);
    }
    /* The refusals above left their Retry-After promises: the book is full, the worst case for a
     * fresh request, which counts the promises due ahead of it (retry_promises.h). */
    long rejects = 0;
    for (long i = 0; i < n; i++) {
        struct timespec a, b;
        r.deadline_us = tlab__now_us() + 5000000;
        clock_gettime(CLOCK_MONOTONIC, &a);
        rejects += tlab__gate_judge(&r, 5, 1.0, msg, sizeof msg, &retry) != 0;
        clock_gettime(CLOCK_MONOTONIC, &b);
        ns[i] = elapsed_ns(&a, &b);
    }
    char what[128];
    snprintf(what, sizeof what, "deadline judgement, 5 ahead, %zu Retry-After promises open",
             tlab__promises_open((double)tlab__now_us() / 1e6));
    report(what, ns, n, rejects);
    tlab__promises_reset();
    /* What every request pays at arrival: the key a retry of it would repeat (a 200-token chat body). */
    char body[1400];
    int len = snprintf(body, sizeof body, "{\"model\":\"Qwen/Qwen2.5-0.5B-Instruct\",\"messages\":[{\"role\":\"user\",\"content\":\"");
    while (len < 1300)
        len += snprintf(body + len, sizeof body - (size_t)len, "word ");
    len += snprintf(body + len, sizeof body - (size_t)len, "\"}],\"max_tokens\":200,\"stream\":true}");
    volatile uint64_t sink = 0;
    for (long i = 0; i < n; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        sink += tlab__promise_key(body, (size_t)len, "Bearer sk-0123456789abcdef");
        clock_gettime(CLOCK_MONOTONIC, &b);
        ns[i] = elapsed_ns(&a, &b);
    }
    (void)sink;
    snprintf(what, sizeof what, "retry key of a %d-byte body (tlab__promise_key)", len);
    report(what, ns, n, 0);
    tlab__pool_worker_at(0)->in_flight = 0;
    tlab__gate_shutdown();
    tlab__pool_shutdown();
    event_base_free(base);
}

static const char usage[] =
    "usage: tlab-admission-cost [SCRIPT] [CALLS]\n"
    "\n"
    "Times CALLS (default 200000, at least 1000) calls of the Lua admission policy SCRIPT\n"
    "(default scripts-lua/admission.lua) and prints the median, p90, p99 and max in microseconds.\n"
    "  -h, --help, -V, --version\n";

int main(int argc, char **argv) {
    if (perf_help_or_version(argc, argv, "tlab-admission-cost", usage))
        return 0;
    const char *script = argc > 1 ? argv[1] : "scripts-lua/admission.lua";
    long n = argc > 2 ? atol(argv[2]) : 200000;
    if (n < 1000)
        n = 1000;
    tlab__config cfg;
    char err[1024];
    tlab__config_defaults(&cfg);
    free(cfg.policy_admission);
    cfg.policy_admission = strdup(script);
    if (tlab__policies_start(NULL, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uint64_t *ns = malloc((size_t)n * sizeof *ns);
    if (!ns)
        return 1;
    tlab__admission_input in = {.kind = TLAB_KIND_CHAT, .max_tokens = 200, .prompt_tokens = 200,
                               .model = "Qwen/Qwen2.5-0.5B-Instruct", .api_key_id = "k1a2b3c4d", .priority = NULL};
    tlab__admission_decision d;
    long rejects = 0;
    for (long i = 0; i < n / 10; i++) /* warm-up: caches, the Lua string table, the GC's pace */
        tlab__policy_admission(&in, &d);
    for (long i = 0; i < n; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        tlab__policy_admission(&in, &d);
        clock_gettime(CLOCK_MONOTONIC, &b);
        ns[i] = elapsed_ns(&a, &b);
        rejects += d.reject;
    }
    char what[512];
    snprintf(what, sizeof what, "admission call (%s)", script);
    report(what, ns, n, rejects);
    time_judge(&cfg, ns, n);
    free(ns);
    tlab__policies_stop();
    tlab__config_free(&cfg);
    tlab__metrics_reset();
    return 0;
}
