#!/usr/bin/env python3
"""Runs a Node test script against live servers on loopback.

Usage: run_with_servers.py {sim|gateway|gateway-auth|gateway-pool} SCRIPT.mjs
Starts tlab-sim (and, for `gateway`, tlab-gateway in front of it) on free ports, runs
`node SCRIPT` with OPENAI_BASE_URL pointing at the front server, and stops everything by PID.
`gateway-auth` turns on API keys: OPENAI_API_KEY is a valid key, TLAB_LIMITED_KEY one limited to
one request per minute. `gateway-pool` puts two tlab-sim workers behind the gateway (a workers:
list) and passes TLAB_WORKER_PIDS ("name:pid,...") and TLAB_ADMIN_URL, so a test can kill the
worker serving it. The exit status is node's.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import tlabtest as t  # noqa: E402

target, script = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
if not os.path.isdir(os.path.join(here, "node_modules", "openai")):
    print("the openai npm package is missing: run `make deps` (infra/install-deps.sh)", file=sys.stderr)
    sys.exit(1)
sim, port = t.start_sim(["--max-model-len", "1024", "--startup-seconds", "0"])
env = dict(os.environ, OPENAI_API_KEY="unused")
if target == "gateway":
    gw, port = t.start_gateway(port)
elif target == "gateway-auth":
    keys = os.path.join(tempfile.mkdtemp(prefix="tlab-e2e-"), "keys.yaml")
    env.update(OPENAI_API_KEY="sk-tlab-e2e-client-0123456789", TLAB_LIMITED_KEY="sk-tlab-e2e-limited-0123456789")
    with open(keys, "w") as f:
        f.write(f"keys:\n  - {{name: client, key: {env['OPENAI_API_KEY']}}}\n"
                f"  - {{name: limited, key: {env['TLAB_LIMITED_KEY']}, requests_per_minute: 1}}\n")
    gw, port = t.start_gateway(port, sets=[f"auth.keys_file={keys}"])
elif target == "gateway-pool":
    sim2, port2 = t.start_sim(["--max-model-len", "1024", "--startup-seconds", "0"])
    cfg = os.path.join(tempfile.mkdtemp(prefix="tlab-e2e-"), "pool.yaml")
    with open(cfg, "w") as f:
        f.write(f"workers:\n  - {{name: w0, url: 'http://127.0.0.1:{port}'}}\n  - {{name: w1, url: 'http://127.0.0.1:{port2}'}}\n"
                "pool: {health_interval_ms: 200}\n")
    env.update(TLAB_WORKER_PIDS=f"w0:{sim.pid},w1:{sim2.pid}")
    gw, port = t.start_gateway(port, config=cfg)
    env.update(TLAB_ADMIN_URL=f"http://127.0.0.1:{port}/admin")
env.update(OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", TLAB_TARGET=target)
rc = subprocess.run(["node", "--test", script], cwd=here, env=env, timeout=120).returncode
t.stop_all()
sys.exit(rc)
