"""Helpers for the tlab-bench integration tests: run tlab-bench, read its JSON and CSV."""
import csv
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tlabtest  # noqa: E402

BENCH = os.path.join(tlabtest.BIN, "tlab-bench")
TMP = tempfile.mkdtemp(prefix="tlab-bench-test-")


def workload(name, **keys):
    """Writes a workload YAML into the temp dir and returns its path."""
    keys.setdefault("prompt_file", os.path.join(tlabtest.SRC, "configs", "prompts", "prompt_200.txt"))
    path = os.path.join(TMP, name + ".yaml")
    with open(path, "w") as f:
        for k, v in keys.items():
            f.write(f"{k}: {str(v).lower() if isinstance(v, bool) else v}\n")
    return path


def run(args, name, timeout=50):
    """Runs tlab-bench with --output in the temp dir. Returns (rc, stdout, stderr, result dict or None, csv rows)."""
    out = os.path.join(TMP, name + ".json")
    p = subprocess.run([BENCH, "--output", out, "--progress", "never"] + list(args), capture_output=True, text=True,
                       timeout=timeout, cwd=tlabtest.SRC)
    res, rows = None, []
    if os.path.exists(out):
        with open(out) as f:
            res = json.load(f)
        with open(out[:-5] + ".csv") as f:
            rows = list(csv.DictReader(f))
    if p.returncode not in (0, 1):
        print(p.stdout, p.stderr, file=sys.stderr)
    return p.returncode, p.stdout, p.stderr, res, rows
