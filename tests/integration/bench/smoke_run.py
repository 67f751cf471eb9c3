#!/usr/bin/env python3
"""loadtest/smoke.sh: OK through the gateway and straight to tlab-sim; FAIL (exit 1) on a dead port."""
import os
import subprocess

import benchlib  # noqa: F401  (puts tests/integration on sys.path)
from tlabtest import SRC, check, finish, free_port, start_gateway, start_sim

smoke = os.path.join(SRC, "loadtest", "smoke.sh")
sim, sim_port = start_sim(["--startup-seconds", "0"], time_scale=10)
gw, gw_port = start_gateway(sim_port)
for port in (gw_port, sim_port):
    p = subprocess.run([smoke, f"http://127.0.0.1:{port}"], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0 and p.stdout.startswith("smoke: OK"), f"smoke on {port}: {p.returncode} {p.stdout}")
p = subprocess.run([smoke, f"http://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=30)
check(p.returncode == 1 and p.stdout.startswith("smoke: FAIL"), f"smoke on a dead port: {p.returncode} {p.stdout}")
finish()
