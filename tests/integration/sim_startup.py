#!/usr/bin/env python3
"""sim_startup.py - tlab-sim's process contract: the port stays closed until --startup-seconds have
passed (as vLLM's), the start-up log gives the KV capacity and maximum concurrency, OOM and configs
vLLM rejects exit non-zero with vLLM's wording, bad flags exit 2, and profiles resolve by name,
by path, and through --config-dir / TLAB_CONFIG_DIR."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

from tlabtest import BIN, SRC, Proc, check, finish, free_port, wait_http

SIM = os.path.join(BIN, "tlab-sim")


def run(*args, env=None):
    p = subprocess.run([SIM, *args], capture_output=True, text=True, timeout=20, env=env)
    return p.returncode, p.stdout + p.stderr


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return False
    except ConnectionRefusedError:
        return True


# Cold start: port closed, then /health 200.
port = free_port()
t0 = time.monotonic()
pr = Proc([SIM, "--host", "127.0.0.1", "--port", str(port), "--startup-seconds", "1.5"], "sim")
time.sleep(0.5)
check(refused(port), "port closed during start-up")
wait_http(port, "/health", timeout=10, proc=pr)
check(time.monotonic() - t0 >= 1.4, "health only after --startup-seconds")
log = pr.output()
check("GPU KV cache size: " in log and " tokens" in log, "logs KV cache size")
check("Maximum concurrency for 32,768 tokens per request: " in log, "logs maximum concurrency")
pr.stop()

# --startup-seconds is simulated time: --time-scale shortens it.
port = free_port()
t0 = time.monotonic()
pr = Proc([SIM, "--host=127.0.0.1", f"--port={port}", "--startup-seconds=20", "--time-scale=100"], "sim")
wait_http(port, "/health", timeout=10, proc=pr)
check(time.monotonic() - t0 < 2.0, "time-scale applies to start-up")
pr.stop()

# OOM: the KV cache cannot hold one max_model_len sequence.
rc, out = run("--gpu-memory-utilization", "0.45", "--port", "0")
check(rc == 1, f"KV OOM exits 1, got {rc}")
check("ValueError: To serve at least one request with the models's max seq len (32768)" in out, out)
check("Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine." in out,
      "OOM advice")
# Weights do not fit.
rc, out = run("--model-profile", "Qwen2.5-3B-Instruct", "--port", "0")
check(rc == 1 and "CUDA out of memory" in out, f"weights OOM: {rc} {out}")
# The same 3B model fits an L4 (selected through --model).
rc, out = run("--model", "Qwen/Qwen2.5-3B-Instruct", "--hardware", "l4-24gb", "--help")
check(rc == 0, "help exits 0")

# Configs vLLM rejects.
rc, out = run("--max-num-seqs", "256", "--max-num-batched-tokens", "128", "--port", "0")
check(rc == 1 and "max_num_batched_tokens (128) must be greater than or equal to max_num_seqs (256)." in out, out)
rc, out = run("--no-enable-chunked-prefill", "--max-num-batched-tokens", "1024", "--max-model-len", "4096")
check(rc == 1 and "is smaller than max_model_len (4096)" in out, out)

# vLLM's batch defaults per GPU class (get_batch_defaults), read through --predict (no server):
# >= 70 GiB and not an A100 -> 1024 sequences / 8192 tokens, else 256 / 2048; a default max_num_seqs
# is clamped to an explicit, smaller token budget instead of being rejected.
for args, want in [(["--hardware", "h100-80gb"], "max_num_seqs 1024, max_num_batched_tokens 8192"),
                   (["--hardware", "a100-80gb"], "max_num_seqs 256, max_num_batched_tokens 2048"),
                   (["--hardware", "rtx3050-4gb"], "max_num_seqs 256, max_num_batched_tokens 2048"),
                   (["--max-num-batched-tokens", "128"], "max_num_seqs 128, max_num_batched_tokens 128")]:
    rc, out = run("--predict", "--max-model-len", "1024", "--num-prompts", "2", *args)
    check(rc == 0 and want in out and "fits: yes" in out, f"{args}: rc={rc} {out}")

# Bad flags: exit 2 with a clear message.
for args, want in [(["--bogus"], "unrecognized arguments: --bogus"), (["--port", "x"], "invalid int value: 'x'"),
                   (["--hardware", "no-such-gpu"], "no-such-gpu"), (["--port"], "expected one argument")]:
    rc, out = run(*args)
    check(rc == 2 and want in out, f"{args}: rc={rc} {out}")
rc, out = run("--version")
check(rc == 0 and out.startswith("tlab-sim "), "version")
rc, out = run("--help")
for flag in ["--max-num-seqs", "--max-num-batched-tokens", "--gpu-memory-utilization", "--enable-chunked-prefill",
             "--block-size", "--hardware", "--model-profile", "--startup-seconds", "--time-scale", "--seed",
             "--config-dir"]:
    check(flag in out, f"--help lists {flag}")

# Profiles by path, by --config-dir and by TLAB_CONFIG_DIR.
tmp = tempfile.mkdtemp(prefix="tlab-sim-cfg-")
try:
    shutil.copytree(os.path.join(SRC, "configs", "hardware"), os.path.join(tmp, "hardware"))
    with open(os.path.join(tmp, "hardware", "tiny.yaml"), "w") as f:
        f.write(open(os.path.join(SRC, "configs", "hardware", "rtx3050-4gb.yaml")).read()
                .replace("gpu_memory_gib: 3.81", "gpu_memory_gib: 1.0"))
    rc, out = run("--config-dir", tmp, "--hardware", "tiny", "--port", "0")
    check(rc == 1 and "No available memory for the cache blocks" in out, f"--config-dir: {out}")
    env = dict(os.environ, TLAB_CONFIG_DIR=tmp)
    rc, out = run("--hardware", "tiny", "--port", "0", env=env)
    check(rc == 1 and "No available memory" in out, "TLAB_CONFIG_DIR")
    rc, out = run("--hardware", os.path.join(tmp, "hardware", "tiny.yaml"), "--port", "0")
    check(rc == 1 and "No available memory" in out, "--hardware FILE")
    with open(os.path.join(tmp, "hardware", "broken.yaml"), "w") as f:
        f.write("name: broken\ngpu_memory_gib: [1\n")
    rc, out = run("--config-dir", tmp, "--hardware", "broken")
    check(rc == 2 and "broken.yaml" in out, f"YAML error names the file: {out}")
finally:
    shutil.rmtree(tmp)
finish()
