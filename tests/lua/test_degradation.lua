-- test_degradation.lua - the shipped scripts-lua/degradation.lua against a stand-in gw: the
-- ladder goes up and down one tier at a time with hysteresis, asks for the right restarts, and
-- never restarts more often than MIN_RESTART_INTERVAL_S.
-- Usage: lua5.4 test_degradation.lua <source root>
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require("policy_harness")
local script = (arg[1] or ".") .. "/scripts-lua/degradation.lua"

local gw = H.fake_gw({})
local env = H.load(script, gw, { ENTER_HOLD_S = 2, LEAVE_HOLD_S = 3, MIN_RESTART_INTERVAL_S = 5 })
local function tick_for(seconds, fields)
  for k, v in pairs(fields) do gw[k] = v end
  for _ = 1, seconds do
    env.on_tick()
    gw.t = gw.t + 1
  end
end

-- Between the thresholds nothing moves.
tick_for(20, { e2e_p95 = (env.ENTER_P95_SHARE + env.LEAVE_P95_SHARE) / 2 * gw.slo_ms, slo_attainment = 0.97 })
H.check(gw.tier == 0, "between thresholds: stays at tier 0")

-- Hot: one tier per hold, restarts at 1->2 and 2->3 with the ladder's knobs.
local tiers, restarts = {}, {}
gw.calls = {}
for _ = 1, 30 do
  tick_for(1, { e2e_p95 = env.ENTER_P95_SHARE * gw.slo_ms + 1, gate_limit = 37 })
  if tiers[#tiers] ~= gw.tier then table.insert(tiers, gw.tier) end
end
H.check(table.concat(tiers, ",") == "0,1,2,3", "climbs 0,1,2,3 one at a time: " .. table.concat(tiers, ","))
restarts = H.calls(gw, "restart_worker")
H.check(#restarts == 2, "two restarts on the way up, got " .. #restarts)
H.check(restarts[1][2].max_model_len == 448 and restarts[1][2].max_num_seqs == env.BASE_MAX_NUM_SEQS, "tier 2: max_model_len 448")
H.check(restarts[2][2].max_model_len == 448 and restarts[2][2].max_num_seqs == 37, "tier 3: max_num_seqs at the gate's limit")
for _, c in ipairs(H.calls(gw, "set_tier")) do
  H.check(c[3]:find("e2e_p95=") and c[3]:find("hot for"), "the reason carries the figures: " .. c[3])
end

-- Cool: steps down one tier per hold back to 0.
gw.calls = {}
local restart_at = {}
local real_restart = gw.restart_worker
gw.restart_worker = function(k) table.insert(restart_at, gw.t); return real_restart(k) end
tiers = { gw.tier }
for _ = 1, 60 do
  tick_for(1, { e2e_p95 = 0, slo_attainment = 1, predicted_wait_s = 0, error_rate = 0 })
  if tiers[#tiers] ~= gw.tier then table.insert(tiers, gw.tier) end
end
H.check(table.concat(tiers, ",") == "3,2,1,0", "steps down 3,2,1,0: " .. table.concat(tiers, ","))
H.check(#restart_at == 2, "two restarts on the way down (3->2, 2->1), got " .. #restart_at)
for i = 2, #restart_at do
  H.check(restart_at[i] - restart_at[i - 1] >= 5, "restarts at least MIN_RESTART_INTERVAL_S apart")
end

-- Each SLO signal alone is hot: attainment, predicted wait (shares of gw.slo_ms, so a 1 s SLO
-- scales them), error rate.
for _, f in ipairs({ { e2e_p95 = 5001 }, { predicted_wait_s = 0.6, slo_ms = 1000 } }) do
  local g2 = H.fake_gw(f)
  local e2 = H.load(script, g2, { ENTER_HOLD_S = 1 })
  for _ = 1, 3 do e2.on_tick(); g2.t = g2.t + 1 end
  H.check(g2.tier >= 1, "hot on its own: " .. next(f))
end
local g3 = H.fake_gw({ predicted_wait_s = 0.4, slo_ms = 1000 })
local e3 = H.load(script, g3, { ENTER_HOLD_S = 1 })
for _ = 1, 3 do e3.on_tick(); g3.t = g3.t + 1 end
H.check(g3.tier == 0, "a wait under half the SLO is not hot")
local g4 = H.fake_gw({ slo_attainment = 0.4, e2e_p95 = 4900 })
local e4 = H.load(script, g4, { ENTER_HOLD_S = 1 })
for _ = 1, 3 do e4.on_tick(); g4.t = g4.t + 1 end
H.check(g4.tier == 0, "shedding alone (served inside the SLO) is not hot")

-- A hot error rate alone climbs too; a restart too soon holds the step back.
gw = H.fake_gw({})
env = H.load(script, gw, { ENTER_HOLD_S = 1, LEAVE_HOLD_S = 1, MIN_RESTART_INTERVAL_S = 100 })
local seen = {}
for _ = 1, 20 do
  gw.error_rate = 0.5
  env.on_tick()
  gw.t = gw.t + 1
  seen[gw.tier] = true
end
H.check(gw.tier == 2, "error rate climbs; tier 3 waits for the restart interval (tier " .. gw.tier .. ")")
H.check(#H.calls(gw, "restart_worker") == 1, "only one restart within the interval")
gw.t = gw.t + 100
env.on_tick()
H.check(gw.tier == 3, "after the interval the step to tier 3 happens")

print(H.passed .. " passed, 0 failed")
