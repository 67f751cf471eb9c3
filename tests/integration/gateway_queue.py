#!/usr/bin/env python3
"""The queue plugin in a running gateway in front of tlab-sim:
- a burst larger than max_inflight: the worker never holds more than max_inflight requests at once
  (tlab-sim's tlab_sim:peak_requests), nothing is lost, and the queue drains to 0;
- a request that outwaits queue_timeout_ms gets 503 with Retry-After;
- a client that leaves while queued is removed at once and never reaches the worker;
- a full queue answers 429 with Retry-After;
- a body changed while its request waited in the queue reaches the worker: a Lua clamp made at
  admission, a plugin editing it after the wait (the gateway dropped the parsed copy of the waiting
  body and parses it again), and a plugin editing through a pointer it took before the wait.
"""
import json
import os
import socket
import tempfile
import threading
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"




def config(text):
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    f.write(text)
    f.close()
    return f.name


def completion(port, max_tokens=20, results=None, idx=None, headers=None):
    st, h, body = t.request(port, "POST", "/v1/completions",
                            {"model": MODEL, "prompt": "hello there", "max_tokens": max_tokens, "ignore_eos": True},
                            headers=headers, timeout=60)
    if results is not None:
        results[idx] = (st, h, body)
    return st, h, body


# --- burst of 60 against max_inflight 8 ---
sim, sim_port = t.start_sim(["--max-model-len", "512", "--startup-seconds", "0"], time_scale=5)
cfg = config("plugins:\n  - name: queue\n    config: {max_inflight: 8, max_depth: 500, queue_timeout_ms: 60000}\n"
             "  - name: metrics\n")
gw, port = t.start_gateway(sim_port, config=cfg)
N = 60
results = [None] * N
threads = [threading.Thread(target=completion, args=(port, 150, results, i)) for i in range(N)]  # long enough to pile up
for th in threads:
    th.start()
max_depth_seen = 0
while any(th.is_alive() for th in threads):
    max_depth_seen = max(max_depth_seen, t.metric(port, "gateway_queue_depth") or 0)
    time.sleep(0.02)
for th in threads:
    th.join()
ok = sum(1 for r in results if r and r[0] == 200)
t.check(ok == N, f"all {N} requests answered 200 ({ok})")
peak = t.metric(sim_port, "tlab_sim:peak_requests")
t.check(peak is not None and 1 <= peak <= 8, f"the worker never held more than max_inflight=8 (peak {peak})")
t.check(max_depth_seen >= 20, f"the backlog waited in the gateway queue (max depth seen {max_depth_seen})")
t.check(t.metric(port, "gateway_queue_depth") == 0 and t.metric(port, "gateway_in_flight") == 0, "queue and in-flight back to 0")
t.check(t.metric(port, "gateway_requests_total", 'code="200"') == N, "gateway_requests_total counts them")
gw.stop()

# --- queue timeout: one slot, a long request holds it, the next outwaits 300 ms ---
cfg = config("plugins:\n  - name: queue\n    config: {max_inflight: 1, queue_timeout_ms: 300, retry_after_s: 2}\n"
             "  - name: metrics\n")
gw, port = t.start_gateway(sim_port, config=cfg)
holder = threading.Thread(target=completion, args=(port, 400))
holder.start()
time.sleep(0.2)
t0 = time.monotonic()
st, h, body = completion(port, 5)
took = time.monotonic() - t0
t.check(st == 503 and h.get("retry-after") == "2", f"queue timeout: 503 with Retry-After 2 ({st} {h.get('retry-after')})")
t.check(json.loads(body)["error"]["type"] == "queue_timeout", f"error type queue_timeout: {body}")
t.check(0.25 < took < 2.0, f"answered near the 300 ms deadline ({took:.2f} s)")
t.check(t.metric(port, "gateway_queue_timeouts_total") == 1, "queue timeout counted")

# --- a client that leaves while queued is removed at once and never reaches the worker ---
sim_requests_before = t.metric(sim_port, "vllm:request_success_total") or 0
aborted_before = t.metric(sim_port, "tlab_sim:aborted_requests_total") or 0
s = socket.create_connection(("127.0.0.1", port))
body = json.dumps({"model": MODEL, "prompt": "x", "max_tokens": 5}).encode()
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
          % len(body) + body)
deadline = time.monotonic() + 3
while t.metric(port, "gateway_queue_depth") != 1 and time.monotonic() < deadline:
    time.sleep(0.01)
