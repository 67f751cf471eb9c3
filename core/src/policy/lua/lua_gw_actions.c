/*
 * lua_gw_actions.c - the actions that reach the core and its plugins: gw.set_tier (core-owned
 * degradation tier, exported as gateway_degradation_tier), gw.set_window_ms (the batching plugin,
 * through tlab__plugins_command), gw.restart_worker (the supervisor plugin, likewise, rate-limited
 * by policies.min_restart_interval_s), gw.log and gw.now.
 *
 * In a scratch state being validated (ctx->probing) they do nothing and report false, so checking
 * a new version of a script never changes the running gateway.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "dispatch/dispatch.h"
#include "base/clock.h"
#include "request/request.h"
#include "common/log.h"
#include "policy/lua/lua_gw.h"
#include "base/metrics_registry.h"
#include "hooks/plugin_host.h"
#include "request/stats.h"

#define MAX_TIER 9

static struct {
    int tier;
    long min_restart_interval_s;
    uint64_t last_restart_us; /* 0: never */
} act;

static tlab_metric *tier_gauge(void) {
    return tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_degradation_tier", "Current degradation tier (0 = normal)", NULL, 0);
}

void tlab__lua_actions_configure(const tlab__config *cfg) {
    act.tier = 0;
    act.last_restart_us = 0;
    act.min_restart_interval_s = cfg->policy_min_restart_interval_s;
    tlab_metric *g = tier_gauge();
    if (g)
        tlab__metric_set(g, NULL, 0);
}

void tlab__lua_actions_set_min_restart_interval(long seconds) {
    act.min_restart_interval_s = seconds;
}

int tlab__lua_tier(void) {
    return act.tier;
}

/* Returns false plus a message: the Lua convention for an action that did not happen. */
static int refused(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refused(lua_State *L, const char *fmt, ...) {
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lua_pushboolean(L, 0);
    lua_pushstring(L, msg);
    return 2;
}

/* gw.set_tier(n, reason): logs the change with the figures behind it. Returns true if it changed. */
static int gw_set_tier(lua_State *L) {
    tlab__lua_ctx *c = tlab__lua_ctx_of(L);
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= MAX_TIER, 1, "tier must be 0..9");
    const char *reason = luaL_optstring(L, 2, "no reason given");
    if (c->probing || n == act.tier) {
        lua_pushboolean(L, 0);
        return 1;
    }
    const tlab__stats_view *v = tlab__stats_get();
    tlab__log(n > act.tier ? TLAB_LOG_WARN : TLAB_LOG_INFO, c->log_source,
             "degradation tier %d -> %d: %s [queue_depth=%zu in_flight=%zu rps=%.1f e2e_p95_ms=%.0f ttft_p95_ms=%.0f "
             "queue_wait_p95_ms=%.0f error_rate=%.4f drain_rate=%.1f]",
             act.tier, (int)n, reason, tlab__dispatch_waiting(), tlab__requests_in_flight(), v->rps, v->e2e_ms[1], v->ttft_ms[1],
             v->queue_wait_ms[1], v->error_rate, v->drain_rate);
    act.tier = (int)n;
    tlab_metric *g = tier_gauge();
    if (g)
        tlab__metric_set(g, NULL, (double)n);
    lua_pushboolean(L, 1);
    return 1;
}

