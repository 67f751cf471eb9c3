#!/usr/bin/env python3
"""tlab-bench's command line: --help lists every option; bad options and workloads exit 2 with a
message that names the problem."""
import subprocess

import benchlib
from tlabtest import check, finish

p = subprocess.run([benchlib.BENCH, "--help"], capture_output=True, text=True, timeout=10)
check(p.returncode == 0, "--help exits 0")
for opt in ["--url", "--workload", "--model", "--arrival", "--rate", "--burstiness", "--rate-end", "--ramp-time",
            "--step-factor", "--step-length", "--step-period", "--concurrency", "--duration", "--warmup", "--cooldown",
            "--quick", "--seed", "--slo", "--fail-on-slo", "--timeout", "--max-inflight", "--profile", "--output",
            "--runs-dir", "--progress", "--version"]:
    check(opt in p.stdout, f"--help lacks {opt}")

bad = {
    ("--rate", "abc"): "--rate",
    ("--rate", "0"): "--rate",
    ("--arrival", "zigzag"): "zigzag",
    ("--duration", "5x"): "--duration",
    ("--slo", "e2e_p95=soon"): "--slo",
    ("--slo", "latency=5s"): "unknown metric",
    ("--burstiness", "-1"): "--burstiness",
    ("--arrival", "step", "--step-length", "90s"): "--step-length",
    ("--arrival", "poisson", "--concurrency", "4"): "--concurrency",
    ("--bogus",): "bogus",
    ("--rate",): "needs a value",
    ("--url", "ftp://x"): "http://",
    ("--profile", "a/b"): "--profile",
    ("--workload", "no_such_workload"): "not found",
    ("extra",): "unexpected",
}
for args, word in bad.items():
    p = subprocess.run([benchlib.BENCH] + list(args), capture_output=True, text=True, timeout=10)
    check(p.returncode == 2, f"{args}: exit {p.returncode}, want 2")
    check(word in p.stderr, f"{args}: stderr lacks '{word}': {p.stderr}")

bad_yaml = benchlib.workload("typo", endpoint="chat", max_tokenz=5)
p = subprocess.run([benchlib.BENCH, "--workload", bad_yaml], capture_output=True, text=True, timeout=10)
check(p.returncode == 2 and "max_tokenz" in p.stderr and "typo.yaml:" in p.stderr, f"workload typo: {p.stderr}")
finish()
