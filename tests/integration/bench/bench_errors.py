#!/usr/bin/env python3
"""Error accounting: tlab-perf-upstream fails every 5th request with 500 and cuts every 7th
stream short; the report must give exactly those counts and the matching error rate. Also:
connection refused, --timeout, sim 400s for a prompt longer than --max-model-len, and requests
dropped by --max-inflight counted as generator lag."""
import os
import subprocess

import benchlib
from tlabtest import Proc, check, finish, free_port, start_sim, wait_http

port = free_port()
up = Proc([os.path.join(benchlib.tlabtest.BIN, "tlab-perf-upstream"), "--port", str(port), "--chunks", "8",
           "--fail-every", "5", "--break-every", "7"], "perf-upstream")
wait_http(port, "/health", proc=up)
stream = benchlib.workload("stream8", endpoint="chat", max_tokens=8, stream=True)

# 40 req/s for 3 s, no warm-up: 120 requests, numbered 1..120 by the upstream in arrival order.
rc, out, err, res, rows = benchlib.run(["--url", f"http://127.0.0.1:{port}", "--workload", stream, "--arrival", "constant",
                                        "--rate", "40", "--duration", "3", "--warmup", "0", "--cooldown", "0",
                                        "--slo", "error_rate=1%", "--fail-on-slo"], "faults")
check(rc == 1, f"error rate above the SLO must exit 1 with --fail-on-slo, got {rc}")
if check(res is not None, "faults: no result"):
    n = res["num_prompts"]
    fails = sum(1 for i in range(1, n + 1) if i % 5 == 0)
    broken = sum(1 for i in range(1, n + 1) if i % 7 == 0 and i % 5 != 0)
    check(n in (119, 120), f"faults: {n} requests")
    e = res["errors_by_kind"]
    check(e.get("http_500") == fails, f"faults: http_500 {e}, want {fails}")
    check(e.get("broken_stream") == broken, f"faults: broken_stream {e}, want {broken}")
    check(res["failed"] == fails + broken and res["completed"] == n - fails - broken, f"faults: counts {res}")
    check(abs(res["error_rate"] - (fails + broken) / n) < 1e-9, f"faults: error_rate {res['error_rate']}")
    check(res["total_output_tokens"] == 8 * res["completed"], "faults: tokens of the good requests only")
    check(res["slo"]["verdict"] == "fail", "faults: verdict")
    kinds = {}
    for r in rows:
        kinds[r["error_kind"]] = kinds.get(r["error_kind"], 0) + 1
    check(kinds.get("http_500") == fails and kinds.get("broken_stream") == broken, f"faults: CSV kinds {kinds}")
    check("http_500:" in out and "broken_stream:" in out, "faults: kinds in the table")

# Nothing listens: every request is a connect error.
dead = free_port()
rc, out, err, res, rows = benchlib.run(["--url", f"http://127.0.0.1:{dead}", "--rate", "20", "--duration", "1",
                                        "--warmup", "0", "--cooldown", "0"], "refused")
check(rc == 0 and res and res["errors_by_kind"].get("connect") == res["num_prompts"] > 0,
      f"refused: {res and res['errors_by_kind']}")
check(res and res["error_rate"] == 1.0 and res["slo"]["verdict"] == "fail", "refused: error rate 100%")

# A slow stream (8 chunks, 100 ms apart) against --timeout 300ms: timeouts.
slow_port = free_port()
slow = Proc([os.path.join(benchlib.tlabtest.BIN, "tlab-perf-upstream"), "--port", str(slow_port), "--chunks", "8",
             "--interval-ms", "100"], "perf-upstream-slow")
wait_http(slow_port, "/health", proc=slow)
rc, out, err, res, rows = benchlib.run(["--url", f"http://127.0.0.1:{slow_port}", "--workload", stream, "--rate", "10",
                                        "--duration", "1", "--warmup", "0", "--cooldown", "0", "--timeout", "300ms"],
                                       "timeout")
check(res and res["errors_by_kind"].get("timeout") == res["num_prompts"] > 0, f"timeout: {res and res['errors_by_kind']}")

# --max-inflight 2 against 0.9 s streams at 10 req/s: most requests are dropped, as generator lag.
rc, out, err, res, rows = benchlib.run(["--url", f"http://127.0.0.1:{slow_port}", "--workload", stream, "--arrival",
                                        "constant", "--rate", "10", "--duration", "2", "--warmup", "0", "--cooldown", "0",
                                        "--max-inflight", "2"], "dropped")
if check(res is not None, "dropped: no result"):
    g = res["generator"]
    check(g["dropped_by_max_inflight"] >= 10 and res["errors_by_kind"].get("dropped") == g["dropped_by_max_inflight"],
          f"dropped: {g}")
    check(g["behind_count"] >= 1 and g["behind"][0]["dropped"] >= 1, f"dropped: behind stretches {g['behind']}")
    check(res["max_concurrent_requests"] <= 2, "dropped: cap respected")
    check("dropped" in out and "Fell behind schedule:" in out, "dropped: table")

# The simulator rejects a prompt longer than --max-model-len with 400: the 200-token prompt against
# --max-model-len 128 makes every request one, counted by status.
sim, sim_port = start_sim(["--startup-seconds", "0", "--max-model-len", "128"], time_scale=10)
rc, out, err, res, rows = benchlib.run(["--url", f"http://127.0.0.1:{sim_port}", "--rate", "10", "--duration", "1",
                                        "--warmup", "0", "--cooldown", "0"], "too-long")
check(res and res["errors_by_kind"].get("http_400") == res["num_prompts"] > 0, f"too long: {res and res['errors_by_kind']}")
finish()
