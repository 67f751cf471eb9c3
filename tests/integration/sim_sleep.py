#!/usr/bin/env python3
"""sim_sleep.py - tlab-sim's emulation of vLLM's sleep mode: the routes exist only with
--enable-sleep-mode and VLLM_SERVER_DEV_MODE=1; /sleep aborts in-flight requests (mode=abort) or
drains them (mode=wait); the KV cache is empty while asleep; a request sent while asleep waits in the
queue and is served after /wake_up; sleep and wake take the profile's formula (docs/simulator.md)."""
import json
import os
import threading
import time

import simlib
from tlabtest import BIN, Proc, check, finish, free_port, request, wait_http

SIM = os.path.join(BIN, "tlab-sim")
SCALE = 0.25  # a slower clock makes the ~0.1-0.6 s simulated transitions easy to time
hw, m = simlib.profile("hw", "rtx3050-4gb"), simlib.profile("model", "Qwen2.5-0.5B-Instruct")
W = m["params"] * m["dtype_bytes"]
SLEEP1 = W / (hw["h2d_gb_s"] * 1e9)
WAKE1 = W / (hw["h2d_gb_s"] * 1e9) + hw["wake_fixed_s"]
WAKE2 = W / (hw["weight_reload_gb_s"] * 1e9) + hw["wake_fixed_s"]


def start(args, dev):
    port = free_port()
    env = dict(os.environ)
    env.pop("VLLM_SERVER_DEV_MODE", None)
    if dev is not None:
        env["VLLM_SERVER_DEV_MODE"] = dev
    pr = Proc([SIM, "--host", "127.0.0.1", "--port", str(port), "--startup-seconds", "0", *args], "sim", env=env)
    wait_http(port, "/health", timeout=10, proc=pr)
    return pr, port


def timed(port, method, path):
    t0 = time.monotonic()
    st, h, body = request(port, method, path)
    return st, body, (time.monotonic() - t0) * SCALE  # real seconds -> simulated


def is_sleeping(port):
    st, _, body = request(port, "GET", "/is_sleeping")
    check(st == 200, f"/is_sleeping 200, got {st}")
    return json.loads(body)["is_sleeping"]


def near(got, want, what, rel=0.10):
    check(abs(got - want) <= rel * want + 0.004, f"{what}: {got:.4f} s simulated, formula {want:.4f} s")


# 1. Without both the flag and dev mode, the routes do not exist (404 like any unknown route).
for args, dev in [([], "1"), (["--enable-sleep-mode"], None), (["--enable-sleep-mode"], "0")]:
    pr, port = start(args, dev)
    for method, path in [("POST", "/sleep?level=1"), ("POST", "/wake_up"), ("GET", "/is_sleeping")]:
        st, _, body = request(port, method, path)
        check(st == 404 and json.loads(body) == {"detail": "Not Found"}, f"{args} dev={dev}: {path} -> {st}")
    pr.stop()

sim, port = start(["--enable-sleep-mode", "--time-scale", str(SCALE), "--max-model-len", "4096"], "1")
LONG = {"prompt": "x" * 40, "max_tokens": 3000, "ignore_eos": True}
SHORT = {"prompt": "hello", "max_tokens": 4, "ignore_eos": True}

# 2. Awake: serves as usual.
check(is_sleeping(port) is False, "awake at start")
st, _, _ = request(port, "POST", "/v1/completions", SHORT)
check(st == 200, "request before sleep")

# 3. Level 1 with two requests in flight (one streaming, one not): both are aborted.
results = {}


def bg(name, body):
    def run():
        results[name] = request(port, "POST", "/v1/completions", body, timeout=60)
    t = threading.Thread(target=run)
    t.start()
    return t


ta, tb = bg("stream", dict(LONG, stream=True)), bg("plain", LONG)
v = simlib.wait_metric(port, "vllm:num_requests_running", lambda x: x == 2, timeout=5)
check(v == 2, f"two running before sleep: {v}")
st, body, dt = timed(port, "POST", "/sleep?level=1")
check(st == 200 and body == b"", f"/sleep 200 with an empty body: {st} {body!r}")
near(dt, SLEEP1, "level-1 sleep time")
ta.join(10)
tb.join(10)
st, _, data = results["stream"]
ev = simlib.sse_events(data)
check(st == 200 and ev[-1] == "[DONE]" and ev[-2]["choices"][0]["finish_reason"] == "abort", f"stream aborted: {ev[-2:]}")
st, _, data = results["plain"]
check(st == 200 and json.loads(data)["choices"][0]["finish_reason"] == "abort", f"non-stream aborted: {data[:200]}")
mt = simlib.metrics(port)
check(mt["tlab_sim:sleep_aborted_requests_total"] == 2, "2 aborts counted")
check(mt["vllm:request_success_total.abort"] == 2, "finished_reason=abort counted")
check(mt["vllm:kv_cache_usage_perc"] == 0 and mt["vllm:num_requests_running"] == 0, "KV empty while asleep")
check(mt["tlab_sim:is_sleeping"] == 1 and mt["tlab_sim:sleep_level"] == 1 and mt["tlab_sim:sleeps_total"] == 1,
      "sleep gauges")
