/*
 * policy_host.c - the two policies (admission, degradation): loading and hot reload with
 * validation in a scratch state, calls with fallback, error accounting, and the state shown by
 * GET /admin/policies. The file watcher and the tick timer are in policy_watch.c; the sandbox in
 * lua_state.c; the `gw` API areas in lua_gw_*.c.
 */
#include "policy/lua/policy_host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "common/log.h"
#include "policy/lua/lua_state.h"
#include "base/metrics_registry.h"
#include "policy/lua/policy_watch.h"
#include "request/stats.h"

#define MAX_SCRIPT_BYTES (1024 * 1024)
#define ERROR_LOG_INTERVAL_US 1000000u /* at most one log line per policy per second for call errors */

typedef struct policy {
    const char *name, *required_fn;
    char *path; /* NULL: the policy is off */
    tlab__lstate *live;
    uint64_t hash;
    time_t loaded_at;
    size_t loaded_bytes;
    int refused_valid;     /* refused_hash holds the last refused content */
    uint64_t refused_hash; /* not re-validated (nor re-logged) until the file changes again */
    char last_error[512];  /* the last refused reload, file:line: message */
    time_t last_error_at;
    char last_call_error[512];
    uint64_t reloads, reload_failures, calls, errors;
    uint64_t last_log_us;
    unsigned long suppressed;
} policy;

static struct {
    policy p[TLAB_POLICY__COUNT];
    long budget;
    size_t mem_limit;
    int fail_open;
} host = {.p = {{.name = "admission", .required_fn = "on_request"}, {.name = "degradation", .required_fn = "on_tick"}}};

static tlab_metric *family(tlab_metric_kind kind, const char *name, const char *help) {
    return tlab__metric_register(kind, name, help, NULL, 0);
}

static void count(const char *name, const char *help, const char *labels) {
    tlab_metric *m = family(TLAB_METRIC_COUNTER, name, help);
    if (m)
        tlab__metric_add(m, labels, 1);
}

static void register_families(void) {
    family(TLAB_METRIC_COUNTER, "gateway_policy_reloads_total", "Policy versions swapped in, by policy");
    family(TLAB_METRIC_COUNTER, "gateway_policy_reload_failures_total", "Policy versions refused (the old one kept serving)");
    family(TLAB_METRIC_COUNTER, "gateway_policy_errors_total", "Policy calls that failed, by policy and kind (error, budget, memory)");
    family(TLAB_METRIC_COUNTER, "gateway_admission_rejects_total", "Requests rejected by the admission policy, by reason");
}

int tlab__policies_has_admission(void) {
    return host.p[TLAB_POLICY_ADMISSION].live != NULL;
}

