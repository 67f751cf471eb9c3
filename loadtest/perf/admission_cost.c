/*
 * admission_cost.c - the per-request cost of the Lua admission call: loads an admission script
 * (default scripts-lua/admission.lua) into the policy host exactly as the gateway does, then
 * times N calls of tlab__policy_admission() one by one and prints the median, p90, p99 and max in
 * microseconds. Usage: tlab-admission-cost [script] [calls]   (docs/performance.md)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "gateway/gateway.h"
#include "base/metrics_registry.h"
#include "perf_flags.h"
#include "policy/lua/policy_host.h"

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
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
        ns[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)(b.tv_nsec - a.tv_nsec);
        rejects += d.reject;
    }
    qsort(ns, (size_t)n, sizeof *ns, cmp_u64);
    printf("admission call (%s), %ld calls: median %.2f us, p90 %.2f us, p99 %.2f us, max %.2f us (%ld rejected)\n", script, n,
           ns[n / 2] / 1e3, ns[n * 90 / 100] / 1e3, ns[n * 99 / 100] / 1e3, ns[n - 1] / 1e3, rejects);
    free(ns);
    tlab__policies_stop();
    tlab__config_free(&cfg);
    tlab__metrics_reset();
    return 0;
}
