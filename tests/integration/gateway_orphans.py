#!/usr/bin/env python3
"""No orphans, no impostors: the supervised worker never outlives its gateway, and a gateway never
takes another server on the worker's port for its own worker.
- kill -9 of the gateway: its tlab-sim worker is gone within 3 s (the parent-death signal);
- a new gateway on the same worker port serves from a worker it started itself (a new pid whose
  parent is the new gateway);
- a foreign listener already on the worker port: the start is refused, and the request gets 503
  naming the port and the holder's pid; no worker is spawned, none is believed READY;
- a listener that appears on the port outside the worker's process group (here a process the
  worker started that left the group with setsid) and answers the health check: the start fails
  with 503 naming it, and the worker is not believed READY.
"""
import json
import os
import signal
import socket
import sys
import tempfile
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
tmp = tempfile.mkdtemp(prefix="tlab-orphans-")
strays = []  # pids this test must stop itself (workers whose gateway was killed, the escaped listener)


def stop_strays():
    for pid in strays:
        if pid <= 1:  # 0 would signal this test's own process group
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def gateway(wport, sim_command=None):
    cfg = t.write_supervised_config(os.path.join(tmp, f"gw-{wport}-{time.monotonic_ns()}.yaml"), wport,
                                    '["--startup-seconds", "0.3"]',
                                    supervisor="      idle_timeout_s: 60\n      backoff_min_ms: 200\n"
                                               "      startup_timeout_s: 20\n",
                                    log_file=f"{tmp}/worker-{wport}.log")
    if sim_command:
        with open(cfg) as f:
            text = f.read()
        text = text.replace(f"sim_command: {os.path.join(t.BIN, 'tlab-sim')}", f"sim_command: {sim_command}")
        with open(cfg, "w") as f:
            f.write(text)
    return t.start_gateway(wport, config=cfg)


def completion(port, timeout=30):
    try:
        return t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": "hi", "max_tokens": 3}, timeout=timeout)
    except Exception as e:  # noqa: BLE001 - a hang or reset is a failure to report, not to raise
        return (0, {}, str(e).encode())


def stat(pid):
    """(state, ppid) from /proc/<pid>/stat, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def gone(pid):
    s = stat(pid)
    return s is None or s[0] in ("Z", "X")  # a zombie holds neither port nor memory


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return gone(pid)


try:
    # --- (1) kill -9 of the gateway takes its worker with it ---
    wport = t.free_port()
    gw, port = gateway(wport)
    r = completion(port)
    t.check(r[0] == 200, f"first request served: {r[0]} {r[2][:200]!r}")
    old = json.loads(t.request(port, "GET", "/admin/worker")[2])["pid"]
    strays.append(old)
    t.check(old > 0 and stat(old) is not None and stat(old)[1] == gw.pid, f"worker pid {old} is the gateway's child")
    gw.stop(signal.SIGKILL)
    t0 = time.monotonic()
    t.check(wait_gone(old, 3.0), f"worker pid {old} still runs {time.monotonic() - t0:.1f} s after kill -9 of its gateway")

    # --- (2) a new gateway on the same worker port serves from its own worker ---
    gw, port = gateway(wport)
    r = completion(port)
    t.check(r[0] == 200, f"served after the restart: {r[0]} {r[2][:300]!r}")
    new = json.loads(t.request(port, "GET", "/admin/worker")[2])["pid"]
    strays.append(new)
    st = stat(new)
    t.check(new != old and st is not None and not gone(new) and st[1] == gw.pid,
            f"the worker is the new gateway's own: pid {new} (old {old}), stat {st}, gateway {gw.pid}")
    t.check(t.metric(port, "gateway_worker_start_failures_total") == 0, "no failed start")
    gw.stop()
    t.check(wait_gone(new, 5.0), "the worker stops with its gateway (SIGTERM)")

    # --- (3) a foreign listener on the worker port: refused, 503 naming the port and the holder ---
    foreign = socket.socket()
    foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    foreign.bind(("127.0.0.1", wport))
    foreign.listen(16)
    gw, port = gateway(wport)
    r = completion(port)
    body = r[2].decode(errors="replace")
    t.check(r[0] == 503 and f"port {wport} is already in use by pid {os.getpid()}" in body,
            f"503 names the port and its holder: {r[0]} {body[:400]!r}")
    t.check(t.metric(port, "gateway_worker_starts_total") == 0, "no worker spawned beside the foreign listener")
    t.check(t.metric(port, "gateway_worker_start_failures_total") >= 1, "the refusal counts as a failed start")
    t.check("READY" not in gw.output(), "the foreign listener was never believed READY")
    gw.stop()
    foreign.close()

    # --- (4) the health check answered from outside the worker's process group ---
    pidfile = os.path.join(tmp, "escaped.pid")
    fake = os.path.join(tmp, "escaping_worker.py")
    with open(fake, "w") as f:
        f.write(f"""#!{sys.executable}
# Stands in for a worker: a child leaves the process group (setsid) and answers /health on the
# worker's port, as an orphan of an earlier gateway would; the worker itself never listens.
import http.server, os, sys, time
port = int(sys.argv[sys.argv.index("--port") + 1])
if os.fork() == 0:
    os.setsid()
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{{}}")
        def log_message(self, *a):
            pass
    srv = http.server.HTTPServer(("127.0.0.1", port), H)
    srv.timeout = 0.2
    with open("{pidfile}.tmp", "w") as p:
        p.write(str(os.getpid()))
    os.rename("{pidfile}.tmp", "{pidfile}")
    deadline = time.monotonic() + 60  # bounded even if the test cannot stop it
    while time.monotonic() < deadline:
        srv.handle_request()
    os._exit(0)
time.sleep(60)
""")
    os.chmod(fake, 0o755)
    gw, port = gateway(wport, sim_command=fake)
    r = completion(port)
    escaped = 0
    deadline = time.monotonic() + 5
    while not escaped and time.monotonic() < deadline:
        try:
            with open(pidfile) as f:
                escaped = int(f.read())
        except OSError:
            time.sleep(0.05)
    if escaped:
        strays.append(escaped)
    body = r[2].decode(errors="replace")
    t.check(r[0] == 503 and "answered by another server" in body and f"port {wport} is held by pid {escaped}" in body,
            f"503 names the listener outside the group (pid {escaped}): {r[0]} {body[:500]!r}")
    t.check("worker READY" not in gw.output(), "the stranger's 200 was never taken for READY")
    t.check(t.metric(port, "gateway_worker_state") != 2, "the worker is not running")
    gw.stop()
finally:
    stop_strays()

t.finish()
