/*
 * test_policy_gw.c - the Lua policy host's `gw` bridge: every snapshot field, every action, the
 * request table, the sandbox (what is missing, budget, memory cap, sealed globals), the fallback
 * of a failing policy, and hot reload refusing broken versions while the old one keeps serving.
 *
 * The admission script under test evaluates the request's "model" as a Lua expression, so each
 * case is one line of C: eval("gw.queue_depth") returns what the policy saw, as text.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "gateway/gateway.h"
#include "policy/lua/lua_gw.h"
#include "base/metrics_registry.h"
#include "gateway/plugin_api.h"
#include "hooks/plugin_host.h"
#include "policy/lua/policy_host.h"
#include "request/stats.h"
#include "tlab_test.h"

static char tmpdir[] = "/tmp/tlab_test_policy.XXXXXX";
static char adm_path[PATH_MAX], deg_path[PATH_MAX];

static const char *const eval_script =
    "current = false\n"
    "function on_request(req)\n"
    "  current = req\n"
    "  local f, err = load('return ' .. (req.model or 'nil'))\n"
    "  if not f then error(err) end\n"
    "  local out = table.pack(f())\n"
    "  if req.priority == 'eval' then\n"
    "    local parts = {}\n"
    "    for i = 1, out.n do parts[i] = tostring(out[i]) end\n"
    "    gw.reject(418, 0, table.concat(parts, ','), 'eval')\n"
    "  end\n"
    "end\n";

static void write_file(const char *path, const char *text) {
    tlab_test_write(path, text);
}

static tlab__admission_decision last;

/* Runs on_request with `expr` as the model; returns the text the script answered with, or
 * "(admitted)" / "(fallback)" when it did not reject. */
static const char *run(const char *expr, const char *priority, long max_tokens) {
    tlab__admission_input in = {.kind = TLAB_KIND_CHAT, .stream = 1, .max_tokens = max_tokens, .prompt_tokens = 42,
                               .model = expr, .api_key_id = "k1234abcd", .priority = priority};
    tlab__policy_admission(&in, &last);
    if (last.fallback)
        return "(fallback)";
    return last.reject ? last.message : "(admitted)";
}

static const char *eval(const char *expr) {
    return run(expr, "eval", 200);
}

#define CHECK_EVAL(expr, want)                                                                                             \
    do {                                                                                                                   \
        const char *got_ = eval(expr);                                                                                     \
        CHECK_MSG(strcmp(got_, want) == 0, "%s: got '%s', want '%s'", expr, got_, want);                                   \
    } while (0)

static double metric(const char *name, tlab_metric_kind kind, const char *labels) {
    tlab_metric *m = tlab__metric_register(kind, name, NULL, NULL, 0);
    return m ? tlab__metric_value(m, labels) : -1;
}

