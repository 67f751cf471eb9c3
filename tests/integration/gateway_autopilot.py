#!/usr/bin/env python3
"""The SLO autopilot end to end, on tlab-sim at time scale 5 (rtx3050-4gb, vLLM's default knobs):
- a malformed x-request-deadline-ms is a 400 in OpenAI's shape naming the header;
- a deadline shorter than the measured TTFT is a 429 at once that says why;
- an overload burst (twice the capacity tlab-sim predicts, for 10 s): through the gateway as
  shipped (the autopilot on) the goodput (answered 200 inside the SLO) is at least 1.5x straight
  to the worker and 15 % of the worker's capacity, the refusals are 429s with a
  Retry-After, counted by reason and class, recorded as promises that a retry claims, and the
  gate and predictions show in /metrics;
- priority shedding: under the same burst the low class is refused more than the high one;
- a cold start (the supervisor, real time): once the worker's start time is measured, a request
  whose deadline is shorter than the start is refused at once with a Retry-After, and one with
  room is served.
Bounds are generous so that a loaded machine cannot flake them.
"""
import json
import os
import re
import subprocess
import tempfile
import threading
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
TS = 5                      # tlab-sim's clock runs 5x faster
SLO_MS = 5000 // TS         # the reference 5 s SLO in real time
tmp = tempfile.mkdtemp(prefix="tlab-autopilot-")


def completion(port, max_tokens, headers=None, out=None, i=None):
    t0 = time.monotonic()
    try:
        st, h, body = t.request(port, "POST", "/v1/completions",
                                {"model": MODEL, "prompt": "hello " * 150, "max_tokens": max_tokens, "ignore_eos": True},
                                headers=headers, timeout=60)
    except Exception as e:  # noqa: BLE001 - a hang or reset is a failure to report
        st, h, body = 0, {}, str(e).encode()
    r = (st, h, body, time.monotonic() - t0)
    if out is not None:
        out[i] = r
    return r


def burst(port, n, rate, headers_for=lambda i: None):
    """n requests sent open-loop at `rate` per second (real time); returns their results."""
    out = [None] * n
    threads = []
    start = time.monotonic()
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        th = threading.Thread(target=completion, args=(port, 200, headers_for(i), out, i))
        th.start()
        threads.append(th)
    for th in threads:
        th.join(90)
    return out


def good(results):
    return sum(1 for r in results if r and r[0] == 200 and r[3] * 1000 <= SLO_MS)


cfg = os.path.join(tmp, "gw.yaml")
with open(cfg, "w") as f:
    f.write(f"slo: {{e2e_ms: {SLO_MS}}}\n"
            f"policies:\n  admission: {os.path.join(t.SRC, 'scripts-lua', 'admission.lua')}\n  degradation: ''\n"
            "plugins:\n  - name: queue\n    config: {max_depth: 1024, headroom_pct: 20}\n  - name: metrics\n")

# --- bad deadlines ---
sim, sim_port = t.start_sim(["--startup-seconds", "0"], time_scale=TS)
gw, port = t.start_gateway(sim_port, config=cfg)
for bad in ("abc", "-5", "0", "1.5", "99999999999"):
    st, _, body, _ = completion(port, 5, headers={"x-request-deadline-ms": bad})
    err = json.loads(body).get("error", {}) if st == 400 else {}
    t.check(st == 400 and "x-request-deadline-ms" in err.get("message", "") and err.get("param") == "x-request-deadline-ms",
            f"malformed deadline {bad!r}: 400 naming the header ({st} {body[:200]!r})")
for _ in range(4):
    completion(port, 20)  # measured from here on
time.sleep(0.3)
st, h, body, took = completion(port, 20, headers={"x-request-deadline-ms": "1"})
msg = json.loads(body).get("error", {}).get("message", "") if st == 429 else body
t.check(st == 429 and "time to first token" in msg, f"a 1 ms deadline: 429 saying why ({st} {msg[:200]!r})")
t.check(took < 1.0, f"at once ({took:.2f} s)")
st, _, _, _ = completion(port, 20, headers={"x-request-deadline-ms": "60000"})
t.check(st == 200, f"a generous client deadline is served ({st})")

# --- overload burst: direct vs the gateway as shipped ---
# Twice the worker's capacity (as tlab-sim predicts it for this workload at vLLM's defaults) for
# 10 s of the simulated clock: straight to the worker everything admitted slows past the SLO.
pred = subprocess.run([os.path.join(t.BIN, "tlab-sim"), "--predict", "--concurrency", "64", "--input-len", "150",
                       "--output-len", "200"], capture_output=True, text=True, timeout=60).stdout
