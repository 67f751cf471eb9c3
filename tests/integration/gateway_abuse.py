#!/usr/bin/env python3
"""Bad HTTP input against a real tlab-gateway (in front of tlab-sim), over raw sockets.

1. A table of malformed or hostile requests, each with the status it must get and who answers:
   "gw" is the gateway (its routes, or its HTTP front for what is not HTTP/1.x as it should be),
   always in OpenAI error JSON; "front" marks the front's own refusals, which also close the
   connection; "ok" a normal answer, None a connection closed without one. After every case the
   gateway must still answer /health.
2. Slowloris: 200 connections trickling header bytes must not slow a normal client down, and
   must be cut within limits.client_timeout_ms although bytes keep coming.
3. 10,000 idle connections (or as many as RLIMIT_NOFILE allows): the gateway stays healthy and
   serves meanwhile; past limits.max_client_connections new connections get 503 JSON.
"""
import json
import resource
import select
import socket
import sys
import time

import tlabtest as t

TIMEOUT_MS = 1500  # limits.client_timeout_ms for the table: the truncated-body cases wait it out

_, sim = t.start_sim(time_scale=50)
MODEL = json.loads(t.request(sim, "GET", "/v1/models")[2])["data"][0]["id"]
_, gw = t.start_gateway(sim, sets=[f"limits.client_timeout_ms={TIMEOUT_MS}"])


def read_response(s, head_only=False, timeout=5.0):
    """Reads one HTTP response from s, skipping interim 1xx ones. Returns (status, headers, body);
    status None when the connection closed (or timed out) before a whole status line and headers."""
    s.settimeout(timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    status, headers = None, {}
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                if time.monotonic() > deadline:
                    return None, {}, buf
                d = s.recv(65536)
                if not d:
                    return None, {}, buf
                buf += d
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            status = int(parts[1])
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                headers[k.strip().lower().decode()] = v.strip().decode(errors="replace")
            if status >= 200:
                break
        if head_only:
            return status, headers, b""
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(buf) < n:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
            return status, headers, buf[:n]
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while not buf.endswith(b"0\r\n\r\n"):
                d = s.recv(65536)
                if not d:
                    break
                buf += d
            body, rest = b"", buf
            while rest:
                size, _, rest = rest.partition(b"\r\n")
                n = int(size, 16)
                if n == 0:
                    break
                body, rest = body + rest[:n], rest[n + 2:]
            return status, headers, body
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        return status, headers, buf
    except (socket.timeout, ConnectionResetError):
        return status, headers, buf


def exchange(data, half_close=False, head_only=False, timeout=5.0):
    """Sends data on a fresh connection; returns (status, headers, body, seconds)."""
    s = socket.create_connection(("127.0.0.1", gw), timeout=timeout)
    t0 = time.monotonic()
    try:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway may answer and close before reading everything
        st, h, body = read_response(s, head_only=head_only, timeout=timeout)
    finally:
        s.close()
    return st, h, body, time.monotonic() - t0


def chat(**fields):
    return json.dumps(dict({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                           **fields)).encode()


def post(body, path=b"/v1/chat/completions", ctype=b"application/json", extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: t\r\nContent-Type: " + ctype +
            b"\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n" + body)


def chunked(chunk_text, body=b"", tail=b"0\r\n\r\n"):
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunk_text + body + tail)


def raw_json(text):
    """A chat body with `text` spliced in as raw JSON (for what json.dumps cannot write)."""
    return post(b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "hi"}], ' + text + b"}")