/* Runs a plugin command; pushes true, or false plus why. */
static int run_command(lua_State *L, const char *verb, json_t *args, const char *who) {
    json_t *result = NULL;
    int rc = tlab__plugins_command(verb, args, &result);
    char detail[200] = "";
    if (json_is_string(result))
        snprintf(detail, sizeof detail, "%s", json_string_value(result));
    json_decref(result);
    if (rc == TLAB_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (rc == TLAB_DECLINED)
        return refused(L, "%s: no plugin handles '%s' (is the %s plugin loaded?)", verb, verb, who);
    return refused(L, "%s: %s", verb, detail[0] ? detail : "the plugin refused it");
}

/* gw.set_window_ms(ms) */
static int gw_set_window_ms(lua_State *L) {
    lua_Number ms = luaL_checknumber(L, 1);
    luaL_argcheck(L, ms >= 0 && ms <= 10000, 1, "window must be 0..10000 ms");
    if (tlab__lua_ctx_of(L)->probing)
        return refused(L, "set_window_ms: not while validating a new version");
    json_t *args = json_pack("{s:f}", "ms", (double)ms);
    int n = run_command(L, "set_window_ms", args, "batching");
    json_decref(args);
    return n;
}

/* gw.restart_worker{knob = value, ...}: asks the supervisor to restart the worker with these
 * overrides (max_model_len, max_num_seqs, ...). At most once per min_restart_interval_s. */
static int gw_restart_worker(lua_State *L) {
    tlab__lua_ctx *c = tlab__lua_ctx_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    json_t *args = json_object();
    if (!args)
        return luaL_error(L, "out of memory");
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        json_t *v = NULL;
        if (lua_type(L, -2) != LUA_TSTRING) {
            json_decref(args);
            return luaL_error(L, "gw.restart_worker: knob names must be strings");
        }
        if (lua_isinteger(L, -1))
            v = json_integer((json_int_t)lua_tointeger(L, -1));
        else if (lua_type(L, -1) == LUA_TNUMBER)
            v = json_real(lua_tonumber(L, -1));
        else if (lua_type(L, -1) == LUA_TBOOLEAN)
            v = json_boolean(lua_toboolean(L, -1));
        else if (lua_type(L, -1) == LUA_TSTRING)
            v = json_string(lua_tostring(L, -1));
        if (!v) {
            json_decref(args);
            return luaL_error(L, "gw.restart_worker: knob '%s' must be a number, boolean or string", lua_tostring(L, -2));
        }
        json_object_set_new(args, lua_tostring(L, -2), v);
        lua_pop(L, 1);
    }
    if (c->probing) {
        json_decref(args);
        return refused(L, "restart_worker: not while validating a new version");
    }
    uint64_t now = tlab__now_us();
    if (act.last_restart_us && now - act.last_restart_us < (uint64_t)act.min_restart_interval_s * 1000000u) {
        json_decref(args);
        return refused(L, "restart_worker: the last restart was %.0f s ago (policies.min_restart_interval_s = %ld)",
                       (double)(now - act.last_restart_us) / 1e6, act.min_restart_interval_s);
    }
    char *knobs = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
    int n = run_command(L, "restart_worker", args, "supervisor");
    int ok = lua_toboolean(L, -n);
    if (ok)
        act.last_restart_us = now;
    tlab__log(ok ? TLAB_LOG_WARN : TLAB_LOG_ERROR, c->log_source, "restart_worker %s: %s", knobs ? knobs : "{}",
             ok ? "requested" : lua_tostring(L, -1));
    free(knobs);
    json_decref(args);
    return n;
}

/* gw.log(level, message): level is debug, info, warn or error. */
static int gw_log(lua_State *L) {
    tlab__lua_ctx *c = tlab__lua_ctx_of(L);
    int level = tlab__log_level_parse(luaL_checkstring(L, 1));
    luaL_argcheck(L, level >= 0, 1, "level must be debug, info, warn or error");
    const char *msg = luaL_tolstring(L, 2, NULL);
    if (!c->probing)
        tlab__log((tlab_log_level)level, c->log_source, "%s", msg);
    return 0;
}

/* gw.now(): monotonic seconds (with microseconds), for measuring hold times. */
static int gw_now(lua_State *L) {
    lua_pushnumber(L, (lua_Number)tlab__now_us() / 1e6);
    return 1;
}

void tlab__lua_inject_actions(lua_State *L, int methods) {
    static const luaL_Reg fns[] = {{"set_tier", gw_set_tier}, {"set_window_ms", gw_set_window_ms},
                                   {"restart_worker", gw_restart_worker}, {"log", gw_log}, {"now", gw_now},
                                   {NULL, NULL}};
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, methods, f->name);
    }
}
