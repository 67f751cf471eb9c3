"""Helpers shared by the tlab-sim integration tests (sim_*.py): /metrics parsing, SSE parsing,
raw-socket requests that can be dropped mid-way, and reading a profile YAML without PyYAML."""
import json
import os
import socket
import time

import tlabtest

CONFIGS = os.path.join(tlabtest.SRC, "configs")


def metrics(port):
    """Returns {name: value} for unlabelled-by-bucket samples (labels dropped, buckets skipped)."""
    st, _, body = tlabtest.request(port, "GET", "/metrics")
    out = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#") or "_bucket{" in line:
            continue
        name = line.split("{")[0].split(" ")[0]
        if "finished_reason" in line:
            name += "." + line.split('finished_reason="')[1].split('"')[0]
        out[name] = float(line.rsplit(" ", 1)[1])
    return out


def wait_metric(port, name, pred, timeout=5.0):
    """Polls /metrics until pred(value of name) holds; returns the last value."""
    deadline = time.monotonic() + timeout
    v = None
    while time.monotonic() < deadline:
        v = metrics(port).get(name)
        if v is not None and pred(v):
            return v
        time.sleep(0.02)
    return v


def sse_events(body):
    """Splits an SSE body into the payloads of its data: lines (JSON-decoded except [DONE])."""
    evs = []
    for block in body.decode().split("\n\n"):
        block = block.strip()
        if not block:
            continue
        assert block.startswith("data: "), block
        payload = block[len("data: "):]
        evs.append(payload if payload == "[DONE]" else json.loads(payload))
    return evs


def open_raw(port, path, body):
    """Sends a POST on a raw socket and returns it without reading (so the test can drop it)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    data = json.dumps(body).encode()
    s.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(data)}\r\n\r\n").encode() + data)
    return s


def profile(kind, name):
    """Reads configs/hardware[/models]/<name>.yaml: flat 'key: value' lines, numbers as float."""
    path = os.path.join(CONFIGS, "hardware", *(["models"] if kind == "model" else []), name + ".yaml")
    out = {}
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if ":" in line:
            k, v = line.split(":", 1)
            v = v.strip()
            try:
                out[k.strip()] = float(v)
            except ValueError:
                out[k.strip()] = v
    return out


def step_seconds(hw, m, prefill, decode, ctx, prefill_seqs=None):
    """The simulator's step-time formula, recomputed independently (docs/simulator.md, section 3):
    v1 profiles add a fixed cost to the roofline; v2 profiles (with host_step_ms) take the longest of
    the GPU part, the engine-core host part and the API-server part."""
    params = m["params"]
    kvb = 2 * m["num_layers"] * m["num_kv_heads"] * m["head_dim"] * m["dtype_bytes"]
    compute = 2 * params * (prefill + decode) / (hw["peak_tflops"] * 1e12 * hw["compute_efficiency"])
    memory = (params * m["dtype_bytes"] + ctx * kvb) / (hw["memory_bandwidth_gb_s"] * 1e9 * hw["memory_efficiency"])
    if "host_step_ms" not in hw:
        return (hw["beta0_ms"] * 1e-3 + max(compute, memory) + hw["beta1_us_per_prefill_token"] * 1e-6 * prefill
                + hw["beta2_us_per_decode_seq"] * 1e-6 * decode)
    seqs = decode + (prefill_seqs if prefill_seqs is not None else (1 if prefill else 0))
    gpu = m["num_layers"] * hw.get("layer_launch_us", 0) * 1e-6 + max(compute, memory)
    host = (hw["host_step_ms"] * 1e-3 + hw.get("host_seq_us", 0) * 1e-6 * seqs
            + hw.get("beta1_us_per_prefill_token", 0) * 1e-6 * prefill)
    api = hw.get("api_token_us", 0) * 1e-6 * seqs
    return max(gpu, host, api)


def api_seconds(hw):
    """How long a lone request spends in the API server before the engine sees it."""
    return max(hw["api_overhead_ms"], hw.get("api_serial_ms", 0)) * 1e-3


def stop_clean(proc):
    """Stops proc (SIGTERM) and checks it exited 0 with no sanitizer report in its log."""
    rc = proc.stop()
    out = proc.output()
    bad = [w for w in ("AddressSanitizer", "LeakSanitizer", "runtime error:") if w in out]
    tlabtest.check(rc == 0 and not bad, f"{proc.name} exited {rc} cleanly, sanitizer reports: {bad}\n{out[-2000:]}")
