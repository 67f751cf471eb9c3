#!/usr/bin/env python3
"""Graceful shutdown: on SIGTERM the gateway answers new requests with 503, lets the in-flight
stream finish whole, and exits 0."""
import json
import signal
import socket
import threading
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
sim, sim_port = t.start_sim(["--max-model-len", "512", "--startup-seconds", "0"])
gw, port = t.start_gateway(sim_port)

result = {}


def long_stream():
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 150,
                       "ignore_eos": True, "stream": True}).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        if b"data: " in data and "started" not in result:
            result["started"] = time.monotonic()
    result["data"] = data


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
data = result.get("data", b"")
t.check(data.count(b"data: ") >= 151 and b"data: [DONE]" in data, f"in-flight stream finished whole ({data.count(b'data: ')} events)")
try:
    rc = gw.p.wait(10)
except Exception:
    rc = None
t.check(rc == 0, f"gateway exited 0 after draining (got {rc})")
t.finish()
