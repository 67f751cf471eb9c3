-- policy_harness.lua - loads a policy script with a stand-in `gw` table, for the plain-Lua tests
-- of the shipped scripts (run by ctest with lua5.4; no extra package needed).
local H = {}

-- A stand-in gw: snapshot fields are plain values the test sets; actions record their calls.
function H.fake_gw(fields)
  local gw = { calls = {}, t = 0 }
  for k, v in pairs({ queue_depth = 0, in_flight = 0, drain_rate = 0, tier = 0, e2e_p95 = 0, error_rate = 0,
                      rps = 0, window_ms = 0, slo_ms = 5000, slo_attainment = 1, predicted_wait_s = 0,
                      gate_limit = 8, goodput = 0, tpot_ms = 0 }) do gw[k] = v end
  for k, v in pairs(fields or {}) do gw[k] = v end
  local function record(name) return function(...) table.insert(gw.calls, { name, ... }) end end
  gw.reject = record("reject")
  gw.clamp_max_tokens = record("clamp_max_tokens")
  gw.set_priority = record("set_priority")
  gw.set_deadline_ms = record("set_deadline_ms")
  gw.log = record("log")
  gw.set_tier = function(n, why) table.insert(gw.calls, { "set_tier", n, why }); gw.tier = n; return true end
  gw.restart_worker = function(k) table.insert(gw.calls, { "restart_worker", k }); return true end
  gw.now = function() return gw.t end
  return gw
end

-- Runs the script's top level in a fresh environment; returns that environment.
function H.load(path, gw, overrides)
  local env = setmetatable({ gw = gw }, { __index = _G })
  local chunk = assert(loadfile(path, "t", env))
  chunk()
  for k, v in pairs(overrides or {}) do env[k] = v end
  return env
end

function H.calls(gw, name)
  local out = {}
  for _, c in ipairs(gw.calls) do if c[1] == name then table.insert(out, c) end end
  return out
end

H.passed = 0
function H.check(cond, what)
  if not cond then error("CHECK failed: " .. what, 2) end
  H.passed = H.passed + 1
end

return H
