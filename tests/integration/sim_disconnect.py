#!/usr/bin/env python3
"""sim_disconnect.py - a client that goes away aborts its sequence at once, as vLLM does: for streaming
and non-streaming requests, running or still waiting. The abort is visible in /metrics
(tlab_sim:aborted_requests_total), and the request's KV blocks are freed (kv usage back to 0)."""
import time

import simlib
from tlabtest import check, finish, start_sim

# max_num_seqs 1: a second request must wait behind the first one.
sim, port = start_sim(args=["--startup-seconds", "0", "--max-num-seqs", "1", "--max-num-batched-tokens", "2048",
                            "--max-model-len", "8192"])
LONG = {"prompt": list(range(100)), "max_tokens": 8000, "ignore_eos": True}


def aborted():
    return simlib.metrics(port).get("tlab_sim:aborted_requests_total", 0)


def wait_for(name, pred, what):
    v = simlib.wait_metric(port, name, pred, timeout=3)
    check(v is not None and pred(v), f"{what}: {name}={v}")


for stream in (False, True):
    body = dict(LONG, stream=stream)
    kind = "stream" if stream else "non-stream"

    # Running request dropped.
    base = aborted()
    a = simlib.open_raw(port, "/v1/completions", body)
    wait_for("vllm:num_requests_running", lambda v: v == 1, f"{kind} running")
    wait_for("vllm:kv_cache_usage_perc", lambda v: v > 0, f"{kind} holds KV")
    t0 = time.monotonic()
    a.close()
    wait_for("tlab_sim:aborted_requests_total", lambda v: v == base + 1, f"{kind} running aborted")
    check(time.monotonic() - t0 < 1.0, f"{kind} running abort seen within 1 s")
    wait_for("vllm:num_requests_running", lambda v: v == 0, f"{kind} no longer running")
    wait_for("vllm:kv_cache_usage_perc", lambda v: v == 0, f"{kind} KV freed")

    # Waiting request dropped while another runs.
    base = aborted()
    a = simlib.open_raw(port, "/v1/completions", body)
    wait_for("vllm:num_requests_running", lambda v: v == 1, f"{kind} first running")
    b = simlib.open_raw(port, "/v1/completions", body)
    wait_for("vllm:num_requests_waiting", lambda v: v == 1, f"{kind} second waiting")
    b.close()
    wait_for("tlab_sim:aborted_requests_total", lambda v: v == base + 1, f"{kind} waiting aborted")
    wait_for("vllm:num_requests_waiting", lambda v: v == 0, f"{kind} waiting queue empty")
    check(simlib.metrics(port)["vllm:num_requests_running"] == 1, f"{kind} first still running")
    a.close()
    wait_for("tlab_sim:aborted_requests_total", lambda v: v == base + 2, f"{kind} first aborted too")
    wait_for("vllm:kv_cache_usage_perc", lambda v: v == 0, f"{kind} all KV freed")

# Half-close (client shuts down its write side only, like some proxies) also counts as gone.
base = aborted()
a = simlib.open_raw(port, "/v1/completions", dict(LONG, stream=True))
wait_for("vllm:num_requests_running", lambda v: v == 1, "half-close running")
import socket  # noqa: E402
a.shutdown(socket.SHUT_WR)
wait_for("tlab_sim:aborted_requests_total", lambda v: v == base + 1, "half-close aborted")
a.close()

# The server is still healthy and serves new requests.
st = simlib.metrics(port)
check(st["vllm:num_requests_running"] == 0 and st["vllm:num_requests_waiting"] == 0, "idle after aborts")
from tlabtest import request  # noqa: E402
s, _, _ = request(port, "POST", "/v1/completions", {"prompt": "x", "max_tokens": 2})
check(s == 200, "still serving")
simlib.stop_clean(sim)
finish()
