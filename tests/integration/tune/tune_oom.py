#!/usr/bin/env python3
"""tlab-tune with a grid that does not fit the GPU: a model too large for rtx3050-4gb runs out of
memory at start-up; the point is recorded with the worker's own error text, the point that needs
more memory in the same direction is skipped, and the run goes on. Also: a port that something
else already serves is refused rather than measured."""
import os
import socket
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
tlabtest.finish()
