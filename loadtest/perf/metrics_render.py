#!/usr/bin/env python3
"""Cost of GET /metrics on the gateway's event loop, under load.

Usage: metrics_render.py [--seconds S] [--clients N] [--build DIR]
Starts tlab-sim (time-scale 1000, so the worker is not the limit) and tlab-gateway with the
default plugin chain (queue, batching, metrics), drives N closed-loop clients of small
non-streaming completions for S seconds, and scrapes /metrics every 50 ms meanwhile. Prints
the request rate, the scrape latency seen by the client, the exposition size, and the render
time the plugin itself measured (gateway_metrics_render_seconds).
"""
import argparse
import http.client
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))
ap = argparse.ArgumentParser()
ap.add_argument("--seconds", type=float, default=20)
ap.add_argument("--clients", type=int, default=16)
ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build"))
args = ap.parse_args()
os.environ.setdefault("TLAB_BIN_DIR", os.path.join(os.path.abspath(args.build), "bin"))
os.environ.setdefault("TLAB_PLUGIN_DIR", os.path.join(os.path.abspath(args.build), "lib", "plugins"))
import tlabtest as t  # noqa: E402

sim, sim_port = t.start_sim(["--startup-seconds", "0", "--max-model-len", "512"], time_scale=1000)
gw, port = t.start_gateway(sim_port, config=os.path.join(t.SRC, "configs", "gateway.yaml"), sets=["log.level=warn"])
body = json.dumps({"model": "Qwen/Qwen2.5-0.5B-Instruct", "prompt": "hi", "max_tokens": 4})
stop = time.monotonic() + args.seconds
done = [0]


def client():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.monotonic() < stop:
        c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        done[0] += 1


threads = [threading.Thread(target=client) for _ in range(args.clients)]
t0 = time.monotonic()
for th in threads:
    th.start()
scrapes, size, text = [], 0, ""
mc = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
while time.monotonic() < stop:
    s0 = time.perf_counter()
    mc.request("GET", "/metrics")
    resp = mc.getresponse()
    text = resp.read().decode()
    scrapes.append((time.perf_counter() - s0) * 1e6)
    size = len(text)
    time.sleep(0.05)
for th in threads:
    th.join()
elapsed = time.monotonic() - t0
m_sum = float(re.search(r"^gateway_metrics_render_seconds_sum (\S+)$", text, re.M).group(1))
m_cnt = float(re.search(r"^gateway_metrics_render_seconds_count (\S+)$", text, re.M).group(1))
series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
scrapes.sort()
q = lambda p: scrapes[min(len(scrapes) - 1, int(p / 100 * len(scrapes)))]  # noqa: E731
print(f"load: {done[0]} requests in {elapsed:.1f} s = {done[0] / elapsed:.0f} req/s through the gateway ({args.clients} clients)")
print(f"/metrics: {len(scrapes)} scrapes, {size} bytes, {series} series")
print(f"scrape latency at the client (µs): p50 {q(50):.0f}  p99 {q(99):.0f}  max {scrapes[-1]:.0f}")
print(f"render time on the loop (gateway_metrics_render_seconds): mean {m_sum / m_cnt * 1e6:.0f} µs over {m_cnt:.0f} renders")
t.stop_all()