static void test_snapshot(void) {
    CHECK_EVAL("gw.queue_depth", "0");
    static tlab_request sent[7]; /* phase NEW; entering UPSTREAM counts them in flight */
    for (int i = 0; i < 7; i++)
        tlab__request_set_phase(&sent[i], TLAB_PHASE_UPSTREAM);
    CHECK_EVAL("gw.in_flight", "7");
    for (int i = 0; i < 7; i++)
        tlab__request_set_phase(&sent[i], TLAB_PHASE_NEW);
    CHECK_EVAL("gw.in_flight", "0");
    CHECK_EVAL("gw.worker_state, gw.worker_state_name", "-1,external");
    CHECK_EVAL("gw.stats_window_s", "10");
    CHECK_EVAL("gw.tier", "0");
    CHECK_EVAL("gw.window_ms", "0.0");
    CHECK_EVAL("gw.no_such_field", "nil");

    /* 100 answered requests with e2e 1..100 ms, ttft 0.1..10 ms, queue wait 0.01..1 ms; 5 worker
     * errors, 3 rejections (429), 2 clients gone (499, not counted). All within the first second. */
    tlab__stats_init(10);
    uint64_t now = tlab__now_us();
    for (int i = 1; i <= 100; i++) {
        tlab__stats_arrival(now);
        tlab__stats_done(now, 200, 1, (uint64_t)i * 1000, (uint64_t)i * 100, (uint64_t)i * 10);
    }
    for (int i = 0; i < 5; i++)
        tlab__stats_done(now, 503, 0, 1000, 0, 0);
    for (int i = 0; i < 3; i++)
        tlab__stats_done(now, 429, 0, 10, 0, 0);
    for (int i = 0; i < 2; i++)
        tlab__stats_done(now, 499, 0, 10, 0, 0);
    tlab__stats_invalidate();
    CHECK_EVAL("gw.rps, gw.drain_rate, gw.completed", "100.0,100.0,108");
    CHECK_EVAL("string.format('%.4f %.4f', gw.error_rate, gw.reject_rate)", "0.0463 0.0278");
    CHECK_EVAL("gw.e2e_p50, gw.e2e_p95, gw.e2e_p99", "50.0,95.0,99.0");
    CHECK_EVAL("gw.ttft_p50, gw.ttft_p95, gw.ttft_p99", "5.0,9.5,9.9");
    CHECK_EVAL("gw.queue_wait_p50, gw.queue_wait_p95, gw.queue_wait_p99", "0.5,0.95,0.99");
    /* SLO figures: 54 of the 108 finished were 2xx inside their deadline */
    for (int i = 0; i < 54; i++)
        tlab__stats_good(now);
    tlab__stats_invalidate();
    CHECK_EVAL("string.format('%.2f %.1f', gw.slo_attainment, gw.goodput)", "0.50 54.0");
    /* the autopilot's figures, before it runs (unit tests do not start it): zeros, never nil */
    CHECK_EVAL("gw.gate_limit, gw.predicted_wait_s, gw.slo_ms, gw.tpot_ms", "0,0.0,0,0.0");
    /* snapshot() has every field */
    CHECK_EVAL("(function() local n = 0 for _ in pairs(gw.snapshot()) do n = n + 1 end return n end)()", "27");
    CHECK_EVAL("gw.snapshot().e2e_p95", "95.0");
    tlab__stats_init(10);
}

static int cmp_ms(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The quantiles of samples in no particular order, with ties, against a sort of the same
 * samples: nearest rank, as gw.e2e_p50/p95/p99 document. */
static void test_quantiles_unsorted(void) {
    static const int sizes[] = {1, 2, 3, 7, 100, 999, TLAB_STATS_SAMPLES};
    uint32_t seed = 12345;
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        for (int spread = 3; spread <= 100000; spread *= 100) { /* many ties, then few */
            int n = sizes[c];
            static double ref[TLAB_STATS_SAMPLES];
            tlab__stats_init(10);
            uint64_t now = tlab__now_us();
            for (int i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                uint64_t us = (uint64_t)((seed >> 8) % (uint32_t)spread + 1) * 1000; /* ttft 0 means none */
                tlab__stats_done(now, 200, 1, us, us, us);
                ref[i] = (double)us / 1000.0;
            }
            qsort(ref, (size_t)n, sizeof ref[0], cmp_ms);
            tlab__stats_invalidate();
            const tlab__stats_view *v = tlab__stats_get();
            static const double q[3] = {0.50, 0.95, 0.99};
            for (int k = 0; k < 3; k++) {
                size_t rank = (size_t)(q[k] * (double)n + 0.999999);
                double want = ref[(rank ? rank : 1) - 1];
                CHECK_MSG(v->e2e_ms[k] == want && v->ttft_ms[k] == want && v->queue_wait_ms[k] == want,
                          "n=%d spread=%d q%d: got %g %g %g, want %g", n, spread, k, v->e2e_ms[k], v->ttft_ms[k],
                          v->queue_wait_ms[k], want);
            }
        }
    }
    tlab__stats_init(10);
}

static void test_request_fields(void) {
    CHECK(strcmp(run("1", "eval", 200), "1") == 0);
    CHECK_EVAL("current.max_tokens, current.prompt_tokens, current.stream, current.kind", "200,42,true,chat");
    CHECK_EVAL("current.api_key_id, current.priority", "k1234abcd,eval");
    CHECK_EVAL("current.model", "current.model");
    const char *got = run("current.max_tokens", "eval", -1);
    CHECK_MSG(strcmp(got, "nil") == 0, "absent max_tokens is nil, got %s", got);
}

