#!/usr/bin/env python3
"""Hot reload of admission.lua under load (gateway + tlab-sim at a high time scale):
- background threads keep a few hundred requests per second going; none may fail or hang;
- admission.lua is rewritten 50 times: good versions answer a marker request with their own
  version message, and each must be in effect within 1 s of the write; broken versions (syntax
  error, top-level runtime error, missing on_request, an on_request that always fails, infinite
  loops at the top level and in on_request) must never become active, and are counted;
- GET /admin/policies shows the loaded version's hash, the last error as file:line: message, and
  the failure count;
- the config and a policy in a Kubernetes ConfigMap volume (gateway.yaml and admission.lua ->
  ..data/..., ..data -> a timestamped folder, swapped by renaming ..data): the new policy is in
  effect within 1 s, and the new config too (the gateway reloads as on SIGHUP).
"""
import http.client
import json
import os
import tempfile
import threading
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
BODY = json.dumps({"model": MODEL, "prompt": "hello", "max_tokens": 4})

tmp = tempfile.mkdtemp(prefix="tlab-policy-reload-")
script = os.path.join(tmp, "admission.lua")


def good(v):
    return ("-- version %d\nfunction on_request(req)\n"
            "  if req.model == 'marker' then gw.reject(409, 0, 'version-%d', 'marker') end\nend\n" % (v, v))


BROKEN = [
    ("syntax", "function on_request(req)\n  if then\nend\n"),
    ("runtime", "local t = nil\nlocal x = t.field\nfunction on_request(req) end\n"),
    ("missing", "function on_reqest(req) end\n"),
    ("call_error", "function on_request(req) error('broken on every call') end\n"),
    ("loop_top", "while true do end\nfunction on_request(req) end\n"),
    ("loop_call", "function on_request(req) while true do end end\n"),
]


def write(text):
    # Written in place (open/truncate/write/close), as many editors and scripts do; the gateway
    # reacts to the close, so it never reads a half-written file.
    with open(script, "w") as f:
        f.write(text)


write(good(0))
cfg = os.path.join(tmp, "gw.yaml")
with open(cfg, "w") as f:
    f.write("policies:\n  admission: admission.lua\n  degradation: ''\n"
            "plugins:\n  - name: queue\n    config: {max_inflight: 64, max_depth: 4096}\n  - name: metrics\n")

sim, sim_port = t.start_sim(["--max-model-len", "512", "--startup-seconds", "0"], time_scale=50)
gw, port = t.start_gateway(sim_port, config=cfg)

stop = threading.Event()
stats = {"ok": 0, "bad": [], "lat": []}
lock = threading.Lock()


PER_THREAD_RPS = 50  # 8 threads: ~400 req/s, "a few hundred", without starving tests running alongside


