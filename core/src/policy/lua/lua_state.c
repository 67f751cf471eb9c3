/*
 * lua_state.c - builds one sandboxed Lua state and makes protected calls into it.
 *
 * The sandbox follows Redis's script_lua.c and HAProxy's hlua.c: libraries are opened one by one
 * with luaL_requiref and only allow-listed names are copied into a frozen API table; the chunk's
 * _ENV is a fresh table whose __index is that API table (so the script cannot modify or reach
 * it: __metatable hides it). Allowed: the base functions below (pcall/xpcall/load/print wrapped),
 * string (without dump), table, math, utf8, os.time and os.clock, and `gw`. Not there: io, os
 * otherwise, require/package, dofile, loadfile, debug, collectgarbage, and coroutine (a coroutine
 * is a thread of its own that the count hook would not watch).
 */
#include "policy/lua/lua_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "common/log.h"

static const char *const base_allowed[] = {"assert",  "error",  "ipairs", "next",         "pairs",        "select",
                                           "tonumber", "tostring", "type", "rawequal",     "rawget",       "rawlen",
                                           "rawset",  "setmetatable", "getmetatable", "_VERSION", NULL};

/* The allocator counts every byte of the state and refuses to pass mem_limit (HAProxy's
 * hlua_alloc): a policy that builds huge strings or tables gets a memory error, not the host. */
static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    tlab__lstate *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        s->ctx.mem_used -= old;
        return NULL;
    }
    if (nsize > old && s->ctx.mem_used - old + nsize > s->ctx.mem_limit)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p)
        s->ctx.mem_used = s->ctx.mem_used - old + nsize;
    return p;
}

/* Only reached if something raises an error outside lua_pcall, which this host never does. */
static int on_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    tlab__log(TLAB_LOG_ERROR, "lua", "unprotected Lua error (a bug in the policy host): %s", msg ? msg : "?");
    abort();
}

/*
 * The count hook: the budget is spent. From here on it fires on every instruction, so a script
 * whose pcall caught the first error cannot go on for long (and the pcall wrappers re-raise).
 */
static void budget_hook(lua_State *L, lua_Debug *ar) {
    tlab__lua_ctx *c = tlab__lua_ctx_of(L);
    c->budget_hit = 1;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    lua_getinfo(L, "Sl", ar);
    lua_pushfstring(L, "%s:%d: execution budget of %d instructions exceeded", ar->short_src, ar->currentline, (int)c->budget);
    lua_error(L);
}

/* Message handler: the message (file:line: msg) followed by a traceback. */
static int msgh(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Re-raises what a script's own pcall caught when it is the budget or the memory cap. */
static int finish_pcall(lua_State *L, int status, int first) {
    if (status != LUA_OK && (tlab__lua_ctx_of(L)->budget_hit || status == LUA_ERRMEM))
        return lua_error(L);
    lua_pushboolean(L, status == LUA_OK);
    if (status == LUA_OK)
        lua_insert(L, first);
    else
        lua_insert(L, -2);
    return lua_gettop(L) - first + 1;
}

static int sb_pcall(lua_State *L) {
    luaL_checkany(L, 1);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    return finish_pcall(L, status, 1);
}

static int sb_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 1); /* swap f and the handler: handler at 1, f at 2 */
    lua_copy(L, 2, 1);
    lua_replace(L, 2);
    int status = lua_pcall(L, n - 2, LUA_MULTRET, 1);
    if (status != LUA_OK && (tlab__lua_ctx_of(L)->budget_hit || status == LUA_ERRMEM))
        return lua_error(L);
    lua_pushboolean(L, status == LUA_OK);
    lua_replace(L, 1);
    return lua_gettop(L);
}

/* load(string [, name [, mode [, env]]]): text only, whatever mode says; env defaults to the
 * sandbox's. Function chunks are refused: they would allow stitching bytecode together. */
