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

-- As shipped no queue limit is picked by hand: the core's deadline judgement decides.
local gw, env = run({ queue_depth = 100000, predicted_wait_s = 1000 })
H.check(env.Q_MAX == nil and env.MAX_PREDICTED_WAIT_S == nil, "no hand-picked queue limit")
H.check(#gw.calls == 0, "a deep queue alone is not refused here, got " .. #gw.calls .. " calls")

-- The one-line override: a cap on the predicted wait, Retry-After = ceil(wait - cap).
gw = run({ predicted_wait_s = 3.2 }, nil, { MAX_PREDICTED_WAIT_S = 1 })
local r = H.calls(gw, "reject")[1]
H.check(r and r[2] == 429, "over the cap: 429")
H.check(r and r[3] == 3, "Retry-After = ceil(3.2 - 1) = 3, got " .. tostring(r and r[3]))
H.check(r and r[4]:find("3.2 s") and r[5] == "wait_cap", "the message names the wait: " .. tostring(r and r[4]))
gw = run({ predicted_wait_s = 0.9 }, nil, { MAX_PREDICTED_WAIT_S = 1 })
H.check(#H.calls(gw, "reject") == 0, "under the cap: admitted")
gw = run({ predicted_wait_s = 1.01 }, nil, { MAX_PREDICTED_WAIT_S = 1 })
H.check(H.calls(gw, "reject")[1][3] == 1, "just over: Retry-After 1, never 0")

-- The other override: one deadline for every request.
gw = run({}, nil, { DEADLINE_MS = 8000 })
local d = H.calls(gw, "set_deadline_ms")[1]
H.check(d and d[2] == 8000, "DEADLINE_MS sets the deadline")

-- Tier 1 clamps max_tokens to 128; tier 0 leaves it alone.
gw = run({ tier = 1 })
local c = H.calls(gw, "clamp_max_tokens")[1]
H.check(c and c[2] == 128, "tier 1 clamps max_tokens to 128")
gw = run({ tier = 3 })
H.check(#H.calls(gw, "clamp_max_tokens") == 1, "tiers above 1 keep the clamp")
gw = run({ tier = 0 })
H.check(#H.calls(gw, "clamp_max_tokens") == 0, "tier 0 does not clamp")
-- A rejected request is not clamped as well.
gw = run({ tier = 1, predicted_wait_s = 30 }, nil, { MAX_PREDICTED_WAIT_S = 1 })
H.check(#H.calls(gw, "clamp_max_tokens") == 0 and #H.calls(gw, "reject") == 1, "reject wins over clamp")

print(H.passed .. " passed, 0 failed")