OK_BODY = chat()
HEAD_END = b"\r\n\r\n"
# (name, request bytes, expected status, who answers, options)
CASES = [
    # request line
    ("normal chat", post(OK_BODY), 200, "ok", {}),
    ("garbage request line", b"GARBAGE" + HEAD_END, 400, "front", {}),
    ("no HTTP version", b"GET /health" + HEAD_END, 400, "front", {}),
    ("HTTP/2.0 over HTTP/1", b"GET /health HTTP/2.0\r\nHost: t" + HEAD_END, 505, "front", {}),
    ("HTTP/9.9", b"GET /health HTTP/9.9" + HEAD_END, 505, "front", {}),
    ("HTTX/1.1", b"GET /health HTTX/1.1" + HEAD_END, 400, "front", {}),
    ("HTTP/1.0", b"GET /health HTTP/1.0" + HEAD_END, 200, "ok", {}),
    ("HTTP/1.2 (any 1.x minor)", b"GET /health HTTP/1.2\r\nHost: t" + HEAD_END, 200, "ok", {}),
    ("NUL in the target", b"GET /hea\x00lth HTTP/1.1" + HEAD_END, 400, "front", {}),
    ("100 KB target", b"GET /" + b"a" * 100_000 + b" HTTP/1.1" + HEAD_END, 414, "front", {}),
    ("absolute-form target", b"GET http://elsewhere/health HTTP/1.1\r\nHost: t" + HEAD_END, 200, "ok", {}),
    ("unknown method", b"FOO /health HTTP/1.1" + HEAD_END, 501, "front", {}),
    ("TRACE", b"TRACE /health HTTP/1.1" + HEAD_END, 501, "front", {}),
    ("unknown path", b"GET /nope HTTP/1.1" + HEAD_END, 404, "gw", {}),
    ("GET on chat", b"GET /v1/chat/completions HTTP/1.1" + HEAD_END, 405, "gw", {}),
    ("DELETE on completions", b"DELETE /v1/completions HTTP/1.1" + HEAD_END, 405, "gw", {}),
    ("PUT on health", b"PUT /health HTTP/1.1\r\nContent-Length: 0" + HEAD_END, 405, "gw", {}),
    ("HEAD on health", b"HEAD /health HTTP/1.1" + HEAD_END, 405, None, {"head_only": True}),
    # headers
    ("70 KB header", b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + HEAD_END, 431, "front", {}),
    ("10,000 headers", b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(10_000)) + b"\r\n",
     431, "front", {}),
    ("3,000 small headers (under the 64 KiB cap)",
     b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(3_000)) + b"\r\n", 200, "ok", {}),
    ("header without a colon", b"GET /health HTTP/1.1\r\nNoColon" + HEAD_END, 400, "front", {}),
    ("space before a header's colon (smuggling)",
     b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\n{}", 400, "front", {}),
    ("LF-only line ends", b"GET /health HTTP/1.1\nHost: t\n\n", 200, "ok", {}),
    # body framing
    ("chunked body", chunked(b"%x\r\n" % len(OK_BODY), OK_BODY + b"\r\n"), 200, "ok", {}),
    ("chunk size not hex", chunked(b"zz\r\nabc\r\n"), 400, "front", {}),
    ("chunk size overflow (20 hex digits)", chunked(b"ffffffffffffffffffff\r\nabc\r\n"), 400, "front", {}),
    ("negative chunk size", chunked(b"-5\r\nabc\r\n"), 400, "front", {}),
    ("chunk size 2^63-1", chunked(b"7fffffffffffffff\r\nabc\r\n"), 413, "front", {}),
    ("Content-Length and Transfer-Encoding",
     b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
     + b"%x\r\n" % len(OK_BODY) + OK_BODY + b"\r\n0\r\n\r\n", 400, "front", {}),
    ("Transfer-Encoding: gzip", b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: gzip\r\n"
     b"Content-Length: 2\r\n\r\n{}", 400, "front", {}),
    ("two Content-Lengths that disagree", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\n"
     b"Content-Length: 50\r\n\r\n{}", 400, "front", {}),
    ("Content-Length -1", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -1\r\n\r\n{}", 400, "front", {}),
    ("Content-Length 10^20", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100000000000000000000\r\n\r\n{}",
     400, "front", {}),
    ("Content-Length not a number", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}",
     400, "front", {}),
    ("body over limits.max_body_bytes", post(b" " * (1536 * 1024) + OK_BODY), 413, "gw", {}),
    ("Content-Length past the hard cap", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 3145728\r\n\r\n{}",
     413, "front", {}),
    ("truncated chunk, then close", chunked(b"100\r\nabc", tail=b""), None, None, {"half_close": True}),
    ("short body, then close", post(OK_BODY)[:-10], None, None, {"half_close": True}),
    ("short body, then wait", post(OK_BODY)[:-10], None, None, {"waits": True}),
    ("truncated chunk, then wait", chunked(b"100\r\nabc", tail=b""), None, None, {"waits": True}),
    ("Expect: 100-continue", post(OK_BODY, extra=b"Expect: 100-continue\r\n"), 200, "ok", {}),
    ("Expect: something else", post(OK_BODY, extra=b"Expect: teapot\r\n"), 417, "front", {}),
    # JSON
    ("empty body", post(b""), 400, "gw", {}),
    ("body not JSON", post(b"hello"), 400, "gw", {}),
    ("JSON array body", post(b"[]"), 400, "gw", {}),
    ("JSON null body", post(b"null"), 400, "gw", {}),
    ("trailing garbage", post(OK_BODY + b" xyz"), 400, "gw", {}),
    ("non-UTF-8 in a string", raw_json(b'"user": "\xff\xfe\xc0\xaf"'), 400, "gw", {}),
    ("lone surrogate escape", raw_json(b'"user": "\\ud800"'), 400, "gw", {}),
    ("100k nested [", post(b"[" * 100_000), 400, "gw", {}),
    ("50k nested objects", post(b'{"a":' * 50_000), 400, "gw", {}),
    ("max_tokens 1e400", raw_json(b'"max_tokens": 1e400'), 400, "gw", {}),
    ("max_tokens -1", post(chat(max_tokens=-1)), 400, "gw", {}),
    ("max_tokens 0", post(chat(max_tokens=0)), 400, "gw", {}),
    ("max_tokens 2^63", raw_json(b'"max_tokens": 9223372036854775808'), 400, "gw", {}),
    ("max_tokens 2^63-1", post(chat(max_tokens=2**63 - 1)), 400, "gw", {}),
    ("max_tokens 1.5", post(chat(max_tokens=1.5)), 400, "gw", {}),
    ("max_tokens as a string", post(chat(max_tokens="10")), 400, "gw", {}),
    ("temperature NaN", raw_json(b'"temperature": NaN'), 400, "gw", {}),
    ("temperature Infinity", raw_json(b'"temperature": Infinity'), 400, "gw", {}),
    ("temperature 1e999", raw_json(b'"temperature": 1e999'), 400, "gw", {}),
    ("temperature as a string", post(chat(temperature="hot")), 400, "gw", {}),
    ("messages not a list", post(chat(messages="hi")), 400, "gw", {}),
    # curl -d sends application/x-www-form-urlencoded: the body decides, as with vLLM's FastAPI
    ("Content-Type text/plain, JSON body", post(OK_BODY, ctype=b"text/plain"), 200, "ok", {}),
    ("no Content-Type", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(OK_BODY) + OK_BODY,
     200, "ok", {}),
]

