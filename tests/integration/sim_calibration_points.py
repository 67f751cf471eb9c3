#!/usr/bin/env python3
"""sim_calibration_points.py - the calibration set (loadtest/sim/calibration/points.json) stays usable:
every point names a known source, a shipped GPU and model profile and the statistic of each latency;
a point left out of the fit says why; tlab-sim --predict-batch predicts every point with the shipped
profiles; and docs/simulator.md names every point (a point added without calibrate.py --write-docs
fails; stale figures for a point already listed do not)."""
import json
import os
import subprocess
import sys

from tlabtest import BIN, SRC, check, finish

POINTS = os.path.join(SRC, "loadtest", "sim", "calibration", "points.json")
CONFIGS = os.path.join(SRC, "configs")
doc = json.load(open(POINTS))
pts, sources = doc["points"], doc["sources"]
check(len(pts) >= 25, f"{len(pts)} points")
check(len({p["id"] for p in pts}) == len(pts), "point ids are unique")
for p in pts:
    pid, pub = p["id"], p["published"]
    check(p["source"] in sources and sources[p["source"]]["url"].startswith("https://"), f"{pid}: source with a URL")
    check(os.path.exists(os.path.join(CONFIGS, "hardware", p["hardware"] + ".yaml")), f"{pid}: GPU profile exists")
    check(os.path.exists(os.path.join(CONFIGS, "hardware", "models", p["model_profile"] + ".yaml")),
          f"{pid}: model profile exists")
    check(any(k in pub for k in ("req_per_s", "output_tok_per_s", "tpot_ms", "ttft_ms")), f"{pid}: a published figure")
    for m in ("ttft", "tpot"):
        if f"{m}_ms" in pub:
            check(pub.get(f"{m}_stat") in ("mean", "median"), f"{pid}: {m} says mean or median")
    if "not_fitted" in p:
        check(isinstance(p["not_fitted"], str) and len(p["not_fitted"]) > 20, f"{pid}: not_fitted gives its reason")

lines = [f"--hardware {p['hardware']} --model-profile {p['model_profile']} {p.get('sim_args', '')} "
         f"--concurrency {p['concurrency']} --input-len {p['input_len']} --output-len {p['output_len']} "
         f"--num-prompts {p['num_prompts']}" for p in pts]
out = subprocess.run([os.path.join(BIN, "tlab-sim"), "--config-dir", CONFIGS, "--predict-batch"],
                     input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=50)
check(out.returncode == 0, f"--predict-batch exits 0 ({out.stderr.strip()[:200]})")
res = [json.loads(x) for x in out.stdout.splitlines()]
check(len(res) == len(pts), f"one answer per point ({len(res)} for {len(pts)})")
for p, r in zip(pts, res):
    check(r.get("ok") and r.get("req_per_s", 0) > 0, f"{p['id']}: predicted ({r.get('error', '')})")

# The prefix-cache rule on made-up points (RTX 4090, 165 TFLOP/s; Qwen3-4B, 4.02B parameters).
sys.path.insert(0, os.path.join(SRC, "loadtest", "sim", "calibration"))
import calibrate  # noqa: E402


def made_up(i, n, ttft, c=1):
    return {"id": f"x{i}", "source": "X", "hardware": "rtx4090-24gb", "model_profile": "Qwen3-4B", "input_len": n,
            "concurrency": c, "published": {"ttft_ms": ttft}}


fake = [made_up(0, 128, 28), made_up(1, 128, 32), made_up(2, 1024, 55), made_up(3, 1024, 90), made_up(4, 2048, 40),
        made_up(5, 1024, 55, c=2), made_up(6, 512, 27)]
calibrate.mark_prefix_cached(fake)
flagged = [p["id"] for p in fake if p.get("ttft_excluded")]
# Over the whole TTFT every point but x4 stays under 165 TFLOP/s (x2 and x5 150, x6 152). x2: 896 tokens
# more than the fastest 128-token prompt (28 ms) in 27 ms = 267 TFLOP/s; x4: 2048 tokens in 40 ms =
# 412 TFLOP/s in all; x6: faster than the 128-token prompts. Kept: x3 (116 TFLOP/s over the short
# prompts), the short prompts themselves, x5 (under load the TTFT also holds queueing).
check(flagged == ["x2", "x4", "x6"], f"prefill faster than the GPU's peak is flagged as prefix-cache hits ({flagged})")

text = open(os.path.join(SRC, "docs", "simulator.md")).read()
missing = [p["id"] for p in pts if f"| {p['id']} |" not in text]
check(not missing, f"docs/simulator.md lists every point (missing: {missing[:3]}); run calibrate.py --write-docs")
finish()
