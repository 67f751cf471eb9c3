#!/usr/bin/env python3
"""loadtest/burst/burst.py end to end in --quick mode at time scale 20 with a given capacity (so
no capacity search): it runs the three schedules three ways (direct, one static gate, shipped),
writes burst.json, results.md with a table per schedule and the plots, and stops every process
it started. The figures are only checked for being there and sane, never for their values.
Also: the generated gateway configs (from the shipped files) are valid, have no supervisor, and
carry the gate and the scaled timeouts. Bad usage exits 2."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tlabtest  # noqa: E402
from tlabtest import check, finish  # noqa: E402

BURST = os.path.join(tlabtest.SRC, "loadtest", "burst", "burst.py")
BUILD = os.path.dirname(tlabtest.BIN)
sys.path.insert(0, os.path.dirname(BURST))
import gateway_config  # noqa: E402

tmp = tempfile.mkdtemp(prefix="tlab-burst-test-")

# The generated configs: from each shipped file, with a gate and a scaled clock.
for name in ("gateway.yaml", "gateway-external.yaml"):
    src = os.path.join(tlabtest.SRC, "configs", name)
    text = gateway_config.make(src, 10, {"max_inflight": 17})
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([os.path.join(tlabtest.BIN, "tlab-gateway"), "--check-config", "-c", path, "--set",
                        f"plugin_dir={tlabtest.PLUGIN_DIR}"], capture_output=True, text=True)
    check(r.returncode == 0, f"{name}: generated config invalid: {r.stdout}{r.stderr}\n{text}")
    check(not re.search(r"^\s*-\s+name:\s*supervisor", text, re.M), f"{name}: the supervisor is still there")
    check(re.search(r"max_inflight:\s*17\b", text), f"{name}: the gate was not set")
    check("max_inflight: 256" not in text, f"{name}: the shipped gate is still there")
    m = re.search(r"queue_timeout_ms:\s*(\d+)", text)
    check(m is None or int(m.group(1)) < 30000, f"{name}: queue_timeout_ms not scaled: {m and m.group(0)}")
# A key the queue's config lacks is added, in flow and block style alike.
flow = gateway_config.set_plugin_keys("plugins:\n  - name: queue\n    config: {max_depth: 4}\n", "queue", {"max_inflight": 9})
check("max_inflight: 9" in flow and "max_depth: 4" in flow, f"flow style: {flow}")
block = gateway_config.set_plugin_keys("plugins:\n  - name: queue\n    config:\n      max_depth: 4\n  - name: metrics\n",
                                       "queue", {"max_inflight": 9})
check("    config:\n      max_inflight: 9\n      max_depth: 4\n  - name: metrics" in block, f"block style: {block}")

# The quick run.
out = os.path.join(tmp, "out")
argv = [sys.executable, BURST, "--build", BUILD, "--quick", "--time-scale", "20", "--capacity", "4", "--gates", "32",
        "--warmup", "2", "--duration", "16", "--cooldown", "2", "--out", out]
p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                     cwd=tlabtest.SRC)
try:
    stdout, stderr = p.communicate(timeout=50)
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGTERM)  # burst.py stops its own children on SIGTERM
    stdout, stderr = p.communicate(timeout=10)
    check(False, f"burst.py ran past 50 s:\n{stderr[-3000:]}")
check(p.returncode == 0, f"burst.py exited {p.returncode}:\n{stderr[-3000:]}")
check(re.search(r"\[1/9\] step: direct", stderr) and "[9/9] ramp: shipped" in stderr, f"no progress lines:\n{stderr[-2000:]}")

summary = os.path.join(out, "burst.json")
md = os.path.join(out, "results.md")
if check(os.path.exists(summary) and os.path.exists(md), f"no burst.json / results.md in {out}: {os.listdir(out)}"):
    d = json.load(open(summary))
    check(d["kind"] == "burst" and d["capacity"] == {"rps": 4.0, "how": "given"}, f"summary head: {d.get('capacity')}")
    check([s["name"] for s in d["schedules"]] == ["step", "poisson", "ramp"], "schedules")
    for s in d["schedules"]:
        ways = [w["way"] for w in s["ways"]]
        check(ways == ["direct", "static-32", "shipped"], f"{s['name']}: ways {ways}")
        check(s.get("best_static") == "static-32", f"{s['name']}: best static {s.get('best_static')}")
        for w in s["ways"]:
            tag = f"{s['name']} {w['way']}"
            check(w["due"] > 0 and 0 <= w["goodput_rps"] <= w["offered_rps"] * 1.5, f"{tag}: goodput {w['goodput_rps']}")
            check(w["slices"] and sum(x[1] for x in w["slices"]) >= w["due"], f"{tag}: slices")
            check(os.path.exists(os.path.join(out, w["result"])), f"{tag}: no tlab-bench result")
    text = open(md).read()
    for sched in ("step", "poisson", "ramp"):
        sec = text.split(f"### {sched}:", 1)
        if check(len(sec) == 2, f"results.md has no {sched} section"):
            body = sec[1].split("###", 1)[0]
            for way in ("| direct |", "static-32", "| shipped |"):
                check(way in body, f"{sched}: the table lacks {way}:\n{body}")
            check(f"burst1_{sched}.png" in body, f"{sched}: no plot")
            check(os.path.exists(os.path.join(out, f"burst1_{sched}.png")), f"{sched}: plot file missing")
    check(text in stdout, "the table was not printed")

# Bad usage.
for bad in (["--schedules", "spike"], ["--gates", "x"], ["--time-scale", "0"], ["--static-set", "novalue"]):
    r = subprocess.run([sys.executable, BURST, "--build", BUILD] + bad, capture_output=True, text=True, timeout=20)
    check(r.returncode == 2, f"{bad}: exit {r.returncode}")

if tlabtest._failed == 0:
    shutil.rmtree(tmp, ignore_errors=True)  # kept when something failed, for a look
else:
    print(f"burst output kept in {tmp}", file=sys.stderr)
finish()
