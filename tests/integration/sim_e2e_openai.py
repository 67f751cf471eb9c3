#!/usr/bin/env python3
"""sim_e2e_openai.py - starts tlab-sim on a free port and runs tests/e2e/sim_openai.test.mjs with node
(the official `openai` npm client, installed in tests/e2e/node_modules by `npm install`)."""
import os
import shutil
import subprocess
import sys

from tlabtest import SRC, check, finish, start_sim

e2e = os.path.join(SRC, "tests", "e2e")
node = shutil.which("node")
if not node or not os.path.isdir(os.path.join(e2e, "node_modules", "openai")):
    print("SKIP: node or tests/e2e/node_modules/openai missing (cd tests/e2e && npm install)")
    sys.exit(77)
sim, port = start_sim(time_scale=20, args=["--startup-seconds", "0"])
env = dict(os.environ, TLAB_SIM_URL=f"http://127.0.0.1:{port}/v1")
p = subprocess.run([node, "--test", os.path.join(e2e, "sim_openai.test.mjs")], cwd=e2e, env=env,
                   capture_output=True, text=True, timeout=50)
print(p.stdout[-3000:], p.stderr[-2000:])
check(p.returncode == 0, f"node --test exited {p.returncode}")
finish()
