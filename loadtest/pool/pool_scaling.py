#!/usr/bin/env python3
"""Pool scaling: the most requests per second inside the SLO with 1, 2 and 4 tlab-sim workers
behind one gateway, and the gateway's CPU per request (docs/performance.md, "More than one
worker").

Each run starts N tlab-sim workers and a gateway with a `workers:` list (autopilot on, the queue
plugin, the shipped admission.lua), then offers Poisson load at --overload times N times one
worker's capacity for --duration: more than the pool can serve, so what finishes inside the SLO
(goodput) is the pool's most, the autopilot shedding the rest early. One worker's capacity comes
from `tlab-sim --predict` for the profile. The gateway's CPU per request is its utime + stime
(/proc) over the run, divided by the requests it answered.

  loadtest/pool/pool_scaling.py [--build build] [--workers 1,2,4] [--duration 40] [--repeat 1] [--out DIR]

With --pin the gateway runs alone on the last CPU and the simulators and tlab-bench on the others
(on 2 CPUs that squeezes them and lowers goodput; it did not steady the CPU figure). With
--repeat K the pool sizes run in K interleaved rounds (1, 2, 4, 1, 2, 4, ...) and the table gives
each size's median: on a small shared machine the kernel's cost per system call (most of the
gateway's CPU: a receive and a send per token) moves 15 to 20 % from one run to the next, more
than the 10 % the CPU goal allows, and one run per size cannot resolve it. Where perf may read
tracepoints, the gateway's system calls per request are counted too: a measure of its work that
this noise does not move.

Exit status: 0 done (goals met or not: the table says); 1 a process failed.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_up(port, proc, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"a process exited early (status {proc.returncode}) before port {port} answered")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"port {port} did not answer /health within {timeout} s")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pinning(a):
    """(gateway CPUs, everything else's CPUs): with --pin the gateway gets the last CPU to itself,
    so the simulators and the load generator do not share its core and its caches."""
    cpus = sorted(os.sched_getaffinity(0))
    if not a.pin or len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def machine_cpu():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v) - idle, sum(v)


def run(a, bindir, n, rate, logdir):
    gw_cpus, other_cpus = pinning(a)
    pin_other = (lambda: os.sched_setaffinity(0, other_cpus)) if other_cpus else None
    pin_gw = (lambda: os.sched_setaffinity(0, gw_cpus)) if gw_cpus else None
    procs, ports = [], []
    for i in range(n):
        port = free_port()
        log = open(os.path.join(logdir, f"n{n}-sim{i}.log"), "w")
        p = subprocess.Popen([os.path.join(bindir, "tlab-sim"), "--host", "127.0.0.1", "--port", str(port), "--startup-seconds",
                              "0", "--hardware", a.hardware, "--config-dir", os.path.join(SRC, "configs")], stdout=log, stderr=subprocess.STDOUT,
                             preexec_fn=pin_other)
        procs.append(p)
        ports.append(port)
    try:
        for p, port in zip(procs, ports):
            wait_up(port, p)
        cfg = os.path.join(logdir, f"n{n}-gateway.yaml")
        with open(cfg, "w") as f:
            f.write("workers:\n" + "".join(f"  - {{name: w{i}, url: 'http://127.0.0.1:{p}'}}\n" for i, p in enumerate(ports)))
            f.write(f"policies:\n  admission: {os.path.join(SRC, 'scripts-lua', 'admission.lua')}\n  degradation: ''\n")
            f.write("log:\n  level: warn\nplugins:\n  - name: queue\n  - name: metrics\n")
        gport = free_port()
        glog = open(os.path.join(logdir, f"n{n}-gateway.log"), "w")
        gw = subprocess.Popen([os.path.join(bindir, "tlab-gateway"), "-c", cfg, "--set", f"listen.port={gport}", "--set",
                               f"plugin_dir={os.path.join(a.build, 'lib', 'plugins')}"], stdout=glog, stderr=subprocess.STDOUT,
                              preexec_fn=pin_gw)
        procs.append(gw)
        wait_up(gport, gw)
        out = os.path.join(logdir, f"n{n}-bench.json")
        c0 = cpu_s(gw.pid)
        m0, s0 = machine_cpu(), [cpu_s(p.pid) for p in procs[:n]]
        # System calls of the gateway over the run, when perf may read tracepoints: a measure of
        # its work that the machine's noise does not move (most of its CPU is a receive and a
        # send per token).
        perf_out = os.path.join(logdir, f"n{n}-perf.csv")
        perf = None
        if shutil.which("perf"):
            perf = subprocess.Popen(["perf", "stat", "-e", "raw_syscalls:sys_enter", "-x,", "-o", perf_out, "-p", str(gw.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = subprocess.run([os.path.join(bindir, "tlab-bench"), "--url", f"http://127.0.0.1:{gport}", "--arrival", "poisson",
                            "--rate", f"{rate:.3f}", "--duration", f"{a.duration}s", "--warmup", f"{a.warmup}s", "--cooldown",
                            "5s", "--progress", "never", "--output", out], capture_output=True, text=True, cwd=SRC,
                           preexec_fn=pin_other)
        c1 = cpu_s(gw.pid)
        m1, s1 = machine_cpu(), [cpu_s(p.pid) for p in procs[:n]]
        span = a.warmup + a.duration + 5
        syscalls = None
        if perf:
            perf.send_signal(signal.SIGINT)
            try:
                perf.wait(10)
                with open(perf_out) as f:
                    for line in f:
                        if "raw_syscalls:sys_enter" in line and line.split(",")[0].isdigit():
                            syscalls = int(line.split(",")[0])
            except (subprocess.TimeoutExpired, OSError):
                perf.kill()
        if r.returncode not in (0, 1) or not os.path.exists(out):
            sys.exit(f"tlab-bench failed ({r.returncode}):\n{r.stdout[-1500:]}{r.stderr[-1500:]}")
        with open(out) as f:
            res = json.load(f)
        with urllib.request.urlopen(f"http://127.0.0.1:{gport}/admin/workers", timeout=5) as resp:
            workers = json.loads(resp.read())["workers"]
        answered = sum(w["served"] + w["failed"] for w in workers)
        return {"workers": n, "offered_rps": rate, "goodput_rps": res["request_goodput"],
                "throughput_rps": res["request_throughput"], "p95_e2e_s": res["p95_e2el_ms"] / 1000 if res["completed"] else None,
                "completed": res["completed"], "failed": res["failed"], "errors_by_kind": res.get("errors_by_kind", {}),
                "gateway_cpu_us_per_request": 1e6 * (c1 - c0) / answered if answered else None,
                "gateway_syscalls_per_request": syscalls / answered if answered and syscalls else None,
                "served_per_worker": {w["name"]: w["served"] for w in workers},
                # How busy the machine was over tlab-bench's run (all CPUs, every process), and
                # the simulators' own share: on 2 CPUs the workers compete with the gateway.
                "machine_busy_pct": 100 * (m1[0] - m0[0]) / (m1[1] - m0[1]) if m1[1] > m0[1] else None,
                "sims_cpu_pct_of_one_cpu": 100 * (sum(s1) - sum(s0)) / span}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    # SIGTERM ends the run through the finally blocks, so no simulator or gateway outlives it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--workers", default="1,2,4", help="pool sizes, comma-separated (default 1,2,4)")
    ap.add_argument("--hardware", default="rtx3050-4gb")
    ap.add_argument("--capacity", type=float, default=16.0,
                    help="one worker's req/s inside the SLO (default 16: burst.py's measurement of the default worker)")
    ap.add_argument("--overload", type=float, default=1.5, help="offered load, times the pool's capacity (default 1.5)")
    ap.add_argument("--duration", type=int, default=40, help="measured window, s (default 40)")
    ap.add_argument("--warmup", type=int, default=10, help="warm-up, s (default 10)")
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=False,
                    help="the gateway on the last CPU alone, the rest on the others (default off: on 2 CPUs the "
                         "simulators and tlab-bench then share one and goodput drops)")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds; the table gives medians (default 1)")
    ap.add_argument("--out", default=os.path.join(SRC, "experiments", "pool"))
    a = ap.parse_args()
    bindir = os.path.join(a.build, "bin")
    os.makedirs(a.out, exist_ok=True)
    cap = a.capacity
    sizes = [int(x) for x in a.workers.split(",")]
    runs = {n: [] for n in sizes}
    for k in range(max(a.repeat, 1)):
        for n in sizes:
            rate = a.overload * cap * n
            print(f"[round {k + 1}/{a.repeat}, {n} worker(s)] offering {rate:.1f} req/s for {a.duration} s ...", flush=True)
            row = run(a, bindir, n, rate, a.out)
            runs[n].append(row)
            print(f"  goodput {row['goodput_rps']:.2f} req/s, p95 {row['p95_e2e_s']}, failed {row['failed']}, "
                  f"gateway CPU {row['gateway_cpu_us_per_request']:.0f} us/request, per worker {row['served_per_worker']}, "
                  f"machine busy {row['machine_busy_pct']:.0f} %, simulators {row['sims_cpu_pct_of_one_cpu']:.0f} % of one CPU",
                  flush=True)

    def median(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2

    rows = []
    for n in sizes:
        rs = runs[n]
        rows.append({"workers": n, "offered_rps": rs[0]["offered_rps"], "goodput_rps": median([r["goodput_rps"] for r in rs]),
                     "p95_e2e_s": median([r["p95_e2e_s"] for r in rs]),
                     "gateway_cpu_us_per_request": median([r["gateway_cpu_us_per_request"] for r in rs]),
                     "gateway_cpu_us_per_request_runs": [round(r["gateway_cpu_us_per_request"]) for r in rs],
                     "gateway_syscalls_per_request": median([r["gateway_syscalls_per_request"] for r in rs])
                     if all(r["gateway_syscalls_per_request"] for r in rs) else None,
                     "machine_busy_pct": median([r["machine_busy_pct"] for r in rs]),
                     "sims_cpu_pct_of_one_cpu": median([r["sims_cpu_pct_of_one_cpu"] for r in rs])})
    base = rows[0]
    if a.repeat > 1:
        print(f"\nmedians of {a.repeat} interleaved rounds; CPU us/request per round: " +
              ", ".join(f"{r['workers']}: {r['gateway_cpu_us_per_request_runs']}" for r in rows))
    print("\n| workers | offered req/s | goodput req/s | x one worker | p95 E2E s | gateway CPU us/request | x one worker "
          "| gateway syscalls/request | x one worker | machine CPU busy % | simulators, % of one CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        sc, sc0 = r["gateway_syscalls_per_request"], base["gateway_syscalls_per_request"]
        print(f"| {r['workers']} | {r['offered_rps']:.1f} | {r['goodput_rps']:.2f} | {r['goodput_rps'] / base['goodput_rps']:.2f} | "
              f"{r['p95_e2e_s']:.2f} | {r['gateway_cpu_us_per_request']:.0f} | "
              f"{r['gateway_cpu_us_per_request'] / base['gateway_cpu_us_per_request']:.2f} | "
              f"{f'{sc:.0f}' if sc else 'n/a (no perf)'} | {f'{sc / sc0:.2f}' if sc and sc0 else 'n/a'} | "
              f"{r['machine_busy_pct']:.0f} | {r['sims_cpu_pct_of_one_cpu']:.0f} |")
    with open(os.path.join(a.out, "pool_scaling.json"), "w") as f:
        json.dump({"capacity_per_worker_rps": cap, "repeat": a.repeat, "medians": rows,
                   "runs": [r for n in sizes for r in runs[n]]}, f, indent=2)


if __name__ == "__main__":
    main()
