"""Locust version of tlab-bench's reference workload (fixed_200_200), for comparison and for the
Locust UI (port 8089).

Each user sends the 200-token chat prompt with max_tokens 200, ignore_eos, temperature 0 and
streaming on, at a constant throughput of TLAB_USER_RPS requests/s per user (default 0.5), so the
offered load is users x TLAB_USER_RPS. Locust's own "POST /v1/chat/completions" row times only
up to the response headers (the body is streamed), so two extra rows carry the real figures:
"TTFT", the time to the first token chunk, and "E2E", the time to [DONE], both read from the
stream. A stream that ends without [DONE] or carries an error event is a failure.

Note: Locust is closed-loop per user (a user waits for its response before the next request), so
unlike tlab-bench it under-sends once latency exceeds 1/TLAB_USER_RPS. Use enough users.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8001            # UI on :8089
    locust -f loadtest/locustfile.py --host http://127.0.0.1:8001 --headless -u 20 -r 20 -t 60s --csv out
Environment: TLAB_USER_RPS, TLAB_PROMPT_FILE (default configs/prompts/prompt_200.txt),
TLAB_MODEL (default Qwen/Qwen2.5-0.5B-Instruct), TLAB_MAX_TOKENS (default 200).
"""
import json
import os
import time

from locust import HttpUser, constant_throughput, task

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPT_FILE = os.environ.get("TLAB_PROMPT_FILE", os.path.join(HERE, "..", "configs", "prompts", "prompt_200.txt"))
with open(PROMPT_FILE) as f:
    PROMPT = f.read().rstrip("\n")
BODY = {
    "model": os.environ.get("TLAB_MODEL", "Qwen/Qwen2.5-0.5B-Instruct"),
    "messages": [{"role": "user", "content": PROMPT}],
    "max_tokens": int(os.environ.get("TLAB_MAX_TOKENS", "200")),
    "temperature": 0,
    "ignore_eos": True,
    "stream": True,
    "stream_options": {"include_usage": True},
}


class ChatUser(HttpUser):
    wait_time = constant_throughput(float(os.environ.get("TLAB_USER_RPS", "0.5")))

    @task
    def chat(self):
        start = time.perf_counter()
        first = None
        done = False
        error = None
        with self.client.post("/v1/chat/completions", json=BODY, stream=True, catch_response=True,
                              name="POST /v1/chat/completions") as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                return
            for raw in resp.iter_lines():
                line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                if not line.startswith("data:"):
                    continue  # blank separators and ": keep-alive" comments
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    error = "event is not JSON"
                    break
                if "error" in chunk:
                    error = f"error event: {chunk['error']}"
                    break
                choices = chunk.get("choices") or []
                if first is None and choices:
                    c0 = choices[0]
                    if (c0.get("delta") or {}).get("content") or c0.get("text"):
                        first = time.perf_counter()
            if error or not done:
                resp.failure(error or "stream ended without [DONE]")
                return
            resp.success()
        end = time.perf_counter()
        fire = self.environment.events.request.fire
        if first is not None:
            fire(request_type="SSE", name="TTFT", response_time=(first - start) * 1000.0, response_length=0,
                 exception=None, context={})
        fire(request_type="SSE", name="E2E", response_time=(end - start) * 1000.0, response_length=0, exception=None,
             context={})