static void test_request_actions(void) {
    /* reject */
    CHECK(strcmp(run("gw.reject(429, 2.5, 'slow down', 'my reason!')", NULL, 200), "slow down") == 0);
    CHECK(last.reject && last.status == 429 && last.retry_after_s == 3 && strcmp(last.type, "rate_limit_exceeded") == 0);
    CHECK_MSG(strcmp(last.reason, "my_reason_") == 0, "reason label sanitised: %s", last.reason);
    run("gw.reject(503)", NULL, 200);
    CHECK(last.reject && last.status == 503 && last.retry_after_s == 0 && strcmp(last.type, "service_unavailable") == 0);
    CHECK(strcmp(last.message, "rejected by the admission policy") == 0 && strcmp(last.reason, "policy") == 0);
    CHECK(strcmp(run("gw.reject(200)", NULL, 200), "(fallback)") == 0); /* bad status: an error, fail_open admits */
    CHECK(!last.reject);
    /* admit undoes a reject */
    CHECK(strcmp(run("gw.reject(429) or gw.admit()", NULL, 200), "(admitted)") == 0);
    /* clamp_max_tokens */
    CHECK(strcmp(run("gw.clamp_max_tokens(50)", NULL, 200), "(admitted)") == 0 && last.clamp_max_tokens == 50);
    CHECK_EVAL("gw.clamp_max_tokens(50), current.max_tokens", "true,50");
    CHECK_EVAL("gw.clamp_max_tokens(300), current.max_tokens", "false,200");
    run("gw.clamp_max_tokens(300)", NULL, 200);
    CHECK(last.clamp_max_tokens == -1);
    run("gw.clamp_max_tokens(64)", NULL, -1);
    CHECK(last.clamp_max_tokens == 64); /* absent max_tokens gets the cap */
    CHECK(strcmp(run("gw.clamp_max_tokens(0)", NULL, 200), "(fallback)") == 0);
    /* set_priority */
    run("gw.set_priority('high')", NULL, 200);
    CHECK(strcmp(last.priority, "high") == 0);
    CHECK(strcmp(run("gw.set_priority('bad name')", NULL, 200), "(fallback)") == 0);
    /* set_deadline_ms */
    run("gw.set_deadline_ms(8000)", NULL, 200);
    CHECK(last.deadline_ms == 8000);
    CHECK(strcmp(run("gw.set_deadline_ms(0)", NULL, 200), "(fallback)") == 0);
    run("nil", NULL, 200);
    CHECK(last.deadline_ms == 0); /* each call starts clean */
}

static void test_core_actions(void) {
    /* set_tier: core state, gauge, logged */
    CHECK_EVAL("gw.set_tier(2, 'test'), gw.tier", "true,2");
    CHECK(metric("gateway_degradation_tier", TLAB_METRIC_GAUGE, NULL) == 2);
    CHECK_EVAL("gw.set_tier(2, 'again')", "false");
    CHECK(strcmp(eval("gw.set_tier(10)"), "(fallback)") == 0);
    CHECK_EVAL("gw.set_tier(0, 'back'), gw.tier", "true,0");
    /* set_window_ms reaches the batching plugin; window_ms reads its gauge back */
    CHECK_EVAL("gw.set_window_ms(20), gw.window_ms", "true,20.0");
    CHECK(fabs(metric("gateway_batch_window_seconds", TLAB_METRIC_GAUGE, NULL) - 0.020) < 1e-9);
    CHECK(strcmp(eval("gw.set_window_ms(-1)"), "(fallback)") == 0);
    /* restart_worker reaches the plugin with its knobs, then is rate-limited */
    CHECK_EVAL("gw.restart_worker{max_model_len = 448, max_num_seqs = 64}", "true");
    CHECK(metric("test_restart_worker_total", TLAB_METRIC_COUNTER, NULL) == 1);
    CHECK(metric("test_restart_worker_knob", TLAB_METRIC_GAUGE, "knob=\"max_model_len\"") == 448);
    CHECK(metric("test_restart_worker_knob", TLAB_METRIC_GAUGE, "knob=\"max_num_seqs\"") == 64);
    const char *got = eval("gw.restart_worker{max_model_len = 400}");
    CHECK_STR_CONTAINS(got, "false,restart_worker: the last restart was 0 s ago (policies.min_restart_interval_s = 3600)");
    CHECK(metric("test_restart_worker_total", TLAB_METRIC_COUNTER, NULL) == 1);
    tlab__config c;
    tlab__config_defaults(&c);
    c.policy_min_restart_interval_s = 0;
    tlab__lua_actions_configure(&c);
    tlab__config_free(&c);
    CHECK_EVAL("gw.restart_worker{fail = true}", "false,restart_worker: refused on purpose");
    CHECK(strcmp(eval("gw.restart_worker{[1] = 2}"), "(fallback)") == 0);
    /* log and now */
    CHECK_EVAL("gw.log('info', 'hello from the test')", "");
    CHECK(strcmp(eval("gw.log('loud', 'x')"), "(fallback)") == 0);
    double now = (double)tlab__now_us() / 1e6;
    double seen = atof(eval("gw.now()"));
    CHECK_MSG(fabs(seen - now) < 1.0, "gw.now() %f vs %f", seen, now);
}

