#!/usr/bin/env python3
"""Faults (issue 9), the gateway's own side: policies that fail, SIGHUP and SIGTERM, all under load.

- Lua policies that fail under steady load (admission.lua raising, then looping; degradation.lua
  raising on every tick): every request is still answered; fail_open true admits, and after a
  SIGHUP that sets fail_open false every request gets a 503 OpenAI error; errors are counted.
- SIGHUP under steady load re-reads the config: limits.max_tokens lowered (a request that was
  fine now gets 400), log.level debug, a new admission script path, all live within a second;
  a changed plugin block is named in a "needs a restart" warning; a config file that no longer
  loads keeps the running config and logs file:line:col. Not one load request fails.
- SIGTERM under load (the supervisor plugin owns tlab-sim): requests in flight finish, queued
  ones and new arrivals get 503 "shutting down" (the listener stays open while draining), a
  stream longer than shutdown.grace_s is ended with an SSE error event and a proper end at the
  grace, the worker is stopped, and the gateway exits 0.
"""
import http.client
import json
import os
import re
import signal
import socket
import tempfile
import threading
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
tmp = tempfile.mkdtemp(prefix="tlab-lifecycle-")
ASAN = "build-asan" in t.BIN


def chat(stream=False, max_tokens=20, model=MODEL):
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens,
            "ignore_eos": True, "stream": stream}


def call(port, body, timeout=30.0):
    """One POST; returns (status, kind, elapsed, body) with kind ok / stream_done / stream_error /
    error_json / cut / bad / exception (see gateway_chaos.py for the same classes)."""
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        ctype = r.getheader("content-type", "")
        try:
            data, cut = r.read(), False
        except http.client.IncompleteRead as e:
            data, cut = e.partial, True
        c.close()
    except Exception as e:  # noqa: BLE001 - refused, reset or hung: all failures here
        return 0, f"exception: {e!r}", time.monotonic() - t0, b""
    took = time.monotonic() - t0
    text = data.decode(errors="replace")
    if cut:
        kind = "cut"
    elif r.status == 200 and ctype.startswith("text/event-stream"):
        events = t.sse_data(text)
        last = events[-1] if events else ""
        kind = "stream_done" if last == "[DONE]" else "stream_error" if last.startswith('{"error"') else "bad"
    else:
        try:
            doc = json.loads(data)
            kind = "ok" if r.status == 200 and "choices" in doc else \
                "error_json" if r.status >= 400 and doc["error"]["message"] and doc["error"]["type"] else "bad"
        except (ValueError, KeyError, TypeError):
            kind = "bad"
    return r.status, kind, took, data


class Load:
    """Steady background load: `clients` threads, each sending a request then pausing `pause` s,
    alternating streaming and non-streaming. Results are kept with the time they started."""

    def __init__(self, port, clients=4, pause=0.02, max_tokens=20):
        self.port, self.pause, self.max_tokens = port, pause, max_tokens
        self.results, self.lock, self.stop_ev = [], threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(clients)]
        for th in self.threads:
            th.start()

    def run(self, i):
        n = 0
        while not self.stop_ev.is_set():
            r = call(self.port, chat(stream=(n + i) % 2 == 1, max_tokens=self.max_tokens))
            with self.lock:
                self.results.append(r)
            n += 1
            time.sleep(self.pause)

    def take(self):
        """The results so far, and a fresh list for what follows."""
        with self.lock:
            out, self.results = self.results, []
        return out

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(40)
        return self.take()


def kinds(results):
    out = {}
    for r in results:
        out[r[1]] = out.get(r[1], 0) + 1
    return out


def metric_labels(port, name, labels):
    return t.metric(port, name, labels) or 0


# ---------------------------------------------------------------------------------------------
# Lua policies that fail, under load
# ---------------------------------------------------------------------------------------------
adm, adm2, deg, cfg = (os.path.join(tmp, n) for n in ("adm.lua", "adm2.lua", "deg.lua", "gw.yaml"))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def config(max_tokens=100, level="info", fail_open="true", admission="adm.lua", inflight=32, extra=""):
    write(cfg, f"""log:
  level: {level}
limits:
  max_tokens: {max_tokens}
upstream:
  first_byte_timeout_ms: 30000
policies:
  admission: {admission}
  degradation: deg.lua
  tick_ms: 50
  fail_open: {fail_open}
{extra}plugins:
  - name: queue
    config: {{max_inflight: {inflight}, max_depth: 4096}}
  - name: metrics
""")


# The probe call at load time uses model "probe": these fail only on real requests.
write(adm, "function on_request(req)\n  if req.model ~= 'probe' then error('admission boom') end\nend\n")
write(deg, "function on_tick()\n  error('degradation boom')\nend\n")
config()
sim, sim_port = t.start_sim(["--max-model-len", "512", "--startup-seconds", "0"], time_scale=50)
gw, port = t.start_gateway(sim_port, config=cfg)

