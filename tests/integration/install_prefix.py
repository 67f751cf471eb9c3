#!/usr/bin/env python3
"""`cmake --install BUILD --prefix DIR` writes only under DIR, and each gateway finds its own plugins.

The plugin folder used to be the absolute CMAKE_INSTALL_FULL_LIBDIR: an install into any prefix
still wrote the plugins to /usr/local/lib/tlab/plugins, and a gateway run from the build tree
with the default plugin_dir loaded whatever stale copy sat there (issue 17). Checks:
- every file the install wrote (cmake's output and install_manifest.txt) is under the prefix;
- the installed gateway, with no plugin_dir, loads a plugin from <prefix>/.../tlab/plugins;
- the build tree's gateway, with no plugin_dir, loads it from <build>/lib/plugins.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlabtest as t  # noqa: E402

BUILD = os.path.dirname(t.BIN)
tmp = tempfile.mkdtemp(prefix="tlab-install-")
prefix = os.path.join(tmp, "prefix")


def under(path, root):
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


# --- the install stays in its prefix ---
inst = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], capture_output=True, text=True, timeout=120)
t.check(inst.returncode == 0, f"cmake --install: {inst.stdout}{inst.stderr}")
written = re.findall(r"^-- (?:Installing|Up-to-date): (.+)$", inst.stdout, re.M)
t.check(len(written) >= 5, f"the install names what it wrote: {inst.stdout}")
with open(os.path.join(BUILD, "install_manifest.txt")) as f:
    written += [line.strip() for line in f if line.strip()]
outside = sorted(set(p for p in written if not under(p, prefix)))
t.check(outside == [], f"install wrote outside its prefix {prefix}: {outside}")
so = [p for p in written if p.endswith("/tlab/plugins/example.so")]
t.check(len(so) >= 1 and all(under(p, prefix) for p in so), f"example.so installed under the prefix: {so}")

cfg = os.path.join(tmp, "gateway.yaml")
with open(cfg, "w") as f:
    f.write("plugins:\n  - name: example\n")


def loaded_from(gateway, name):
    """Starts `gateway` with the config above and no plugin_dir; returns the file example.so was
    mapped from (None when it did not start). The gateway is stopped by PID."""
    port = t.free_port()
    pr = t.Proc([gateway, "-c", cfg, "--set", "listen.host=127.0.0.1", "--set", f"listen.port={port}",
                 "--set", f"upstream.url=http://127.0.0.1:{t.free_port()}"], name)
    try:
        t.wait_http(port, "/health", timeout=10, proc=pr)
    except RuntimeError as e:
        t.check(False, f"{gateway} did not start: {e}")
        return None
    with open(f"/proc/{pr.pid}/maps") as f:
        maps = [line.split()[-1] for line in f if line.rstrip().endswith("/example.so")]
    log = pr.output()
    t.check(pr.stop() == 0, f"{gateway} exits 0 on SIGTERM:\n{pr.output()[-2000:]}")
    t.check("loaded plugin 'example'" in log, f"{gateway} logs the plugin it loaded:\n{log[-2000:]}")
    return maps[0] if maps else None


# --- the installed gateway loads the installed plugin ---
installed = sorted(set(p for p in written if p.endswith("/tlab-gateway")))
t.check(len(installed) == 1, f"one installed tlab-gateway: {installed}")
if installed:
    got = loaded_from(installed[0], "installed-gateway")
    t.check(got is not None and under(got, prefix), f"the installed gateway loaded example.so from {got}, not under {prefix}")

# --- the build tree's gateway loads the build's plugin, never an installed copy ---
got = loaded_from(os.path.join(t.BIN, "tlab-gateway"), "build-gateway")
t.check(got is not None and os.path.realpath(got) == os.path.realpath(os.path.join(BUILD, "lib", "plugins", "example.so")),
        f"the build tree's gateway loaded example.so from {got}, not from {BUILD}/lib/plugins")

shutil.rmtree(tmp, ignore_errors=True)
t.finish()
