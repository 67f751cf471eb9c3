#!/usr/bin/env python3
"""Every program the build makes answers --help and --version, and exits 0.

The programs are found in the build's bin folder, so a new program is covered without touching
this test; the tools that are scripts, not built (loadtest/report/tlab-report, loadtest/burst/burst.py), are listed here. `tlab-perf-upstream --help` once started a server and never returned (issue 17); each
run here is bounded, and a program still running at the bound fails and is killed by its PID.
Checks: exit 0, some output, and for --version the project's version.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlabtest as t  # noqa: E402

VERSION = os.environ.get("TLAB_VERSION", "")
t.check(VERSION != "", "TLAB_VERSION is not set (the ctest sets the project's version)")

SCRIPTS = [os.path.join(t.SRC, "loadtest", "report", "tlab-report"), os.path.join(t.SRC, "loadtest", "burst", "burst.py")]

built = sorted(os.path.join(t.BIN, p) for p in os.listdir(t.BIN)
               if os.path.isfile(os.path.join(t.BIN, p)) and os.access(os.path.join(t.BIN, p), os.X_OK))
t.check(len(built) >= 4, f"expected the gateway and the tools in {t.BIN}, found {built}")

for path in built + SCRIPTS:
    prog = os.path.basename(path)
    for flag in ("--help", "--version"):
        # A fresh session, so that a program that forks is killed with its children.
        p = subprocess.Popen([path, flag], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, start_new_session=True, cwd=t.SRC)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            out, err = p.communicate()
            t.check(False, f"{prog} {flag} did not exit within 10 s (output: {out[:200]!r})")
            continue
        text = out.decode(errors="replace")
        t.check(p.returncode == 0, f"{prog} {flag} exited {p.returncode}: {err.decode(errors='replace')[:300]}")
        t.check(text.strip() != "", f"{prog} {flag} printed nothing on stdout")
        if flag == "--version":
            t.check(VERSION in text, f"{prog} --version does not name version {VERSION}: {text[:200]!r}")
        else:
            t.check(prog in text, f"{prog} --help does not name the program: {text[:200]!r}")

t.finish()