for name, data, want, who, opt in CASES:
    st, h, body, secs = exchange(data, half_close=opt.get("half_close", False), head_only=opt.get("head_only", False))
    what = f"{name}: got {st} ({secs:.2f}s) {body[:160]!r}"
    t.check(st == want, f"{what}; want {want}")
    if who in ("gw", "front"):
        err = None
        try:
            err = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            pass
        t.check(isinstance(err, dict) and isinstance(err.get("message"), str) and isinstance(err.get("type"), str)
                and h.get("content-type", "").startswith("application/json"), f"{what}: OpenAI error JSON")
    if who == "front":
        t.check(h.get("connection", "").lower() == "close", f"{what}: Connection: close")
    if opt.get("waits"):
        # cut by the client timeout: not before it, and not long after (the sweep runs at 1/4 of it)
        t.check(TIMEOUT_MS / 1000 * 0.9 <= secs <= TIMEOUT_MS / 1000 + 2.5, f"{what}: cut near the client timeout")
    hs, _, hb = t.request(gw, "GET", "/health", timeout=5)
    if not t.check(hs == 200, f"after '{name}': /health answers {hs} {hb[:200]!r}"):
        break

deadline = time.monotonic() + 5
while t.health(gw)["live_requests"] and time.monotonic() < deadline:
    time.sleep(0.05)
