#!/usr/bin/env python3
"""What sharing the per-key limits through Redis costs, and what it buys (docs/kubernetes.md,
"Several gateway replicas").

Starts one tlab-sim, one redis-server and two pairs of gateway replicas with the same keys file:
one pair with auth.redis (shared buckets), one without (each replica its own). Then, per pair:

  cost    --requests sequential requests of a key with a limit far above them, through replica
          A: the gateway's added time per request (x-tlab-overhead-us: arrival to dispatch,
          which with auth.redis includes Redis' answer) and its CPU per request (utime + stime
          from /proc over the run);
  limit   --seconds of 2 x 10 requests/s on a key of 60 requests per minute, half to each
          replica: how many were admitted against what one limit allows (60 + 1/s).

  loadtest/shared_limits/shared_limits_cost.py [--build build] [--requests 2000] [--seconds 20]

Exit status: 0 done (the table says what was measured); 1 a process failed.
"""
import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
KEYS = {"wide": "sk-tlab-bench-wide-0123456789", "narrow": "sk-tlab-bench-narrow-0123456789"}
procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, log):
    p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(p)
    return p


def wait_http(port, path="/health", timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"port {port} did not answer on {path}")


def post(conn, key):
    body = json.dumps({"model": MODEL, "prompt": "x", "max_tokens": 1})
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json",
                                                   "Authorization": f"Bearer {KEYS[key]}"})
    r = conn.getresponse()
    r.read()
    return r.status, int(r.getheader("x-tlab-overhead-us") or 0)


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cost(gw, port, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(50):  # warm up: connections, caches
        post(conn, "wide")
    c0, over = cpu_s(gw.pid), []
    for _ in range(n):
        st, o = post(conn, "wide")
        if st != 200:
            sys.exit(f"cost run: status {st}")
        over.append(o)
    c1 = cpu_s(gw.pid)
    over.sort()
    return statistics.median(over), over[int(0.99 * len(over))], (c1 - c0) / n * 1e6


def limit(ports, seconds):
    sent, lock = [], threading.Lock()

    def run(port, offset, start_at):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for i in range(10 * seconds):
            d = start_at + offset + i / 10 - time.monotonic()
            if d > 0:
                time.sleep(d)
            t = time.monotonic()
            st, _ = post(conn, "narrow")
            with lock:
                sent.append((t, st))

    start_at = time.monotonic() + 0.2
    th = [threading.Thread(target=run, args=(p, k * 0.05, start_at)) for k, p in enumerate(ports)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    span = max(t for t, _ in sent) - min(t for t, _ in sent)
    return sum(1 for _, s in sent if s == 200), len(sent), 60 + span


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=20)
    a = ap.parse_args()
    bindir = os.path.join(a.build, "bin")
    tmp = tempfile.mkdtemp(prefix="tlab-shared-cost-")
    with open(os.path.join(tmp, "keys.yaml"), "w") as f:
        f.write(f"keys:\n  - {{name: wide, key: {KEYS['wide']}, requests_per_minute: 10000000}}\n"
                f"  - {{name: narrow, key: {KEYS['narrow']}, requests_per_minute: 60}}\n")
    try:
        rport = free_port()
        start(["redis-server", "--bind", "127.0.0.1", "--port", str(rport), "--save", "", "--appendonly", "no"],
              os.path.join(tmp, "redis.log"))
        sport = free_port()
        start([os.path.join(bindir, "tlab-sim"), "--host", "127.0.0.1", "--port", str(sport), "--time-scale", "50",
               "--startup-seconds", "0"], os.path.join(tmp, "sim.log"))
        wait_http(sport)
        rows = []
        for shared in (False, True):
            pair = []
            for k in range(2):
                port = free_port()
                argv = [os.path.join(bindir, "tlab-gateway"), "--set", "listen.host=127.0.0.1", "--set", f"listen.port={port}",
                        "--set", f"upstream.url=http://127.0.0.1:{sport}", "--set", f"auth.keys_file={tmp}/keys.yaml",
                        "--set", f"plugin_dir={os.path.join(a.build, 'lib', 'plugins')}"]
                if shared:
                    argv += ["--set", f"auth.redis=127.0.0.1:{rport}"]
                gw = start(argv, os.path.join(tmp, f"gw-{int(shared)}-{k}.log"))
                wait_http(port)
                pair.append((gw, port))
            time.sleep(0.5)  # the Redis connection and its scripts
            print(f"{'auth.redis' if shared else 'per replica'}: cost run ({a.requests} requests)...", file=sys.stderr, flush=True)
            med, p99, cpu = cost(pair[0][0], pair[0][1], a.requests)
            print(f"{'auth.redis' if shared else 'per replica'}: limit run ({a.seconds} s)...", file=sys.stderr, flush=True)
            ok, n, allowed = limit([p for _, p in pair], a.seconds)
            rows.append(("auth.redis (shared)" if shared else "none (per replica)", med, p99, cpu, ok, n, allowed))
            for gw, _ in pair:
                gw.send_signal(signal.SIGTERM)
                gw.wait(10)
        print("| buckets | overhead median (us) | overhead p99 (us) | gateway CPU per request (us) | admitted / sent over 2 replicas | one limit allows | admitted / allowed |")
        print("|---|---|---|---|---|---|---|")
        for name, med, p99, cpu, ok, n, allowed in rows:
            print(f"| {name} | {med:.0f} | {p99:.0f} | {cpu:.0f} | {ok} / {n} | {allowed:.1f} | {ok / allowed:.3f} |")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
