#!/usr/bin/env python3
"""Tier-3 settle benchmark: the autopilot after the worker restarts with max_num_seqs halved.

The gateway (shipped admission policy, the autopilot on, the degradation ladder off so that only
this restart happens) supervises tlab-sim with a profile at --seqs. Poisson load at --load times
the capacity the halved worker has (tlab-sim --predict) runs for --duration; at --restart-at the
script asks for the restart the ladder's tier 3 asks for (POST /admin/worker/restart with
max_num_seqs halved). It polls gateway_autopilot_limit and reports, in the workload's clock:
- settle time: from the restart request until the limit stays within +-15 % of its median over
  the last --tail seconds (goal: <= 30 s);
- the p95 E2E and error share of the requests that arrived after the limit settled (goal: p95
  inside the 5 s SLO, errors <= 0.1 %; refusals are not errors).

  loadtest/burst/tier3_settle.py --time-scale 4 --out /tmp/tier3

Writes settle.json and the tlab-bench result (bench.json, bench.csv) into --out. Exit status:
0 done (goals met or not: the verdict is printed); 1 a process failed; 2 bad usage.
"""
import argparse
import csv
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
import urllib.request

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLO_S = 5.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, method, path, body=None, timeout=5.0):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def metric(text, name):
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return float(parts[1])
    return None


