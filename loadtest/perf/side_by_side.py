#!/usr/bin/env python3
"""tlab-gateway, nginx and no proxy at all, measured side by side in front of one upstream.

Every figure comes from one invocation that measures all three paths to tlab-perf-upstream
(a minimal evhttp server, loadtest/perf/perf_upstream.c):
  direct   the client talks to the upstream itself;
  nginx    through nginx (generated config: proxy_pass with upstream keep-alive, proxy_buffering
           off so SSE is relayed as it comes, access_log off, worker_processes = proxy cores);
  gateway  through tlab-gateway with the default plugin chain (queue, batching with window 0,
           metrics; no supervisor: the upstream is external) and the Lua policies of
           configs/gateway.yaml (scripts-lua/admission.lua and degradation.lua).

Sections (--sections, default all):
  latency  concurrency 1, tlab-perf-latency: the same small chat request to the three paths in
           rotating order, round after round; added latency = through - direct, per round.
  ttft     as latency, but the upstream streams (first chunk right after the headers) and the time
           to the first body byte is measured: the time to first token each proxy adds.
  rps      upstream answers after --service-ms (20); tlab-bench open loop at a constant rate,
           stepped up then bisected, per path: the highest rate with no error, throughput within
           2 % of the offered rate and e2e p99 <= service + --p99-budget-ms (20). A failing step
           is run once more (--rps-retries) before it counts as failed.
  stream   upstream streams --chunks (64) SSE chunks every --interval-ms (20); tlab-bench closed
           loop with --streams (512) streams open at all times; TTFT, inter-chunk gaps, stalls
           (a gap longer than interval + --stall-ms (200), or a first chunk that late).
  memory   gateway only: RSS idle, with --queued (10000) requests held in its queue (queue
           max_inflight 4, the upstream slow), and after those clients left.
  soak     gateway only: --soak-s seconds of steady mixed load (non-streaming at --soak-rate plus
           streams), RSS every 30 s.

CPU pinning (taskset, when the machine has >= 2 CPUs): the proxy under test on --proxy-cpus
(default "1"), the load generator and the upstream on --client-cpus (default "0"). nginx gets
one worker per proxy CPU. The machine's other load is measured during each section (CPU time
of processes that are not ours, from /proc) and reported beside the figures.

Output: a Markdown report (--out, default experiments/perf/side_by_side_<UTC time>.md) with the
exact command, and the raw numbers as JSON beside it. Exit status 0 when every path answered
and every section ran, 1 when a check failed (a path did not answer, a stream did not complete,
the queue never filled), 2 bad usage, 3 a missing tool (nginx, a binary). Timing goals are
reported, never turned into the exit status.
"""
import argparse
import csv
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
MODEL = "Qwen/Qwen2.5-0.5B-Instruct"

sys.path.insert(0, HERE)
from side_by_side_procs import (  # noqa: E402  (processes, /proc readings, quantiles)
    PATHS, MachineLoad, cpu_seconds, die, expand_cpus, free_port, http_get, nofile_limit, proc_tree, q, rss_kib, start, stop_all, wait_http)
from side_by_side_report import report  # noqa: E402


# ---------------------------------------------------------------- the three paths