static void test_sandbox(void) {
    CHECK_EVAL("io, os.execute, os.getenv, require, dofile, loadfile, debug, package", "nil,nil,nil,nil,nil,nil,nil,nil");
    CHECK_EVAL("coroutine, collectgarbage, string.dump", "nil,nil,nil");
    CHECK_EVAL("type(os.time()), type(os.clock()), type(string.rep), type(math.floor)", "number,number,function,function");
    CHECK_STR_CONTAINS(eval("select(2, load('\\27Lua'))"), "attempt to load a binary chunk");
    CHECK_STR_CONTAINS(eval("select(2, load(function() return nil end))"), "only string chunks");
    CHECK_EVAL("getmetatable(gw), getmetatable(_ENV)", "false,false");
    CHECK_EVAL("pcall(error, 'x')", "false,x");

    double budget0 = metric("gateway_policy_errors_total", TLAB_METRIC_COUNTER, "policy=\"admission\",kind=\"budget\"");
    CHECK(strcmp(eval("(function() while true do end end)()"), "(fallback)") == 0);
    /* A script's own pcall cannot swallow the budget. */
    CHECK(strcmp(eval("(function() while true do pcall(function() while true do end end) end end)()"), "(fallback)") == 0);
    CHECK(metric("gateway_policy_errors_total", TLAB_METRIC_COUNTER, "policy=\"admission\",kind=\"budget\"") == budget0 + 2);
    CHECK(strcmp(eval("#string.rep('x', 64 * 1024 * 1024)"), "(fallback)") == 0);
    CHECK(metric("gateway_policy_errors_total", TLAB_METRIC_COUNTER, "policy=\"admission\",kind=\"memory\"") == 1);
    CHECK(strcmp(eval("(function() undeclared_x = 1 end)()"), "(fallback)") == 0);
    CHECK(strcmp(eval("(function() gw.queue_depth = 1 end)()"), "(fallback)") == 0);
    json_t *d = tlab__policies_describe();
    const char *lce = json_string_value(json_object_get(json_object_get(json_object_get(d, "policies"), "admission"), "last_call_error"));
    CHECK_STR_CONTAINS(lce, "gw is read-only (assigning gw.queue_depth)");
    json_decref(d);
    /* After all that the state still answers. */
    CHECK_EVAL("1 + 1", "2");
}

static const char *describe_field(const char *policy, const char *field, char *buf, size_t len) {
    json_t *d = tlab__policies_describe();
    json_t *v = json_object_get(json_object_get(json_object_get(d, "policies"), policy), field);
    if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, len, "null");
    json_decref(d);
    return buf;
}