def die(msg):
    print(f"tier3_settle: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def main():
    # SIGTERM ends the run through the finally blocks, so no simulator or gateway outlives it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build"), help="build folder (default build)")
    ap.add_argument("--out", default=None, help="output folder (default a new temporary folder)")
    ap.add_argument("--time-scale", type=float, default=4.0, help="tlab-sim's clock runs F times faster (default 4)")
    ap.add_argument("--seqs", type=int, default=64, help="max_num_seqs before the restart (default 64; halved by it)")
    ap.add_argument("--load", type=float, default=1.2, help="offered load, times the halved worker's capacity (default 1.2)")
    ap.add_argument("--duration", type=float, default=120.0, help="run length, workload seconds (default 120)")
    ap.add_argument("--restart-at", type=float, default=30.0, help="when to restart, workload seconds (default 30)")
    ap.add_argument("--tail", type=float, default=20.0, help="the settled limit is the median over the last T s (default 20)")
    a = ap.parse_args()
    if a.time_scale <= 0 or a.seqs < 2 or a.load <= 0 or not 0 < a.restart_at < a.duration - a.tail:
        ap.error("need --time-scale > 0, --seqs >= 2, --load > 0 and 0 < --restart-at < --duration - --tail")
    f = a.time_scale
    out = a.out or tempfile.mkdtemp(prefix="tier3-")
    os.makedirs(out, exist_ok=True)
    bindir = os.path.join(a.build, "bin")
    half = a.seqs // 2

    pred = subprocess.run([os.path.join(bindir, "tlab-sim"), "--predict", "--max-num-seqs", str(half), "--concurrency",
                           str(half), "--max-model-len", "512"], capture_output=True, text=True, timeout=120)
    cap = None
    for line in pred.stdout.splitlines():
        if line.startswith("throughput "):
            cap = float(line.split()[1])
    if not cap:
        die(f"tlab-sim --predict gave no throughput:\n{pred.stdout}{pred.stderr}")
    rate = a.load * cap
    print(f"tier3_settle: max_num_seqs {a.seqs} -> {half} at {a.restart_at:g} s; the halved worker serves "
          f"{cap:.1f} req/s (tlab-sim --predict); offering {rate:.1f} req/s for {a.duration:g} s at time scale {f:g}",
          flush=True)

    profile = os.path.join(out, "profile.yaml")
    with open(profile, "w") as fh:
        fh.write(f"model: Qwen/Qwen2.5-0.5B-Instruct\nmax_model_len: 512\nmax_num_seqs: {a.seqs}\n"
                 "max_num_batched_tokens: 2048\ngpu_memory_utilization: 0.9\nenable_chunked_prefill: true\nextra_args: []\n")
    port, wport = free_port(), free_port()
    cfg = os.path.join(out, "gateway.yaml")
    with open(cfg, "w") as fh:
        fh.write(f"""listen: {{host: 127.0.0.1, port: {port}}}
upstream: {{url: "http://127.0.0.1:{wport}"}}
plugin_dir: {os.path.join(a.build, "lib", "plugins")}
log: {{level: info}}
slo: {{e2e_ms: {SLO_S * 1000 / f:.0f}}}
policies:
  admission: {os.path.join(SRC, "scripts-lua", "admission.lua")}
  degradation: ''
plugins:
  - name: queue
  - name: metrics
  - name: supervisor
    config:
      engine: sim
      profile: {profile}
      sim_command: {os.path.join(bindir, "tlab-sim")}
      sim_args: ["--startup-seconds", "0", "--time-scale", "{f:g}"]
      sleep_after_s: 0
      always_on: true
      log_file: {os.path.join(out, "worker.log")}
""")
    gwlog = open(os.path.join(out, "gateway.log"), "w")
    gw = subprocess.Popen([os.path.join(bindir, "tlab-gateway"), "-c", cfg], stdout=gwlog, stderr=subprocess.STDOUT,
                          start_new_session=True)
    bench = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st, body = http(port, "GET", "/metrics")
            if st == 200 and metric(body, "gateway_worker_state") == 2:
                break
            if gw.poll() is not None:
                die(f"the gateway exited ({gw.returncode}); see {out}/gateway.log")
            time.sleep(0.1)
        else:
            die(f"the worker did not start in 60 s; see {out}/gateway.log and worker.log")

        samples = []  # (real seconds since the bench started, limit, worker state)
        stop = threading.Event()
        t0 = time.monotonic()

        def poll():
            while not stop.is_set():
                st, body = http(port, "GET", "/metrics", timeout=1)
                if st == 200:
                    samples.append((time.monotonic() - t0, metric(body, "gateway_autopilot_limit"),
                                    metric(body, "gateway_worker_state")))
                time.sleep(0.05)
        poller = threading.Thread(target=poll, daemon=True)
        res = os.path.join(out, "bench.json")
        bench = subprocess.Popen([os.path.join(bindir, "tlab-bench"), "--url", f"http://127.0.0.1:{port}",
                                  "--arrival", "poisson", "--rate", f"{rate * f:.6f}", "--duration", f"{a.duration / f:.6f}",
                                  "--warmup", "0", "--cooldown", f"{5 / f:.6f}", "--seed", "1",
                                  "--slo", f"e2e_p95={SLO_S / f * 1000:.3f}ms", "--timeslice", f"{1 / f:.6f}",
                                  "--progress", "never", "--output", res],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        t0 = time.monotonic()
        poller.start()
        time.sleep(a.restart_at / f)
        t_restart = time.monotonic() - t0
        st, body = http(port, "POST", "/admin/worker/restart", {"max_num_seqs": half})
        if st != 202:
            die(f"restart refused: {st} {body}")
        bout, _ = bench.communicate(timeout=a.duration / f + 120)
        stop.set()
        poller.join(5)
        if bench.returncode not in (0, 1):
            die(f"tlab-bench failed ({bench.returncode}):\n{bout[-2000:]}")
    finally:
        if bench and bench.poll() is None:
            bench.kill()
        if gw.poll() is None:
            os.killpg(gw.pid, signal.SIGTERM)
            try:
                gw.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(gw.pid, signal.SIGKILL)
                gw.wait()
        gwlog.close()

    # Settle: the last time after the restart the limit was outside +-15 % of its final median.
    end = a.duration / f
    tail = [lim for t, lim, _ in samples if t >= end - a.tail / f and lim is not None]
    if not tail:
        die("no limit samples in the tail")
    final = statistics.median(tail)
    after = [(t, lim) for t, lim, _ in samples if t >= t_restart and lim is not None and t <= end]
    outside = [t for t, lim in after if abs(lim - final) > 0.15 * final]
    settled_at = max(outside) if outside else t_restart
    settle_s = (settled_at - t_restart) * f
    before = [lim for t, lim, _ in samples if t_restart - 10 / f <= t < t_restart and lim is not None]
    limit_before = statistics.median(before) if before else None

    rows = list(csv.DictReader(open(os.path.join(out, "bench.csv"))))
    late = [r for r in rows if float(r["due_s"]) >= settled_at and r["in_window"] == "1"]
    served = sorted(float(r["e2e_ms"]) * f / 1000 for r in late if r["status"] == "200")
    refused = sum(1 for r in late if r["status"] in ("429", "503"))
    errors = sum(1 for r in late if r["status"] not in ("200", "429", "503"))
    p95 = served[int(0.95 * (len(served) - 1))] if served else None
    good = sum(1 for e in served if e <= SLO_S)
    span = max(a.duration - settled_at * f, 1e-9)
    verdict = {
        "settle_s": round(settle_s, 2), "settle_goal_s": 30, "settle_met": settle_s <= 30,
        "limit_before": limit_before, "limit_after": final,
        "after_settle": {"requests": len(late), "served": len(served), "refused": refused, "errors": errors,
                         "p95_e2e_s": round(p95, 3) if p95 is not None else None,
                         "goodput_rps": round(good / span, 2)},
    }
    verdict["slo_met"] = p95 is not None and p95 <= SLO_S and errors <= 0.001 * max(len(late), 1)
    summary = {"command": " ".join(sys.argv), "time_scale": f, "seqs_before": a.seqs, "seqs_after": half,
               "capacity_after_rps": cap, "offered_rps": rate, "duration_s": a.duration, "restart_at_s": a.restart_at,
               "limit_series": [(round(t * f, 2), lim, ws) for t, lim, ws in samples], **verdict}
    with open(os.path.join(out, "settle.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    print(f"tier3_settle: limit {limit_before} before the restart, {final:g} after; settled {settle_s:.1f} s after the "
          f"restart request (goal <= 30 s: {'met' if verdict['settle_met'] else 'missed'})")
    a_s = verdict["after_settle"]
    print(f"tier3_settle: after settling: {a_s['requests']} requests, {a_s['served']} served, {a_s['refused']} refused, "
          f"{a_s['errors']} errors; p95 E2E of served {a_s['p95_e2e_s']} s, goodput {a_s['goodput_rps']} req/s "
          f"(SLO {'met' if verdict['slo_met'] else 'missed'}); {out}/settle.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
