#!/usr/bin/env python3
"""Gateway added latency at concurrency 1: the same requests sent straight to a worker and through
tlab-gateway, interleaved so both see the same worker state.

Usage: gateway_overhead.py [--requests N] [--time-scale F] [--stream] [--build DIR]
Starts tlab-sim (rtx3050-4gb, Qwen2.5-0.5B) and tlab-gateway on free loopback ports, sends N
completions requests each way (max_tokens 16), and prints p50/p90/p99 of:
  - end-to-end latency direct, through the gateway, and their per-pair difference;
  - the gateway's own x-tlab-overhead-us header.
A high --time-scale makes the simulated worker fast, so the gateway's share is visible.
Results are what this run measured; nothing is fixed in the script.
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "integration"))

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--requests", type=int, default=2000)
ap.add_argument("--time-scale", type=float, default=100.0)
ap.add_argument("--max-tokens", type=int, default=16)
ap.add_argument("--stream", action="store_true")
ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build"))
args = ap.parse_args()
os.environ.setdefault("TLAB_BIN_DIR", os.path.join(os.path.abspath(args.build), "bin"))
os.environ.setdefault("TLAB_PLUGIN_DIR", os.path.join(os.path.abspath(args.build), "lib", "plugins"))
import tlabtest as t  # noqa: E402

sim, sim_port = t.start_sim(["--startup-seconds", "0", "--max-model-len", "512"], time_scale=args.time_scale)
gw, gw_port = t.start_gateway(sim_port, sets=["log.level=warn"])
body = json.dumps({"model": "Qwen/Qwen2.5-0.5B-Instruct", "prompt": "The quick brown fox jumps over the lazy dog.",
                   "max_tokens": args.max_tokens, "ignore_eos": True, "stream": args.stream})
conns = {p: http.client.HTTPConnection("127.0.0.1", p, timeout=30) for p in (sim_port, gw_port)}


def one(port):
    c = conns[port]
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    dt = time.perf_counter() - t0
    if r.status != 200:
        raise SystemExit(f"status {r.status} from port {port}")
    return dt * 1e6, r.getheader("x-tlab-overhead-us")


for _ in range(50):  # warm-up: connections, caches
    one(sim_port), one(gw_port)
direct, through, diff, overhead = [], [], [], []
for i in range(args.requests):
    order = (sim_port, gw_port) if i % 2 == 0 else (gw_port, sim_port)
    res = {p: one(p) for p in order}
    d, g = res[sim_port][0], res[gw_port][0]
    direct.append(d)
    through.append(g)
    diff.append(g - d)
    overhead.append(float(res[gw_port][1]))


def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


print(f"gateway overhead, concurrency 1, {args.requests} requests each way, "
      f"{'streaming' if args.stream else 'non-streaming'}, max_tokens {args.max_tokens}, sim time-scale {args.time_scale}")
print(f"{'metric (µs)':<34}{'p50':>10}{'p90':>10}{'p99':>10}{'mean':>10}")
for name, xs in (("e2e direct to tlab-sim", direct), ("e2e through tlab-gateway", through),
                 ("added e2e (through - direct)", diff), ("x-tlab-overhead-us header", overhead)):
    print(f"{name:<34}{q(xs, 50):>10.0f}{q(xs, 90):>10.0f}{q(xs, 99):>10.0f}{statistics.mean(xs):>10.0f}")
t.stop_all()
