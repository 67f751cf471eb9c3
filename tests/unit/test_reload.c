/*
 * test_reload.c - the SIGHUP config reload (reload.c): a table of keys, each changed in the file,
 * that must either take the new value at once (live) or keep the running one (restart-only);
 * then a file that no longer loads, which must leave the running config untouched.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "gateway/gateway.h"
#include "gateway/reload.h"
#include "tlab_test.h"

static char tmpdir[] = "/tmp/tlab_test_reload.XXXXXX";
static char path[PATH_MAX];

static void write_config(const char *text) {
    tlab_test_write(path, text);
}

typedef struct key_case {
    const char *key;    /* for messages */
    size_t off;         /* a long field of tlab__config */
    long before, after; /* value in the first and the second file */
    int live;           /* 1: SIGHUP applies it; 0: it keeps `before` until a restart */
} key_case;

#define K(key, field, b, a, live)                                                                                                  \
    { key, offsetof(tlab__config, field), b, a, live }

static const key_case cases[] = {
    K("limits.max_tokens", max_tokens, 100, 60, 1),
    K("limits.max_body_bytes", max_body_bytes, 100000, 200000, 1),
    K("limits.client_timeout_ms", client_timeout_ms, 5000, 7000, 1),
    K("upstream.connect_timeout_ms", connect_timeout_ms, 1000, 1500, 1),
    K("upstream.first_byte_timeout_ms", first_byte_timeout_ms, 20000, 500, 1),
    K("upstream.total_timeout_ms", total_timeout_ms, 60000, 2000, 1),
    K("policies.tick_ms", policy_tick_ms, 1000, 50, 1),
    K("policies.instruction_budget", policy_instruction_budget, 100000, 200000, 1),
    K("shutdown.grace_s", shutdown_grace_s, 30, 2, 1),
    K("upstream.idle_keepalive_ms", idle_keepalive_ms, 4000, 3000, 0),
    K("upstream.max_connections", max_connections, 1024, 16, 0),
    K("upstream.sse_keepalive_ms", sse_keepalive_ms, 5000, 0, 0),
    K("limits.max_client_connections", max_connections_in, 10000, 50, 0),
    K("policies.stats_window_s", policy_stats_window_s, 10, 20, 0),
};
#define N_CASES (sizeof cases / sizeof cases[0])

static long get(const tlab__config *c, size_t off) {
    if (off == offsetof(tlab__config, max_body_bytes))
        return (long)c->max_body_bytes;
    return *(const long *)((const char *)c + off);
}

/* The config text with each case at its `before` (which = 0) or `after` (which = 1) value. */
static void render(int which, const char *level, const char *url, char *out, size_t n) {
    long v[N_CASES];
    for (size_t i = 0; i < N_CASES; i++)
        v[i] = which ? cases[i].after : cases[i].before;
    snprintf(out, n,
             "log: {level: %s}\n"
             "limits: {max_tokens: %ld, max_body_bytes: %ld, client_timeout_ms: %ld, max_client_connections: %ld}\n"
             "upstream: {url: '%s', connect_timeout_ms: %ld, first_byte_timeout_ms: %ld, total_timeout_ms: %ld,\n"
             "           idle_keepalive_ms: %ld, max_connections: %ld, sse_keepalive_ms: %ld}\n"
             "policies: {tick_ms: %ld, instruction_budget: %ld, stats_window_s: %ld}\n"
             "shutdown: {grace_s: %ld}\n",
             level, v[0], v[1], v[2], v[12], url, v[3], v[4], v[5], v[9], v[10], v[11], v[6], v[7], v[13], v[8]);
}

int main(void) {
    if (!mkdtemp(tmpdir))
        return perror("mkdtemp"), 2;
    snprintf(path, sizeof path, "%s/gw.yaml", tmpdir);
    char text[2048], err[1024];

    render(0, "info", "http://127.0.0.1:8000", text, sizeof text);
    write_config(text);
    tlab__config live;
    int rc = tlab__config_load(&live, path, NULL, 0, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    if (rc != 0)
        return tlab_test_finish();
    tlab__gw.cfg = &live;
    for (size_t i = 0; i < N_CASES; i++)
        CHECK_MSG(get(&live, cases[i].off) == cases[i].before, "%s starts at %ld", cases[i].key, cases[i].before);

    /* Every key changed at once: the live ones move, the restart-only ones stay. */
    render(1, "warn", "http://127.0.0.1:9999", text, sizeof text);
    write_config(text);
    CHECK(tlab__reload_config(&live, path, NULL, 0) == 0);
    for (size_t i = 0; i < N_CASES; i++) {
        long want = cases[i].live ? cases[i].after : cases[i].before;
        CHECK_MSG(get(&live, cases[i].off) == want, "%s is %ld after the reload, want %ld (%s)", cases[i].key,
                  get(&live, cases[i].off), want, cases[i].live ? "live" : "restart-only");
    }
    CHECK(strcmp(live.log_level, "warn") == 0);
    CHECK_MSG(strcmp(live.upstream_url, "http://127.0.0.1:8000") == 0, "upstream.url needs a restart: %s", live.upstream_url);

    /* --set overrides are applied again on top of the file, as at start-up. */
    const char *sets[] = {"limits.max_tokens=77"};
    CHECK(tlab__reload_config(&live, path, sets, 1) == 0);
    CHECK(live.max_tokens == 77);

    /* A file that no longer loads: -1, and not one value moves. */
    tlab__config before = live;
    write_config("limits:\n  max_tokens: 5\n  max_tokns: 6\n");
    CHECK(tlab__reload_config(&live, path, NULL, 0) == -1);
    CHECK(memcmp(&before, &live, sizeof live) == 0);
    write_config("limits: [1, 2\n");
    CHECK(tlab__reload_config(&live, path, NULL, 0) == -1);
    CHECK(live.max_tokens == 77);

    tlab__config_free(&live);
    unlink(path);
    rmdir(tmpdir);
    return tlab_test_finish();
}