load = Load(port)
time.sleep(2.5)
res = load.take()
print(f"admission raising (fail_open true): {len(res)} requests {kinds(res)}", flush=True)
t.check(len(res) >= 40 and all(r[1] in ("ok", "stream_done") for r in res), f"all admitted and served: {kinds(res)}")
t.check(metric_labels(port, "gateway_policy_errors_total", 'policy="admission",kind="error"') >= len(res) * 0.9,
        "admission errors counted")
t.check(metric_labels(port, "gateway_policy_errors_total", 'policy="degradation"') >= 10,
        "degradation tick errors counted (every 50 ms)")

reloads = json.loads(t.request(port, "GET", "/admin/policies")[2])["policies"]["admission"]["reloads"]
write(adm, "function on_request(req)\n  if req.model ~= 'probe' then while true do end end\nend\n")
deadline = time.monotonic() + 5
while json.loads(t.request(port, "GET", "/admin/policies")[2])["policies"]["admission"]["reloads"] == reloads \
        and time.monotonic() < deadline:
    time.sleep(0.05)
load.take()
time.sleep(2.0)
res = load.take()
worst = max((r[2] for r in res), default=0)
print(f"admission looping (fail_open true): {len(res)} requests {kinds(res)}, slowest {worst:.3f} s", flush=True)
t.check(len(res) >= 20 and all(r[1] in ("ok", "stream_done") for r in res), f"all admitted past the loop: {kinds(res)}")
t.check(metric_labels(port, "gateway_policy_errors_total", 'policy="admission",kind="budget"') >= len(res) * 0.9,
        "budget overruns counted")

config(fail_open="false")
gw.p.send_signal(signal.SIGHUP)
time.sleep(0.5)
load.take()
time.sleep(1.5)
res = load.take()
print(f"admission looping (fail_open false after SIGHUP): {len(res)} requests {kinds(res)}", flush=True)
t.check(len(res) >= 20 and all(r[0] == 503 and r[1] == "error_json" and b"admission policy failed" in r[3] for r in res),
        f"every request gets a 503 OpenAI error: {kinds(res)}")
t.check(gw.alive() and t.health(port)["status"] == "ok", "the gateway stays healthy")

# ---------------------------------------------------------------------------------------------
# SIGHUP under load: the config file is re-read and applied live
# ---------------------------------------------------------------------------------------------
write(adm, "function on_request(req) end\n")
write(adm2, "function on_request(req)\n  if req.model == 'marker' then gw.reject(409, 0, 'adm2 in force', 'marker') end\nend\n")
write(deg, "function on_tick() end\n")
config(fail_open="true")
gw.p.send_signal(signal.SIGHUP)
time.sleep(0.5)
load.take()
probe = chat(max_tokens=80)
t.check(call(port, probe)[0] == 200, "max_tokens 80 is fine under limits.max_tokens 100")
t.check(call(port, chat(model="marker"))[0] != 409, "no marker rule yet (the worker itself answers 404: unknown model)")
log_mark = len(gw.output())
time.sleep(1.0)

config(max_tokens=60, level="debug", admission="adm2.lua", inflight=16)
t_hup = time.monotonic()
gw.p.send_signal(signal.SIGHUP)
live_after = None
while time.monotonic() - t_hup < 3:
    if call(port, probe)[0] == 400:
        live_after = time.monotonic() - t_hup
        break
    time.sleep(0.02)
print(f"SIGHUP: limits.max_tokens live after {live_after} s", flush=True)
t.check(live_after is not None and live_after < 1.0, "the new limits.max_tokens is live within 1 s")
st, kind, _, body = call(port, probe)
t.check(st == 400 and kind == "error_json" and b"60" in body, f"max_tokens 80 now gets 400: {st} {body[:200]}")
st, _, _, body = call(port, chat(model="marker"))
t.check(st == 409 and b"adm2 in force" in body, f"the new admission path is live: {st} {body[:200]}")
time.sleep(0.5)
log = gw.output()[log_mark:]
t.check(re.search(r"config reloaded from .*limits\.max_tokens", log) and "log.level" in log and "policies.admission" in log,
        f"the reload names the live keys it changed:\n{log[-1500:]}")
t.check(re.search(r"WARN .*plugins changed in .* restart", log) is not None, "a changed plugin block is named as restart-only")
t.check(re.search(r"DEBUG .*done status=200", log) is not None, "log.level debug is live")

