#!/usr/bin/env python3
"""The queue plugin in a running gateway in front of tlab-sim:
- a burst larger than max_inflight: the worker never holds more than max_inflight requests at once
  (tlab-sim's tlab_sim:peak_requests), nothing is lost, and the queue drains to 0;
- a request that outwaits queue_timeout_ms gets 503 with Retry-After;
- a client that leaves while queued is removed at once and never reaches the worker;
- a full queue answers 429 with Retry-After.
"""
import json
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
threads = [threading.Thread(target=completion, args=(port, 30, results, i)) for i in range(N)]
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
