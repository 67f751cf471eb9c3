-- test_admission.lua - the shipped scripts-lua/admission.lua against a stand-in gw.
-- Usage: lua5.4 test_admission.lua <source root>
package.path = arg[0]:match("(.*/)") .. "?.lua;" .. package.path
local H = require("policy_harness")
local script = (arg[1] or ".") .. "/scripts-lua/admission.lua"

local function run(fields, req, overrides)
  local gw = H.fake_gw(fields)
  local env = H.load(script, gw, overrides)
  env.on_request(req or { max_tokens = 200, prompt_tokens = 10, stream = false })
  return gw, env
end

-- Q_MAX sits at the top of the script.
local gw, env = run({})
H.check(type(env.Q_MAX) == "number" and env.Q_MAX > 0, "Q_MAX is a number at the top")
H.check(#gw.calls == 0, "an empty queue admits without any action")

-- At Q_MAX: still admitted (the rule is queue_depth > Q_MAX).
gw = run({ queue_depth = 8, drain_rate = 5 }, nil, { Q_MAX = 8 })
H.check(#H.calls(gw, "reject") == 0, "queue_depth == Q_MAX admits")

-- Above: 429, Retry-After from the drain rate: ceil((depth - Q_MAX + 1) / drain).
gw = run({ queue_depth = 28, drain_rate = 10 }, nil, { Q_MAX = 8 })
local r = H.calls(gw, "reject")[1]
H.check(r and r[2] == 429, "above Q_MAX: 429")
H.check(r and r[3] == 3, "Retry-After = ceil(21 / 10) = 3, got " .. tostring(r and r[3]))
H.check(r and r[4]:find("28 waiting") and r[4]:find("limit 8"), "the message names the figures: " .. tostring(r and r[4]))
H.check(r and r[5] == "queue_full", "reason label queue_full")

-- Faster drain, shorter wait; the retry is never a constant.
gw = run({ queue_depth = 28, drain_rate = 100 }, nil, { Q_MAX = 8 })
H.check(H.calls(gw, "reject")[1][3] == 1, "fast drain: Retry-After 1")
gw = run({ queue_depth = 1000, drain_rate = 2 }, nil, { Q_MAX = 8 })
H.check(H.calls(gw, "reject")[1][3] == 60, "slow drain: capped at RETRY_MAX_S = 60")
gw = run({ queue_depth = 50, drain_rate = 0 }, nil, { Q_MAX = 8 })
H.check(H.calls(gw, "reject")[1][3] == 5, "nothing drained yet: RETRY_UNKNOWN_S")

-- Tier 1 clamps max_tokens to 128; tier 0 leaves it alone.
gw = run({ tier = 1 })
local c = H.calls(gw, "clamp_max_tokens")[1]
H.check(c and c[2] == 128, "tier 1 clamps max_tokens to 128")
gw = run({ tier = 3 })
H.check(#H.calls(gw, "clamp_max_tokens") == 1, "tiers above 1 keep the clamp")
gw = run({ tier = 0 })
H.check(#H.calls(gw, "clamp_max_tokens") == 0, "tier 0 does not clamp")
-- A rejected request is not clamped as well.
gw = run({ tier = 1, queue_depth = 300, drain_rate = 10 }, nil, { Q_MAX = 8 })
H.check(#H.calls(gw, "clamp_max_tokens") == 0 and #H.calls(gw, "reject") == 1, "reject wins over clamp")

print(H.passed .. " passed, 0 failed")