check(is_sleeping(port) is True, "is_sleeping after /sleep")
st, _, _ = request(port, "GET", "/health")
check(st == 200, "/health stays 200 while asleep")

# 4. A request sent while asleep is accepted and waits; /wake_up answers when awake, then it runs.
tc = bg("asleep", SHORT)
v = simlib.wait_metric(port, "vllm:num_requests_waiting", lambda x: x == 1, timeout=5)
time.sleep(0.4)
check(v == 1 and "asleep" not in results, "request queued, not served, while asleep")
check(simlib.metrics(port)["vllm:kv_cache_usage_perc"] == 0, "queued request holds no KV")
st, body, dt = timed(port, "POST", "/wake_up")
check(st == 200 and body == b"", "/wake_up 200, empty body")
near(dt, WAKE1, "level-1 wake time")
check(2.0 / dt >= 10, f"level-1 wake ({dt:.3f} s) >= 10x faster than the default 2 s cold start")
tc.join(10)
st, _, data = results.get("asleep", (0, 0, b"{}"))
check(st == 200 and json.loads(data)["choices"][0]["finish_reason"] == "length", "queued request served after wake")
check(is_sleeping(port) is False, "awake after /wake_up")
mt = simlib.metrics(port)
check(mt["tlab_sim:is_sleeping"] == 0 and mt["tlab_sim:sleep_level"] == 0 and mt["tlab_sim:wakes_total"] == 1,
      "wake gauges")
st, _, _ = request(port, "POST", "/v1/completions", SHORT)
check(st == 200, "request after wake")

# 5. Level 2: free to fall asleep, the wake reloads the weights.
st, _, dt = timed(port, "POST", "/sleep?level=2")
check(st == 200 and dt < 0.05, f"level-2 sleep is quick: {dt:.3f}")
check(simlib.metrics(port)["tlab_sim:sleep_level"] == 2, "sleep_level 2")
st, _, dt = timed(port, "POST", "/wake_up")
near(dt, WAKE2, "level-2 wake time")

# 6. Partial wake by tags: still asleep until both weights and KV cache are back.
request(port, "POST", "/sleep?level=1")
st, _, dt = timed(port, "POST", "/wake_up?tags=weights")
near(dt, W / (hw["h2d_gb_s"] * 1e9), "weights-only wake")
check(is_sleeping(port) is True, "still sleeping after tags=weights")
request(port, "POST", "/wake_up?tags=kv_cache")
check(is_sleeping(port) is False, "awake after tags=kv_cache")
st, _, body = request(port, "POST", "/wake_up")
check(st == 200, "/wake_up while awake is a no-op 200")

# 7. mode=wait: the running request finishes normally, then the engine sleeps.
base = simlib.metrics(port)["tlab_sim:sleep_aborted_requests_total"]
td = bg("wait", dict(SHORT, max_tokens=40))
simlib.wait_metric(port, "vllm:num_requests_running", lambda x: x == 1, timeout=5)
st, _, _ = request(port, "POST", "/sleep?level=1&mode=wait")
td.join(10)
st2, _, data = results["wait"]
check(st == 200 and st2 == 200 and json.loads(data)["choices"][0]["finish_reason"] == "length", "wait mode drains")
check(simlib.metrics(port)["tlab_sim:sleep_aborted_requests_total"] == base, "wait mode aborts nothing")
check(is_sleeping(port) is True, "asleep after mode=wait")
request(port, "POST", "/wake_up")

# 8. Bad parameters.
st, _, _ = request(port, "POST", "/sleep?level=abc")
check(st == 500, f"non-integer level -> 500 (vLLM's int() raises): {st}")
st, _, _ = request(port, "GET", "/sleep")
check(st == 405, "GET /sleep -> 405")

log = sim.output()
check("seconds to fall asleep." in log and "seconds to wake up tags" in log, "vLLM's sleep/wake log lines")
simlib.stop_clean(sim)
finish()