time.sleep(1.0)
write(cfg, open(cfg).read().replace("  tick_ms: 50\n", "  tick_ms: 50\n  tickms: 5\n"))  # unknown key
log_mark = len(gw.output())
gw.p.send_signal(signal.SIGHUP)
time.sleep(0.5)
log = gw.output()[log_mark:]
lines = open(cfg).read().split("\n")
where = f"gw.yaml:{lines.index('  tickms: 5') + 1}:3"
t.check("config reload refused" in log and where in log, f"a broken file is refused with {where}:\n{log[-800:]}")
t.check(metric_labels(port, "gateway_config_reloads_total", 'result="failed"') == 1, "the failed reload is counted")
t.check(call(port, probe)[0] == 400, "the running config stays (max_tokens 60)")
time.sleep(1.0)
config(max_tokens=60, level="info", admission="adm2.lua", inflight=16)
gw.p.send_signal(signal.SIGHUP)
time.sleep(0.5)
res = load.stop()
print(f"SIGHUP x3 under load (one refused): {len(res)} requests {kinds(res)}", flush=True)
t.check(len(res) >= 50 and all(r[1] in ("ok", "stream_done") for r in res), f"no load request failed: {kinds(res)}")
t.check(metric_labels(port, "gateway_config_reloads_total", 'result="ok"') == 4, "four good reloads counted")
rc = gw.stop()
t.check(rc == 0 and "runtime error" not in gw.output() and "Sanitizer" not in gw.output(), f"exit 0, clean log ({rc})")
sim.stop()

# ---------------------------------------------------------------------------------------------
# SIGTERM under load, supervisor-owned worker
# ---------------------------------------------------------------------------------------------
GRACE = 2
wport = t.free_port()
scfg = t.write_supervised_config(os.path.join(tmp, "sup.yaml"), wport, '["--startup-seconds", "0", "--time-scale", "1"]',
                                 queue="{max_inflight: 6}", top=f"shutdown:\n  grace_s: {GRACE}\n",
                                 supervisor="      idle_timeout_s: 600\n", log_file=f"{tmp}/worker.log")
gw, port = t.start_gateway(wport, config=scfg)
st, _, took, _ = call(port, chat(max_tokens=60))
t.check(st == 200, "worker up")
print(f"60 tokens at time-scale 1: {took:.2f} s", flush=True)
wpid = json.loads(t.request(port, "GET", "/admin/worker")[2])["pid"]

out = {}


def send(key, body):
    out[key] = call(port, body, timeout=30)


long_th = threading.Thread(target=send, args=("long", chat(stream=True, max_tokens=450)))
long_th.start()
time.sleep(0.5)
ths = [threading.Thread(target=send, args=(i, chat(stream=i % 2 == 0, max_tokens=60))) for i in range(12)]
for th in ths:
    th.start()
time.sleep(0.3)
in_flight, waiting = t.metric(port, "gateway_in_flight"), t.metric(port, "gateway_queue_depth")
t0 = time.monotonic()
gw.p.send_signal(signal.SIGTERM)
time.sleep(0.1)
late = [call(port, chat(), timeout=5) for _ in range(5)]
for th in ths + [long_th]:
    th.join(30)
try:
    rc = gw.p.wait(GRACE + 10)
except Exception:  # noqa: BLE001
    rc = None
exit_s = time.monotonic() - t0
res = [out.get(i, (0, "missing", 0, b"")) for i in range(12)]
served = sum(1 for r in res if r[1] in ("ok", "stream_done"))
refused = sum(1 for r in res if r[0] == 503 and r[1] == "error_json" and b"shutting down" in r[3])
print(f"SIGTERM: {in_flight:.0f} in flight and {waiting:.0f} queued at the signal; {served} finished, {refused} got 503; "
      f"late arrivals {[r[0] for r in late]}; long stream {out['long'][1]} after {out['long'][2]:.2f} s; "
      f"exit {rc} after {exit_s:.2f} s", flush=True)
t.check(in_flight >= 6 and waiting >= 1, "some requests in flight and some queued at the signal")
t.check(served + refused == 12, f"every request answered: {kinds(res)}")
t.check(served >= 5, "the in-flight ones finish whole")
t.check(refused >= 1, "queued ones get 503")
t.check(all(r[0] == 503 and r[1] == "error_json" and b"shutting down" in r[3] for r in late),
        f"new requests while draining get 503 JSON, not a refused connection: {[(r[0], r[1]) for r in late]}")
lr = out["long"]
t.check(lr[1] == "stream_error" and b"shutdown.grace_s" in lr[3], f"the stream past the grace is ended with an error event: "
        f"{lr[1]} {lr[3][-300:]!r}")
t.check(rc == 0 and "runtime error" not in gw.output() and "Sanitizer" not in gw.output(), f"exit code 0, clean log ({rc})")
t.check(GRACE - 0.5 < exit_s < GRACE + (6 if ASAN else 3), f"exit at the grace ({exit_s:.2f} s)")
time.sleep(0.2)
gone = not os.path.exists(f"/proc/{wpid}") or open(f"/proc/{wpid}/stat").read().split()[2] == "Z"
t.check(gone, f"the worker pid {wpid} is stopped")
t.check("stopping worker pid" in gw.output(), "the supervisor stopped it")
try:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    refused_after = False
except OSError:
    refused_after = True
t.check(refused_after, "the listener is closed after exit")
t.finish()
