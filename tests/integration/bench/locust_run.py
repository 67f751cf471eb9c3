#!/usr/bin/env python3
"""Runs loadtest/locustfile.py headless (Debian's python3-locust) for a few seconds against
tlab-gateway + tlab-sim and checks its CSV: requests done, no failures, TTFT and E2E rows with TTFT below E2E."""
import csv
import os
import shutil
import subprocess
import sys

import benchlib
from tlabtest import SRC, check, finish, start_gateway, start_sim

locust = shutil.which("locust") or ("/usr/bin/locust" if os.path.exists("/usr/bin/locust") else None)
if not locust:
    print("SKIP: locust is not installed (apt-get install python3-locust)")
    sys.exit(77)

sim, sim_port = start_sim(["--startup-seconds", "0"], time_scale=10)
gw, gw_port = start_gateway(sim_port)
prefix = os.path.join(benchlib.TMP, "locust")
env = dict(os.environ, TLAB_USER_RPS="2")
p = subprocess.run([locust, "-f", os.path.join(SRC, "loadtest", "locustfile.py"), "--headless", "-u", "4", "-r", "4",
                    "-t", "10s", "--host", f"http://127.0.0.1:{gw_port}", "--csv", prefix, "--only-summary",
                    "--stop-timeout", "5"], capture_output=True, text=True, timeout=55, env=env, cwd=benchlib.TMP)
check(p.returncode == 0, f"locust exited {p.returncode}:\n{p.stderr[-3000:]}")
rows = {}
if check(os.path.exists(prefix + "_stats.csv"), "no locust stats CSV"):
    with open(prefix + "_stats.csv") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
chat, ttft, e2e = rows.get("POST /v1/chat/completions"), rows.get("TTFT"), rows.get("E2E")
if check(chat is not None and ttft is not None and e2e is not None, f"CSV rows: {list(rows)}"):
    n = int(chat["Request Count"])
    check(n >= 20, f"only {n} requests in 10 s at 4 users x 2 req/s")
    check(int(chat["Failure Count"]) == 0, f"{chat['Failure Count']} failures")
    check(int(ttft["Request Count"]) == n, f"TTFT rows {ttft['Request Count']} != requests {n}")
    check(int(e2e["Request Count"]) == n, f"E2E rows {e2e['Request Count']} != requests {n}")
    check(0 < float(ttft["Average Response Time"]) < float(e2e["Average Response Time"]),
          f"TTFT {ttft['Average Response Time']} not below E2E {e2e['Average Response Time']}")
finish()
