"""Every C file of the build compiles warning-free when optimised, as Release and RelWithDebInfo do.

gcc's flow warnings (maybe-uninitialized, stringop-*, array-bounds) only run with the optimiser,
so a Debug build with -Werror passes code that a Release build rejects: `cmake
-DCMAKE_BUILD_TYPE=Release` once failed on loadtest/sim/sim_config.c (issue 17). This recompiles
each entry of compile_commands.json with the flags of both build types (the objects go to
/dev/null) and fails with gcc's message when any file warns. CI also builds Release in full
(.ci/run).

Usage: optimized_warnings.py BUILD_DIR
"""
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys

# CMake's defaults for gcc: Release is -O3 -DNDEBUG, RelWithDebInfo -O2 -g -DNDEBUG. Last flag wins.
LEVELS = {"Release": ["-O3", "-DNDEBUG"], "RelWithDebInfo": ["-O2", "-DNDEBUG"]}


def argv_for(entry, extra):
    argv = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    out = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "-o":  # the object goes nowhere: the Debug build's own objects stay untouched
            out += ["-o", os.devnull]
            skip = True
            continue
        if a.startswith("-O") or a == "-g":
            continue
        out.append(a)
    return out + extra + ["-Werror"]


def compile_one(job):
    level, entry = job
    r = subprocess.run(argv_for(entry, LEVELS[level]), cwd=entry["directory"], capture_output=True, text=True)
    return level, entry["file"], r.returncode, r.stderr


def main():
    build = sys.argv[1]
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = [e for e in json.load(f) if e["file"].endswith(".c")]
    jobs = [(lvl, e) for lvl in LEVELS for e in entries]
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        for level, path, rc, err in pool.map(compile_one, jobs):
            if rc != 0:
                failed += 1
                print(f"CHECK failed: {path} does not compile cleanly as {level}:\n{err}", file=sys.stderr)
    print(f"{len(jobs) - failed} passed, {failed} failed ({len(entries)} files x {len(LEVELS)} build types)")
    sys.exit(1 if failed or not jobs else 0)


main()
