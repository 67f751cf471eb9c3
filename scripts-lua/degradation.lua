-- degradation.lua - runs every policies.tick_ms (default 1 s) and walks the degradation ladder,
-- one tier at a time, with hysteresis. Reference: docs/policies.md. Edited live like admission.lua.
--
--   tier 0  normal
--   tier 1  clamp max_tokens to 128 (done by admission.lua, which reads gw.tier)
--   tier 2  restart the worker with max_model_len 512 -> 448
--   tier 3  restart the worker with a lower max_num_seqs as well
--
-- Step up after the gateway has been "hot" for ENTER_HOLD_S; step down after it has been "cool"
-- for LEAVE_HOLD_S. Between the two thresholds nothing moves (hysteresis). After each step the
-- hold starts again, so the ladder moves one tier per hold. Steps that restart the worker wait
-- until MIN_RESTART_INTERVAL_S has passed since the last restart (the core also refuses restarts
-- closer than policies.min_restart_interval_s).

-- Thresholds follow the SLO (gw.slo_ms, slo.e2e_ms in the config) and the autopilot's
-- predictions, so nothing here is tuned to one GPU or model. One-line overrides: set any of
-- these to a number.
-- Hot: any of these, for ENTER_HOLD_S. Shedding alone is not hot: the autopilot refuses what
-- would miss its deadline and serves the rest inside it; the ladder steps in when the served
-- requests miss (p95 over the SLO), the queue's predicted wait grows past what the SLO leaves,
-- or the worker fails.
ENTER_P95_SHARE = 1.0      -- end-to-end p95 of served requests over this share of the SLO
ENTER_WAIT_SHARE = 0.5     -- predicted wait for a newcomer over this share of the SLO
ENTER_ERROR_RATE = 0.01    -- share of 5xx answers
ENTER_HOLD_S = 10
-- Cool: all of these, for LEAVE_HOLD_S (nothing shed any more, and fast).
LEAVE_ATTAINMENT = 0.99    -- share of finished requests done inside their deadline (refusals count as missed)
LEAVE_P95_SHARE = 0.5
LEAVE_WAIT_SHARE = 0.1
LEAVE_ERROR_RATE = 0.001
LEAVE_HOLD_S = 30

MAX_TIER = 3
-- Worker knobs per tier (the seed ladder).
BASE_MAX_MODEL_LEN = 512
TIER2_MAX_MODEL_LEN = 448
-- Tier 3 restarts the worker with max_num_seqs at what the autopilot's gate lets through inside
-- the SLO (never below this floor), so the engine stops scheduling more than it can serve;
-- below tier 3 the worker has vLLM's default (256).
BASE_MAX_NUM_SEQS = 256
TIER3_MIN_NUM_SEQS = 8
MIN_RESTART_INTERVAL_S = 120

local hot_since, cool_since, last_restart = nil, nil, nil

local function figures()
  return string.format("e2e_p95=%.0fms slo_attainment=%.3f predicted_wait=%.2fs gate_limit=%d error_rate=%.4f",
    gw.e2e_p95, gw.slo_attainment, gw.predicted_wait_s, gw.gate_limit, gw.error_rate)
end

-- The worker knobs that belong to a tier.
local function knobs_for(tier)
  local k = { max_model_len = BASE_MAX_MODEL_LEN, max_num_seqs = BASE_MAX_NUM_SEQS }
  if tier >= 2 then k.max_model_len = TIER2_MAX_MODEL_LEN end
  if tier >= 3 then k.max_num_seqs = math.max(TIER3_MIN_NUM_SEQS, gw.gate_limit) end
  return k
end

-- Moves to tier `to`; returns false when a needed restart must wait for the minimum interval.
local function step(to, why)
  local from = gw.tier
  if math.max(from, to) >= 2 then -- 1<->2 and 2<->3 change the worker's knobs
    local now = gw.now()
    if last_restart and now - last_restart < MIN_RESTART_INTERVAL_S then
      return false
    end
    last_restart = now
    local ok, err = gw.restart_worker(knobs_for(to))
    if not ok then
      gw.log("warn", string.format("tier %d: the worker was not restarted: %s", to, tostring(err)))
    end
  end
  gw.set_tier(to, string.format("%s; %s", why, figures()))
  return true
end

function on_tick()
  local now, tier = gw.now(), gw.tier
  local slo_ms, p95, err = gw.slo_ms, gw.e2e_p95, gw.error_rate
  local wait_ms, attained = gw.predicted_wait_s * 1000, gw.slo_attainment
  local hot = p95 > ENTER_P95_SHARE * slo_ms
    or wait_ms > ENTER_WAIT_SHARE * slo_ms or err > ENTER_ERROR_RATE
  local cool = attained >= LEAVE_ATTAINMENT and p95 < LEAVE_P95_SHARE * slo_ms
    and wait_ms < LEAVE_WAIT_SHARE * slo_ms and err < LEAVE_ERROR_RATE
  if hot then hot_since = hot_since or now else hot_since = nil end
  if cool then cool_since = cool_since or now else cool_since = nil end

  if hot_since and tier < MAX_TIER and now - hot_since >= ENTER_HOLD_S then
    if step(tier + 1, string.format("hot for %.1f s", now - hot_since)) then
      hot_since = now
    end
  elseif cool_since and tier > 0 and now - cool_since >= LEAVE_HOLD_S then
    if step(tier - 1, string.format("cool for %.1f s", now - cool_since)) then
      cool_since = now
    end
  end
end
