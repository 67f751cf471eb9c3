#!/usr/bin/env python3
"""Graceful shutdown: on SIGTERM the gateway answers new requests with 503, lets the in-flight
stream finish whole, and exits 0."""
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
gw.p.send_signal(signal.SIGTERM)
time.sleep(0.1)
st, h, body = t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": "hi", "max_tokens": 1})
t.check(st == 503 and b"shutting down" in body, f"new request during drain gets 503: {st} {body}")
th.join(30)
data = result.get("data", [])
t.check(len(data) >= 151 and "[DONE]" in data, f"in-flight stream finished whole ({len(data)} events)")
try:
    rc = gw.p.wait(10)
except Exception:
    rc = None
t.check(rc == 0, f"gateway exited 0 after draining (got {rc})")
t.finish()
