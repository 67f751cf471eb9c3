#!/usr/bin/env python3
"""The supervisor's idle ladder with tlab-sim's sleep mode, at tlab-sim's default start-up
(2 s) and wake times (rtx3050-4gb profile), time-scale 1:
- running -> sleeping -> woken -> running, and running -> sleeping -> stopped -> started, under
  intermittent load: no request lost;
- the first request after a sleep is compared with the first request after a stop (goal: >= 10x);
- a sleep never cuts a request in flight;
- a worker without sleep mode is detected (404) and the ladder falls back to stop and start.
"""
import os
import tempfile
import threading
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
tmp = tempfile.mkdtemp(prefix="tlab-sleep-")


def gateway(sleep_after=1, idle=5, extra="", sim_args="[]", top=""):
    wport = t.free_port()
    cfg = os.path.join(tmp, f"gw-{wport}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""upstream:
  url: http://127.0.0.1:{wport}
plugins:
  - name: queue
  - name: supervisor
    config:
      engine: sim
      profile: safe
      profiles_dir: {t.SRC}/configs/model_profiles
      sim_command: {os.path.join(t.BIN, "tlab-sim")}
      sim_args: {sim_args}
      sleep_after_s: {sleep_after}
      sleep_level: 1
      idle_timeout_s: {idle}
      log_file: {tmp}/worker-{wport}.log
{extra}
  - name: metrics
{top}""")
    return t.start_gateway(wport, config=cfg, sets=[f"upstream.url=http://127.0.0.1:{wport}"])






# The ladder's clients accept a cold start: a deadline longer than a 15 s start (the default,
# the 5 s SLO, is refused at once while the worker is stopped; checked below).
PATIENT = {"x-request-deadline-ms": "60000"}


def timed(port, max_tokens=4, headers=PATIENT):
    t0 = time.monotonic()
    st, _, body = t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": "hi", "max_tokens": max_tokens,
                                                            "ignore_eos": True},
                            headers=headers, timeout=60)
    return st, time.monotonic() - t0


def ladder(sim_args, label):
    """Runs 3 sleep/wake cycles and 2 sleep/stop/start cycles; returns (after_sleep_ms, after_stop_ms)."""
    gw, port = gateway(sleep_after=1, idle=5, sim_args=sim_args)
    st, _ = timed(port)
    t.check(st == 200, f"{label}: first request starts the worker ({st})")
    after_sleep, after_stop, failures = [], [], 0
    for cycle in range(3):
        t.check(t.wait_metric(port, 'gateway_worker_state', 4, timeout=5), f"{label} cycle {cycle}: asleep after sleep_after_s")
        results = []  # intermittent load: a burst arrives while asleep; the first one wakes the worker
        lock = threading.Lock()

        def one():
            r = timed(port)
            with lock:
                results.append(r)
        threads = [threading.Thread(target=one) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        failures += sum(1 for st, _ in results if st != 200)
        after_sleep.append(min(d for _, d in results))
        t.check(t.metric(port, "gateway_worker_state") == 2, f"{label}: running again after the wake")
    for cycle in range(2):
        t.check(t.wait_metric(port, 'gateway_worker_state', 4, timeout=5) and t.wait_metric(port, 'gateway_worker_state', 0, timeout=10), f"{label} stop cycle {cycle}: asleep, then stopped")
        st, d = timed(port, 4)
        failures += st != 200
        after_stop.append(d)
    t.check(failures == 0, f"{label}: no request lost across sleeps, wakes, stops and starts ({failures} failed)")
    t.check(t.metric(port, "gateway_worker_wakes_total") == 3 and t.metric(port, "gateway_worker_sleeps_total") == 5,
            f"{label}: wakes {t.metric(port, 'gateway_worker_wakes_total')}, sleeps {t.metric(port, 'gateway_worker_sleeps_total')}")
    gw.stop()
    sleep_ms = sorted(after_sleep)[len(after_sleep) // 2] * 1000
    stop_ms = sorted(after_stop)[len(after_stop) // 2] * 1000
    print(f"{label}: first-request latency after sleep {sleep_ms:.0f} ms (median of 3), after stop {stop_ms:.0f} ms "
          f"(median of 2): {stop_ms / sleep_ms:.1f}x", flush=True)
    return sleep_ms, stop_ms


# tlab-sim's defaults: a 2 s cold start, a 0.18 s level-1 wake (rtx3050-4gb).
sleep_ms, stop_ms = ladder("[]", "sim defaults")
t.check(stop_ms / sleep_ms >= 5, f"defaults: waking is several times faster than starting ({stop_ms / sleep_ms:.1f}x)")
# A vLLM-like cold start (tens of seconds: compile and CUDA graphs); the goal is >= 10x.
sleep_ms, stop_ms = ladder('["--startup-seconds", "15"]', "15 s cold start")
t.check(stop_ms / sleep_ms >= 10, f"with a vLLM-like cold start, waking is >= 10x faster ({stop_ms / sleep_ms:.1f}x)")

# A start longer than the SLO: a request with the default deadline is refused at once (429 with a
# Retry-After from the measured start time), the worker starts anyway, and the retry is served.
# Also with the worker's metrics unread: the first request waited on the start and is no sample, so
# the gateway then knows the start time and no service time, and must still refuse.
for label, top in (("worker metrics read", ""), ("no service time measured", "autopilot:\n  worker_metrics: false\n")):
    gw, port = gateway(sleep_after=30, idle=1, sim_args='["--startup-seconds", "6"]', top=top)
    st, _ = timed(port)
    t.check(st == 200 and t.wait_metric(port, 'gateway_worker_state', 0, timeout=10), f"{label}: started once, then stopped ({st})")
    t0 = time.monotonic()
    st, hdrs, body = t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": "hi", "max_tokens": 4}, timeout=30)
    refused_in = time.monotonic() - t0
    retry = int(hdrs.get("retry-after", "0"))
    t.check(st == 429 and refused_in < 2 and 1 <= retry <= 10 and b"starting" in body,
            f"{label}: default deadline against a 6 s start: {st} in {refused_in:.1f} s, Retry-After {retry}: {body[:300]}")
    t.check(t.wait_metric(port, 'gateway_worker_state', 2, timeout=30), f"{label}: the refused request started the worker")
    st, _ = timed(port, headers={})
    t.check(st == 200, f"{label}: the retry is served ({st})")
    gw.stop()

# A sleep never cuts a request in flight: sleep_after 1 s, a ~2.5 s request.
gw, port = gateway(sleep_after=1, idle=30)
timed(port)
out = []
th = threading.Thread(target=lambda: out.append(timed(port, 480)))  # ~3.4 s of decoding
th.start()
time.sleep(2.0)
st_now = t.metric(port, "gateway_worker_state")
t.check(st_now == 2, f"no sleep while a request is in flight (state {st_now}, {out})")
th.join(30)
t.check(out and out[0][0] == 200, "the long request completed")
t.check(t.wait_metric(port, 'gateway_worker_state', 4, timeout=5), "then the worker sleeps")
gw.stop()

# A worker without sleep mode: the ladder falls back to stop and start.
gw, port = gateway(sleep_after=1, idle=3, extra="      sleep_mode_flag: false")
timed(port)
time.sleep(1.8)
t.check(t.metric(port, "gateway_worker_state") == 2, "still running: /sleep answered 404")
t.check(t.wait_metric(port, 'gateway_worker_state', 0, timeout=5), "stopped at idle_timeout_s instead")
t.check("has no sleep mode" in gw.output(), "the fallback is logged")
st, _ = timed(port)
t.check(st == 200 and t.metric(port, "gateway_worker_starts_total") == 2, "and started again on demand")
t.finish()
