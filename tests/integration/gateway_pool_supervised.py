#!/usr/bin/env python3
"""Supervised pool workers (docs/workers.md, "Supervised workers"): `workers:` entries with a port
(engine sim) that the gateway starts, stops and restarts itself.
- scale to zero: with pool.min_ready 0 nothing runs at start; the first request starts one worker
  and is served; load the first cannot hold starts the second; idle workers stop after
  idle_timeout_s, their processes gone and their ports free;
- pool.min_ready 2: both run from the start, before any request;
- SIGSTOP of one worker under load: the stall is detected, requests go to the other worker, and
  the stalled worker is killed and started again (a new pid, running); no request fails;
- kill -9 of one worker under load: counted as a crash, started again; no request fails;
- a port something else listens on: the start fails with the port's holder named, never adopted;
- kill -9 of the gateway: no worker is alive 3 s later.
"""
import json
import os
import signal
import tempfile
import threading
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
tmp = tempfile.mkdtemp(prefix="tlab-pool-sup-")


def write_config(path, ports, min_ready=0, idle_s=3, sleep_s=None):
    with open(path, "w") as f:
        f.write("workers:\n")
        for name, p in ports:
            f.write(f"  - name: {name}\n    port: {p}\n    engine: sim\n"
                    f"    sim_args: ['--time-scale', '10', '--startup-seconds', '0.5']\n"
                    f"    idle_timeout_s: {idle_s}\n    backoff_min_ms: 200\n    log_file: {tmp}/worker-{name}.log\n"
                    f"    env: {{TLAB_TEST_WORKER: '{name}'}}\n"
                    f"    profiles_dir: {t.SRC}/configs/model_profiles\n"
                    # At most 8 at once: "load that a cannot hold" (24 in flight) is then a fact,
                    # not a race with a's autopilot, which on a 0.5B model grows past 24 within a
                    # second and once did before the supervisor saw a queue.
                    f"    overrides: {{max_num_seqs: 8}}\n")
            if sleep_s is not None:
                f.write(f"    sleep_after_s: {sleep_s}\n")
        f.write(f"pool:\n  min_ready: {min_ready}\n  health_interval_ms: 200\n  stall_ms: 1500\n  eject_ms: 500\n")
        f.write("plugins:\n  - name: queue\n  - name: metrics\n")


def view(port):
    return {w["name"]: w for w in json.loads(t.request(port, "GET", "/admin/workers", timeout=5)[2])["workers"]}


def alive(pid):
    if pid <= 0:
        return False  # never started (os.kill(0, 0) would test our own process group)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def port_open(p):
    import socket
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()


ports = [("a", t.free_port()), ("b", t.free_port())]
cfg = os.path.join(tmp, "gw.yaml")

# --- scale to zero ---
write_config(cfg, ports, min_ready=0)
gw, port = t.start_gateway(1, config=cfg)
v = view(port)
t.check(all(w["kind"] == "supervised" and w["state"] == "idle" for w in v.values()) and
        not any(port_open(p) for _, p in ports), f"min_ready 0: nothing runs at start ({v})")
d = json.loads(t.request(port, "GET", "/admin/demand")[2])
t.check(d["workers_wanted"] == 0 and d["workers_ready"] == 0 and not d["active"], f"idle: the demand signal wants no worker ({d})")
first = {}
th = threading.Thread(target=lambda: first.update(r=t.completion(port)))
th.start()
t.check(t.wait_for(lambda: json.loads(t.request(port, "GET", "/admin/demand")[2])["workers_wanted"] >= 1, 3),
        "a request waiting for a cold start: the demand signal wants a worker")
th.join(60)
st, body = first.get("r", (0, b""))
t.check(st == 200, f"the first request starts a worker and is served ({st}: {body[:200]})")
v = view(port)
t.check(v["a"]["state"] == "running" and v["a"]["pid"] > 0, f"worker a runs ({v['a']['state']})")
load = t.Load(port, 24)
t.check(t.wait_for(lambda: view(port)["b"]["state"] == "running", 10), "load that a cannot hold starts b")
t.check(t.wait_for(lambda: view(port)["b"]["served"] > 0, 5), "and b serves")
res = load.stop()
bad = [(s, b[:100]) for s, b in res if s != 200]
t.check(len(res) > 20 and not bad, f"every request under load answered 200 while b started ({len(res)}, {bad[:3]})")
pids = [view(port)[n]["pid"] for n, _ in ports]
t.check(t.wait_for(lambda: all(w["state"] == "idle" for w in view(port).values()), 12),
        "idle workers stop after idle_timeout_s")
