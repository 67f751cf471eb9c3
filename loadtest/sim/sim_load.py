#!/usr/bin/env python3
"""sim_load.py - a small closed-loop streaming load client for tlab-sim (or any OpenAI-compatible server).

N workers each keep one streaming request in flight for --duration real seconds. Results are
reported in the server's simulated time (real seconds x --time-scale), so a run at time-scale F is
converted back to what the modelled GPU would do. Standard library only (asyncio, raw HTTP/1.1).

  python3 loadtest/sim/sim_load.py --port 8000 --concurrency 256 --duration 60 \
      --prompt-tokens 200 --max-tokens 200

With --start-sim "ARGS" it starts build/bin/tlab-sim itself on a free port (stopped by PID at the end).
"""
import argparse
import asyncio
import json
import os
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


class Stats:
    def __init__(self):
        self.done = []      # (t_end, ttft, e2e, n_tokens, itl_mean)
        self.tokens = []    # token arrival times (real), for windowed throughput
        self.errors = 0


async def one_request(host, port, body, st, stop_at):
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        st.errors += 1
        await asyncio.sleep(0.05)
        return
    req = (f"POST {body['path']} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body['data'])}\r\nConnection: close\r\n\r\n").encode() + body["data"]
    writer.write(req)
    first = None
    last = None
    ntok = 0
    gaps = 0.0
    ok = False
    tail = b""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            now = time.monotonic()
            data = tail + chunk
            n = data.count(b"data: {") - tail.count(b"data: {")
            # usage-only chunk has "choices":[] and no token
            n -= data.count(b'"choices":[]') - tail.count(b'"choices":[]')
            if body["chat"]:
                n -= data.count(b'"role":"assistant"') - tail.count(b'"role":"assistant"')
            if n > 0:
                if first is None:
                    first = now
                elif last is not None:
                    gaps += now - last
                last = now
                ntok += n
                st.tokens.extend([now] * n)
            if b"data: [DONE]" in data:
                ok = True
                break
            tail = data[-64:]
            if now > stop_at:
                break
    finally:
        writer.close()
    if ok and first is not None:
        st.done.append((last, first - t0, last - t0, ntok, gaps / max(1, ntok - 1)))
    elif not ok and time.monotonic() < stop_at:
        st.errors += 1


async def worker(host, port, body, st, stop_at, delay=0.0):
    await asyncio.sleep(delay)
    while time.monotonic() < stop_at:
        await one_request(host, port, body, st, stop_at)


def make_body(args):
    if args.endpoint == "chat":
        text = open(args.prompt_file).read() if args.prompt_file else "x" * (4 * args.prompt_tokens)
        d = {"messages": [{"role": "user", "content": text}]}
        path = "/v1/chat/completions"
    else:
        d = {"prompt": list(range(1, args.prompt_tokens + 1))}
        path = "/v1/completions"
    d.update({"max_tokens": args.max_tokens, "ignore_eos": True, "temperature": 0, "stream": True})
    if args.model:
        d["model"] = args.model
    return {"path": path, "data": json.dumps(d).encode(), "chat": args.endpoint == "chat"}


def scrape(host, port):
    out = {}
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(("tlab_sim:", "vllm:num_preemptions", "vllm:generation_tokens",
                                    "vllm:kv_cache_usage_perc")):
                    name = line.split("{")[0]
                    out[name] = float(line.rsplit(" ", 1)[1])
    except OSError as e:
        out["error"] = str(e)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sim(argstr, time_scale):
    here = os.path.dirname(os.path.abspath(__file__))
    binary = os.environ.get("TLAB_SIM", os.path.join(here, "..", "..", "build", "bin", "tlab-sim"))
    port = free_port()
    argv = [binary, "--host", "127.0.0.1", "--port", str(port), "--time-scale", str(time_scale),
            "--startup-seconds", "0"] + shlex.split(argstr)
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if p.poll() is not None:
            sys.exit(f"tlab-sim exited with {p.returncode}: {p.stderr.read().decode()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return p, port
        except OSError:
            time.sleep(0.05)
    p.kill()
    sys.exit("tlab-sim did not become healthy")


async def run(args):
    st = Stats()
    body = make_body(args)
    t_start = time.monotonic()
    stop_at = t_start + args.duration
    tasks = []
    for i in range(args.concurrency):
        delay = args.stagger * i / args.concurrency
        tasks.append(asyncio.create_task(worker(args.host, args.port, body, st, stop_at, delay)))
        if args.ramp and i % 50 == 49:
            await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    return st, t_start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--duration", type=float, default=30.0, help="real seconds of load")
    ap.add_argument("--warmup", type=float, default=None, help="real seconds excluded at the start (default 20%%)")
    ap.add_argument("--prompt-tokens", type=int, default=200)
    ap.add_argument("--prompt-file", default=None, help="chat prompt text (endpoint chat)")
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--endpoint", choices=["completions", "chat"], default="completions")
    ap.add_argument("--model", default=None)
    ap.add_argument("--time-scale", type=float, default=1.0, help="the server's --time-scale, to convert back")
    ap.add_argument("--start-sim", default=None, metavar="ARGS", help="start tlab-sim with these extra flags")
    ap.add_argument("--ramp", action="store_true", help="open connections in batches of 50 every 10 ms")
    ap.add_argument("--stagger", type=float, default=0.0,
                    help="spread the workers' first requests over this many real seconds, so a closed loop does "
                         "not move in synchronized waves")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    proc = None
    if args.start_sim is not None:
        proc, args.port = start_sim(args.start_sim, args.time_scale)
    cpu = None
    try:
        st, t0 = asyncio.run(run(args))
        metrics = scrape(args.host, args.port)
        if proc is not None:
            with open(f"/proc/{proc.pid}/stat") as f:  # utime + stime of the simulator, in seconds
                fields = f.read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
    warm = args.warmup if args.warmup is not None else 0.2 * args.duration
    w0, w1 = t0 + warm, t0 + args.duration
    F = args.time_scale
    done = [d for d in st.done if w0 <= d[0] <= w1]
    toks = sum(1 for t in st.tokens if w0 <= t <= w1)
    span_sim = (w1 - w0) * F
    res = {
        "concurrency": args.concurrency,
        "prompt_tokens": args.prompt_tokens, "max_tokens": args.max_tokens,
        "real_seconds": args.duration, "time_scale": F, "window_sim_seconds": round(span_sim, 3),
        "completed_in_window": len(done), "errors": st.errors,
        "requests_per_s": round(len(done) / span_sim, 3),
        "requests_per_s_from_tokens": round(toks / span_sim / args.max_tokens, 3),
        "output_tokens_per_s": round(toks / span_sim, 1),
        "ttft_p50_s": round(percentile([d[1] for d in done], 50) * F, 4),
        "ttft_p95_s": round(percentile([d[1] for d in done], 95) * F, 4),
        "itl_mean_s": round(sum(d[4] for d in done) / max(1, len(done)) * F, 5),
        "e2e_p50_s": round(percentile([d[2] for d in done], 50) * F, 3),
        "e2e_p95_s": round(percentile([d[2] for d in done], 95) * F, 3),
        "server": metrics,
        "sim_cpu_seconds": cpu,
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
