#!/usr/bin/env python3
"""tlab-tune when points fail: a model too large for rtx3050-4gb runs out of memory at start-up
(recorded with the worker's own error text; the point that needs more memory in the same
direction is skipped; the run goes on); a worker that crashes during a probe (recorded as a
crash with its log); an SLO that fails even at the lowest rate (infeasible, exit 1, with the live
progress line on); a port that something else already serves (refused rather than measured)."""
import json
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tunelib as T  # noqa: E402
from tunelib import tlabtest  # noqa: E402

check = tlabtest.check

grid = T.grid_file("oom", {"model": ["Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-3B-Instruct"], "max_num_seqs": [1, 2]})
out = os.path.join(T.TMP, "oom.json")
rc, so, se = T.run(["--grid", grid, "--output", out, "--tuned-out", ""])
check(rc == 0, f"tlab-tune exit {rc}\n{se[-3000:]}")
rec = T.record(out)
st = {e["id"]: e for e in T.entries(rec, "grid")}
small2, small4 = st["model=Qwen/Qwen2.5-0.5B-Instruct,max_num_seqs=1"], st["model=Qwen/Qwen2.5-0.5B-Instruct,max_num_seqs=2"]
big2, big4 = st["model=Qwen/Qwen2.5-3B-Instruct,max_num_seqs=1"], st["model=Qwen/Qwen2.5-3B-Instruct,max_num_seqs=2"]
check(small2["status"] == "ok" and small4["status"] == "ok", f"small model: {small2['status']} {small4['status']}")
check(big2["status"] == "oom" and "OutOfMemoryError" in big2["error"], f"3B on 4 GB: {big2['status']}: {big2.get('error')}")
check(big2["startup_s"] < 3, f"the dead worker was noticed after {big2['startup_s']:.2f} s")
check(big4["status"] == "skipped" and "Qwen2.5-3B-Instruct,max_num_seqs=1" in big4["error"] and not big4["probes"],
      f"3B with more seqs: {big4['status']}: {big4.get('error')}")
check(rec["status"] == "done" and rec["result"]["best"]["knobs"]["model"] == "Qwen/Qwen2.5-0.5B-Instruct", "best point")
check("oom" in so and "skipped" in so, f"table:\n{so}")

# Something already answers on the worker's port: refuse, do not measure it.
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    port = s.getsockname()[1]
    one = T.grid_file("one", {"max_num_seqs": [2]})
    out2 = os.path.join(T.TMP, "busy.json")
    rc, so, se = T.run(["--grid", one, "--output", out2, "--tuned-out", "", "--port", str(port)], timeout=60)
    e = T.record(out2)["entries"][0]
    check(rc == 1 and e["status"] == "spawn_failed" and "already listens" in e["error"], f"busy port: {rc} {e}")
# A worker that dies in the middle of the measurement.
crashy = os.path.join(T.TMP, "crashy-sim")
with open(crashy, "w") as f:
    f.write(f"""#!/bin/sh
case "$1" in --version) exec {os.path.join(tlabtest.BIN, "tlab-sim")} --version ;; esac
{os.path.join(tlabtest.BIN, "tlab-sim")} "$@" &
child=$!
sleep 3
echo "crashy-sim: killing the simulator with SIGKILL" >&2
kill -9 $child
wait $child
exit 137
""")
os.chmod(crashy, 0o755)
out3 = os.path.join(T.TMP, "crash.json")
rc, so, se = T.run(["--grid", T.grid_file("crash", {"max_num_seqs": [2]}), "--sim", crashy, "--output", out3, "--tuned-out", ""],
                   timeout=120)
e = T.record(out3)["entries"][0]
check(rc == 1 and e["status"] == "crash" and "killing the simulator" in e["error"], f"crash: {rc} {e['status']} {e.get('error')}")

# An SLO no rate can meet: infeasible, exit 1; on a "terminal" the live line shows the ETA.
tight = T.grid_file("tight", {"max_num_seqs": [2]}, search={"start_rate": 2, "min_rate": 1})
with open(tight) as f:
    doc = json.load(f)
doc["slo"] = "e2e_p95=200ms,error_rate=0.1%"
with open(tight, "w") as f:
    json.dump(doc, f)
out4 = os.path.join(T.TMP, "tight.json")
p = subprocess.run([T.TUNE, "--progress", "always", "--grid", tight, "--output", out4, "--tuned-out", ""], capture_output=True,
                   text=True, timeout=120, cwd=tlabtest.SRC)
rec4 = T.record(out4)
e = rec4["entries"][0]
check(p.returncode == 1 and e["status"] == "infeasible" and "no point met the SLO" in p.stdout, f"infeasible: {p.returncode} {e['status']}")
check([pr["rate"] for pr in e["probes"]] == [2, 1] and all(pr["verdict"] == "fail" for pr in e["probes"]), f"probes {e['probes']}")
check("\033[K[grid 1/1] max_num_seqs=2  probe 1 bracket" in p.stderr and "ETA" in p.stderr, f"live line: {p.stderr[:500]!r}")
tlabtest.finish()