class Bench:
    def __init__(self, args):
        self.a = args
        self.bin = os.path.join(os.path.abspath(args.build), "bin")
        self.plugins = os.path.join(os.path.abspath(args.build), "lib", "plugins")
        self.tmp = tempfile.mkdtemp(prefix="tlab-sbs-")
        os.chmod(self.tmp, 0o755)  # nginx workers run as nobody when the master is root
        ncpu = os.cpu_count() or 1
        pin = shutil.which("taskset") and ncpu >= 2 and not args.no_pin
        self.pin_proxy = ["taskset", "-c", args.proxy_cpus] if pin else []
        self.pin_client = ["taskset", "-c", args.client_cpus] if pin else []
        self.proxy_ncpu = len(expand_cpus(args.proxy_cpus)) if pin else 1
        self.nginx = args.nginx or shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
        missing = [b for b in ("tlab-gateway", "tlab-bench", "tlab-perf-upstream", "tlab-perf-latency")
                   if not os.access(os.path.join(self.bin, b), os.X_OK)]
        if missing:
            die(3, f"missing in {self.bin}: {', '.join(missing)} (build first: make, or make BUILD=build-rel BUILD_TYPE=RelWithDebInfo build)")
        if not self.nginx or not os.access(self.nginx, os.X_OK):
            die(3, "nginx not found: run infra/install-deps.sh (it installs Debian's nginx-light), or pass --nginx PATH")
        for p in ("queue", "batching", "metrics"):
            if not os.path.exists(os.path.join(self.plugins, p + ".so")):
                die(3, f"plugin {p}.so missing in {self.plugins}")

    def upstream(self, *extra):
        port = free_port()
        pr = start(self.pin_client + [os.path.join(self.bin, "tlab-perf-upstream"), "--port", str(port)] + [str(x) for x in extra],
                  "upstream", self.tmp)
        wait_http(port, pr)
        return pr, port

    def nginx_start(self, up_port):
        """nginx in front of 127.0.0.1:up_port, on a free port, with its pid, logs and temp files
        in a fresh directory; foreground (daemon off) so the process's PID is the master's."""
        port = free_port()
        d = tempfile.mkdtemp(prefix="nginx-", dir=self.tmp)
        os.chmod(d, 0o755)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""# generated by loadtest/perf/side_by_side.py
