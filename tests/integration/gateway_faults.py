#!/usr/bin/env python3
"""Gateway against a deliberately faulty upstream (fault_upstream.py), for what tlab-sim does not
stage: a connection dropped before any byte (retried once on a fresh connection), a stale
keep-alive connection, a worker's odd status passed through, a worker that hangs, and a stream
that breaks in the middle of an event."""
import json
import time

import tlabtest as t

start_fault = t.start_fault_upstream


CHAT = {"model": "Qwen/Qwen2.5-0.5B-Instruct", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}




# A fresh connection closed before any response byte: only the gateway's retry can save it.
_, up = start_fault("dropfirst")
_, gw = t.start_gateway(up)
st, _, body = t.request(gw, "POST", "/v1/chat/completions", CHAT)
t.check(st == 200, f"request survives a dropped first connection: {st} {body}")
t.check(t.health(gw)["upstream"]["retries"] == 1, f"one retry counted: {t.health(gw)['upstream']}")

# A keep-alive connection the worker closes between requests: every request still succeeds.
_, up = start_fault("stale")
_, gw = t.start_gateway(up)
ok = sum(t.request(gw, "POST", "/v1/chat/completions", CHAT)[0] == 200 for _ in range(5))
t.check(ok == 5, f"5/5 requests over stale connections succeed ({ok})")

# The worker's own error status and body reach the client untouched.
_, up = start_fault("status")
_, gw = t.start_gateway(up)
st, _, body = t.request(gw, "POST", "/v1/chat/completions", CHAT)
t.check(st == 418 and json.loads(body).get("message") == "I am a teapot", f"418 passed through: {st} {body}")

# A worker that accepts and never answers: 504 after the first-byte timeout, not a hang.
_, up = start_fault("hang")
_, gw = t.start_gateway(up, sets=["upstream.first_byte_timeout_ms=300"])
t0 = time.monotonic()
st, _, body = t.request(gw, "POST", "/v1/chat/completions", CHAT, timeout=10)
t.check(st == 504 and b"first_byte_timeout_ms" in body, f"504 from a hung worker: {st} {body}")
t.check(time.monotonic() - t0 < 3, "504 arrives near the timeout")
t.check(t.health(gw)["live_requests"] == 0, "nothing left behind")

# A stream that breaks mid-event: the client gets the whole first event, never the half one, and
# then the gateway's error event on its own (glued onto the half event it would be unparseable).
_, up = start_fault("midevent")
_, gw = t.start_gateway(up)
st, _, body = t.request(gw, "POST", "/v1/chat/completions", dict(CHAT, stream=True), timeout=10)
events = [e for e in body.decode().split("\n\n") if e.strip()]
t.check(st == 200 and len(events) == 2, f"two events after a mid-event break: {st} {body!r}")
parsed = []
for e in events:
    try:
        parsed.append(json.loads(e[len("data: "):]) if e.startswith("data: ") else None)
    except ValueError:
        parsed.append(None)
t.check(len(parsed) == 2 and parsed[0] and parsed[0]["choices"][0]["delta"]["content"] == "one",
        f"first event relayed whole: {body!r}")
t.check(len(parsed) == 2 and parsed[1] and parsed[1]["error"]["type"] == "upstream_error",
        f"the error event stands alone and parses: {body!r}")
t.check(body.count(b'"del') == 1 and b'"deldata' not in body, f"the half event never reaches the client: {body!r}")

t.finish()
