#!/usr/bin/env python3
"""Graceful shutdown: on SIGTERM the gateway answers new requests with 503, lets the in-flight
stream finish whole, and exits 0. Its probes: /readyz answers 503 while it drains (a Service stops
sending it requests), /livez 200 (a drain is no reason to restart it)."""
import signal
import threading
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
sim, sim_port = t.start_sim(["--max-model-len", "512", "--startup-seconds", "0"])
gw, port = t.start_gateway(sim_port)

result = {}


def long_stream():
    s = t.Stream(port, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 150,
                        "ignore_eos": True, "stream": True}, timeout=30)
    for _ in s.lines():
        if s.events and "started" not in result:
            result["started"] = time.monotonic()
    result["data"] = s.data()


th = threading.Thread(target=long_stream)
th.start()
deadline = time.monotonic() + 10
while "started" not in result and time.monotonic() < deadline:
    time.sleep(0.01)
t.check("started" in result, "stream started before the signal")
t.check(t.request(port, "GET", "/readyz")[0] == 200 and t.request(port, "GET", "/livez")[0] == 200,
        "before the signal: ready and alive")
gw.p.send_signal(signal.SIGTERM)
time.sleep(0.1)
st, h, body = t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": "hi", "max_tokens": 1})
t.check(st == 503 and b"shutting down" in body, f"new request during drain gets 503: {st} {body}")
rz, lz = t.request(port, "GET", "/readyz"), t.request(port, "GET", "/livez")
t.check(rz[0] == 503 and b"draining" in rz[2] and lz[0] == 200, f"while draining: /readyz 503, /livez 200 ({rz[0]}, {lz[0]})")
th.join(30)
data = result.get("data", [])
t.check(len(data) >= 151 and "[DONE]" in data, f"in-flight stream finished whole ({len(data)} events)")
try:
    rc = gw.p.wait(10)
except Exception:
    rc = None
t.check(rc == 0, f"gateway exited 0 after draining (got {rc})")
t.finish()
