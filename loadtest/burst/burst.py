#!/usr/bin/env python3
"""burst.py - the burst benchmark (issue 16): the same bursty open-loop schedules, run three ways
against tlab-sim with vLLM's default knobs:

  direct     straight to the worker;
  static-N   through tlab-gateway as shipped, but with the queue's gate fixed at max_inflight N,
             for each N of --gates (the sweep that finds the best static setting);
  shipped    through tlab-gateway as shipped (configs/gateway.yaml, its supervisor replaced by
             the worker this script starts).

Schedules, relative to the worker's capacity C (the highest constant rate straight to the
worker whose p95 E2E stays inside the SLO, measured first unless --capacity gives it):
  step      3x step bursts: base 0.6 C, 3x that for the last third of every period
  poisson   Poisson arrivals at C with burstiness 0.3 (gamma gaps: clumps and lulls)
  ramp      a linear ramp from 0.5 C to 2 C over the run
  steady    plain Poisson arrivals at 0.7 C (not run by default): below capacity the gateway
            should refuse nothing and add next to no latency (p95 within 1.05x of direct)

Every rate, time and latency here is in the workload's (simulated) clock: with --time-scale F the
simulator runs F times faster, and this script divides what it hands to tlab-bench and the gateway
by F (rates times F, durations, SLO and timeouts divided by F) and scales the results back.

Writes into --out: burst.json (the summary that tlab-report reads), runs/*.json (tlab-bench's
results, with per-time-slice counts), configs/*.yaml (each gateway's generated config), and,
through `tlab-report --burst`, results.md (the table) with the goodput-over-time plots.
Standard library only; every process it starts runs on 127.0.0.1, on a free port, and is stopped
by its PID.

Exit status: 0 done; 1 a run failed (a process did not start, tlab-bench wrote no result);
2 bad usage.
"""
import argparse
import atexit
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_config  # noqa: E402

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SCHEDULES = ("step", "poisson", "ramp", "steady")
DEFAULT_SCHEDULES = ("step", "poisson", "ramp")
# A larger card with a larger model that still meets a 5 s E2E on 200/200 when idle (about 2.1 s
# simulated; t4-16gb and l4-24gb with Qwen2.5-3B take 5.4-5.6 s, over the SLO before any load).
LARGE = ("rtx4090-24gb", "Qwen3-4B")

_procs = []


def log(msg):
    print(f"burst: {msg}", file=sys.stderr, flush=True)