/* Reads a whole script (at most MAX_SCRIPT_BYTES). */
static int read_script(const char *path, char **out, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno)), -1;
    char *buf = malloc(MAX_SCRIPT_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_SCRIPT_BYTES + 1, f) : 0;
    int rd_err = ferror(f);
    fclose(f);
    if (!buf)
        return snprintf(err, errlen, "%s: out of memory", path), -1;
    if (rd_err || n > MAX_SCRIPT_BYTES) {
        free(buf);
        return snprintf(err, errlen, "%s: %s", path, rd_err ? "read error" : "larger than 1 MiB"), -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* One admission call into state s. */
static tlab__lua_fail call_admission(tlab__lstate *s, const tlab__admission_input *in, tlab__admission_decision *d, char *err,
                                    size_t errlen, char *trace, size_t tracelen) {
    int h = tlab__lstate_prepare(s, tlab__lua_admission_call);
    lua_pushlightuserdata(s->L, (void *)in);
    lua_pushlightuserdata(s->L, d);
    tlab__lua_fail f = tlab__lstate_pcall(s, h, 2, err, errlen, trace, tracelen);
    tlab__lua_request_end();
    return f;
}

/*
 * Validates a new version: it compiles, its top level runs within the budget, it defines the
 * required function, and for admission, one call with a made-up request succeeds (catching a
 * body that fails on every call, or loops forever, before it serves anyone).
 */
static tlab__lstate *validate(tlab__policy_id id, const char *path, const char *src, size_t len, char *err, size_t errlen) {
    policy *p = &host.p[id];
    char chunk[1100];
    snprintf(chunk, sizeof chunk, "@%s", path);
    tlab__lstate *s = tlab__lstate_new(id, chunk, src, len, p->required_fn, host.budget, host.mem_limit, 1, err, errlen);
    if (!s || id != TLAB_POLICY_ADMISSION)
        return s;
    tlab__admission_input in = {.kind = TLAB_KIND_CHAT, .max_tokens = 16, .prompt_tokens = 8, .model = "probe"};
    tlab__admission_decision d = {.clamp_max_tokens = -1};
    char why[400];
    tlab__lua_fail f = call_admission(s, &in, &d, why, sizeof why, NULL, 0);
    if (f != TLAB_LUA_OK) {
        snprintf(err, errlen, "%s (in a trial call of on_request; %s)", why, tlab__lua_fail_kind(f));
        tlab__lstate_free(s);
        return NULL;
    }
    return s;
}

static void refuse(policy *p, const char *why, int have_hash, uint64_t hash) {
    char labels[64];
    p->reload_failures++;
    snprintf(p->last_error, sizeof p->last_error, "%s", why);
    p->last_error_at = time(NULL);
    p->refused_valid = have_hash;
    p->refused_hash = hash;
    snprintf(labels, sizeof labels, "policy=\"%s\"", p->name);
    count("gateway_policy_reload_failures_total", NULL, labels);
    if (p->live)
        tlab__log(TLAB_LOG_ERROR, "lua", "%s policy not reloaded, version %016llx keeps serving: %s", p->name,
                 (unsigned long long)p->hash, why);
    else
        tlab__log(TLAB_LOG_ERROR, "lua", "%s policy not loaded: %s", p->name, why);
}

int tlab__policies_reload(tlab__policy_id id) {
    policy *p = &host.p[id];
    if (!p->path)
        return 0;
    char err[512], *src = NULL;
    size_t len = 0;
    if (read_script(p->path, &src, &len, err, sizeof err) < 0) {
        refuse(p, err, 0, 0);
        return -1;
    }
    uint64_t h = tlab__fnv1a64(src, len);
    if ((p->live && h == p->hash) || (p->refused_valid && h == p->refused_hash)) {
        free(src); /* an event for content already judged: editors and inotify often repeat themselves */
        return p->live && h == p->hash ? 0 : -1;
    }
    tlab__lstate *s = validate(id, p->path, src, len, err, sizeof err);
    free(src);
    if (!s) {
        refuse(p, err, 1, h);
        return -1;
    }
    s->ctx.probing = 0;
    tlab__lstate_free(p->live); /* single thread: no call can be running in the old state now */
    p->live = s;
    p->hash = h;
    p->loaded_at = time(NULL);
    p->loaded_bytes = len;
    p->refused_valid = 0;
    p->reloads++;
    char labels[64];
    snprintf(labels, sizeof labels, "policy=\"%s\"", p->name);
    count("gateway_policy_reloads_total", NULL, labels);
    tlab__log(TLAB_LOG_INFO, "lua", "%s policy loaded from %s (version %016llx, %zu bytes)", p->name, p->path,
             (unsigned long long)h, len);
    return 1;
}

void tlab__policies_reload_all(void) {
    for (int i = 0; i < TLAB_POLICY__COUNT; i++)
        tlab__policies_reload((tlab__policy_id)i);
}

/* Points policy p at `path` ("" = off) and loads it; on failure p keeps its old path and state. */
static void switch_path(tlab__policy_id id, const char *path, int force) {
    policy *p = &host.p[id];
    if (!path || !path[0]) {
        if (p->path)
            tlab__log(TLAB_LOG_INFO, "lua", "%s policy turned off (policies.%s is empty)", p->name, p->name);
        tlab__lstate_free(p->live);
        free(p->path);
        p->live = NULL;
        p->path = NULL;
        p->hash = 0;
        p->refused_valid = 0;
        return;
    }
    int moved = !p->path || strcmp(p->path, path) != 0;
    if (!moved && !force) {
        tlab__policies_reload(id);
        return;
    }
    char *old_path = p->path, *new_path = strdup(path);
    if (!new_path)
        return;
    uint64_t old_hash = p->hash;
    p->path = new_path;
    p->hash = 0; /* a moved file or new limits: validate again even if the bytes are the same */
    p->refused_valid = 0;
    if (tlab__policies_reload(id) < 0 && p->live) {
        tlab__log(TLAB_LOG_WARN, "lua", "%s policy keeps serving from %s", p->name, old_path);
        p->path = old_path;
        p->hash = old_hash;
        free(new_path);
        return;
    }
    free(old_path);
}

static void on_file_changed(size_t index) {
    tlab__policies_reload((tlab__policy_id)index);
}

static void on_tick(void) {
    tlab__policies_tick();
}

static const tlab__policy_watch_hooks watch_hooks = {on_file_changed, tlab__policies_reload_all, on_tick};

/* Watches the configured scripts (index = tlab__policy_id); the tick runs only with degradation
 * on. */
static int watch(struct event_base *base, long tick_ms, char *err, size_t errlen) {
    const char *paths[TLAB_POLICY__COUNT];
    for (int i = 0; i < TLAB_POLICY__COUNT; i++)
        paths[i] = host.p[i].path;
    return tlab__policy_watch_start(base, paths, TLAB_POLICY__COUNT, paths[TLAB_POLICY_DEGRADATION] ? tick_ms : 0,
                                   &watch_hooks, err, errlen);
}

int tlab__policies_apply(struct event_base *base, const tlab__config *cfg, char *err, size_t errlen) {
    size_t mem_limit = (size_t)cfg->policy_memory_limit_mb * 1024 * 1024;
    int limits_changed = host.budget != cfg->policy_instruction_budget || host.mem_limit != mem_limit;
    host.budget = cfg->policy_instruction_budget;
    host.mem_limit = mem_limit;
    host.fail_open = cfg->policy_fail_open;
    tlab__lua_actions_set_min_restart_interval(cfg->policy_min_restart_interval_s);
    const char *paths[TLAB_POLICY__COUNT] = {cfg->policy_admission, cfg->policy_degradation};
    for (int i = 0; i < TLAB_POLICY__COUNT; i++)
        switch_path((tlab__policy_id)i, paths[i], limits_changed);
    /* The watcher watches the scripts' directories and the tick runs only with degradation on:
     * both follow the (possibly new) paths and tick_ms. */
    tlab__policy_watch_stop();
    return base ? watch(base, cfg->policy_tick_ms, err, errlen) : 0;
}

/* A failed call: counted always, logged at most once a second per policy. */
static void call_failed(policy *p, tlab__lua_fail f, const char *err, const char *trace, const char *outcome) {
    char labels[96];
    p->errors++;
    snprintf(p->last_call_error, sizeof p->last_call_error, "%s", err);
    snprintf(labels, sizeof labels, "policy=\"%s\",kind=\"%s\"", p->name, tlab__lua_fail_kind(f));
    count("gateway_policy_errors_total", NULL, labels);
    uint64_t now = tlab__now_us();
    if (p->last_log_us && now - p->last_log_us < ERROR_LOG_INTERVAL_US) {
        p->suppressed++;
        return;
    }
    tlab__log(TLAB_LOG_ERROR, "lua", "%s policy failed (%s), %s: %s%s", p->name, tlab__lua_fail_kind(f), outcome, err,
             p->suppressed ? " (and more since the last report)" : "");
    tlab__log(TLAB_LOG_DEBUG, "lua", "%s", trace);
    p->last_log_us = now;
    p->suppressed = 0;
}

void tlab__policy_admission(const tlab__admission_input *in, tlab__admission_decision *d) {
    memset(d, 0, sizeof *d);
    d->clamp_max_tokens = -1;
    policy *p = &host.p[TLAB_POLICY_ADMISSION];
    if (!p->live)
        return;
    p->calls++;
    char err[400], trace[2048];
    tlab__lua_fail f = call_admission(p->live, in, d, err, sizeof err, trace, sizeof trace);
    if (f == TLAB_LUA_OK)
        return;
    call_failed(p, f, err, trace, host.fail_open ? "admitting (fail_open)" : "answering 503 (fail_open: false)");
    memset(d, 0, sizeof *d);
    d->clamp_max_tokens = -1;
    d->fallback = 1;
    if (!host.fail_open) {
        d->reject = 1;
        d->status = 503;
        d->retry_after_s = 1;
        d->type = "service_unavailable";
        snprintf(d->message, sizeof d->message, "the admission policy failed; retry shortly");
        snprintf(d->reason, sizeof d->reason, "policy_error");
    }
}

int tlab__policies_tick(void) {
    policy *p = &host.p[TLAB_POLICY_DEGRADATION];
    if (!p->live)
        return 0;
    p->calls++;
    char err[400], trace[2048];
    int h = tlab__lstate_prepare(p->live, NULL);
    tlab__lua_fail f = tlab__lstate_pcall(p->live, h, 0, err, sizeof err, trace, sizeof trace);
    if (f == TLAB_LUA_OK)
        return 0;
    call_failed(p, f, err, trace, "tier unchanged");
    return -1;
}

int tlab__policies_start(struct event_base *base, const tlab__config *cfg, char *err, size_t errlen) {
    tlab__policies_stop();
    host.budget = cfg->policy_instruction_budget;
    host.mem_limit = (size_t)cfg->policy_memory_limit_mb * 1024 * 1024;
    host.fail_open = cfg->policy_fail_open;
    tlab__stats_init((int)cfg->policy_stats_window_s);
    tlab__lua_actions_configure(cfg);
    register_families();
    const char *paths[TLAB_POLICY__COUNT] = {cfg->policy_admission, cfg->policy_degradation};
    for (int i = 0; i < TLAB_POLICY__COUNT; i++) {
        policy *p = &host.p[i];
        if (!paths[i] || !paths[i][0])
            continue;
        if (!(p->path = strdup(paths[i]))) {
            snprintf(err, errlen, "out of memory");
            tlab__policies_stop();
            return -1;
        }
        if (tlab__policies_reload((tlab__policy_id)i) < 0) {
            snprintf(err, errlen, "%s", p->last_error);
            tlab__policies_stop();
            return -1;
        }
    }
    if (base && watch(base, cfg->policy_tick_ms, err, errlen) < 0) {
        tlab__policies_stop();
        return -1;
    }
    return 0;
}

void tlab__policies_stop(void) {
    tlab__policy_watch_stop();
    for (int i = 0; i < TLAB_POLICY__COUNT; i++) {
        policy *p = &host.p[i];
        tlab__lstate_free(p->live);
        free(p->path);
        const char *name = p->name, *fn = p->required_fn;
        memset(p, 0, sizeof *p);
        p->name = name;
        p->required_fn = fn;
    }
}

static json_t *iso_time(time_t t) {
    char buf[32];
    struct tm tm;
    if (!t || !gmtime_r(&t, &tm))
        return json_null();
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

json_t *tlab__policies_describe(void) {
    json_t *all = json_object();
    for (int i = 0; i < TLAB_POLICY__COUNT; i++) {
        const policy *p = &host.p[i];
        char hash[32];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)p->hash);
        json_t *o = json_pack("{s:s?, s:b, s:o, s:o, s:I, s:s?, s:o, s:s?, s:I, s:I, s:I, s:I, s:I}", "path", p->path,
                              "active", p->live != NULL, "fnv1a64", p->live ? json_string(hash) : json_null(), "loaded_at",
                              iso_time(p->live ? p->loaded_at : 0), "bytes", (json_int_t)p->loaded_bytes, "last_error",
                              p->last_error[0] ? p->last_error : NULL, "last_error_at", iso_time(p->last_error_at),
                              "last_call_error", p->last_call_error[0] ? p->last_call_error : NULL, "reloads",
                              (json_int_t)p->reloads, "reload_failures", (json_int_t)p->reload_failures, "calls",
                              (json_int_t)p->calls, "errors", (json_int_t)p->errors, "memory_bytes",
                              (json_int_t)(p->live ? p->live->ctx.mem_used : 0));
        json_object_set_new(all, p->name, o ? o : json_null());
    }
    return json_pack("{s:o, s:b, s:I, s:I, s:i, s:s}", "policies", all, "fail_open", host.fail_open, "instruction_budget",
                     (json_int_t)host.budget, "memory_limit_bytes", (json_int_t)host.mem_limit, "tier", tlab__lua_tier(),
                     "watch", tlab__policy_watch_mode());
}