t.check(t.health(gw)["live_requests"] == 0, f"no request left behind: {t.health(gw)}")
print(f"table: {len(CASES)} cases", flush=True)

# Pipelining: three requests in one write, through the whole gateway (queue, worker, relay); the
# answers come back in order on the one connection, then a malformed fourth closes it with 400.
s = socket.create_connection(("127.0.0.1", gw), timeout=10)
s.sendall(post(chat(max_tokens=3)) + b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n" + post(chat(max_tokens=2))
          + b"NOT HTTP\r\n\r\n")
class _Replay:
    """The bytes of a whole connection, read back one response at a time (read_response reads
    ahead, so it cannot share a live socket between calls)."""
    def __init__(self, data):
        self.data = data

    def settimeout(self, _):
        pass

    def recv(self, n):
        out, self.data = self.data[:1], self.data[1:]  # one byte at a time: nothing read ahead
        return out


raw, deadline = b"", time.monotonic() + 10
while time.monotonic() < deadline:  # the 400 closes the connection
    d = s.recv(65536)
    if not d:
        break
    raw += d
s.close()
replay = _Replay(raw)
got = [read_response(replay, timeout=10) for _ in range(4)]
t.check([g[0] for g in got] == [200, 200, 200, 400], f"pipelined: statuses in order {[g[0] for g in got]}")
try:
    usage = [json.loads(got[i][2])["usage"]["completion_tokens"] for i in (0, 2)]
except (ValueError, KeyError, TypeError):
    usage = None
t.check(usage == [3, 2], f"pipelined: each answer is its own request's (completion_tokens {usage})")
t.check(b'"status"' in got[1][2], "pipelined: the /health answer sits between them")


# --- slowloris ---------------------------------------------------------------------------------
SLOW_MS = 2500
SLOW_CONNS = 200
_, slow_gw = t.start_gateway(sim, sets=[f"limits.client_timeout_ms={SLOW_MS}"])
slow = []
for _ in range(SLOW_CONNS):
    s = socket.create_connection(("127.0.0.1", slow_gw), timeout=5)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nX-Slow: ")
    s.setblocking(False)
    slow.append(s)
t0 = time.monotonic()
closed_at = {}
latencies, normal_ok = [], 0
next_trickle = t0
while len(closed_at) < SLOW_CONNS and time.monotonic() - t0 < SLOW_MS / 1000 + 6:
    now = time.monotonic()
    if now >= next_trickle:  # one more header byte on every open connection, once a second
        next_trickle = now + 1.0
        for i, s in enumerate(slow):
            if i not in closed_at:
                try:
                    s.send(b"a")
                except OSError:
                    closed_at[i] = now - t0
    r, _, _ = select.select([s for i, s in enumerate(slow) if i not in closed_at], [], [], 0.05)
    for s in r:
        try:
            gone = s.recv(4096) == b""
        except OSError:
            gone = True
        if gone:
            closed_at[slow.index(s)] = time.monotonic() - t0
    q0 = time.monotonic()  # a normal client meanwhile
    st, _, _ = t.request(slow_gw, "POST", "/v1/chat/completions", json.loads(OK_BODY), timeout=10)
    latencies.append(time.monotonic() - q0)
    normal_ok += st == 200
for s in slow:
    s.close()
latencies.sort()
p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else None
print(f"slowloris: {len(closed_at)}/{SLOW_CONNS} cut, last at {max(closed_at.values(), default=0):.2f}s; "
      f"{normal_ok}/{len(latencies)} normal requests ok, p99 {p99 and p99 * 1000:.0f} ms", flush=True)
