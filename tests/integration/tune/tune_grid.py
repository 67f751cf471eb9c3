#!/usr/bin/env python3
"""tlab-tune end to end on a tiny 2x2 grid (tlab-sim at 20x): the run record, the best point,
tuned.yaml, the results report with its plots, and the command line's errors."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tunelib as T  # noqa: E402
from tunelib import tlabtest  # noqa: E402

check = tlabtest.check

grid = T.grid_file("tiny", {"max_num_seqs": [1, 4], "max_num_batched_tokens": [1024, 4096]})
out = os.path.join(T.TMP, "run.json")
tuned = os.path.join(T.TMP, "tuned.yaml")

# --dry-run lists the points without starting anything.
rc, so, se = T.run(["--grid", grid, "--dry-run"], timeout=20)
check(rc == 0 and "4 points" in so and "max_num_seqs=4,max_num_batched_tokens=1024" in so, f"dry run: {rc} {so} {se}")

rc, so, se = T.run(["--grid", grid, "--output", out, "--tuned-out", tuned])
check(rc == 0, f"tlab-tune exit {rc}\n{se[-3000:]}")
rec = T.record(out)
check(rec["status"] == "done" and rec["strategy"] == "grid", f"record status {rec['status']}")
env = rec["environment"]
check(env["engine"] == "sim" and env["hardware"] == "rtx3050-4gb" and env["time_scale"] == 20 and env["workload"] == T.WORKLOAD
      and env["slo"] == "e2e_p95=5s,error_rate=0.1%" and env["engine_version"].startswith("tlab-sim"), f"environment {env}")
es = T.entries(rec, "grid")
check(len(es) == 4 and all(e["status"] == "ok" for e in es), f"entries {[(e['id'], e['status']) for e in es]}")
for e in es:
    probes = e["probes"]
    check(len(probes) >= 3, f"{e['id']}: {len(probes)} probes")
    # The verdict at each rate is its last probe's (an uncertain one is re-run longer).
    final = {p["rate"]: p["verdict"] for p in probes if p["phase"] != "confirm" and "verdict" in p}
    passing = [r for r, v in final.items() if v == "pass"]
    failing = [r for r, v in final.items() if v == "fail"]
    # Bracketed and bisected: the best rate passed, a rate above it failed, within the tolerance.
    check(passing and failing and abs(max(passing) - e["max_rate"]) < 1e-9, f"{e['id']}: best rate {e['max_rate']} {final}")
    check(e["fail_rate"] > e["max_rate"] and (e["fail_rate"] - e["max_rate"]) / e["max_rate"] <= 0.15 + 1e-9,
          f"{e['id']}: bracket {e['max_rate']}..{e['fail_rate']}")
    c = e["confirm"]
    check(c["runs"] == 1 and c["confirmed"] and c["median_rps"] > 0, f"{e['id']}: confirm {c}")
    check(all(p["due"] > 0 and p["bench_s"] > 0 for p in probes if "verdict" in p), f"{e['id']}: probe sizes")
    check(e["worker_command"].split()[0].endswith("tlab-sim") and f"--max-num-seqs {e['knobs']['max_num_seqs']}" in e["worker_command"]
          and "--time-scale 20" in e["worker_command"], f"worker command {e['worker_command']}")
    check(not T.pid_alive(e["worker_pid"]), f"{e['id']}: worker {e['worker_pid']} still running")
    check(0 <= e["sim_step_lag_max_s"] < 5, f"{e['id']}: tlab-sim lag {e.get('sim_step_lag_max_s')}")
    # tlab-sim predicted the knee (tlab-sim --predict-batch) and the search started its bracket there.
    pr = e.get("prediction", {})
    first = next((p["rate"] for p in probes if p.get("phase") == "bracket"), None)
    check(pr.get("fits") and pr.get("rate", 0) > 0 and first is not None and abs(first - pr["rate"]) <= 1e-6 * pr["rate"] + 1e-9,
          f"{e['id']}: prediction {pr}, first bracket probe {first}")
# 4 sequences must beat 1 at both batched-token budgets: the search really ranks configurations.
by = {(e["knobs"]["max_num_seqs"], e["knobs"]["max_num_batched_tokens"]): T.score(e) for e in es}
check(by[(4, 1024)] > 1.5 * by[(1, 1024)] and by[(4, 4096)] > 1.5 * by[(1, 4096)], f"scores {by}")
pred = {(e["knobs"]["max_num_seqs"], e["knobs"]["max_num_batched_tokens"]): e["prediction"]["rate"] for e in es}
check(pred[(4, 1024)] > 1.5 * pred[(1, 1024)], f"predicted rates rank the points too: {pred}")
best = rec["result"]["best"]
check(best["knobs"]["max_num_seqs"] == 4 and abs(best["rps"] - max(by.values())) < 1e-9, f"best {best}")
check(rec["result"]["bench_seconds"] > 0 and "best:" in so and "max_num_seqs=4" in so.split("best:")[1], f"stdout {so}")

# tuned.yaml: the base profile with the best point's knobs, loadable by tlab-sim's flags.
text = open(tuned).read()
check(re.search(r"^max_num_seqs: 4$", text, re.M) and re.search(r'^model: "Qwen/Qwen2.5-0.5B-Instruct"$', text, re.M)
      and re.search(rf"^max_num_batched_tokens: {best['knobs']['max_num_batched_tokens']}$", text, re.M)
      and re.search(r"^max_model_len: 512$", text, re.M) and text.startswith("# tuned:"), f"tuned.yaml:\n{text}")

# tuned-gateway.yaml beside it: the autopilot's starting point, in flight at the best rate.
gw_start = os.path.join(T.TMP, "tuned-gateway.yaml")
gtext = open(gw_start).read() if os.path.exists(gw_start) else ""
m = re.search(r"^initial_limit: (\d+)", gtext, re.M)
check(m is not None and int(m.group(1)) >= 1 and "autopilot.start_file" in gtext and "rate_rps:" in gtext,
      f"tuned-gateway.yaml:\n{gtext}")
check("gateway start: " + gw_start in so, "the report names it")

# tuned.yaml is ready for the supervisor: a gateway whose supervisor uses it starts tlab-sim with
# the tuned knobs and answers; its autopilot starts from tuned-gateway.yaml.
wport = tlabtest.free_port()
gcfg = os.path.join(T.TMP, "gateway.yaml")
with open(gcfg, "w") as f:
    f.write(f"""autopilot: {{start_file: {gw_start}}}
