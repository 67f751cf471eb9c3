-- admission.lua - runs for every LLM request after validation and before the queue.
-- Reference: docs/policies.md (every gw field and action). Edit it live: the gateway reloads it
-- on save, and keeps the previous version if this one does not load.
--
-- Default rule: when more than Q_MAX requests already wait in the gateway, answer 429 with a
-- Retry-After computed from how fast the queue drains; under degradation tier >= 1, clamp
-- max_tokens (the first rung of degradation.lua's ladder).

-- Most requests allowed to wait in the gateway. Pick it from tuning results: the sustainable
-- throughput X (req/s, the best row of tlab-tune that met the SLO) times the queue wait you can
-- afford inside the SLO (p95 <= 5 s minus the p95 service time at that row), e.g.
-- 40 req/s x (5 s - 3 s) = 80. Beyond that, a queued request would miss its deadline anyway.
Q_MAX = 256

-- Bounds of the Retry-After we send, in seconds.
RETRY_MIN_S = 1
RETRY_MAX_S = 60
-- Retry-After while nothing has drained yet in the stats window (cold start, stalled worker).
RETRY_UNKNOWN_S = 5

-- Degradation tier 1: max_tokens above this (or absent) is lowered to it.
TIER1_MAX_TOKENS = 128

function on_request(req)
  local depth = gw.queue_depth
  if depth > Q_MAX then
    -- Seconds until the queue is back under Q_MAX at the rate requests leave it.
    local drain = gw.drain_rate
    local retry = RETRY_UNKNOWN_S
    if drain > 0 then
      retry = math.ceil((depth - Q_MAX + 1) / drain)
    end
    retry = math.max(RETRY_MIN_S, math.min(RETRY_MAX_S, retry))
    gw.reject(429, retry,
      string.format("the gateway queue is full (%d waiting, limit %d); retry in %d s", depth, Q_MAX, retry),
      "queue_full")
    return
  end
  if gw.tier >= 1 then
    gw.clamp_max_tokens(TIER1_MAX_TOKENS)
  end
end