static int sb_load(lua_State *L) {
    size_t len;
    const char *src = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
    if (!src) {
        lua_pushnil(L);
        lua_pushliteral(L, "load: only string chunks are allowed in policies");
        return 2;
    }
    const char *name = luaL_optstring(L, 2, "=(load)");
    int env = lua_isnoneornil(L, 4) ? lua_upvalueindex(1) : 4;
    if (luaL_loadbufferx(L, src, len, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushvalue(L, env);
    if (!lua_setupvalue(L, -2, 1))
        lua_pop(L, 1);
    return 1;
}

static int sb_print(lua_State *L) {
    tlab__lua_ctx *c = tlab__lua_ctx_of(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1, n = lua_gettop(L); i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    if (!c->probing)
        tlab__log(TLAB_LOG_INFO, c->log_source, "%s", lua_tostring(L, -1));
    return 0;
}

static int readonly_newindex(lua_State *L) {
    return luaL_error(L, "gw is read-only (assigning gw.%s)", lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
}

static int sealed_newindex(lua_State *L) {
    return luaL_error(L, "assignment to undeclared global '%s' (declare it at the top level, or use local)",
                      lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
}

/* Opens library `name` and copies it, minus `drop`, into api[name]. */
static void add_lib(lua_State *L, int api, const char *name, lua_CFunction open, const char *drop) {
    luaL_requiref(L, name, open, 0);
    if (drop) {
        lua_pushnil(L);
        lua_setfield(L, -2, drop);
    }
    lua_setfield(L, api, name);
}

typedef struct setup_args {
    const char *chunkname, *src, *required_fn;
    size_t len;
} setup_args;

/* Runs inside lua_pcall, so every allocation failure or script error unwinds cleanly. */
static int setup(lua_State *L) {
    setup_args *a = lua_touserdata(L, 1);
    tlab__lua_ctx *c = tlab__lua_ctx_of(L);
    lua_settop(L, 0);

    luaL_requiref(L, LUA_GNAME, luaopen_base, 0); /* 1: the (unreachable) real globals */
    lua_newtable(L);                             /* 2: api, the frozen table behind _ENV */
    lua_newtable(L);                             /* 3: env */
    lua_newtable(L);                             /* 4: env's metatable */
    for (const char *const *n = base_allowed; *n; n++) {
        lua_getfield(L, 1, *n);
        lua_setfield(L, 2, *n);
    }
    lua_pushcfunction(L, sb_pcall);
    lua_setfield(L, 2, "pcall");
    lua_pushcfunction(L, sb_xpcall);
    lua_setfield(L, 2, "xpcall");
    lua_pushcfunction(L, sb_print);
    lua_setfield(L, 2, "print");
    lua_pushvalue(L, 3);
    lua_pushcclosure(L, sb_load, 1);
    lua_setfield(L, 2, "load");
    add_lib(L, 2, LUA_STRLIBNAME, luaopen_string, "dump");
    add_lib(L, 2, LUA_TABLIBNAME, luaopen_table, NULL);
    add_lib(L, 2, LUA_MATHLIBNAME, luaopen_math, NULL);
    add_lib(L, 2, LUA_UTF8LIBNAME, luaopen_utf8, NULL);
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
    lua_createtable(L, 0, 2);
    lua_getfield(L, -2, "time");
    lua_setfield(L, -2, "time");
    lua_getfield(L, -2, "clock");
    lua_setfield(L, -2, "clock");
    lua_setfield(L, 2, "os");
    lua_pop(L, 1);

    /* gw: an empty proxy whose __index serves the API areas' functions and the snapshot. */
    lua_newtable(L); /* 5: methods */
    tlab__lua_inject_snapshot(L, 5);
    tlab__lua_inject_request(L, 5);
    tlab__lua_inject_actions(L, 5);
    lua_newtable(L); /* 6: gw */
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, 5);
    lua_pushcclosure(L, tlab__lua_gw_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, readonly_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, 6);
    lua_setfield(L, 2, "gw");
    lua_pop(L, 1);

    lua_pushvalue(L, 2);
    lua_setfield(L, 4, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, 4, "__metatable");
    lua_pushvalue(L, 4);
    lua_setmetatable(L, 3);

    if (luaL_loadbufferx(L, a->src, a->len, a->chunkname, "t") != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg && strncmp(msg, "attempt to load", 15) == 0) /* bytecode: Lua names no file there */
            lua_pushfstring(L, "%s: %s", a->chunkname + 1, msg);
        return lua_error(L);
    }
    lua_pushvalue(L, 3);
    lua_setupvalue(L, -2, 1);
    lua_call(L, 0, 0); /* the top level, under the hook armed by the caller */

    lua_getfield(L, 3, a->required_fn);
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "%s: does not define the function %s (it must be a global function)", a->chunkname + 1,
                          a->required_fn);
    c->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    c->req_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, sealed_newindex);
    lua_setfield(L, 4, "__newindex");
    return 0;
}

const char *tlab__lua_fail_kind(tlab__lua_fail f) {
    return f == TLAB_LUA_BUDGET ? "budget" : f == TLAB_LUA_MEMORY ? "memory" : "error";
}

/* Splits a handler's result into the first line (err) and the whole text (trace). */
static void report(lua_State *L, tlab__lua_fail f, char *err, size_t errlen, char *trace, size_t tracelen) {
    const char *msg = lua_tostring(L, -1);
    if (f == TLAB_LUA_MEMORY || !msg) {
        tlab__lua_ctx *c = tlab__lua_ctx_of(L);
        msg = f == TLAB_LUA_MEMORY ? NULL : "(no error message)";
        if (err && !msg)
            snprintf(err, errlen, "memory limit of %zu bytes exceeded", c->mem_limit);
        else if (err)
            snprintf(err, errlen, "%s", msg);
        if (trace)
            snprintf(trace, tracelen, "%s", err ? err : "");
        return;
    }
    if (err) {
        size_t n = strcspn(msg, "\n");
        snprintf(err, errlen, "%.*s", (int)n, msg);
    }
    if (trace)
        snprintf(trace, tracelen, "%s", msg);
}

tlab__lstate *tlab__lstate_new(tlab__policy_id id, const char *chunkname, const char *src, size_t len, const char *required_fn,
                             long budget, size_t mem_limit, int probing, char *err, size_t errlen) {
    tlab__lstate *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->ctx.id = id;
    s->ctx.name = id == TLAB_POLICY_ADMISSION ? "admission" : "degradation";
    snprintf(s->ctx.log_source, sizeof s->ctx.log_source, "lua:%s", s->ctx.name);
    s->ctx.probing = probing;
    s->ctx.budget = budget;
    s->ctx.mem_limit = mem_limit;
    s->ctx.fn_ref = s->ctx.req_ref = LUA_NOREF;
    s->msgh_ref = LUA_NOREF;
    s->L = lua_newstate(counting_alloc, s);
    if (!s->L) {
        snprintf(err, errlen, "cannot create a Lua state (memory limit %zu bytes)", mem_limit);
        free(s);
        return NULL;
    }
    *(tlab__lua_ctx **)lua_getextraspace(s->L) = &s->ctx;
    lua_atpanic(s->L, on_panic);

    setup_args a = {chunkname, src, required_fn, len};
    lua_pushcfunction(s->L, msgh);
    lua_pushcfunction(s->L, setup);
    lua_pushlightuserdata(s->L, &a);
    /* The top level may do more than one call's work (building tables): ten budgets. */
    long top_budget = budget > 200000000 ? 2000000000 : budget * 10;
    s->ctx.budget_hit = 0;
    long saved = s->ctx.budget;
    s->ctx.budget = top_budget;
    lua_sethook(s->L, budget_hook, LUA_MASKCOUNT, (int)top_budget);
    int st = lua_pcall(s->L, 1, 0, 1);
    lua_sethook(s->L, NULL, 0, 0);
    s->ctx.budget = saved;
    if (st != LUA_OK) {
        tlab__lua_fail f = st == LUA_ERRMEM ? TLAB_LUA_MEMORY : s->ctx.budget_hit ? TLAB_LUA_BUDGET : TLAB_LUA_ERROR;
        char first[400];
        report(s->L, f, first, sizeof first, NULL, 0);
        if (f == TLAB_LUA_MEMORY)
            snprintf(err, errlen, "%s: %s", chunkname + 1, first);
        else
            snprintf(err, errlen, "%s", first);
        tlab__lstate_free(s);
        return NULL;
    }
    lua_settop(s->L, 0);
    lua_pushcfunction(s->L, msgh);
    s->msgh_ref = luaL_ref(s->L, LUA_REGISTRYINDEX);
    return s;
}

void tlab__lstate_free(tlab__lstate *s) {
    if (!s)
        return;
    if (s->L)
        lua_close(s->L);
    free(s);
}

int tlab__lstate_prepare(tlab__lstate *s, lua_CFunction fn) {
    lua_State *L = s->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->msgh_ref);
    int h = lua_gettop(L);
    if (fn)
        lua_pushcfunction(L, fn);
    else
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->ctx.fn_ref);
    return h;
}

tlab__lua_fail tlab__lstate_pcall(tlab__lstate *s, int msgh_idx, int nargs, char *err, size_t errlen, char *trace, size_t tracelen) {
    lua_State *L = s->L;
    s->ctx.budget_hit = 0;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, (int)s->ctx.budget);
    int st = lua_pcall(L, nargs, 0, msgh_idx);
    lua_sethook(L, NULL, 0, 0);
    tlab__lua_fail f = TLAB_LUA_OK;
    if (st != LUA_OK) {
        f = st == LUA_ERRMEM ? TLAB_LUA_MEMORY : s->ctx.budget_hit ? TLAB_LUA_BUDGET : TLAB_LUA_ERROR;
        report(L, f, err, errlen, trace, tracelen);
    }
    lua_settop(L, msgh_idx - 1);
    return f;
}
