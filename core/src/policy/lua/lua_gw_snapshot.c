/*
 * lua_gw_snapshot.c - the read side of `gw`: queue_depth, in_flight, worker state, rolling rates
 * and quantiles, the degradation tier and the batching window, read as plain fields
 * (gw.queue_depth) and computed at the moment they are read, so a policy pays only for what it
 * reads. gw.snapshot() returns all of them as one table (for logging).
 *
 * gw is an empty proxy table; its __index (tlab__lua_gw_index) looks the key up in the methods
 * table. A function there is an action and is returned; an integer there is the id of a snapshot
 * field, computed here. One table lookup either way.
 */
#include <math.h>

#include <lauxlib.h>

#include "dispatch/dispatch.h"
#include "dispatch/gate.h"
#include "base/clock.h"
#include "request/request.h"
#include "policy/lua/lua_gw.h"
#include "base/metrics_registry.h"
#include "hooks/plugin_host.h"
#include "request/stats.h"

enum field {
    F_QUEUE_DEPTH = 1, F_IN_FLIGHT, F_WORKER_STATE, F_WORKER_STATE_NAME, F_RPS, F_ERROR_RATE, F_REJECT_RATE, F_DRAIN_RATE,
    F_E2E_P50, F_E2E_P95, F_E2E_P99, F_TTFT_P50, F_TTFT_P95, F_TTFT_P99, F_QWAIT_P50, F_QWAIT_P95, F_QWAIT_P99,
    F_TIER, F_WINDOW_MS, F_STATS_WINDOW_S, F_COMPLETED, F_GATE_LIMIT, F_PREDICTED_WAIT_S, F_SLO_MS, F_SLO_ATTAINMENT,
    F_GOODPUT, F_TPOT_MS, F__END
};

static const char *const field_names[F__END] = {
    [F_QUEUE_DEPTH] = "queue_depth", [F_IN_FLIGHT] = "in_flight", [F_WORKER_STATE] = "worker_state",
    [F_WORKER_STATE_NAME] = "worker_state_name", [F_RPS] = "rps", [F_ERROR_RATE] = "error_rate",
    [F_REJECT_RATE] = "reject_rate", [F_DRAIN_RATE] = "drain_rate", [F_E2E_P50] = "e2e_p50", [F_E2E_P95] = "e2e_p95",
    [F_E2E_P99] = "e2e_p99", [F_TTFT_P50] = "ttft_p50", [F_TTFT_P95] = "ttft_p95", [F_TTFT_P99] = "ttft_p99",
    [F_QWAIT_P50] = "queue_wait_p50", [F_QWAIT_P95] = "queue_wait_p95", [F_QWAIT_P99] = "queue_wait_p99",
    [F_TIER] = "tier", [F_WINDOW_MS] = "window_ms", [F_STATS_WINDOW_S] = "stats_window_s", [F_COMPLETED] = "completed",
    [F_GATE_LIMIT] = "gate_limit", [F_PREDICTED_WAIT_S] = "predicted_wait_s", [F_SLO_MS] = "slo_ms",
    [F_SLO_ATTAINMENT] = "slo_attainment", [F_GOODPUT] = "goodput", [F_TPOT_MS] = "tpot_ms",
};


/* The batching plugin's current window, from its gauge; 0 without the plugin. */
static double window_ms(void) {
    tlab_metric *m = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_batch_window_seconds",
                                          "Current gateway batching window (0 = pass-through)", NULL, 0);
    return m ? tlab__metric_value(m, NULL) * 1000.0 : 0;
}

/* Pushes field `f`'s current value. */
static void push_field(lua_State *L, int f) {
    const tlab__stats_view *v = f >= F_RPS && f <= F_QWAIT_P99 ? tlab__stats_get() : NULL;
    switch (f) {
    case F_QUEUE_DEPTH: lua_pushinteger(L, (lua_Integer)tlab__dispatch_waiting()); break;
    case F_IN_FLIGHT: lua_pushinteger(L, (lua_Integer)tlab__requests_in_flight()); break;
    case F_WORKER_STATE: lua_pushinteger(L, tlab__plugins_worker_state()); break;
    case F_WORKER_STATE_NAME: lua_pushstring(L, tlab_worker_state_name(tlab__plugins_worker_state())); break;
    case F_RPS: lua_pushnumber(L, v->rps); break;
    case F_ERROR_RATE: lua_pushnumber(L, v->error_rate); break;
    case F_REJECT_RATE: lua_pushnumber(L, v->reject_rate); break;
    case F_DRAIN_RATE: lua_pushnumber(L, v->drain_rate); break;
    case F_E2E_P50: case F_E2E_P95: case F_E2E_P99: lua_pushnumber(L, v->e2e_ms[f - F_E2E_P50]); break;
    case F_TTFT_P50: case F_TTFT_P95: case F_TTFT_P99: lua_pushnumber(L, v->ttft_ms[f - F_TTFT_P50]); break;
    case F_QWAIT_P50: case F_QWAIT_P95: case F_QWAIT_P99: lua_pushnumber(L, v->queue_wait_ms[f - F_QWAIT_P50]); break;
    case F_TIER: lua_pushinteger(L, tlab__lua_tier()); break;
    case F_WINDOW_MS: lua_pushnumber(L, window_ms()); break;
    case F_STATS_WINDOW_S: lua_pushinteger(L, tlab__stats_window_s()); break;
    case F_COMPLETED: lua_pushinteger(L, (lua_Integer)tlab__stats_get()->completed); break;
    case F_GATE_LIMIT: lua_pushinteger(L, tlab__gate_limit()); break;
    case F_PREDICTED_WAIT_S: lua_pushnumber(L, tlab__gate_wait_s((double)tlab__dispatch_waiting())); break;
    case F_SLO_MS: lua_pushinteger(L, (lua_Integer)(tlab__gate_slo_us() / 1000)); break;
    case F_SLO_ATTAINMENT: lua_pushnumber(L, tlab__stats_get()->slo_attainment); break;
    case F_GOODPUT: lua_pushnumber(L, tlab__stats_get()->goodput); break;
    case F_TPOT_MS: lua_pushnumber(L, tlab__gate_view() ? tlab__gate_view()->tpot_s * 1e3 : 0); break;
    default: lua_pushnil(L);
    }
}

int tlab__lua_gw_index(lua_State *L) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) == LUA_TNUMBER)
        push_field(L, (int)lua_tointeger(L, -1));
    return 1; /* a function, the field's value, or nil for an unknown key */
}

/* gw.snapshot(): every field in one new table. */
static int gw_snapshot(lua_State *L) {
    lua_createtable(L, 0, F__END);
    for (int f = 1; f < F__END; f++) {
        push_field(L, f);
        lua_setfield(L, -2, field_names[f]);
    }
    return 1;
}

void tlab__lua_inject_snapshot(lua_State *L, int methods) {
    for (int f = 1; f < F__END; f++) {
        lua_pushinteger(L, f);
        lua_setfield(L, methods, field_names[f]);
    }
    lua_pushcfunction(L, gw_snapshot);
    lua_setfield(L, methods, "snapshot");
}
