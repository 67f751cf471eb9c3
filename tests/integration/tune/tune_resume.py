#!/usr/bin/env python3
"""tlab-tune interrupted and resumed: kill -9 after the first point is recorded; the worker dies
with it; --resume keeps the finished point as it was and measures only the rest. Then smart and
full mode on the same grid agree on the best point, smart for less benchmark time."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tunelib as T  # noqa: E402
from tunelib import tlabtest  # noqa: E402

check = tlabtest.check

grid = T.grid_file("resume", {"max_num_seqs": [1, 2, 4]}, smart={"screen_requests": 20, "keep_fraction": 0.5})
out = os.path.join(T.TMP, "full.json")
p = subprocess.Popen([T.TUNE, "--progress", "never", "--grid", grid, "--output", out, "--tuned-out", ""], cwd=tlabtest.SRC,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
done_before, deadline = [], time.time() + 120
while time.time() < deadline and p.poll() is None:
    try:
        rec = T.record(out)
        done_before = [e for e in rec["entries"] if e["status"] == "ok"]
        running = [e for e in rec["entries"] if e["status"] == "running" and e.get("probes")]
        if done_before and running:  # the second point is under way: kill in the middle of it
            break
    except (OSError, ValueError):
        pass
    time.sleep(0.1)
check(p.poll() is None and len(done_before) == 1, f"tlab-tune state before the kill: rc {p.poll()}, {len(done_before)} done")
os.kill(p.pid, signal.SIGKILL)
p.wait()
rec = T.record(out)  # still valid JSON: it is rewritten by rename
killed = [e for e in rec["entries"] if e["status"] == "running"]
check(len(killed) == 1, f"one point was cut: {[e['status'] for e in rec['entries']]}")
time.sleep(1.0)
check(killed and not T.pid_alive(killed[0].get("worker_pid", 0)), "the worker outlived a tuner killed with -9")

rc, so, se = T.run(["--grid", grid, "--resume", out, "--tuned-out", ""])
check(rc == 0, f"resume exit {rc}\n{se[-3000:]}")
full = T.record(out)
check(full["status"] == "done" and len(full["entries"]) == 3 and all(e["status"] == "ok" for e in full["entries"]),
      f"after resume: {[(e['id'], e['status']) for e in full['entries']]}")
first = next(e for e in full["entries"] if e["id"] == done_before[0]["id"])
check(json.dumps(first, sort_keys=True) == json.dumps(done_before[0], sort_keys=True), "the finished point was measured again")
check("already measured (resumed run)" in se, f"resume log:\n{se[-2000:]}")

# Resuming with another grid is refused.
other = T.grid_file("other", {"max_num_seqs": [2, 16]})
rc, so, se = T.run(["--grid", other, "--resume", out], timeout=20)
check(rc == 2 and "another grid" in se, f"resume with another grid: {rc} {se}")

# Smart on the same grid: the same best point, less benchmark time.
sout = os.path.join(T.TMP, "smart.json")
rc, so, se = T.run(["--grid", grid, "--strategy", "smart", "--output", sout, "--tuned-out", ""])
check(rc == 0, f"smart exit {rc}\n{se[-3000:]}")
smart = T.record(sout)
stages = [e["stage"] for e in smart["entries"]]
check(stages.count("screen") == 3 and stages.count("refine") == 2 and stages.count("confirm") == 2, f"smart stages {stages}")
check(all(p.get("early_stop_enabled") for e in T.entries(smart, "screen") for p in e["probes"]), "screening probes stop early")
sb, fb = smart["result"]["best"], full["result"]["best"]
check(sb["id"] == fb["id"] == "max_num_seqs=4", f"best: smart {sb['id']} full {fb['id']}")
check(smart["result"]["bench_seconds"] < full["result"]["bench_seconds"],
      f"bench time smart {smart['result']['bench_seconds']:.0f} s, full {full['result']['bench_seconds']:.0f} s")
rep = os.path.join(T.TMP, "report")
r = subprocess.run([sys.executable, T.REPORT, "--out", rep, "--no-plots", out, sout], capture_output=True, text=True, timeout=60)
md = open(os.path.join(rep, "results.md")).read() if r.returncode == 0 else r.stderr
check("## Smart versus full grid" in md and "benchmark time" in md, md[-2000:])
tlabtest.finish()