plugins:
  - name: queue
  - name: metrics
  - name: supervisor
    config:
      engine: sim
      profile: {tuned}
      sim_command: {os.path.join(tlabtest.BIN, "tlab-sim")}
      sim_args: ["--startup-seconds", "0", "--time-scale", "20"]
      sleep_after_s: 0
      log_file: {T.TMP}/supervised.log
""")
gw, gport = tlabtest.start_gateway(wport, config=gcfg)
st, _, body = tlabtest.request(gport, "POST", "/v1/completions", {"model": "Qwen/Qwen2.5-0.5B-Instruct", "prompt": "hi",
                                                                   "max_tokens": 4}, timeout=30)
check(st == 200, f"request through the supervisor with tuned.yaml: {st} {body[:300]}")
check(m is not None and tlabtest.metric(gport, "gateway_autopilot_limit") >= 1, "the gateway loaded tuned-gateway.yaml")
st, _, body = tlabtest.request(gport, "GET", "/admin/worker")
w = json.loads(body) if st == 200 else {}
check(w.get("knobs", {}).get("max_num_seqs") == best["knobs"]["max_num_seqs"]
      and w["knobs"].get("max_num_batched_tokens") == best["knobs"]["max_num_batched_tokens"], f"supervised worker: {w}")
gw.stop()

# The report: Markdown, PNG and SVG from the record.
rep = os.path.join(T.TMP, "report")
p = subprocess.run([sys.executable, T.REPORT, "--out", rep, out], capture_output=True, text=True, timeout=60)
check(p.returncode == 0, f"tlab-report: {p.stderr}")
md = open(os.path.join(rep, "results.md")).read()
check("Best point: `max_num_seqs=4" in md and "| grid | `max_num_seqs=1,max_num_batched_tokens=1024` | ok |" in md, md[:3000])
for name in ("run1_rate_vs_p95", "run1_heatmap"):
    png, svg = os.path.join(rep, name + ".png"), os.path.join(rep, name + ".svg")
    check(os.path.exists(png) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 5000, f"{png}")
    check(os.path.exists(svg) and "<svg" in open(svg).read(2000), f"{svg}")
    check(f"({name}.png)" in md or f"(./{name}.png)" in md, f"{name} not linked")

# Errors: bad grid -> file:line:col, exit 2; bad options -> exit 2; a report of a non-record -> 2.
bad = os.path.join(T.TMP, "bad.yaml")
with open(bad, "w") as f:
    f.write("grid:\n  max_num_seqs: [8, lots]\n")
rc, so, se = T.run(["--grid", bad, "--dry-run"], timeout=20)
check(rc == 2 and se.startswith(f"{bad}:2:21: grid.max_num_seqs[1]"), f"bad grid: {rc} {se}")
rc, so, se = T.run(["--strategy", "random"], timeout=20)
check(rc == 2 and "--strategy must be grid or smart" in se, f"bad strategy: {rc} {se}")
rc, so, se = T.run(["--grid", grid, "--engine", "vllm", "--time-scale", "5", "--vllm", "/bin/true"], timeout=20)
check(rc == 2 and "time_scale applies to tlab-sim only" in se, f"vllm with time scale: {rc} {se}")
rc, so, se = T.run(["--grid", grid, "--bench", "/nonexistent/tlab-bench", "--output", os.path.join(T.TMP, "x.json")], timeout=20)
check(rc == 3 and "cannot run tlab-bench as '/nonexistent/tlab-bench'" in se, f"missing bench: {rc} {se}")
p = subprocess.run([sys.executable, T.REPORT, "--out", rep, grid], capture_output=True, text=True, timeout=30)
check(p.returncode == 2 and "not a tlab-tune run record" in p.stderr, f"report of a grid file: {p.returncode} {p.stderr}")
tlabtest.finish()
