#!/usr/bin/env python3
"""Gateway integration: real tlab-gateway in front of a real tlab-sim on loopback.

Covers: non-streaming chat and completions, streaming relayed chunk by chunk (the first chunk
arrives long before the worker finishes), OpenAI-shaped errors (404, 405, 400, 413), a worker's
own 4xx passed through, client disconnect aborting the worker's sequence, keep-alive reuse and
the idle lifetime, first-byte timeout -> 504, worker down -> 503.
"""
import json
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
PROMPT = open(f"{t.SRC}/configs/prompts/prompt_200.txt").read()






def error_shape(body):
    e = json.loads(body).get("error", {})
    return set(e.keys()) == {"message", "type", "param", "code"} and isinstance(e["message"], str)


sim, sim_port = t.start_sim(["--max-model-len", "512", "--startup-seconds", "0"])
# The autopilot's /metrics scrape would share the counted connections: off here.
NO_SCRAPE = "autopilot.worker_metrics=false"
gw, port = t.start_gateway(sim_port, sets=[NO_SCRAPE])

# --- non-streaming chat and completions ---
st, h, body = t.request(port, "POST", "/v1/chat/completions",
                        {"model": "Qwen/Qwen2.5-0.5B-Instruct", "messages": [{"role": "user", "content": PROMPT}],
                         "max_tokens": 16, "temperature": 0})
t.check(st == 200, f"chat 200, got {st} {body[:200]}")
reply = json.loads(body)
t.check(reply.get("object") == "chat.completion", "chat object")
t.check(reply.get("usage", {}).get("prompt_tokens", 0) > 150, f"usage relayed: {reply.get('usage')}")
t.check(int(h.get("x-tlab-overhead-us", "-1")) >= 0, "x-tlab-overhead-us header")
t.check(h.get("x-request-id", "").startswith("req-"), "x-request-id header")

st, h, body = t.request(port, "POST", "/v1/completions",
                        {"model": "Qwen/Qwen2.5-0.5B-Instruct", "prompt": list(range(1, 201)), "max_tokens": 8,
                         "ignore_eos": True, "min_tokens": 8})
t.check(st == 200, f"completions with token ids 200, got {st} {body[:200]}")
comp = json.loads(body)
t.check(comp.get("usage", {}).get("prompt_tokens") == 200, f"200 token ids counted: {comp.get('usage')}")
t.check(comp.get("usage", {}).get("completion_tokens") == 8, "vLLM extras passed through (ignore_eos, min_tokens)")

# --- streaming: chunks relayed as they come ---
st = t.Stream(port, {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}],
                     "max_tokens": 60, "ignore_eos": True, "stream": True}, timeout=20)
status, headers, events = st.status, st.headers, st.read()
t.check(status == 200, f"stream status {status}")
t.check(headers.get("content-type", "").startswith("text/event-stream"), "stream content type")
t.check(headers.get("cache-control") == "no-cache" and headers.get("x-accel-buffering") == "no",
        f"anti-buffering headers: {headers}")
t.check(len(events) >= 61 and events[-1][1] == "[DONE]", f"all chunks then [DONE]: {len(events)}")
if len(events) > 10:
    first, last = events[0][0], events[-1][0]
    distinct = len({round(e[0], 3) for e in events})
    t.check(first < last * 0.5, f"first chunk at {first:.3f}s, long before the end at {last:.3f}s")
    t.check(distinct > 20, f"chunks arrive incrementally ({distinct} distinct arrival times)")

# --- /v1/models comes from the worker ---
st, h, body = t.request(port, "GET", "/v1/models")
t.check(st == 200 and json.loads(body)["data"][0]["id"] == MODEL, f"/v1/models relayed: {st} {body[:200]}")