capacity = float(re.search(r"throughput ([0-9.]+) req/s", pred).group(1))
N, RATE = int(20 * capacity), 2 * capacity * TS
print(f"capacity {capacity:.1f} req/s (tlab-sim --predict): a burst of {N} at {RATE / TS:.1f} req/s", flush=True)
direct = burst(sim_port, N, RATE)
sim.stop()
sim, sim_port = t.start_sim(["--startup-seconds", "0"], time_scale=TS)
gw.stop()
gw, port = t.start_gateway(sim_port, config=cfg)
for _ in range(4):
    completion(port, 20)
via = burst(port, N, RATE)
g_direct, g_gw = good(direct), good(via)
print(f"burst of {N}: {g_direct} good straight to the worker, {g_gw} through the gateway", flush=True)
t.check(g_gw >= 1.5 * max(g_direct, 1), f"goodput through the gateway {g_gw} vs straight to the worker {g_direct} (>= 1.5x)")
# Straight to the worker everything may miss (at 2x, vLLM admits it all and every step slows), so
# also an absolute floor on what the worker serves in the burst's 10 s (the autopilot spends the
# first real seconds growing its limit from the conservative start). 15 %: two runs in a row alone
# measured 69 % and 31 % (the controller's limit swings under a burst; docs/autopilot.md), beside
# tlab-tune's tests 30 % and under ASan 23 %.
t.check(g_gw >= 0.15 * capacity * 10, f"goodput through the gateway {g_gw} >= 15 % of {capacity * 10:.0f}")
codes = sorted({r[0] for r in via if r})
t.check(set(codes) <= {200, 429, 503}, f"only 200, 429 and 503 through the gateway: {codes}")
refused = [r for r in via if r and r[0] in (429, 503)]
t.check(refused and all(r[1].get("retry-after", "").isdigit() for r in refused if "cannot finish" not in r[2].decode()),
        f"refusals carry Retry-After ({len(refused)} refused)")


def exact_retry(h):
    """A deadline refusal's retry-after-ms: the exact wait behind its whole-second Retry-After."""
    try:
        ra, ms = int(h.get("retry-after", "")), float(h.get("retry-after-ms", ""))
    except ValueError:
        return False
    return 0 < ms <= ra * 1000 and (ra == 1 or ms > (ra - 1) * 1000)


promising = [r for r in refused if b"; retry in " in r[2]]
t.check(promising and all(exact_retry(r[1]) for r in promising),
        f"deadline refusals carry retry-after-ms inside their Retry-After's second "
        f"({[(r[1].get('retry-after'), r[1].get('retry-after-ms')) for r in promising[:5]]})")
served = sorted(r[3] for r in via if r and r[0] == 200)
p95 = served[int(0.95 * (len(served) - 1))] if served else 0
t.check(p95 * 1000 <= 2 * SLO_MS, f"p95 of the served near the SLO: {p95:.2f} s (SLO {SLO_MS / 1000} s)")
rej = t.metric(port, "gateway_queue_rejected_total", 'reason="deadline"') or 0
rej += t.metric(port, "gateway_queue_rejected_total", 'reason="deadline_unreachable"') or 0
t.check(rej == len(refused), f"refusals counted by reason ({rej} counted, {len(refused)} seen)")
lim = t.metric(port, "gateway_autopilot_limit")
t.check(lim is not None and 1 <= lim <= 1024, f"gateway_autopilot_limit {lim}")
t.check((t.metric(port, "gateway_autopilot_tpot_seconds") or 0) > 0, "the measured TPOT is published")
t.check(t.metric(port, "gateway_autopilot_worker_metrics") == 1, "steered by the worker's /metrics")
t.check(t.metric(port, "gateway_slo_attainment") is not None and t.metric(port, "gateway_goodput_rps") is not None,
        "SLO attainment and goodput are published")
# Every refusal with a Retry-After is a promise; the same request sent again inside a promise's
# window is known as its retry (docs/autopilot.md, "Retry-After is kept").
promised = sum(1 for r in refused if r[1].get("retry-after", "").isdigit() and b"; retry in " in r[2])
made = t.metric(port, "gateway_retry_promises_total", 'outcome="made"') or 0
t.check(made >= promised, f"the refusals' Retry-Afters are recorded as promises ({made} made, {promised} seen)")
deadline = time.monotonic() + 12
while time.monotonic() < deadline and not (t.metric(port, "gateway_retry_promises_total", 'outcome="claimed"') or 0):
    completion(port, 200)  # the burst's body again
    time.sleep(0.3)
