"""Helpers for the tlab-tune integration tests: grid files, running tlab-tune, reading its record.

Grids here are tiny and tlab-sim runs 20x faster (with 50-token answers) than real time, so a whole tuning run takes
seconds; the search and confirmation logic is the real one.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tlabtest  # noqa: E402

TUNE = os.path.join(tlabtest.BIN, "tlab-tune")
REPORT = os.path.join(tlabtest.SRC, "loadtest", "report", "tlab-report")
TMP = tempfile.mkdtemp(prefix="tlab-tune-test-")

# Small, fast probes: a few dozen requests each, one confirming run.
SEARCH = {"start_rate": 2, "min_rate": 0.1, "max_rate": 64, "growth": 2, "tolerance": 0.15, "min_requests": 80,
          "min_duration_s": 4, "warmup_s": 1, "cooldown_s": 0.5, "confirm_runs": 1, "confirm_requests": 80,
          "startup_timeout_s": 30}

# 200 prompt tokens, 50 output tokens: a quarter of the reference decode, so probes are short.
WORKLOAD = os.path.join(TMP, "chat_200_50.yaml")
with open(WORKLOAD, "w") as f:
    f.write(f"endpoint: chat\nmodel: Qwen/Qwen2.5-0.5B-Instruct\n"
            f"prompt_file: {os.path.join(tlabtest.SRC, 'configs', 'prompts', 'prompt_200.txt')}\n"
            f"prompt_tokens: 200\nmax_tokens: 50\ntemperature: 0\nignore_eos: true\n")


def grid_file(name, grid, search=None, smart=None, time_scale=20, fixed=None):
    """Writes a grid file (JSON is YAML) into the temp dir and returns its path."""
    doc = {"engine": "sim", "model_profile": "safe",
           "profiles_dir": os.path.join(tlabtest.SRC, "configs", "model_profiles"),
           "workload": WORKLOAD, "slo": "e2e_p95=5s,error_rate=0.1%", "time_scale": time_scale,
           "fixed": fixed if fixed is not None else {"max_model_len": 512},
           "grid": grid,
           "sim_args": ["--hardware", "rtx3050-4gb", "--startup-seconds", "0",
                        "--config-dir", os.path.join(tlabtest.SRC, "configs")],
           "search": dict(SEARCH, **(search or {}))}
    if smart:
        doc["smart"] = smart
    path = os.path.join(TMP, name + ".yaml")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    return path


def run(args, timeout=240):
    """Runs tlab-tune from the source tree. Returns (rc, stdout, stderr)."""
    p = subprocess.run([TUNE, "--progress", "never"] + list(args), capture_output=True, text=True, timeout=timeout,
                       cwd=tlabtest.SRC)
    return p.returncode, p.stdout, p.stderr


def record(path):
    with open(path) as f:
        return json.load(f)


def entries(rec, stage=None):
    return [e for e in rec["entries"] if stage is None or e["stage"] == stage]


def score(e):
    if e.get("status") != "ok":
        return 0
    c = e.get("confirm")
    return (c["median_rps"] if c.get("confirmed") else 0) if c else e.get("max_rate", 0)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