daemon off;
master_process on;
worker_processes {self.proxy_ncpu};
worker_rlimit_nofile {max(1024, nofile_limit() - 64)};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections {max(512, min(16384, nofile_limit() // 2 - 64))}; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    tcp_nodelay on;
    upstream up {{
        server 127.0.0.1:{up_port};
        keepalive 1024;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
""")
        pr = start(self.pin_proxy + [self.nginx, "-p", d, "-c", conf], "nginx", self.tmp)
        wait_http(port, pr)
        return pr, port

    def gateway_config(self, queue_depth=1024, inflight=1024, queue_timeout_ms=30000, admission_q_max=None):
        """configs/gateway.yaml's defaults, its policies, and the default plugins minus the
        supervisor. The queue's max_inflight is raised above the streams a section keeps open
        (the shipped 256 matches a worker's max_num_seqs, not a proxy benchmark)."""
        adm = os.path.join(SRC, "scripts-lua", "admission.lua")
        if admission_q_max is not None:
            # The shipped policy sheds above 256 waiting; the memory section needs 10,000 queued.
            with open(adm) as f:
                text = f.read()
            adm = os.path.join(self.tmp, "admission.lua")
            with open(adm, "w") as f:
                f.write(text.replace("Q_MAX = 256", f"Q_MAX = {admission_q_max}"))
        path = os.path.join(self.tmp, f"gateway-{queue_depth}-{inflight}.yaml")
        with open(path, "w") as f:
            f.write(f"""# generated by loadtest/perf/side_by_side.py from configs/gateway.yaml
log:
  level: warn
limits:
  max_client_connections: 100000
policies:
  admission: {adm}
  degradation: {os.path.join(SRC, "scripts-lua", "degradation.lua")}
plugins:
  - name: queue
    config:
      max_depth: {queue_depth}
      max_inflight: {inflight}
      queue_timeout_ms: {queue_timeout_ms}
  - name: batching
    config:
      window_ms: 0
      max_batch: 64
      slo_p95_ms: 5000
  - name: metrics
""")
        return path

    def gateway_start(self, up_port, config=None):
        port = free_port()
        argv = self.pin_proxy + [os.path.join(self.bin, "tlab-gateway"), "-c", config or self.gateway_config(),
                                 "--set", "listen.host=127.0.0.1", "--set", f"listen.port={port}",
                                 "--set", f"upstream.url=http://127.0.0.1:{up_port}", "--set", f"plugin_dir={self.plugins}"]
        pr = start(argv, "gateway", self.tmp)
        wait_http(port, pr)
        return pr, port

    def all_paths(self, *upstream_args, gateway_config=None):
        """Starts the upstream, nginx and the gateway; returns {path: (process or None, port)}."""
        up, up_port = self.upstream(*upstream_args)
        ng, ng_port = self.nginx_start(up_port)
        gw, gw_port = self.gateway_start(up_port, gateway_config)
        return up, {"direct": (up, up_port), "nginx": (ng, ng_port), "gateway": (gw, gw_port)}

    def workload(self, name, stream, max_tokens):
        path = os.path.join(self.tmp, name + ".yaml")
        with open(path, "w") as f:
            f.write(f"endpoint: chat\nmodel: {MODEL}\nprompt_file: {os.path.join(SRC, 'configs', 'prompts', 'prompt_200.txt')}\n"
                    f"max_tokens: {max_tokens}\nstream: {'true' if stream else 'false'}\n")
        return path

    def bench(self, port, workload, extra, name, timeout=None):
        """One tlab-bench run on the client CPUs; returns (result JSON, CSV rows)."""
        out = os.path.join(self.tmp, f"{name}.json")
        argv = self.pin_client + [os.path.join(self.bin, "tlab-bench"), "--url", f"http://127.0.0.1:{port}",
                                  "--workload", workload, "--slo", "none", "--progress", "never", "--output", out] + extra
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if r.returncode not in (0, 1):
            raise RuntimeError(f"tlab-bench exited {r.returncode}: {' '.join(argv)}\n{r.stdout[-2000:]}")
        with open(out) as f:
            res = json.load(f)
        with open(out[:-5] + ".csv") as f:
            rows = list(csv.DictReader(f))
        return res, rows


# ---------------------------------------------------------------- sections

def section_latency(b, rep, ttft=False):
    # ttft: the upstream streams (its first chunk right after the headers) and the probe times
    # the first body byte: the time to first token each path adds, without the pacing timer's jitter.
    up, paths = b.all_paths(*(["--chunks", 4, "--interval-ms", 0] if ttft else []))
    body = os.path.join(b.tmp, "latency_body.json")
    with open(body, "w") as f:
        json.dump({"model": MODEL, "messages": [{"role": "user", "content": "Say ok."}], "max_tokens": 4 if ttft else 1,
                   "stream": ttft}, f)
    urls = [f"http://127.0.0.1:{paths[p][1]}/v1/chat/completions" for p in PATHS]
    argv = b.pin_client + [os.path.join(b.bin, "tlab-perf-latency"), "--body", body, "--rounds", str(b.a.rounds),
                           "--warmup", str(min(500, b.a.rounds))] + (["--ttft"] if ttft else []) + urls
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    stop_all()
    if r.returncode != 0:
        raise RuntimeError(f"tlab-perf-latency failed: {r.stderr}")
    rows = [[float(x) for x in line.split()] for line in r.stdout.splitlines() if line.strip()]
    res = {"rounds": len(rows)}
    for i, p in enumerate(PATHS):
        xs = [row[i] for row in rows]
        res[p] = {"p50": q(xs, 50), "p99": q(xs, 99)}
    for i, p in ((1, "nginx"), (2, "gateway")):
        d = [row[i] - row[0] for row in rows]
        res[f"added_{p}"] = {"p50": q(d, 50), "p90": q(d, 90), "p99": q(d, 99),
                             "p99_of_path_minus_p99_direct": res[p]["p99"] - res["direct"]["p99"]}
    print(f"  {'ttft' if ttft else 'latency'} run {rep}: direct p50 {res['direct']['p50']:.0f} µs; added nginx p50/p99 "
          f"{res['added_nginx']['p50']:.0f}/{res['added_nginx']['p99']:.0f} µs, gateway "
          f"{res['added_gateway']['p50']:.0f}/{res['added_gateway']['p99']:.0f} µs", flush=True)
    return res


def rps_step(b, path, port, rate, workload, proc, name):
    pids = proc_tree(proc.pid) if proc else []
    c0 = cpu_seconds(pids)
    t0 = time.monotonic()
    res, _ = b.bench(port, workload, ["--arrival", "constant", "--rate", f"{rate:.0f}", "--duration", f"{b.a.step_s}s",
                                      "--warmup", f"{b.a.warm_s}s", "--cooldown", f"{b.a.warm_s}s", "--timeout", "10s",
                                      "--max-inflight", "4000"], name, timeout=b.a.step_s + 60)
    cpu = (cpu_seconds(pids) - c0) / (time.monotonic() - t0) if proc else None
    g = res["generator"]
    limit = b.a.service_ms + b.a.p99_budget_ms
    ok = (res["failed"] == 0 and g["dropped_by_max_inflight"] == 0 and res["completed"] > 0
          and res["request_throughput"] >= 0.98 * rate and res["p99_e2el_ms"] <= limit)
    step = {"rate": rate, "ok": ok, "throughput": res["request_throughput"], "p99_ms": res["p99_e2el_ms"],
            "p50_ms": res["median_e2el_ms"], "failed": res["failed"], "lag_p99_ms": g["p99_lag_ms"],
            "proxy_cpu": cpu}
    print(f"    {path:8s} {rate:7.0f} req/s -> {res['request_throughput']:7.0f} ok, p50 {res['median_e2el_ms']:.1f} ms "
          f"p99 {res['p99_e2el_ms']:.1f} ms, failed {res['failed']}, send lag p99 {g['p99_lag_ms']:.1f} ms"
          + (f", proxy CPU {100 * cpu:.0f}%" if cpu is not None else "") + f" -> {'pass' if ok else 'FAIL'}", flush=True)
    return step


def rps_try(b, path, port, rate, workload, proc, name):
    """One step, run again (--rps-retries times) while it fails: on a shared 2-vCPU VM a single
    5 s step can fail on a hiccup of the machine (the generator's send lag shows it), and one
    false FAIL used to send the bisection far below the real limit. Both proxies get the same."""
    s = rps_step(b, path, port, rate, workload, proc, name)
    for i in range(b.a.rps_retries):
        if s["ok"]:
            break
        s = rps_step(b, path, port, rate, workload, proc, f"{name}-retry{i + 1}")
        s["retried"] = i + 1
    return s


def section_rps(b, rep):
    up, paths = b.all_paths("--delay-ms", b.a.service_ms)
    wl = b.workload("rps", False, 1)
    res = {}
    for path in PATHS:
        proc, port = paths[path]
        steps = []
        lo, hi, rate = 0.0, None, float(b.a.rps_start)
        while rate <= b.a.rps_max:  # bracket: double until a step fails
            s = rps_try(b, path, port, rate, wl, proc if path != "direct" else None, f"rps-{path}-{rep}-{len(steps)}")
            steps.append(s)
            if not s["ok"]:
                hi = rate
                break
            lo = rate
            rate *= 2
        while hi is not None and hi - lo > b.a.rps_precision * hi:  # bisect
            rate = round((lo + hi) / 2, -1)
            s = rps_try(b, path, port, rate, wl, proc if path != "direct" else None, f"rps-{path}-{rep}-{len(steps)}")
            steps.append(s)
            if s["ok"]:
                lo = rate
            else:
                hi = rate
        best = max((s for s in steps if s["ok"]), key=lambda s: s["rate"], default=None)
        res[path] = {"max_rps": lo, "capped": hi is None, "steps": steps,
                     "proxy_cpu_at_max": best["proxy_cpu"] if best else None,
                     "p99_at_max": best["p99_ms"] if best else None}
        print(f"  rps run {rep}: {path} max {lo:.0f} req/s" + (" (not reached: --rps-max)" if hi is None else ""), flush=True)
    stop_all()
    res["ratio_gateway_nginx"] = res["gateway"]["max_rps"] / res["nginx"]["max_rps"] if res["nginx"]["max_rps"] else None
    return res


def section_stream(b, rep):
    up, paths = b.all_paths("--chunks", b.a.chunks, "--interval-ms", b.a.interval_ms)
    wl = b.workload("stream", True, b.a.chunks)
    stall_ms = b.a.interval_ms + b.a.stall_ms
    res = {}
    for path in PATHS:
        proc, port = paths[path]
        pids = proc_tree(proc.pid) if path != "direct" else []
        c0, t0 = cpu_seconds(pids), time.monotonic()
        out, rows = b.bench(port, wl, ["--concurrency", str(b.a.streams), "--duration", f"{b.a.stream_s}s",
                                       "--warmup", f"{3 * b.a.warm_s}s", "--cooldown", f"{2 * b.a.warm_s}s", "--timeout", "60s"],
                            f"stream-{path}-{rep}", timeout=b.a.stream_s + 120)
        cpu = (cpu_seconds(pids) - c0) / (time.monotonic() - t0) if pids else None
        win = [r for r in rows if r["in_window"] == "1"]
        good = [r for r in win if r["status"] == "200" and r["error_kind"] in ("", "ok")]
        ttft = [float(r["ttft_ms"]) for r in good]
        gaps = [float(g) for r in good for g in r["itl_ms"].split(";") if g]
        stalled = sum(1 for r in good if float(r["ttft_ms"]) > stall_ms
                      or any(float(g) > stall_ms for g in r["itl_ms"].split(";") if g))
        chunks_ok = sum(1 for r in good if int(r["chunks"]) == b.a.chunks)
        res[path] = {"requests": len(win), "ok": len(good), "complete": chunks_ok, "failed": len(win) - len(good),
                     "stalled": stalled, "ttft_p50": q(ttft, 50), "ttft_p99": q(ttft, 99),
                     "gap_p50": q(gaps, 50), "gap_p99": q(gaps, 99), "gap_max": max(gaps) if gaps else None,
                     "peak_streams": out["max_concurrent_requests"], "proxy_cpu": cpu}
        print(f"  stream run {rep}: {path:8s} {len(good)}/{len(win)} ok ({chunks_ok} with all {b.a.chunks} chunks), "
              f"peak {out['max_concurrent_requests']} streams, TTFT p50/p99 {q(ttft, 50):.2f}/{q(ttft, 99):.2f} ms, "
              f"gap p50/p99/max {q(gaps, 50):.2f}/{q(gaps, 99):.2f}/{(max(gaps) if gaps else 0):.1f} ms, stalled {stalled}"
              + (f", proxy CPU {100 * cpu:.0f}%" if cpu is not None else ""), flush=True)
    stop_all()
    for p in ("nginx", "gateway"):
        res[f"added_{p}"] = {k: res[p][k] - res["direct"][k] for k in ("ttft_p50", "ttft_p99", "gap_p50", "gap_p99")}
    return res


def section_memory(b, rep):
    n = b.a.queued
    up, up_port = b.upstream("--delay-ms", 600000)
    cfg = b.gateway_config(queue_depth=n * 2, inflight=4, queue_timeout_ms=600000, admission_q_max=n * 2)
    gw, gw_port = b.gateway_start(up_port, cfg)
    res = {"queued_target": n, "rss_idle_kib": rss_kib(gw.pid)}
    wl = b.workload("memory", False, 16)
    # Open loop at a fixed rate, so the 10,000 connections arrive over a few seconds, not at once.
    rate = min(2000, max(100, n // 4))
    send = n + n // 100 + 5  # a few more than n: the check is ">= n held", whatever the schedule's rounding
    argv = b.pin_client + [os.path.join(b.bin, "tlab-bench"), "--url", f"http://127.0.0.1:{gw_port}", "--workload", wl,
                           "--slo", "none", "--progress", "never", "--arrival", "constant", "--rate", str(rate),
                           "--duration", f"{send / rate:.3f}s", "--warmup", "0", "--cooldown", "0", "--timeout", "600s",
                           "--max-inflight", str(send + 100), "--output", os.path.join(b.tmp, f"memory-{rep}.json")]
    client = start(argv, "bench-memory", b.tmp)
    deadline = time.monotonic() + send / rate + 60
    waiting = 0
    while time.monotonic() < deadline and client.alive():
        try:
            h = json.loads(http_get(gw_port, "/health", 5)[1])
            waiting, inflight = h["waiting"], h["in_flight"]
        except OSError:
            waiting, inflight = 0, 0
        if waiting + inflight >= n:
            break
        time.sleep(0.5)
    time.sleep(1.0)  # let the last arrivals settle before sampling
    h = json.loads(http_get(gw_port, "/health", 5)[1])
    res.update({"waiting": h["waiting"], "in_flight": h["in_flight"], "rss_queued_kib": rss_kib(gw.pid)})
    client.stop(signal.SIGKILL)  # 10,000 clients leave at once
    time.sleep(3.0)
    h = json.loads(http_get(gw_port, "/health", 5)[1])
    res.update({"rss_after_kib": rss_kib(gw.pid), "waiting_after": h["waiting"], "live_after": h["live_requests"]})
    stop_all()
    print(f"  memory run {rep}: RSS idle {res['rss_idle_kib'] / 1024:.1f} MiB, with {res['waiting']} waiting + "
          f"{res['in_flight']} at the upstream {res['rss_queued_kib'] / 1024:.1f} MiB, after the clients left "
          f"{res['rss_after_kib'] / 1024:.1f} MiB ({res['live_after']} requests still live)", flush=True)
    return res


def section_soak(b, rep):
    up, up_port = b.upstream("--delay-ms", b.a.service_ms, "--chunks", b.a.chunks, "--interval-ms", b.a.interval_ms)
    gw, gw_port = b.gateway_start(up_port)
    rss_start = rss_kib(gw.pid)  # idle, before any request
    total = b.a.soak_s
    warm = min(10, max(2, total // 10))
    wl_small = b.workload("soak_small", False, 1)
    wl_stream = b.workload("soak_stream", True, b.a.chunks)
    common = ["--slo", "none", "--progress", "never", "--arrival", "constant", "--warmup", "0", "--cooldown", "0",
              "--timeout", "30s"]
    tb = os.path.join(b.bin, "tlab-bench")
    small = start(b.pin_client + [tb, "--url", f"http://127.0.0.1:{gw_port}", "--workload", wl_small, "--rate",
                                 str(b.a.soak_rate), "--duration", f"{total + warm}s",
                                 "--output", os.path.join(b.tmp, f"soak-small-{rep}.json")] + common, "bench-soak-small", b.tmp)
    stream = start(b.pin_client + [tb, "--url", f"http://127.0.0.1:{gw_port}", "--workload", wl_stream, "--rate",
                                  str(b.a.soak_stream_rate), "--duration", f"{total + warm}s",
                                  "--output", os.path.join(b.tmp, f"soak-stream-{rep}.json")] + common, "bench-soak-stream", b.tmp)
    time.sleep(warm)
    t0 = time.monotonic()
    samples = [(0, rss_kib(gw.pid))]
    print(f"  soak run {rep}: t=0 s RSS {samples[0][1] / 1024:.1f} MiB", flush=True)
    while time.monotonic() - t0 < total - 0.5:
        time.sleep(min(30, total - (time.monotonic() - t0)))
        samples.append((round(time.monotonic() - t0), rss_kib(gw.pid)))
        print(f"  soak run {rep}: t={samples[-1][0]} s RSS {samples[-1][1] / 1024:.1f} MiB", flush=True)
    for pr in (small, stream):
        pr.p.wait(120)
        pr.stop()
    time.sleep(2)
    after = rss_kib(gw.pid)
    h = json.loads(http_get(gw_port, "/health", 5)[1])
    results = {}
    for name in ("small", "stream"):
        with open(os.path.join(b.tmp, f"soak-{name}-{rep}.json")) as f:
            r = json.load(f)
        results[name] = {"completed": r["completed"], "failed": r["failed"], "p99_e2el_ms": r["p99_e2el_ms"],
                         "throughput": r["request_throughput"]}
    stop_all()
    res = {"seconds": total, "rss_before_load_kib": rss_start, "samples": samples, "rss_idle_after_kib": after, "live_after": h["live_requests"],
           "load": results}
    print(f"  soak run {rep}: after the load stopped RSS {after / 1024:.1f} MiB; small {results['small']}, "
          f"stream {results['stream']}", flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(SRC, "build"), help="build tree with bin/ and lib/plugins/ (default build)")
    ap.add_argument("--sections", default="latency,ttft,rps,stream,memory,soak", help="comma-separated (default all)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each section except soak (default 3)")
    ap.add_argument("--quick", action="store_true", help="tiny version of every section (seconds; for tests, not for figures)")
    ap.add_argument("--out", help="Markdown report path (JSON beside it)")
    ap.add_argument("--nginx", help="nginx binary (default: nginx on PATH, /usr/sbin/nginx)")
    ap.add_argument("--proxy-cpus", default="1")
    ap.add_argument("--client-cpus", default="0")
    ap.add_argument("--no-pin", action="store_true", help="no taskset")
    ap.add_argument("--rounds", type=int, default=20000, help="latency: rounds per run (default 20000)")
    ap.add_argument("--service-ms", type=int, default=20)
    ap.add_argument("--p99-budget-ms", type=int, default=20)
    ap.add_argument("--step-s", type=int, default=5, help="rps: measured seconds per step (default 5)")
    ap.add_argument("--warm-s", type=float, default=1.0, help="rps: warm-up and cool-down per step; stream: 3x and 2x that")
    ap.add_argument("--rps-start", type=int, default=1000)
    ap.add_argument("--rps-max", type=int, default=64000)
    ap.add_argument("--rps-retries", type=int, default=1,
                    help="rps: re-runs of a failing step before it counts as failed (default 1)")
    ap.add_argument("--rps-precision", type=float, default=0.05)
    ap.add_argument("--chunks", type=int, default=64)
    ap.add_argument("--interval-ms", type=int, default=20)
    ap.add_argument("--streams", type=int, default=512)
    ap.add_argument("--stream-s", type=int, default=10)
    ap.add_argument("--stall-ms", type=int, default=200)
    ap.add_argument("--queued", type=int, default=10000)
    ap.add_argument("--soak-s", type=int, default=600)
    ap.add_argument("--soak-rate", type=int, default=1000)
    ap.add_argument("--soak-stream-rate", type=int, default=20)
    a = ap.parse_args()
    if a.quick:
        a.repeat, a.rounds, a.step_s, a.rps_start, a.rps_max, a.warm_s, a.rps_precision = 1, 300, 1, 100, 100, 0.3, 1.0
        a.streams, a.stream_s, a.chunks, a.queued, a.soak_s, a.soak_rate, a.soak_stream_rate = 16, 1, 8, 200, 4, 50, 2
    sections = [s for s in a.sections.split(",") if s]
    known = {"latency": section_latency, "ttft": lambda b, rep: section_latency(b, rep, ttft=True), "rps": section_rps, "stream": section_stream, "memory": section_memory,
             "soak": section_soak}
    bad = [s for s in sections if s not in known]
    if bad:
        ap.error(f"unknown section(s): {', '.join(bad)} (known: {', '.join(known)})")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    out = a.out or os.path.join(SRC, "experiments", "perf",
                                f"side_by_side_{started.replace(' ', '_').replace(':', '')}.md")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: die(130, "interrupted"))
    b = Bench(a)
    argv_text = " ".join(shlex.quote(x) for x in [os.path.relpath(sys.argv[0], SRC) if sys.argv[0].startswith(SRC) else sys.argv[0]] + sys.argv[1:])
    runs, loads, failures = {}, {}, []
    try:
        for s in sections:
            for rep in range(1, (1 if s == "soak" else a.repeat) + 1):
                print(f"{s}, run {rep} ...", flush=True)
                m = MachineLoad()
                r = known[s](b, rep)
                loads.setdefault(s, []).append(m.result())
                runs.setdefault(s, []).append(r)
                failures += checks(s, r, a)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        failures.append(str(e))
    finally:
        stop_all()
    text = report(b, runs, loads, argv_text, started)
    with open(out, "w") as f:
        f.write(text)
    with open(out[:-3] + ".json" if out.endswith(".md") else out + ".json", "w") as f:
        json.dump({"args": vars(a), "started_utc": started, "runs": runs, "machine_load": loads}, f, indent=1)
    print(text)
    print(f"report: {out}")
    with open(out) as f:  # the table others read: every path has its row
        written = f.read()
    failures += [f"report: no row for {p}" for p in PATHS
                 if set(runs) & {"latency", "rps", "stream"} and f"| {p} |" not in written]
    if not a.quick or not failures:
        shutil.rmtree(b.tmp, ignore_errors=True)
    for msg in failures:
        print(f"CHECK failed: {msg}", file=sys.stderr)
    sys.exit(1 if failures else 0)


def checks(section, r, a):
    """Functional checks (never timing): every path answered, streams completed, the queue filled."""
    bad = []
    if section in ("latency", "ttft") and r["rounds"] < a.rounds:
        bad.append(f"{section}: {r['rounds']} of {a.rounds} rounds")
    if section == "rps":
        for p in PATHS:
            if not any(s["ok"] or s["throughput"] > 0 for s in r[p]["steps"]):
                bad.append(f"rps: {p} answered nothing")
    if section == "stream":
        for p in PATHS:
            if r[p]["ok"] == 0 or r[p]["complete"] != r[p]["ok"]:
                bad.append(f"stream: {p}: {r[p]['complete']} complete of {r[p]['ok']} ok streams")
    if section == "memory" and r["waiting"] + r["in_flight"] < r["queued_target"]:
        bad.append(f"memory: only {r['waiting']} waiting + {r['in_flight']} in flight of {r['queued_target']}")
    if section == "soak" and any(x["completed"] == 0 for x in r["load"].values()):
        bad.append("soak: a load completed nothing")
    return bad


if __name__ == "__main__":
    main()