t.check((t.metric(port, "gateway_retry_promises_total", 'outcome="claimed"') or 0) >= 1,
        "a retry of a refused request inside its promise's window is counted as claimed")

# --- priority shedding: the low class goes first ---
hdr = lambda i: {"x-priority": "high" if i % 2 else "low"}  # noqa: E731
mixed = burst(port, N, RATE, hdr)
low = [r for i, r in enumerate(mixed) if i % 2 == 0]
high = [r for i, r in enumerate(mixed) if i % 2 == 1]
low_refused = sum(1 for r in low if r and r[0] in (429, 503))
high_refused = sum(1 for r in high if r and r[0] in (429, 503))
t.check(low_refused > high_refused, f"low refused more than high ({low_refused} vs {high_refused} of {N // 2} each)")
t.check(t.metric(port, "gateway_queue_rejected_total", 'class="low"') or 0 > 0, "refusals counted by class")
gw.stop()
sim.stop()

# --- tlab-tune's starting point (autopilot.start_file) ---
start = os.path.join(tmp, "tuned-gateway.yaml")
with open(start, "w") as f:
    f.write("# written by tlab-tune\ninitial_limit: 37\nrate_rps: 12.5\ne2e_p95_s: 3.0\n")
sim, sim_port = t.start_sim(["--startup-seconds", "0"], time_scale=TS)
gw, port = t.start_gateway(sim_port, config=cfg, sets=[f"autopilot.start_file={start}"])
t.check(t.metric(port, "gateway_autopilot_limit") == 37, "the autopilot starts from tlab-tune's knee")
gw.stop()
sim.stop()
with open(start, "w") as f:
    f.write("initial_limit: many\n")
r = subprocess.run([os.path.join(t.BIN, "tlab-gateway"), "--check-config", "-c", cfg, "--set", f"autopilot.start_file={start}"],
                   capture_output=True, text=True, timeout=30)
t.check(r.returncode == 2 and start in r.stderr and "initial_limit" in r.stderr,
        f"a bad start file stops the gateway with exit 2, naming it: {r.returncode} {r.stderr.strip()[:200]!r}")
with open(start, "w") as f:
    f.write("initial_limit: [1\n")
r = subprocess.run([os.path.join(t.BIN, "tlab-gateway"), "--check-config", "-c", cfg, "--set", f"autopilot.start_file={start}"],
                   capture_output=True, text=True, timeout=30)
t.check(r.returncode == 2 and re.search(re.escape(start) + r":\d+:\d+:", r.stderr) is not None,
        f"a broken start file: file:line:col, exit 2: {r.returncode} {r.stderr.strip()[:200]!r}")

# --- cold start: judged with the worker's measured start time ---
wport = t.free_port()
scfg = t.write_supervised_config(os.path.join(tmp, "sup.yaml"), wport, '["--startup-seconds", "2"]',
                                 supervisor="      idle_timeout_s: 1\n      sleep_after_s: 0\n"
                                            "      overrides: {max_num_seqs: 4}\n")
gw, port = t.start_gateway(wport, config=scfg)
st, _, _, took = completion(port, 20)  # starts the worker: its start time is measured
t.check(st == 200 and took >= 1.5, f"the first request waits for the cold start ({st}, {took:.1f} s)")
# The supervisor started it with max_num_seqs 4: the gate (8 at the conservative start) goes no
# higher (ABI 1.4, tlab_worker_role.max_num_seqs).
t.check(t.wait_metric(port, "gateway_autopilot_limit", 4, timeout=5),
        f"the gate holds the worker's max_num_seqs 4 from its start: {t.metric(port, 'gateway_autopilot_limit')}")
t.check(t.wait_metric(port, "gateway_worker_state", 0, timeout=15), "the worker stops when idle")
st, h, body, took = completion(port, 20, headers={"x-request-deadline-ms": "800"})
msg = json.loads(body).get("error", {}).get("message", "") if st == 429 else body
t.check(st == 429 and "starting" in msg and exact_retry(h) and took < 1.0,
        f"a deadline shorter than the measured start: 429 at once with Retry-After ({st}, {took:.2f} s, {msg[:160]!r})")
st, _, _, _ = completion(port, 20, headers={"x-request-deadline-ms": "30000"})
t.check(st == 200, f"with room for the start it is served ({st})")
gw.stop()
t.finish()
