/*
 * lua_gw.h - internal to the policy host: the per-state context and the inject functions that
 * fill the `gw` table, one C file per API area (OpenResty's ngx_http_lua_inject_*_api):
 *   lua_gw_snapshot.c  reads: queue_depth, in_flight, worker_state, rps, quantiles, tier, ...
 *   lua_gw_request.c   the request being admitted: the `req` table, admit/reject/clamp/priority
 *   lua_gw_actions.c   set_tier, set_window_ms, restart_worker, log, now
 * Adding an API area means one new file and one call in lua_state.c.
 */
#ifndef TLAB_LUA_GW_H
#define TLAB_LUA_GW_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "base/fnv1a.h"

#include "config/config.h"
#include "policy/lua/policy_host.h"

/* Per-state context, reachable from any C function through lua_getextraspace. */
typedef struct tlab__lua_ctx {
    tlab__policy_id id;
    const char *name;     /* "admission" / "degradation" */
    char log_source[24];  /* "lua:admission" */
    int probing;          /* a scratch state being validated: actions that reach the core do nothing */
    int budget_hit;       /* set by the count hook during the current call */
    long budget;          /* instructions per call */
    int fn_ref;           /* the required function (on_request / on_tick), bound at load */
    int req_ref;          /* the reusable `req` table handed to on_request */
    size_t mem_used, mem_limit;
} tlab__lua_ctx;

static inline tlab__lua_ctx *tlab__lua_ctx_of(lua_State *L) {
    return *(tlab__lua_ctx **)lua_getextraspace(L);
}

/* Each fills the table at stack index `methods` with its functions. */
void tlab__lua_inject_snapshot(lua_State *L, int methods);
void tlab__lua_inject_request(lua_State *L, int methods);
void tlab__lua_inject_actions(lua_State *L, int methods);

/* __index of the gw table: a function from `methods` (upvalue 1) or a snapshot field by name. */
int tlab__lua_gw_index(lua_State *L);

/* The admission call (lua_gw_request.c), run inside the protected call with two light userdata
 * arguments (const tlab__admission_input *, tlab__admission_decision *): fills the reusable `req`
 * table, points the request actions at the decision and calls on_request(req). Call
 * tlab__lua_request_end() after the protected call, whatever it returned. */
int tlab__lua_admission_call(lua_State *L);
void tlab__lua_request_end(void);


/* Core-owned degradation state (lua_gw_actions.c). */
void tlab__lua_actions_configure(const tlab__config *cfg);
/* SIGHUP: a new gw.restart_worker rate limit; the tier and the last restart time are kept. */
void tlab__lua_actions_set_min_restart_interval(long seconds);
int tlab__lua_tier(void);

#endif
