#!/usr/bin/env python3
"""Plugins and the command line, through real processes.

- The example plugin, named in a YAML config, adds its header to LLM responses and serves its route.
- The SDK works out of tree: `cmake --install` puts plugin.h and tlab-plugin.pc in a prefix, the
  example is compiled against them through pkg-config alone, and the gateway loads the result.
- A plugin exports nothing but its entry symbol.
- Bad config: exit 2 with file:line:col; --check-config; a plugin that cannot load stops start-up
  (exit 1) naming the plugin.
"""
import json
import os
import shutil
import subprocess
import tempfile

import tlabtest as t

BUILD = os.path.dirname(t.BIN)
GATEWAY = os.path.join(t.BIN, "tlab-gateway")
tmp = tempfile.mkdtemp(prefix="tlab-plugins-")


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def run(*args):
    p = subprocess.run([GATEWAY, *args], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr


sim, sim_port = t.start_sim(["--max-model-len", "512", "--startup-seconds", "0"])

# --- in-tree example plugin from a config file ---
cfg = write("with-example.yaml", f"""
plugins:
  - name: example
    config:
      header: x-from-example
      value: "42"
      greeting: "hi there"
""")
gw, port = t.start_gateway(sim_port, config=cfg)
st, h, body = t.request(port, "POST", "/v1/completions", {"model": "Qwen/Qwen2.5-0.5B-Instruct", "prompt": "hello", "max_tokens": 2})
t.check(st == 200 and h.get("x-from-example") == "42", f"example header on the response: {h}")
st, h, body = t.request(port, "GET", "/example/hello")
t.check(st == 200 and json.loads(body) == {"greeting": "hi there", "requests_seen": 1}, f"example route: {st} {body}")
st, h, body = t.request(port, "POST", "/example/hello", "{}")
t.check(st == 405, f"wrong method on a plugin route: {st}")
hl = json.loads(t.request(port, "GET", "/health")[2])
t.check([p["name"] for p in hl["plugins"]] == ["example"], f"/health lists the plugin: {hl['plugins']}")
t.check(gw.stop() == 0, "gateway exits 0 on SIGTERM")

# --- exported symbols: only the entry point ---
so = os.path.join(t.PLUGIN_DIR, "example.so")
nm = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True).stdout.split()
exported = sorted(s for s in nm if s.startswith("tlab") or s.startswith("example"))
t.check(exported == ["tlab_plugin_entry"], f"example.so exports only tlab_plugin_entry: {exported}")

# --- out of tree, against the installed SDK only ---
prefix = os.path.join(tmp, "prefix")
inst = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], capture_output=True, text=True)
t.check(inst.returncode == 0, f"cmake --install: {inst.stderr}")
pc_dirs = [os.path.join(prefix, d, "pkgconfig") for d in ("lib", "lib64", "lib/x86_64-linux-gnu")]
env = dict(os.environ, PKG_CONFIG_PATH=":".join(pc_dirs))
flags = subprocess.run(["pkg-config", "--cflags", "--libs", "tlab-plugin"], capture_output=True, text=True, env=env)
t.check(flags.returncode == 0 and prefix in flags.stdout, f"pkg-config finds tlab-plugin: {flags.stdout} {flags.stderr}")
src = write("my_plugin.c", open(os.path.join(t.SRC, "plugins/example/example.c")).read())
out_so = os.path.join(tmp, "my_plugin.so")
cc = subprocess.run(f"cc -std=c11 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden {src} -o {out_so} "
                    f"$(pkg-config --cflags --libs tlab-plugin)", shell=True, capture_output=True, text=True, env=env)
t.check(cc.returncode == 0, f"out-of-tree build: {cc.stderr}")
cfg = write("oot.yaml", f"plugins:\n  - name: my_plugin\n    path: {out_so}\n    config: {{value: oot}}\n")
gw, port = t.start_gateway(sim_port, config=cfg)
st, h, body = t.request(port, "POST", "/v1/completions", {"model": "Qwen/Qwen2.5-0.5B-Instruct", "prompt": "hello", "max_tokens": 2})
t.check(st == 200 and h.get("x-tlab-example") == "oot", f"out-of-tree plugin loaded and active: {st} {h}")
t.check(gw.stop() == 0, "gateway exits 0 on SIGTERM")

# --- command line and config errors ---
rc, out = run("--help")
t.check(rc == 0 and "--check-config" in out and "--set" in out, "--help")
rc, out = run("--version")
t.check(rc == 0 and "tlab-gateway" in out and "ABI 1." in out, f"--version: {out}")
rc, out = run("--check-config", "-c", os.path.join(t.SRC, "configs/gateway.yaml"))
t.check(rc == 0, f"shipped config is valid: {out}")
bad = write("bad.yaml", "listen:\n  host: 127.0.0.1\n  prot: 8001\n")
rc, out = run("--check-config", "-c", bad)
t.check(rc == 2 and f"{bad}:3:3:" in out and "prot" in out, f"unknown key -> exit 2 with file:line:col: {rc} {out}")
rc, out = run("-c", bad)
t.check(rc == 2, "same error at start-up exits 2")
rc, out = run("--set", "listen.port=99999", "--check-config")
t.check(rc == 2 and "listen.port" in out, f"--set out of range: {rc} {out}")
rc, out = run("--bogus")
t.check(rc == 2, "unknown option exits 2")
missing = write("missing-plugin.yaml", "plugins:\n  - name: nowhere\n")
rc, out = run("-c", missing, "--set", f"plugin_dir={tmp}", "--set", f"listen.port={t.free_port()}")
t.check(rc == 1 and "plugin 'nowhere'" in out and "cannot load" in out, f"missing plugin stops start-up: {rc} {out}")

shutil.rmtree(tmp, ignore_errors=True)
t.finish()
