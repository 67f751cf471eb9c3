#!/usr/bin/env python3
"""The shipped policies, driven against tlab-sim:
- overload: the shipped admission.lua, a fixed gate of one and a tight slo.e2e_ms: a burst gets
  429s from the deadline judgement with a computed Retry-After in OpenAI's error shape, counted by
  reason and class, while the admitted requests are answered 200 near their deadline;
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

# --- overload: a fixed gate of one request at a time, a tight deadline, a burst of 30: the
# deadline judgement refuses what cannot finish in time, with a computed Retry-After ---
cfg = os.path.join(tmp, "overload.yaml")
with open(cfg, "w") as f:
    f.write(f"policies:\n  admission: {os.path.join(t.SRC, 'scripts-lua', 'admission.lua')}\n  degradation: ''\n"
            "slo: {e2e_ms: 600}\nautopilot: {enabled: false, max_limit: 1}\n"
            "plugins:\n  - name: queue\n    config: {max_depth: 1000}\n  - name: metrics\n")
gw, port = t.start_gateway(sim_port, config=cfg)
for _ in range(3):
    completion(port, 40)  # so the service time and drain rate are measured
N = 30
results = [None] * N
threads = [threading.Thread(target=completion, args=(port, 40, results, i)) for i in range(N)]
for th in threads:
    th.start()
for th in threads:
    th.join()
codes = [r[0] for r in results]
ok = [r for r in results if r[0] == 200]
rejected = [r for r in results if r[0] == 429]
left = [r for r in results if r[0] == 503]  # admitted, then judged unreachable while waiting
t.check(len(ok) + len(rejected) + len(left) == N, f"only 200, 429 and 503: {sorted(codes)}")
t.check(len(rejected) >= 10 and len(ok) >= 3, f"the excess is refused ({len(rejected)} x 429, {len(ok)} x 200)")
t.check(all(r[1].get("retry-after", "").isdigit() and 1 <= int(r[1]["retry-after"]) <= 60 for r in rejected + left),
        f"429s carry Retry-After: {[r[1].get('retry-after') for r in rejected]}")
errs = [json.loads(r[2])["error"] for r in rejected]
t.check(all(e["type"] == "rate_limit_exceeded" and "deadline" in e["message"] and "code" in e for e in errs),
        f"OpenAI error shape, the deadline named: {errs[:1]}")
t.check(max(r[3] for r in ok) < 3.0, f"admitted requests finish near their 0.6 s deadline (max {max(r[3] for r in ok):.2f} s)")
t.check(t.metric(port, "gateway_queue_rejected_total", 'reason="deadline",class="normal"') == len(rejected),
        "refusals counted by reason and class")
gw.stop()

# --- degradation ladder: the predicted wait is the pressure signal here ---
deg = test_copy("degradation.lua", {
    "ENTER_P95_SHARE": "1e9", "ENTER_WAIT_SHARE": "1e-6", "ENTER_ERROR_RATE": 2,
    "ENTER_HOLD_S": 0.3, "LEAVE_ATTAINMENT": 0, "LEAVE_P95_SHARE": "1e9", "LEAVE_WAIT_SHARE": "1e-6",
    "LEAVE_ERROR_RATE": 2, "LEAVE_HOLD_S": 0.3, "MIN_RESTART_INTERVAL_S": 0.8})
adm = os.path.join(t.SRC, "scripts-lua", "admission.lua")
cfg = os.path.join(tmp, "ladder.yaml")
with open(cfg, "w") as f:
    f.write(f"policies:\n  admission: {adm}\n  degradation: {deg}\n  tick_ms: 100\n  min_restart_interval_s: 0\n"
            f"  stats_window_s: 2\n"
            "slo: {e2e_ms: 600000}\nautopilot: {enabled: false, max_limit: 1}\n"
            "plugins:\n  - name: queue\n    config: {max_depth: 1000}\n  - name: metrics\n"
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
    t.check("predicted_wait=" in line and ("hot for" in line or "cool for" in line),
            f"tier {a} -> {b} logged with reason and figures: {line!r}")
restarts = t.metric(port, "test_restart_worker_total")
t.check(restarts == 4, f"restarts at 1->2, 2->3, 3->2, 2->1 ({restarts})")
t.check(t.metric(port, "test_restart_worker_knob", 'knob="max_model_len"') == 512, "back to max_model_len 512 at tier 1")
times = [l[:23] for l in log.splitlines() if "restart_worker {" in l and "requested" in l]
stamps = [time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + s[19:23]) for s in times]
gaps = [b - a for a, b in zip(stamps, stamps[1:])]
t.check(len(stamps) == 4 and min(gaps) >= 0.75, f"restarts at least MIN_RESTART_INTERVAL_S apart: {gaps}")
t.finish()
