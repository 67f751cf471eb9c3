-- admission.lua - runs for every LLM request after validation and before the queue.
-- Reference: docs/policies.md (every gw field and action) and docs/autopilot.md. Edit it live:
-- the gateway reloads it on save, and keeps the previous version if this one does not load.
--
-- The SLO autopilot already does the heavy lifting in the core: each request has a deadline
-- (slo.e2e_ms, or the client's x-request-deadline-ms), and the queue answers 429 with a computed
-- Retry-After when the request's predicted finish (req.predicted_finish_s: its wait behind the
-- queue at the measured drain rate, plus its service time at the gate's concurrency) is past
-- that deadline. No queue limit is picked by hand here. What this policy adds:
--   * under degradation tier >= 1, clamp max_tokens (the first rung of degradation.lua's ladder),
--     which also shortens the predicted service time the queue judges by;
--   * an optional cap on the predicted wait, off by default.
--
-- One-line overrides (docs/policies.md shows them):
--   MAX_PREDICTED_WAIT_S = 2     -- refuse when the predicted wait is over 2 s, deadline or not
--   DEADLINE_MS = 8000           -- give every request an 8 s deadline instead of slo.e2e_ms

-- nil: no cap of its own; the deadline decides.
MAX_PREDICTED_WAIT_S = nil
-- nil: keep slo.e2e_ms or the client's header.
DEADLINE_MS = nil

-- Degradation tier 1: max_tokens above this (or absent) is lowered to it.
TIER1_MAX_TOKENS = 128

function on_request(req)
  if DEADLINE_MS then
    gw.set_deadline_ms(DEADLINE_MS)
  end
  if MAX_PREDICTED_WAIT_S then
    local wait = gw.predicted_wait_s
    if wait > MAX_PREDICTED_WAIT_S then
      -- The wait shrinks at the drain rate: back in (wait - cap) seconds it would fit.
      local retry = math.max(1, math.ceil(wait - MAX_PREDICTED_WAIT_S))
      gw.reject(429, retry,
        string.format("the predicted wait (%.1f s) is over this gateway's cap (%.1f s); retry in %d s",
          wait, MAX_PREDICTED_WAIT_S, retry), "wait_cap")
      return
    end
  end
  if gw.tier >= 1 then
    gw.clamp_max_tokens(TIER1_MAX_TOKENS)
  end
end