t.check(t.metric(port, "gateway_queue_depth") == 1, "the request is queued")
s.close()
deadline = time.monotonic() + 3
while t.metric(port, "gateway_queue_depth") != 0 and time.monotonic() < deadline:
    time.sleep(0.01)
t.check(t.metric(port, "gateway_queue_depth") == 0, "removed from the queue when its client left")
t.check(t.metric(port, "gateway_requests_total", 'code="499"') == 1, "counted as 499")
holder.join()
t.check((t.metric(sim_port, "vllm:request_success_total") or 0) - sim_requests_before == 1,
        "only the holder reached the worker")
t.check((t.metric(sim_port, "tlab_sim:aborted_requests_total") or 0) == aborted_before, "no abort at the worker either")
gw.stop()

# --- a body changed while the request waited reaches the worker ---
# A waiting request keeps only its body's bytes. tlab-sim generates exactly max_tokens tokens with
# ignore_eos, so usage.completion_tokens shows the max_tokens the worker received.
TEST_PLUGINS = os.path.join(os.path.dirname(t.BIN), "tests", "unit", "fixture-plugins")
with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
    f.write("function on_request(req)\n  if req.max_tokens == 11 then gw.clamp_max_tokens(4) end\nend\n")
    adm = f.name
cfg = config(f"policies:\n  admission: {adm}\n"
             "plugins:\n  - name: queue\n    config: {max_inflight: 1, queue_timeout_ms: 60000}\n"
             f"  - name: body_editor\n    path: {TEST_PLUGINS}/body_editor.so\n  - name: metrics\n")
gw, port = t.start_gateway(sim_port, config=cfg)
holder = threading.Thread(target=completion, args=(port, 400))
holder.start()
time.sleep(0.2)
cases = [  # (what, body fields, headers, completion tokens the worker must produce)
    ("clamped by the policy at admission", {"max_tokens": 11}, None, 4),
    ("edited by a plugin after the wait", {"max_tokens": 20, "tlab_test_max_tokens": 3}, None, 3),
    ("edited through a pointer taken before the wait", {"max_tokens": 20, "tlab_test_max_tokens": 5},
     {"x-test-hold-pointer": "1"}, 5),
    ("left alone", {"max_tokens": 6}, None, 6),
]
results = [None] * len(cases)


def edited(i, fields, headers):
    results[i] = t.request(port, "POST", "/v1/completions",
                           dict({"model": MODEL, "prompt": "hello there", "ignore_eos": True}, **fields),
                           headers=headers, timeout=60)


threads = [threading.Thread(target=edited, args=(i, c[1], c[2])) for i, c in enumerate(cases)]
for th in threads:
    th.start()
    time.sleep(0.03)  # queued in this order
deadline = time.monotonic() + 3
while t.metric(port, "gateway_queue_depth") != len(cases) and time.monotonic() < deadline:
    time.sleep(0.01)
t.check(t.metric(port, "gateway_queue_depth") == len(cases) and holder.is_alive(),
        f"all {len(cases)} wait in the queue behind the holder")
holder.join()
for th in threads:
    th.join()
for (what, fields, headers, want), (st, h, body) in zip(cases, results):
    got = json.loads(body)["usage"]["completion_tokens"] if st == 200 else None
    t.check(st == 200 and got == want, f"{what}: the worker got max_tokens {want} ({st}, {got}, {body[:200]})")
    if "tlab_test_max_tokens" in fields:
        t.check(h.get("x-body-editor") == MODEL, f"{what}: the plugin read the original body ({h.get('x-body-editor')})")
gw.stop()

# --- a full queue answers 429 with Retry-After ---
cfg = config("plugins:\n  - name: queue\n    config: {max_inflight: 1, max_depth: 2, retry_after_s: 3}\n")
gw, port = t.start_gateway(sim_port, config=cfg)
results = [None] * 6
threads = [threading.Thread(target=completion, args=(port, 400, results, i)) for i in range(6)]  # each ~1 s
for th in threads:
    th.start()
    time.sleep(0.03)
for th in threads:
    th.join()
codes = sorted(r[0] for r in results)
t.check(codes == [200, 200, 200, 429, 429, 429], f"1 in flight + 2 queued served, 3 refused: {codes}")
refused = [r for r in results if r[0] == 429]
t.check(all(r[1].get("retry-after") == "3" for r in refused), "429s carry Retry-After 3")
t.check(all(json.loads(r[2])["error"]["type"] == "rate_limit_exceeded" for r in refused), "429 in OpenAI's error shape")
t.finish()
