#!/usr/bin/env python3
"""The shipped policies, driven against tlab-sim:
- overload: with Q_MAX small (a test copy of scripts-lua/admission.lua), a burst gets 429s with a
  Retry-After in OpenAI's error shape, counted by reason, while every admitted request is answered
  200 inside its deadline;
- degradation: a test copy of scripts-lua/degradation.lua with small thresholds and short holds
  walks up 0 -> 1 -> 2 -> 3 under a scripted load and back down to 0 when it stops; each change is
  logged with its reason and figures and shows in gateway_degradation_tier; tier 1 clamps
  max_tokens to 128; tiers 2 and 3 ask for worker restarts (a stand-in plugin counts them) never
  closer together than the minimum interval.
"""
import json
import os
import re
import tempfile
import threading
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
tmp = tempfile.mkdtemp(prefix="tlab-policy-ladder-")
RESTART_PLUGIN = os.path.join(os.path.dirname(t.BIN), "tests", "unit", "fixture-plugins", "restart_counter.so")




def test_copy(name, constants):
    """The shipped script with some top-of-file constants replaced."""
    with open(os.path.join(t.SRC, "scripts-lua", name)) as f:
        text = f.read()
    for k, v in constants.items():
        text, n = re.subn(rf"^{k} = .*$", f"{k} = {v}", text, flags=re.M)
        assert n == 1, k
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def completion(port, max_tokens, out=None, idx=None):
    t0 = time.monotonic()
    st, h, body = t.request(port, "POST", "/v1/completions",
                            {"model": MODEL, "prompt": "hello there", "max_tokens": max_tokens, "ignore_eos": True}, timeout=30)
    res = (st, h, body, time.monotonic() - t0)
    if out is not None:
        out[idx] = res
    return res


sim, sim_port = t.start_sim(["--max-model-len", "512", "--startup-seconds", "0"], time_scale=5)

# --- overload: Q_MAX 4, one request at the worker at a time, a burst of 30 ---
adm = test_copy("admission.lua", {"Q_MAX": 4})
cfg = os.path.join(tmp, "overload.yaml")
with open(cfg, "w") as f:
    f.write(f"policies:\n  admission: {adm}\n  degradation: ''\n"
            "plugins:\n  - name: queue\n    config: {max_inflight: 1, max_depth: 1000}\n  - name: metrics\n")
gw, port = t.start_gateway(sim_port, config=cfg)
completion(port, 20)  # so the drain rate is known
N = 30
results = [None] * N
threads = [threading.Thread(target=completion, args=(port, 20, results, i)) for i in range(N)]
for th in threads:
    th.start()
for th in threads:
    th.join()
codes = [r[0] for r in results]
ok = [r for r in results if r[0] == 200]
rejected = [r for r in results if r[0] == 429]
t.check(len(ok) + len(rejected) == N, f"only 200 and 429: {sorted(codes)}")
t.check(len(rejected) >= 10 and len(ok) >= 5, f"the excess is refused ({len(rejected)} x 429, {len(ok)} x 200)")
t.check(all(r[1].get("retry-after", "").isdigit() and 1 <= int(r[1]["retry-after"]) <= 60 for r in rejected),
        f"429s carry Retry-After: {[r[1].get('retry-after') for r in rejected]}")
errs = [json.loads(r[2])["error"] for r in rejected]
t.check(all(e["type"] == "rate_limit_exceeded" and "queue is full" in e["message"] and "code" in e for e in errs),
        f"OpenAI error shape: {errs[:1]}")
t.check(max(r[3] for r in ok) < 5.0, f"admitted requests meet the 5 s deadline (max {max(r[3] for r in ok):.2f} s)")
t.check(t.metric(port, "gateway_admission_rejects_total", 'reason="queue_full"') == len(rejected), "rejects counted by reason")
gw.stop()

# --- degradation ladder: queue depth is the pressure signal here ---
deg = test_copy("degradation.lua", {
    "ENTER_P95_MS": "1e9", "ENTER_QUEUE": 4, "ENTER_ERROR_RATE": 2, "ENTER_HOLD_S": 0.3,
    "LEAVE_P95_MS": "1e9", "LEAVE_QUEUE": 1, "LEAVE_ERROR_RATE": 2, "LEAVE_HOLD_S": 0.3,
    "MIN_RESTART_INTERVAL_S": 0.8})
adm = test_copy("admission.lua", {"Q_MAX": 1000})
cfg = os.path.join(tmp, "ladder.yaml")
with open(cfg, "w") as f:
    f.write(f"policies:\n  admission: {adm}\n  degradation: {deg}\n  tick_ms: 100\n  min_restart_interval_s: 0\n"
            f"  stats_window_s: 2\n"
            "plugins:\n  - name: queue\n    config: {max_inflight: 1, max_depth: 1000}\n  - name: metrics\n"
            f"  - name: restart_counter\n    path: {RESTART_PLUGIN}\n")
gw, port = t.start_gateway(sim_port, config=cfg)

stop = threading.Event()
failures = []


def pressure():
    while not stop.is_set():
        st = completion(port, 40)[0]
        if st != 200:
            failures.append(st)


tiers = []
def sample_tier():
    v = t.metric(port, "gateway_degradation_tier")
    if not tiers or tiers[-1] != v:
        tiers.append(v)
    return v


workers = [threading.Thread(target=pressure) for _ in range(10)]
for th in workers:
    th.start()
deadline = time.monotonic() + 20
clamped = None
while time.monotonic() < deadline and sample_tier() != 3:
    if clamped is None and tiers[-1] and tiers[-1] >= 1:
        st, _, body, _ = completion(port, 200)
        clamped = json.loads(body)["usage"]["completion_tokens"] if st == 200 else st
    time.sleep(0.05)
stop.set()
for th in workers:
    th.join()
deadline = time.monotonic() + 20
while time.monotonic() < deadline and sample_tier() != 0:
    time.sleep(0.05)
t.check(tiers == [0, 1, 2, 3, 2, 1, 0], f"the ladder went up and down one tier at a time: {tiers}")
t.check(clamped == 128, f"tier 1 clamps max_tokens 200 -> 128 (completion_tokens {clamped})")
t.check(not failures, f"no request failed while the ladder moved: {failures[:5]}")
log = gw.output()
for a, b in [(0, 1), (1, 2), (2, 3), (3, 2), (2, 1), (1, 0)]:
    line = next((l for l in log.splitlines() if f"degradation tier {a} -> {b}:" in l), "")
    t.check("queue_depth=" in line and ("hot for" in line or "cool for" in line),
            f"tier {a} -> {b} logged with reason and figures: {line!r}")
restarts = t.metric(port, "test_restart_worker_total")
t.check(restarts == 4, f"restarts at 1->2, 2->3, 3->2, 2->1 ({restarts})")
t.check(t.metric(port, "test_restart_worker_knob", 'knob="max_model_len"') == 512, "back to max_model_len 512 at tier 1")
times = [l[:23] for l in log.splitlines() if "restart_worker {" in l and "requested" in l]
stamps = [time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + s[19:23]) for s in times]
gaps = [b - a for a, b in zip(stamps, stamps[1:])]
t.check(len(stamps) == 4 and min(gaps) >= 0.75, f"restarts at least MIN_RESTART_INTERVAL_S apart: {gaps}")
t.finish()