def load_worker():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    next_at = time.monotonic()
    while not stop.is_set():
        next_at += 1.0 / PER_THREAD_RPS
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        t0 = time.monotonic()
        try:
            conn.request("POST", "/v1/completions", body=BODY, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            status = r.status
        except Exception as e:  # a hang shows up as a timeout here
            status, data = None, repr(e).encode()
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with lock:
            if status == 200:
                stats["ok"] += 1
                stats["lat"].append(time.monotonic() - t0)
            else:
                stats["bad"].append((status, data[:200]))


def marker():
    st, _, body = t.request(port, "POST", "/v1/completions", {"model": "marker", "prompt": "x", "max_tokens": 1}, timeout=10)
    if st == 409:
        return json.loads(body)["error"]["message"]
    return f"status {st}"


def policies():
    st, _, body = t.request(port, "GET", "/admin/policies")
    return json.loads(body)["policies"]["admission"]


t.check(marker() == "version-0", "version 0 active at start")
threads = [threading.Thread(target=load_worker) for _ in range(8)]
for th in threads:
    th.start()
time.sleep(0.5)

t_start = time.monotonic()
ok_before = stats["ok"]
version, lags, broken_seen = 0, [], 0
for i in range(50):
    if i % 3 == 2:  # every third rewrite is broken, cycling through the kinds
        kind, text = BROKEN[broken_seen % len(BROKEN)]
        broken_seen += 1
        fails_before = policies()["reload_failures"]
        write(text + "-- %d\n" % i)
        deadline = time.monotonic() + 1.0
        while policies()["reload_failures"] == fails_before and time.monotonic() < deadline:
            time.sleep(0.01)
        p = policies()
        t.check(p["reload_failures"] == fails_before + 1, f"rewrite {i} ({kind}): refused and counted")
        t.check(p["last_error"] and p["last_error"].startswith(script + ":") or kind == "missing",
                f"rewrite {i} ({kind}): error as file:line: message: {p['last_error']}")
        t.check(marker() == f"version-{version}", f"rewrite {i} ({kind}): version {version} still serves")
    else:
        version += 1
        t0 = time.monotonic()
        write(good(version))
        got = None
        while time.monotonic() - t0 < 1.5:
            got = marker()
            if got == f"version-{version}":
                break
            time.sleep(0.005)
        lag = time.monotonic() - t0
        lags.append(lag)
        t.check(got == f"version-{version}" and lag <= 1.0, f"rewrite {i}: version {version} active after {lag:.3f} s ({got})")
    time.sleep(0.05)
elapsed = time.monotonic() - t_start
rate = (stats["ok"] - ok_before) / elapsed
stop.set()
for th in threads:
    th.join()

t.check(not stats["bad"], f"no request failed or hung during 50 reloads: {stats['bad'][:5]}")
t.check(rate >= 200, f"background load of a few hundred req/s ({rate:.0f} req/s)")
lat = sorted(stats["lat"])
print(f"load {rate:.0f} req/s over {elapsed:.1f} s, {stats['ok']} ok; reload lag max {max(lags)*1000:.0f} ms, "
      f"median {sorted(lags)[len(lags)//2]*1000:.0f} ms; request p99 {lat[int(len(lat)*0.99)]*1000:.1f} ms", flush=True)
p = policies()
t.check(p["reloads"] == version + 1, f"{version + 1} versions loaded ({p['reloads']})")
t.check(p["reload_failures"] == broken_seen, f"{broken_seen} refused ({p['reload_failures']})")
t.check(len(p["fnv1a64"]) == 16 and p["loaded_at"].endswith("Z"), f"hash and load time shown: {p}")
t.check(p["errors"] == 0, "no call failed at run time")
gw.stop()

# A ConfigMap volume, as kubelet lays it out and updates it: the gateway's config and its policy.
cm = os.path.join(tmp, "configmap")


def configmap_version(v, max_tokens):
    d = os.path.join(cm, f"..2026_12_06_v{v}")
    os.makedirs(d)
    with open(os.path.join(d, "admission.lua"), "w") as f:
        f.write(good(v))
    with open(os.path.join(d, "gateway.yaml"), "w") as f:
        f.write(f"policies:\n  admission: admission.lua\n  degradation: ''\nlimits:\n  max_tokens: {max_tokens}\n")
    return d


def over_limit():
    st, _, body = t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": 80}, timeout=10)
    return st


os.makedirs(cm)
configmap_version(1001, 100)
os.symlink("..2026_12_06_v1001", os.path.join(cm, "..data"))
for name in ("admission.lua", "gateway.yaml"):
    os.symlink(f"..data/{name}", os.path.join(cm, name))
gw, port = t.start_gateway(sim_port, config=os.path.join(cm, "gateway.yaml"))
t.check(marker() == "version-1001" and over_limit() == 200, "the config and policy from a ConfigMap volume are loaded")
configmap_version(1002, 50)
os.symlink("..2026_12_06_v1002", os.path.join(cm, "..data_tmp"))
t0 = time.monotonic()
os.rename(os.path.join(cm, "..data_tmp"), os.path.join(cm, "..data"))
got = None
while time.monotonic() - t0 < 1.5 and got != "version-1002":
    got = marker()
    time.sleep(0.01)
lag = time.monotonic() - t0
t.check(got == "version-1002" and lag <= 1.0, f"a ConfigMap update (..data renamed) is in effect after {lag:.3f} s ({got})")
t.check(t.wait_for(lambda: over_limit() == 400, 2), "and the config's new limits.max_tokens too (80 > 50: 400)")
t.check("ConfigMap volume changed" in gw.output(), "the reload is logged as the ConfigMap's")
t.finish()