# --- errors in OpenAI's shape ---
st, h, body = t.request(port, "GET", "/nope")
t.check(st == 404 and error_shape(body), f"404 shape {st} {body}")
st, h, body = t.request(port, "GET", "/v1/chat/completions")
t.check(st == 405 and error_shape(body) and h.get("allow") == "POST", f"405 shape {st} {body} {h}")
st, h, body = t.request(port, "POST", "/v1/chat/completions", '{"messages": [')
t.check(st == 400 and error_shape(body) and b"line" in body, f"400 on bad JSON names line/col: {body}")
st, h, body = t.request(port, "POST", "/v1/completions", {"prompt": "hi", "max_tokens": 0})
t.check(st == 400 and json.loads(body)["error"]["param"] == "max_tokens", f"400 names max_tokens: {body}")

# --- the worker's own 4xx passes through with its body ---
st, h, body = t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": list(range(400)), "max_tokens": 200})
direct = t.request(sim_port, "POST", "/v1/completions", {"model": MODEL, "prompt": list(range(400)), "max_tokens": 200})
t.check(st == 400 and direct[0] == 400 and body == direct[2], f"worker 400 relayed as is: {st} {body[:200]}")

# --- keep-alive reuse ---
before = t.health(port)["upstream"]
for _ in range(10):
    t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": "hello", "max_tokens": 2})
after = t.health(port)["upstream"]
t.check(after["transfers"] - before["transfers"] == 10, "10 transfers")
t.check(after["connections_opened"] - before["connections_opened"] <= 1,
        f"keep-alive reuse: {after['connections_opened'] - before['connections_opened']} new connections for 10 requests")

# --- client disconnect aborts the worker's sequence ---
aborted_before = t.metric(sim_port, "tlab_sim:aborted_requests_total") or 0
st = t.Stream(port, {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}],
                     "max_tokens": 300, "ignore_eos": True, "stream": True}, timeout=20)
t.check(len(st.read_events(2)) == 2 and not st.done, "stream started")
st.close()
deadline = time.monotonic() + 5
aborted = aborted_before
while time.monotonic() < deadline:
    aborted = t.metric(sim_port, "tlab_sim:aborted_requests_total") or 0
    if aborted > aborted_before:
        break
    time.sleep(0.05)
t.check(aborted == aborted_before + 1, f"worker saw the abort ({aborted_before} -> {aborted})")
t.check(t.metric(sim_port, "vllm:num_requests_running") == 0, "worker freed the sequence")
t.check(t.health(port)["live_requests"] == 0, "gateway forgot the request")

# --- gateway 2: short first-byte timeout -> 504, and the worker is told to stop ---
gw2, port2 = t.start_gateway(sim_port, sets=["upstream.first_byte_timeout_ms=200", NO_SCRAPE])
t0 = time.monotonic()
st, h, body = t.request(port2, "POST", "/v1/chat/completions",
                        {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 300, "ignore_eos": True})
took = time.monotonic() - t0
t.check(st == 504 and error_shape(body) and b"first_byte_timeout_ms" in body, f"504 on first-byte timeout: {st} {body}")
t.check(took < 2.0, f"504 came after {took:.2f}s, near the 0.2s timeout")

# --- gateway 3: idle connections are not reused past idle_keepalive_ms ---
gw3, port3 = t.start_gateway(sim_port, sets=["upstream.idle_keepalive_ms=1000", NO_SCRAPE])
t.request(port3, "POST", "/v1/completions", {"model": MODEL, "prompt": "a", "max_tokens": 1})
t.request(port3, "POST", "/v1/completions", {"model": MODEL, "prompt": "a", "max_tokens": 1})
mid = t.health(port3)["upstream"]["connections_opened"]
time.sleep(2.2)
t.request(port3, "POST", "/v1/completions", {"model": MODEL, "prompt": "a", "max_tokens": 1})
end = t.health(port3)["upstream"]["connections_opened"]
t.check(mid == 1 and end == 2, f"reused while fresh, new connection after the idle limit ({mid}, {end})")

# --- gateway 4: worker down -> 503 in OpenAI's shape ---
gw4, port4 = t.start_gateway(t.free_port())
st, h, body = t.request(port4, "POST", "/v1/completions", {"prompt": "hi", "max_tokens": 1})
t.check(st == 503 and error_shape(body) and b"not reachable" in body, f"503 when the worker is down: {st} {body}")
t.check(h.get("retry-after") is not None, "503 carries Retry-After")

t.finish()