def die(msg, code=1):
    log(msg)
    sys.exit(code)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child in its own session, output to a log file, stopped by PID (SIGTERM, then SIGKILL)."""

    def __init__(self, argv, logpath):
        self.log = open(logpath, "w")
        self.logpath = logpath
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        _procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=10):
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()
        if self in _procs:
            _procs.remove(self)

    def tail(self, n=2000):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""


def stop_all():
    for p in reversed(list(_procs)):
        p.stop()


atexit.register(stop_all)


def on_signal(sig, frame):
    stop_all()
    sys.exit(130)


def http_get(port, path, timeout=2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read()


def wait_up(port, proc, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not proc.alive():
            die(f"{os.path.basename(proc.p.args[0])} exited with {proc.p.returncode}:\n{proc.tail()}")
        try:
            if http_get(port, "/health", 1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    die(f"port {port} did not answer /health within {timeout:.0f} s:\n{proc.tail()}")


class Bench:
    """Starts the processes of one run and runs tlab-bench, all in the workload's clock."""

    def __init__(self, a):
        self.a = a
        self.bin = os.path.join(a.build, "bin")
        self.plugin_dir = os.path.join(a.build, "lib", "plugins")
        self.f = a.time_scale

    def start_sim(self, tag):
        port = free_port()
        argv = [os.path.join(self.bin, "tlab-sim"), "--host", "127.0.0.1", "--port", str(port), "--startup-seconds", "0",
                "--time-scale", f"{self.f:g}", "--hardware", self.a.hardware, "--model-profile", self.a.model_profile,
                "--config-dir", os.path.join(SRC, "configs")] + self.a.sim_arg
        p = Proc(argv, os.path.join(self.a.out, "logs", f"{tag}.sim.log"))
        wait_up(port, p)
        return p, port

    def model(self, port):
        try:
            return json.loads(http_get(port, "/v1/models")[1])["data"][0]["id"]
        except (OSError, ValueError, KeyError, IndexError) as e:
            die(f"tlab-sim on {port}: cannot read /v1/models: {e}")

    def start_gateway(self, tag, sim_port, queue_set):
        text = gateway_config.make(self.a.gateway_config, self.f, queue_set)
        path = os.path.join(self.a.out, "configs", f"{tag}.yaml")
        with open(path, "w") as fh:
            fh.write(f"# Generated by loadtest/burst/burst.py from {self.a.gateway_config} (time scale {self.f:g}).\n")
            fh.write(text)
        port = free_port()
        sets = ["--set", "listen.host=127.0.0.1", "--set", f"listen.port={port}", "--set",
                f"upstream.url=http://127.0.0.1:{sim_port}", "--set", f"plugin_dir={self.plugin_dir}", "--set", f"log.level={self.a.log_level}"]
        gw = os.path.join(self.bin, "tlab-gateway")
        chk = subprocess.run([gw, "--check-config", "-c", path] + sets, capture_output=True, text=True)
        if chk.returncode != 0:
            die(f"the generated gateway config {path} is not valid: {chk.stdout}{chk.stderr}")
        p = Proc([gw, "-c", path] + sets, os.path.join(self.a.out, "logs", f"{tag}.gateway.log"))
        wait_up(port, p)
        return p, port

    def bench(self, tag, port, model, arrival, warmup, duration, cooldown, slo_s, seed, extra=()):
        """One tlab-bench run; `arrival` in the workload's clock. Returns its JSON result."""
        f = self.f
        out = os.path.join(self.a.out, "runs", f"{tag}.json")
        argv = [os.path.join(self.bin, "tlab-bench"), "--url", f"http://127.0.0.1:{port}", "--model", model,
                "--workload", self.a.workload, "--duration", f"{duration / f:.6f}", "--warmup", f"{warmup / f:.6f}",
                "--cooldown", f"{cooldown / f:.6f}", "--seed", str(seed), "--timeout", f"{self.a.timeout / f:.6f}",
                "--slo", f"e2e_p95={slo_s / f * 1000:.6f}ms", "--timeslice", f"{1.0 / f:.6f}", "--progress", "never",
                "--output", out] + scaled_arrival(arrival, f) + list(extra)
        r = subprocess.run(argv, capture_output=True, text=True, cwd=SRC)
        if r.returncode not in (0, 1) or not os.path.exists(out):
            die(f"tlab-bench failed ({r.returncode}) for {tag}:\n{' '.join(argv)}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        with open(out) as fh:
            return json.load(fh), out


def scaled_arrival(arr, f):
    """tlab-bench's arrival options for `arr` (workload clock) at time scale f."""
    out = ["--arrival", arr["arrival"], "--rate", f"{arr['rate'] * f:.6f}"]
    if "burstiness" in arr:
        out += ["--burstiness", f"{arr['burstiness']:g}"]
    if arr["arrival"] == "step":
        out += ["--step-factor", f"{arr['step_factor']:g}", "--step-length", f"{arr['step_length'] / f:.6f}",
                "--step-period", f"{arr['step_period'] / f:.6f}"]
    if arr["arrival"] == "ramp":
        out += ["--rate-end", f"{arr['rate_end'] * f:.6f}", "--ramp-time", f"{arr['ramp_time'] / f:.6f}"]
    return out


def summarize(res, f, slo_s):
    """The figures of one run, back in the workload's clock."""
    n = res["num_prompts"] or 1
    errs = res.get("errors_by_kind", {})
    rejected = errs.get("http_429", 0) + errs.get("http_503", 0)
    s = {"offered_rps": res["num_prompts"] / res["duration"] / f if res["duration"] else 0,
         "goodput_rps": res["request_goodput"] / f,
         "throughput_rps": res["request_throughput"] / f,
         "p95_e2e_served_s": res["p95_e2el_ms"] * f / 1000 if res["completed"] else None,
         "p50_e2e_served_s": res["median_e2el_ms"] * f / 1000 if res["completed"] else None,
         "p95_in_slo": bool(res["completed"]) and res["p95_e2el_ms"] * f / 1000 <= slo_s,
         "due": res["num_prompts"], "completed": res["completed"], "good": res["slo"]["good_requests"],
         "rejected": rejected, "rejected_pct": 100.0 * rejected / n,
         "errors": res["failed"] - rejected, "errors_by_kind": errs,
         "generator_behind": res["generator"].get("behind_count", 0),
         "generator_lag_p99_s": res["generator"].get("p99_lag_ms", 0) * f / 1000,
         "generator_lag_max_s": res["generator"].get("max_lag_ms", 0) * f / 1000}
    if "retry" in res:
        s["retry"] = res["retry"]
    # Per simulated second: the slices are 1/f s of wall time, so their counts are per simulated second.
    ts = res.get("timeslices") or {}
    s["slices"] = [[round(x["t_s"] * f, 3), x["offered"], x["admitted"], x["good"], x["rejected"], x["completed"],
                    None if x["p95_e2e_ms"] is None else round(x["p95_e2e_ms"] * f / 1000, 4)]
                   for x in ts.get("slices", [])]
    s["slice_fields"] = ["t_s", "offered", "admitted", "good", "rejected", "completed", "p95_e2e_s"]
    s["window_s"] = [ts.get("window_start_s", 0) * f, ts.get("window_end_s", 0) * f]
    return s


def measure_capacity(b, a):
    """The highest constant rate straight to the worker with p95 E2E inside the SLO: doubling,
    then bisection, each probe a short tlab-bench run that stops early once it must fail."""
    warm, dur = (5, 20) if a.quick else (10, 40)

    def passes(rate):
        # A fresh worker per probe: an early-stopped probe leaves requests behind in the engine.
        tag = f"capacity_{rate:.3f}"
        sim, port = b.start_sim(tag)
        res, _ = b.bench(tag, port, b.model(port), {"arrival": "constant", "rate": rate}, warm, dur, 0, a.slo, 1,
                         ["--early-stop"])
        sim.stop()
        ok = res["slo"]["verdict"] == "pass"
        log(f"capacity probe {rate:.2f} req/s: p95 E2E {res['p95_e2el_ms'] * b.f / 1000:.2f} s, {'pass' if ok else 'fail'}")
        return ok

    lo, hi, r = 0.0, None, a.capacity_start
    for _ in range(8):
        if passes(r):
            lo, r = r, r * 2
        else:
            hi = r
            break
    if hi is None:
        hi = lo * 2
    steps = 2 if a.quick else 4
    for _ in range(steps):
        mid = (lo + hi) / 2
        if mid <= 0:
            break
        if passes(mid):
            lo = mid
        else:
            hi = mid
    if lo <= 0:
        die(f"the worker met the SLO at no probed rate (lowest {hi:.2f} req/s); give --capacity")
    return lo


def schedules(a, cap):
    """Each schedule's arrival, in the workload's clock (every rate times --load)."""
    cap *= a.load
    period = 20.0 if a.quick else 60.0
    total = a.warmup + a.duration + a.cooldown
    return {
        "step": {"arrival": "step", "rate": 0.6 * cap, "step_factor": 3, "step_length": period / 3, "step_period": period},
        "poisson": {"arrival": "poisson", "rate": cap, "burstiness": 0.3},
        "ramp": {"arrival": "ramp", "rate": 0.5 * cap, "rate_end": 2 * cap, "ramp_time": total},
        "steady": {"arrival": "poisson", "rate": 0.7 * cap, "burstiness": 1.0},
    }


def git_commit():
    """The source tree's commit (with -dirty when it has changes), or None outside git."""
    try:
        r = subprocess.run(["git", "-C", SRC, "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def project_version():
    """The project's version, from the top CMakeLists.txt (a script is not configured)."""
    try:
        with open(os.path.join(SRC, "CMakeLists.txt")) as f:
            m = re.search(r"project\([^)]*VERSION\s+([0-9.]+)", f.read())
        return m.group(1) if m else "unknown"
    except OSError:
        return "unknown"


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="loadtest/burst/burst.py", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--build", default=os.path.join(SRC, "build"), help="build folder with bin/ and lib/plugins (default build)")
    ap.add_argument("--out", help="output folder (default experiments/runs/burst_YYYY-MM-DD_HHMMSS)")
    ap.add_argument("--time-scale", type=float, default=1.0, help="tlab-sim's clock runs F times faster (default 1)")
    ap.add_argument("--quick", action="store_true",
                    help="short runs (5 s warm-up, 40 s measured, 5 s cool-down, 20 s step period), gates 32 64, "
                         "a shorter capacity search")
    ap.add_argument("--capacity", type=float, help="the worker's capacity in req/s (default: measured)")
    ap.add_argument("--capacity-start", type=float, default=4.0, help="first rate of the capacity search (default 4)")
    ap.add_argument("--load", type=float, default=1.0,
                    help="multiplies every schedule's rates (default 1: the step's mean and the Poisson rate are the capacity)")
    ap.add_argument("--schedules", default=",".join(DEFAULT_SCHEDULES),
                    help="comma-separated subset of step,poisson,ramp,steady (default step,poisson,ramp)")
    ap.add_argument("--gates", help="static max_inflight values (default 16,32,48,64,96,128; --quick 32,64)")
    ap.add_argument("--static-set", action="append", default=[], metavar="KEY=VALUE",
                    help="another key of the queue plugin's config for the static runs (e.g. a switch that turns an "
                         "adaptive gate off); repeatable")
    ap.add_argument("--no-direct", action="store_true", help="skip the straight-to-the-worker runs")
    ap.add_argument("--no-shipped", action="store_true", help="skip the gateway-as-shipped runs")
    ap.add_argument("--retry", action="store_true",
                    help="tlab-bench --retry-429 on the gateway runs: rejected clients come back after Retry-After")
    ap.add_argument("--gateway-config", default=os.path.join(SRC, "configs", "gateway.yaml"),
                    help="the shipped config (default configs/gateway.yaml)")
    ap.add_argument("--hardware", default="rtx3050-4gb", help="tlab-sim GPU profile (default rtx3050-4gb)")
    ap.add_argument("--model-profile", default="Qwen2.5-0.5B-Instruct", help="tlab-sim model profile")
    ap.add_argument("--large", action="store_true", help=f"the larger profile: --hardware {LARGE[0]} --model-profile {LARGE[1]}")
    ap.add_argument("--sim-arg", action="append", default=[], help="extra tlab-sim flag (e.g. --sim-arg=--max-num-seqs=64); "
                    "none by default: vLLM's default knobs")
    ap.add_argument("--workload", default="fixed_200_200", help="tlab-bench workload (default fixed_200_200)")
    ap.add_argument("--slo", type=float, default=5.0, help="per-request E2E SLO in seconds (default 5)")
    ap.add_argument("--warmup", type=float, help="seconds (default 20; --quick 5)")
    ap.add_argument("--duration", type=float, help="measured seconds (default 180; --quick 40)")
    ap.add_argument("--cooldown", type=float, help="seconds (default 10; --quick 5)")
    ap.add_argument("--timeout", type=float, default=120.0, help="tlab-bench's per-request timeout, s (default 120)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log-level", default="warn", choices=["debug", "info", "warn", "error"],
                    help="the gateways' log.level; info logs each limit change with its reason (default warn)")
    ap.add_argument("--no-plots", action="store_true", help="tables only (tlab-report --no-plots)")
    ap.add_argument("--version", action="version", version=f"burst.py (llm-throughput-lab) {project_version()}")
    a = ap.parse_args(argv)
    if a.time_scale <= 0 or a.time_scale > 1000:
        ap.error("--time-scale must be in (0, 1000]")
    if a.large:
        a.hardware, a.model_profile = LARGE
    a.warmup = a.warmup if a.warmup is not None else (5.0 if a.quick else 20.0)
    a.duration = a.duration if a.duration is not None else (40.0 if a.quick else 180.0)
    a.cooldown = a.cooldown if a.cooldown is not None else (5.0 if a.quick else 10.0)
    a.schedules = [s for s in a.schedules.split(",") if s]
    bad = [s for s in a.schedules if s not in SCHEDULES]
    if bad or not a.schedules:
        ap.error(f"--schedules: unknown {bad}; pick from {','.join(SCHEDULES)}")
    try:
        a.gates = [int(x) for x in (a.gates or ("32,64" if a.quick else "16,32,48,64,96,128")).split(",") if x]
    except ValueError:
        ap.error("--gates takes comma-separated integers")
    if any(g < 1 for g in a.gates):
        ap.error("--gates: each value must be >= 1")
    a.static_extra = {}
    for kv in a.static_set:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            ap.error(f"--static-set '{kv}': want KEY=VALUE")
        a.static_extra[k.strip()] = v.strip()
    if a.load <= 0:
        ap.error("--load must be > 0")
    if a.capacity is not None and a.capacity <= 0:
        ap.error("--capacity must be > 0")
    a.build = os.path.abspath(a.build)
    for prog in ("tlab-sim", "tlab-gateway", "tlab-bench"):
        if not os.access(os.path.join(a.build, "bin", prog), os.X_OK):
            ap.error(f"{a.build}/bin/{prog} not found: build first (make build) or give --build")
    if not os.path.exists(a.gateway_config):
        ap.error(f"--gateway-config {a.gateway_config}: no such file")
    a.sim_arg = [x for s in a.sim_arg for x in (s.split("=", 1) if s.startswith("--") and "=" in s else [s])]
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not a.out:
        a.out = os.path.join(SRC, "experiments", "runs", time.strftime("burst_%Y-%m-%d_%H%M%S"))
    a.out = os.path.abspath(a.out)
    for d in ("runs", "configs", "logs"):
        os.makedirs(os.path.join(a.out, d), exist_ok=True)
    b = Bench(a)
    t0 = time.monotonic()
    if a.capacity is None:
        log(f"measuring the worker's capacity ({a.hardware}, {a.model_profile}, time scale {a.time_scale:g}) ...")
        cap, cap_how = measure_capacity(b, a), "measured"
    else:
        cap, cap_how = a.capacity, "given"
    log(f"capacity {cap:.2f} req/s ({cap_how})")
    scheds = schedules(a, cap)
    ways = ([] if a.no_direct else [("direct", None)]) + [(f"static-{g}", g) for g in a.gates] + \
        ([] if a.no_shipped else [("shipped", None)])
    total = len(a.schedules) * len(ways)
    run_wall = (a.warmup + a.duration + a.cooldown) / a.time_scale
    summary = {"kind": "burst", "version": 1, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "command": " ".join(["loadtest/burst/burst.py"] + (sys.argv[1:] if argv is None else argv)),
               "config": {"hardware": a.hardware, "model_profile": a.model_profile, "sim_args": a.sim_arg,
                          "time_scale": a.time_scale, "workload": a.workload, "slo_e2e_s": a.slo, "warmup_s": a.warmup,
                          "duration_s": a.duration, "cooldown_s": a.cooldown, "seed": a.seed, "quick": a.quick,
                          "gates": a.gates, "static_set": a.static_extra, "retry_429": a.retry, "load": a.load,
                          "commit": git_commit(),
                          "gateway_config": os.path.relpath(os.path.abspath(a.gateway_config), SRC)},
               "capacity": {"rps": cap, "how": cap_how},
               "host": {"cpus": os.cpu_count()},
               "schedules": []}
    k = 0
    for name in a.schedules:
        arr = scheds[name]
        entry = {"name": name, "arrival": arr, "ways": []}
        summary["schedules"].append(entry)
        for way, gate in ways:
            k += 1
            left = (total - k + 1) * (run_wall + 1.5)
            log(f"[{k}/{total}] {name}: {way} ({run_wall:.0f} s of wall time; about {left / 60:.1f} min left)")
            tag = f"{name}_{way}"
            sim, sim_port = b.start_sim(tag)
            model = b.model(sim_port)
            gw = None
            port = sim_port
            if way != "direct":
                qs = dict(a.static_extra, max_inflight=gate) if gate else None
                gw, port = b.start_gateway(tag, sim_port, qs)
            extra = ["--retry-429"] if a.retry and way != "direct" else []
            res, path = b.bench(tag, port, model, arr, a.warmup, a.duration, a.cooldown, a.slo, a.seed, extra)
            if gw:
                gw.stop()
            sim.stop()
            s = summarize(res, a.time_scale, a.slo)
            s.update({"way": way, "gate": gate, "result": os.path.relpath(path, a.out)})
            entry["ways"].append(s)
            p95 = "-" if s["p95_e2e_served_s"] is None else f"{s['p95_e2e_served_s']:.2f} s"
            log(f"[{k}/{total}] {name}: {way}: goodput {s['goodput_rps']:.2f} req/s, p95 E2E of served {p95}, "
                f"rejected {s['rejected_pct']:.1f} %, errors {s['errors']}")
        statics = [w for w in entry["ways"] if w["gate"]]
        if statics:
            best = max(statics, key=lambda w: w["goodput_rps"])
            entry["best_static"] = best["way"]
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    out_json = os.path.join(a.out, "burst.json")
    with open(out_json, "w") as fh:
        json.dump(summary, fh, indent=1)
    log(f"wrote {out_json}")
    report = os.path.join(SRC, "loadtest", "report", "tlab-report")
    r = subprocess.run([sys.executable, report, "--burst", out_json, "--out", a.out] + (["--no-plots"] if a.no_plots else []),
                       capture_output=True, text=True)
    if r.returncode != 0:
        die(f"tlab-report failed ({r.returncode}): {r.stderr.strip()}")
    md = os.path.join(a.out, "results.md")
    with open(md) as fh:
        print(fh.read())
    log(f"results in {md} ({summary['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