static void test_reload(void) {
    char buf[600], want[PATH_MAX + 64], hash0[64];
    describe_field("admission", "fnv1a64", hash0, sizeof hash0);
    CHECK(tlab__policies_reload(TLAB_POLICY_ADMISSION) == 0); /* unchanged content: nothing to do */
    static const struct {
        const char *text, *expect;
    } broken[] = {
        {"function on_request(req)\n  if then end\nend\n", ":2: unexpected symbol near 'then'"},
        {"local x = nil\nlocal y = x.field\nfunction on_request() end\n", ":2: attempt to index a nil value (local 'x')"},
        {"function on_reqest(req) end\n", "does not define the function on_request"},
        {"while true do end\nfunction on_request() end\n", ":1: execution budget of 1000000 instructions exceeded"},
        {"function on_request(req) error('always') end\n", ":1: always (in a trial call of on_request; error)"},
        {"function on_request(req) while true do end end\n", "execution budget of 100000 instructions exceeded (in a trial call"},
        {"\x1bLua\x54\x00garbage", "attempt to load a binary chunk (mode is 't')"},
        {"big = string.rep('x', 32 * 1024 * 1024)\nfunction on_request() end\n", "memory limit of 16777216 bytes exceeded"},
    };
    double fails0 = metric("gateway_policy_reload_failures_total", TLAB_METRIC_COUNTER, "policy=\"admission\"");
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        write_file(adm_path, broken[i].text);
        CHECK_MSG(tlab__policies_reload(TLAB_POLICY_ADMISSION) == -1, "broken case %zu refused", i);
        describe_field("admission", "last_error", buf, sizeof buf);
        CHECK_MSG(strstr(buf, broken[i].expect) != NULL, "case %zu: '%s' lacks '%s'", i, buf, broken[i].expect);
        snprintf(want, sizeof want, "%s", adm_path);
        CHECK_MSG(strncmp(buf, want, strlen(want)) == 0 || i == 7, "case %zu: '%s' starts with the file name", i, buf);
        CHECK_EVAL("1 + 2", "3"); /* the old version keeps serving */
        CHECK(strcmp(describe_field("admission", "fnv1a64", buf, sizeof buf), hash0) == 0);
    }
    size_t n = sizeof broken / sizeof broken[0];
    CHECK(metric("gateway_policy_reload_failures_total", TLAB_METRIC_COUNTER, "policy=\"admission\"") == fails0 + (double)n);
    /* The same broken content again is not judged (nor counted) twice. */
    CHECK(tlab__policies_reload(TLAB_POLICY_ADMISSION) == -1);
    CHECK(metric("gateway_policy_reload_failures_total", TLAB_METRIC_COUNTER, "policy=\"admission\"") == fails0 + (double)n);
    /* A good new version is swapped in. */
    write_file(adm_path, "function on_request(req) gw.reject(429, 1, 'v2') end\n");
    CHECK(tlab__policies_reload(TLAB_POLICY_ADMISSION) == 1);
    CHECK(strcmp(run("x", NULL, 10), "v2") == 0);
    CHECK(strcmp(describe_field("admission", "fnv1a64", buf, sizeof buf), hash0) != 0);
    CHECK(strcmp(describe_field("admission", "reloads", buf, sizeof buf), "2") == 0);
    write_file(adm_path, eval_script);
    CHECK(tlab__policies_reload(TLAB_POLICY_ADMISSION) == 1);
}

static void test_tick(void) {
    char buf[600];
    /* Request actions are refused outside on_request; the tick's error is recorded. */
    write_file(deg_path, "function on_tick() error(select(2, pcall(gw.reject, 429))) end\n");
    CHECK(tlab__policies_reload(TLAB_POLICY_DEGRADATION) == 1);
    CHECK(tlab__policies_tick() == -1);
    CHECK_STR_CONTAINS(describe_field("degradation", "last_call_error", buf, sizeof buf), "gw.reject: only allowed inside on_request");
    write_file(deg_path, "n = 0\nfunction on_tick() n = n + 1 gw.set_tier(n % 4, 'tick ' .. n) end\n");
    CHECK(tlab__policies_reload(TLAB_POLICY_DEGRADATION) == 1);
    CHECK(tlab__policies_tick() == 0 && tlab__lua_tier() == 1);
    CHECK(tlab__policies_tick() == 0 && tlab__lua_tier() == 2);
    CHECK(metric("gateway_degradation_tier", TLAB_METRIC_GAUGE, NULL) == 2);
    write_file(deg_path, "function on_tick() while true do end end\n");
    CHECK(tlab__policies_reload(TLAB_POLICY_DEGRADATION) == 1); /* no trial call for on_tick (it acts) */
    CHECK(tlab__policies_tick() == -1);
    CHECK(metric("gateway_policy_errors_total", TLAB_METRIC_COUNTER, "policy=\"degradation\",kind=\"budget\"") == 1);
}

