#!/usr/bin/env python3
"""The supervisor finds tlab-sim beside the gateway when build/bin is not on PATH.

`build/bin/tlab-gateway -c configs/gateway.yaml`, the README's own example, could not start its
worker ("cannot start 'tlab-sim'") unless build/bin was on PATH (issue 17). A bare sim_command
(the default, "tlab-sim") now means the program of that name beside the gateway first, then PATH.
Here the gateway runs with a PATH that holds no tlab-sim, a config that names the engine sim and
no sim_command, and the worker must become ready and serve a request.
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlabtest as t  # noqa: E402

tmp = tempfile.mkdtemp(prefix="tlab-worker-path-")
path = "/usr/bin:/bin"
t.check(shutil.which("tlab-sim", path=path) is None, f"this test needs a PATH without tlab-sim; {path} has one")

wport, port = t.free_port(), t.free_port()
cfg = os.path.join(tmp, "gateway.yaml")
with open(cfg, "w") as f:
    f.write(f"""upstream:
  url: http://127.0.0.1:{wport}
plugins:
  - name: supervisor
    config:
      engine: sim
      profile: safe
      profiles_dir: {t.SRC}/configs/model_profiles
      sim_args: ["--startup-seconds", "0.2", "--time-scale", "10"]
      stop_grace_s: 3
      log_file: {tmp}/worker.log
""")
env = {k: v for k, v in os.environ.items() if k != "TLAB_ENGINE"}
env["PATH"] = path
# Run from the temporary folder, so nothing relative resolves into the build tree by chance.
gw = t.Proc([os.path.join(t.BIN, "tlab-gateway"), "-c", cfg, "--set", "listen.host=127.0.0.1",
             "--set", f"listen.port={port}", "--set", f"plugin_dir={t.PLUGIN_DIR}"], "gateway", env=env)
t.wait_http(port, "/health", timeout=10, proc=gw)

# The first request starts the worker on demand; it must be served, not refused with 503.
st, _, body = t.request(port, "POST", "/v1/completions",
                        {"model": "Qwen/Qwen2.5-0.5B-Instruct", "prompt": "hi", "max_tokens": 2}, timeout=30)
t.check(st == 200, f"the request that starts the worker is served: {st} {body[:300]!r}\n{gw.output()[-2000:]}")
w = json.loads(t.request(port, "GET", "/admin/worker")[2])
t.check(w.get("state") == "running", f"the worker is running: {w}")
log = gw.output()
t.check("starting worker (" in log and os.path.join(t.BIN, "tlab-sim") in log,
        f"the worker's command is the tlab-sim beside the gateway:\n{log[-2000:]}")
t.check("cannot start" not in log, f"no failed start:\n{log[-2000:]}")

t.check(gw.stop() == 0, f"gateway exits 0 on SIGTERM (its worker stopped with it):\n{gw.output()[-2000:]}")
shutil.rmtree(tmp, ignore_errors=True)
t.finish()