t.check(len(closed_at) == SLOW_CONNS, f"every slowloris connection is cut ({len(closed_at)}/{SLOW_CONNS})")
t.check(all(SLOW_MS / 1000 * 0.9 <= v <= SLOW_MS / 1000 + 2.0 for v in closed_at.values()),
        f"... near limits.client_timeout_ms although bytes kept coming: {sorted(closed_at.values())[:3]} .. "
        f"{sorted(closed_at.values())[-3:]}")
t.check(latencies and normal_ok == len(latencies), f"normal client served throughout: {normal_ok}/{len(latencies)}")
t.check(p99 is not None and p99 < 1.0, f"normal client p99 {p99} s under 1 s while 200 connections trickle")
t.check(t.health(slow_gw)["clients"]["timed_out"] >= SLOW_CONNS, f"cuts counted: {t.health(slow_gw)['clients']}")


# --- 10,000 idle connections and limits.max_client_connections -----------------------------------
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
IDLE = min(10_000, hard - 200)
if IDLE < 10_000:
    print(f"idle: RLIMIT_NOFILE hard limit {hard}: {IDLE} idle connections instead of 10000", flush=True)
SPARE = 10
_, idle_gw = t.start_gateway(sim, sets=[f"limits.max_client_connections={IDLE + SPARE}", "limits.client_timeout_ms=120000"])
idle = []
t0 = time.monotonic()
for _ in range(IDLE):
    idle.append(socket.create_connection(("127.0.0.1", idle_gw), timeout=10))
print(f"idle: {IDLE} connections open in {time.monotonic() - t0:.1f}s", flush=True)
deadline = time.monotonic() + 10
while t.health(idle_gw)["clients"]["open"] < IDLE and time.monotonic() < deadline:
    time.sleep(0.1)
h = t.health(idle_gw)
t.check(h["status"] == "ok" and h["clients"]["open"] >= IDLE, f"healthy with {IDLE} idle connections: {h['clients']}")
q = []
for _ in range(20):
    q0 = time.monotonic()
    st, _, _ = t.request(idle_gw, "POST", "/v1/chat/completions", json.loads(OK_BODY), timeout=10)
    q.append((st, time.monotonic() - q0))
t.check(all(st == 200 for st, _ in q), f"20 normal requests served among the idle ones: {[st for st, _ in q]}")
t.check(max(d for _, d in q) < 2.0, f"... promptly (slowest {max(d for _, d in q):.2f}s)")

# Fill the spare room and go past it: the extra connections get 503 JSON and are closed.
extra = [socket.create_connection(("127.0.0.1", idle_gw), timeout=10) for _ in range(SPARE + 5)]
refused, statuses = 0, []
for s in extra:
    s.settimeout(0.3)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    except OSError:
        pass
    st, hh, body = read_response(s, timeout=3)
    statuses.append(st)
    if st == 503:
        refused += 1
        ok = False
        try:
            ok = "max_client_connections" in json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            pass
        t.check(ok, f"the refusal says why, as OpenAI error JSON: {body[:200]!r}")
t.check(refused >= 5, f"connections past limits.max_client_connections refused with 503: {refused}")
t.check(all(st in (200, 503) for st in statuses), f"... each one answered (served or 503), none reset: {statuses}")
for s in extra:
    s.close()
for s in idle[:100]:
    s.close()
deadline = time.monotonic() + 5
while time.monotonic() < deadline and t.health(idle_gw)["clients"]["open"] > IDLE:
    time.sleep(0.1)
st, _, _ = t.request(idle_gw, "POST", "/v1/chat/completions", json.loads(OK_BODY), timeout=10)
t.check(st == 200, f"served again once connections closed: {st}")
h = t.health(idle_gw)
t.check(h["clients"]["rejected"] >= refused, f"refusals counted: {h['clients']}")
for s in idle[100:]:
    s.close()
deadline = time.monotonic() + 10
while time.monotonic() < deadline and t.health(idle_gw)["clients"]["open"] > 2:
    time.sleep(0.1)
t.check(t.health(idle_gw)["clients"]["open"] <= 2, f"closed connections leave the count: {t.health(idle_gw)['clients']}")

t.finish()