static void test_fail_closed(tlab__config *cfg) {
    cfg->policy_fail_open = 0;
    char err[600];
    CHECK_MSG(tlab__policies_start(NULL, cfg, err, sizeof err) == 0, "%s", err);
    CHECK(strcmp(eval("error('boom')"), "(fallback)") == 0);
    CHECK(last.reject && last.status == 503 && strcmp(last.reason, "policy_error") == 0 && last.retry_after_s == 1);
    /* Without the plugins, the plugin actions say who is missing. */
    tlab__plugins_unload();
    CHECK_EVAL("gw.set_window_ms(5)", "false,set_window_ms: no plugin handles 'set_window_ms' (is the batching plugin loaded?)");
}

static void test_start_errors(tlab__config *cfg) {
    char err[600], bad[PATH_MAX + 16];
    snprintf(bad, sizeof bad, "%s/bad.lua", tmpdir);
    write_file(bad, "function on_request(\n");
    free(cfg->policy_admission);
    cfg->policy_admission = strdup(bad);
    CHECK(tlab__policies_start(NULL, cfg, err, sizeof err) == -1);
    CHECK_MSG(strncmp(err, bad, strlen(bad)) == 0 && strstr(err, ":2:"), "start-up error names file:line: %s", err);
    free(cfg->policy_admission);
    cfg->policy_admission = strdup("/nonexistent/admission.lua");
    CHECK(tlab__policies_start(NULL, cfg, err, sizeof err) == -1);
    CHECK_STR_CONTAINS((const char *)err, "/nonexistent/admission.lua: cannot open");
    CHECK(!tlab__policies_has_admission());
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(adm_path, sizeof adm_path, "%s/admission.lua", tmpdir);
    snprintf(deg_path, sizeof deg_path, "%s/degradation.lua", tmpdir);
    write_file(adm_path, eval_script);
    write_file(deg_path, "function on_tick() end\n");

    struct event_base *base = event_base_new();
    tlab__config cfg;
    tlab__config_defaults(&cfg);
    tlab__gw.base = base;
    tlab__gw.cfg = &cfg;
    tlab__plugin_conf pcs[2] = {{.name = "batching", .path = TLAB_BATCHING_PLUGIN, .config = json_pack("{s:i}", "window_ms", 0)},
                               {.name = "restart_counter", .path = TLAB_FIXTURE_PLUGIN_DIR "/restart_counter.so", .config = json_object()}};
    cfg.plugins = pcs;
    cfg.n_plugins = 2;
    char err[1024];
    CHECK_MSG(tlab__plugins_load(base, &cfg, tlab__plugin_api(), err, sizeof err) == 0, "%s", err);
    cfg.plugins = NULL;
    cfg.n_plugins = 0;
    free(cfg.policy_admission);
    free(cfg.policy_degradation);
    cfg.policy_admission = strdup(adm_path);
    cfg.policy_degradation = strdup(deg_path);
    cfg.policy_min_restart_interval_s = 3600;
    CHECK_MSG(tlab__policies_start(NULL, &cfg, err, sizeof err) == 0, "%s", err);

    test_snapshot();
    test_quantiles_unsorted();
    test_request_fields();
    test_request_actions();
    test_core_actions();
    test_sandbox();
    test_reload();
    test_tick();
    test_fail_closed(&cfg);
    test_start_errors(&cfg);

    tlab__policies_stop();
    tlab__plugins_unload();
    json_decref(pcs[0].config);
    json_decref(pcs[1].config);
    tlab__config_free(&cfg);
    tlab__metrics_reset();
    event_base_free(base);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return tlab_test_finish();
}