t.check(not any(alive(p) for p in pids) and not any(port_open(p) for _, p in ports),
        "their processes are gone and their ports free")
t.check(t.metric(port, "gateway_worker_starts_total", 'worker="a"') >= 1 and
        t.metric(port, "gateway_worker_stops_total", 'worker="b"') >= 1, "starts and stops are counted per worker")
gw.stop()

# --- the idle ladder: sleep, wake, stop ---
write_config(cfg, ports[:1], min_ready=0, idle_s=5, sleep_s=1)
gw, port = t.start_gateway(1, config=cfg)
st, _ = t.completion(port)
pid = view(port)["a"]["pid"]
t.check(st == 200 and view(port)["a"]["state"] == "running", f"a request starts the worker ({st})")
t.check(t.wait_for(lambda: view(port)["a"]["state"] == "sleeping", 4) and alive(pid),
        "idle for sleep_after_s: it sleeps, its process kept")
st, _ = t.completion(port)
v = view(port)["a"]
t.check(st == 200 and v["state"] == "running" and v["pid"] == pid, f"a request wakes it (same pid) and is served ({st}, {v})")
t.check(t.metric(port, "gateway_worker_sleeps_total", 'worker="a"') >= 1 and
        t.metric(port, "gateway_worker_wakes_total", 'worker="a"') >= 1, "sleeps and wakes are counted")
t.check(t.wait_for(lambda: view(port)["a"]["state"] == "idle", 10) and not alive(pid),
        "asleep until idle_timeout_s in all: then it stops")
gw.stop()

# --- min_ready, stall, crash ---
write_config(cfg, ports, min_ready=2, idle_s=1)
gw, port = t.start_gateway(1, config=cfg)
t.check(t.wait_for(lambda: all(w["state"] == "running" for w in view(port).values()), 10),
        "min_ready 2: both workers run before any request")
time.sleep(1.5)
t.check(all(w["state"] == "running" for w in view(port).values()), "and stay running past idle_timeout_s")
load = t.Load(port, 12)
time.sleep(1.0)
old_b = view(port)["b"]["pid"]
os.kill(old_b, signal.SIGSTOP)
t.check(t.wait_for(lambda: view(port)["b"]["pid"] not in (0, old_b) and view(port)["b"]["state"] == "running", 15),
        f"a SIGSTOPped worker is found stalled and restarted (pid {old_b} -> {view(port)['b']['pid']})")
t.check(not t.wait_for(lambda: alive(old_b), 0.5) or not alive(old_b), "the stalled process is gone")
t.check(t.metric(port, "gateway_worker_stalls_total", 'worker="b"') >= 1, "the stall is counted")
old_a = view(port)["a"]["pid"]
os.kill(old_a, signal.SIGKILL)
t.check(t.wait_for(lambda: view(port)["a"]["pid"] not in (0, old_a) and view(port)["a"]["state"] == "running", 15),
        "a worker killed with -9 is started again")
t.check(t.metric(port, "gateway_worker_crashes_total", 'worker="a"') >= 1, "the crash is counted")
time.sleep(1.0)
res = load.stop()
bad = [(s, b[:100]) for s, b in res if s != 200]
t.check(len(res) > 20 and not bad, f"no request failed through the stall and the crash ({len(res)}, {bad[:3]})")

# --- kill -9 of the gateway: no orphans ---
pids = [view(port)[n]["pid"] for n, _ in ports]
gw.p.kill()
gw.p.wait(5)
t.check(t.wait_for(lambda: not any(alive(p) for p in pids), 3), f"kill -9 of the gateway: no worker alive 3 s later ({pids})")
gw.stop()

# --- an impostor on a worker's port ---
imp, _ = t.start_sim(["--startup-seconds", "0"], port=ports[0][1])
write_config(cfg, ports[:1], min_ready=1)
gw, port = t.start_gateway(1, config=cfg)
t.check(t.wait_for(lambda: "already in use" in gw.output(), 5) and view(port)["a"]["state"] in ("failed", "idle"),
        f"a port something else listens on fails the start, naming it ({gw.output()[-400:]})")
imp.stop()
t.check(t.wait_for(lambda: view(port)["a"]["state"] == "running", 10), "once the port is free the worker starts")
gw.stop()

t.stop_all()
t.finish()
