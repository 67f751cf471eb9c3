/*
 * lua_gw_request.c - the request being admitted: the `req` table handed to on_request(req), the
 * actions on it (gw.admit, gw.reject, gw.clamp_max_tokens, gw.set_priority, gw.set_deadline_ms). The admission step
 * that builds `req` from a request and applies the decision is policy/admission.c.
 *
 * The actions only record into a tlab__admission_decision; nothing touches the request until the
 * call has returned cleanly. So a policy that fails half way leaves no trace, and the fallback
 * (policies.fail_open) decides alone.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "common/log.h"
#include "policy/lua/lua_gw.h"
#include "base/metrics_registry.h"

/* The call in progress (one loop, one thread, and on_request cannot re-enter itself). */
static tlab__admission_decision *cur_d;
static const tlab__admission_input *cur_in;

static tlab__admission_decision *current(lua_State *L, const char *what) {
    if (!cur_d)
        luaL_error(L, "gw.%s: only allowed inside on_request", what);
    return cur_d;
}

static void set_or_nil_string(lua_State *L, int t, const char *k, const char *v) {
    if (v)
        lua_pushstring(L, v);
    else
        lua_pushnil(L);
    lua_setfield(L, t, k);
}

/* Fills the reusable req table at index t; every field is written each time so nothing leaks
 * from the previous request. */
static void fill_req(lua_State *L, int t, const tlab__admission_input *in) {
    if (in->max_tokens >= 0)
        lua_pushinteger(L, in->max_tokens);
    else
        lua_pushnil(L);
    lua_setfield(L, t, "max_tokens");
    lua_pushinteger(L, in->prompt_tokens);
    lua_setfield(L, t, "prompt_tokens");
    lua_pushboolean(L, in->stream);
    lua_setfield(L, t, "stream");
    lua_pushstring(L, in->kind == TLAB_KIND_CHAT ? "chat" : "completions");
    lua_setfield(L, t, "kind");
    set_or_nil_string(L, t, "model", in->model);
    set_or_nil_string(L, t, "api_key_id", in->api_key_id);
    set_or_nil_string(L, t, "api_key_name", in->api_key_name);
    set_or_nil_string(L, t, "priority", in->priority);
    if (in->deadline_ms > 0)
        lua_pushinteger(L, in->deadline_ms);
    else
        lua_pushnil(L);
    lua_setfield(L, t, "deadline_ms");
    lua_pushnumber(L, in->predicted_finish_s);
    lua_setfield(L, t, "predicted_finish_s");
}

int tlab__lua_admission_call(lua_State *L) {
    const tlab__admission_input *in = lua_touserdata(L, 1);
    tlab__admission_decision *d = lua_touserdata(L, 2);
    tlab__lua_ctx *c = tlab__lua_ctx_of(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->req_ref);
    fill_req(L, lua_gettop(L), in);
    cur_in = in;
    cur_d = d;
    lua_call(L, 1, 0);
    return 0;
}

void tlab__lua_request_end(void) {
    cur_d = NULL;
    cur_in = NULL;
}

/* Writes a field of the req table too, so the script reads back what it decided. */
static void update_req(lua_State *L, const char *k) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, tlab__lua_ctx_of(L)->req_ref);
    lua_insert(L, -2);
    lua_setfield(L, -2, k);
    lua_pop(L, 1);
}

/* gw.admit(): the default; undoes an earlier gw.reject in the same call. */
static int gw_admit(lua_State *L) {
    current(L, "admit")->reject = 0;
    return 0;
}

static const char *error_type(int status) {
    if (status == 429)
        return "rate_limit_exceeded";
    if (status == 503)
        return "service_unavailable";
    return status >= 500 ? "server_error" : "invalid_request_error";
}

/* gw.reject(status, retry_after_s, message [, reason]) */
static int gw_reject(lua_State *L) {
    tlab__admission_decision *d = current(L, "reject");
    lua_Integer status = luaL_checkinteger(L, 1);
    luaL_argcheck(L, status >= 400 && status <= 599, 1, "status must be 400..599");
    lua_Number retry = luaL_optnumber(L, 2, 0);
    luaL_argcheck(L, retry >= 0 && retry <= 86400, 2, "retry_after must be 0..86400 seconds");
    const char *msg = luaL_optstring(L, 3, "rejected by the admission policy");
    const char *reason = luaL_optstring(L, 4, status == 429 ? "overload" : "policy");
    d->reject = 1;
    d->status = (int)status;
    d->retry_after_s = (int)retry + ((lua_Number)(int)retry < retry); /* ceil: never tell a client to come back early */
    d->type = error_type((int)status);
    snprintf(d->message, sizeof d->message, "%s", msg);
    size_t n = 0;
    for (const char *p = reason; *p && n + 1 < sizeof d->reason; p++) /* a metric label: keep it tame */
        d->reason[n++] = isalnum((unsigned char)*p) || *p == '_' ? *p : '_';
    d->reason[n] = '\0';
    return 0;
}

/* gw.clamp_max_tokens(n): lowers max_tokens to n (sets it when absent). Returns true if it changed. */
static int gw_clamp_max_tokens(lua_State *L) {
    tlab__admission_decision *d = current(L, "clamp_max_tokens");
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1, 1, "max_tokens must be at least 1");
    long now = d->clamp_max_tokens >= 0 ? d->clamp_max_tokens : cur_in->max_tokens;
    int lowered = now < 0 || n < now;
    if (lowered) {
        d->clamp_max_tokens = (long)n;
        lua_pushinteger(L, n);
        update_req(L, "max_tokens");
    }
    lua_pushboolean(L, lowered);
    return 1;
}

/* gw.set_deadline_ms(ms): the request's deadline, ms from its arrival (replaces slo.e2e_ms or
 * the client's x-request-deadline-ms). */
static int gw_set_deadline_ms(lua_State *L) {
    tlab__admission_decision *d = current(L, "set_deadline_ms");
    lua_Integer ms = luaL_checkinteger(L, 1);
    luaL_argcheck(L, ms >= 1 && ms <= 86400000, 1, "the deadline must be 1..86400000 ms");
    d->deadline_ms = (long)ms;
    lua_pushinteger(L, ms);
    update_req(L, "deadline_ms");
    return 0;
}

/* gw.set_priority(class): the priority class the queue plugin sees. */
static int gw_set_priority(lua_State *L) {
    tlab__admission_decision *d = current(L, "set_priority");
    size_t len;
    const char *p = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len >= 1 && len < sizeof d->priority, 1, "priority must be 1..63 characters");
    for (size_t i = 0; i < len; i++)
        luaL_argcheck(L, isalnum((unsigned char)p[i]) || strchr("_-.", p[i]), 1, "priority may hold letters, digits, _ - .");
    memcpy(d->priority, p, len + 1);
    lua_pushvalue(L, 1);
    update_req(L, "priority");
    return 0;
}

void tlab__lua_inject_request(lua_State *L, int methods) {
    static const luaL_Reg fns[] = {{"admit", gw_admit},
                                   {"reject", gw_reject},
                                   {"clamp_max_tokens", gw_clamp_max_tokens},
                                   {"set_priority", gw_set_priority},
                                   {"set_deadline_ms", gw_set_deadline_ms},
                                   {NULL, NULL}};
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, methods, f->name);
    }
}
