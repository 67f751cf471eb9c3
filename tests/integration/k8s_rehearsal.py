#!/usr/bin/env python3
"""A local rehearsal of infra/k8s (docs/kubernetes.md): no cluster runs here, so its parts are
played by real programs on 127.0.0.x:
- the gateway runs the ConfigMap's own files (infra/k8s/base/config/: gateway.yaml and the policy
  it names), with only the addresses changed for loopback;
- dnsmasq is the cluster DNS: the headless Service's name answers with one A record per ready
  worker (a tlab-sim on 127.0.0.2..5, all on one port, as pods of one Deployment);
- a small KEDA reads infra/k8s/base/workers-scaledobject.yaml (the trigger's URL path, its GJSON
  valueLocation, targetValue, activationTargetValue, pollingInterval, cooldownPeriod and replica
  bounds: read from the manifest, not copied), polls the gateway's demand endpoint, and scales:
  it starts a sim, adds its record once /health answers (a ready pod), and on the way down removes
  the record first and stops the sim once the gateway has let it go. KEDA's intervals are divided
  by COMPRESS so the rehearsal takes a minute.
Load goes 0 -> light -> heavy -> light -> 0 clients; the workers must go 0 -> 1 -> 3 or more -> 1 -> 0,
no accepted request may be lost (every answer is 200, or an early 429 refusal), and the first
request after 0 must be held with SSE keep-alives and served once the cold start ends.
"""
import json
import math
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.parse

import yaml

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
COMPRESS = 30  # KEDA's polling and cooldown, divided
K8S = os.path.join(t.SRC, "infra", "k8s", "base")
tmp = tempfile.mkdtemp(prefix="tlab-k8s-")

with open(os.path.join(K8S, "workers-scaledobject.yaml")) as f:
    so = yaml.safe_load(f)
trigger = next(tr for tr in so["spec"]["triggers"] if tr["type"] == "metrics-api")
md = trigger["metadata"]
DEMAND_PATH = urllib.parse.urlparse(md["url"]).path
VALUE_LOCATION = md["valueLocation"]
TARGET = float(md["targetValue"])
ACTIVATION = float(md.get("activationTargetValue", "0"))
POLL_S = so["spec"].get("pollingInterval", 30) / COMPRESS
COOLDOWN_S = so["spec"].get("cooldownPeriod", 300) / COMPRESS
MIN_R, MAX_R = so["spec"].get("minReplicaCount", 0), so["spec"]["maxReplicaCount"]
t.check(DEMAND_PATH == "/admin/demand" and MAX_R >= 3, f"the ScaledObject polls the demand endpoint ({md['url']}, max {MAX_R})")

ADDRS = [f"127.0.0.{2 + i}" for i in range(MAX_R)]


WPORT = t.port_free_on(ADDRS)
DPORT = t.port_free_on(["127.0.0.1"])
hosts = os.path.join(tmp, "hosts")
open(hosts, "w").close()
dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
dns = t.Proc([dnsmasq, "--keep-in-foreground", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}", "--local=/tlab.test/",
              "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={DPORT}", "--conf-file=/dev/null", "--local-ttl=0",
              "--log-facility=-", "--pid-file=", "--user=" + (os.environ.get("USER") or "root")], "dnsmasq")

# The ConfigMap, mounted: gateway.yaml and the policy beside it.
conf_dir = os.path.join(tmp, "etc-tlab")
os.makedirs(conf_dir)
shutil.copy(os.path.join(K8S, "config", "gateway.yaml"), conf_dir)
shutil.copy(os.path.join(K8S, "config", "admission.lua"), conf_dir)
with open(os.path.join(K8S, "config", "gateway.yaml")) as f:
    gw_conf = yaml.safe_load(f)
t.check(gw_conf["discovery"]["port"] == 8000 and gw_conf["admin"]["listen"]["port"] == 9091, "the gateway's ConfigMap config")
admin_port = t.free_port()
gw, port = t.start_gateway(1, config=os.path.join(conf_dir, "gateway.yaml"),
                           sets=[f"admin.listen.host=127.0.0.1", f"admin.listen.port={admin_port}",
                                 "discovery.dns=workers.tlab.test", f"discovery.port={WPORT}",
                                 f"discovery.dns_server=127.0.0.1:{DPORT}", "upstream.sse_keepalive_ms=500",
                                 # This rehearses KEDA, not the autopilot: with 60-token requests far
                                 # under the SLO a worker's gate keeps growing (51 per worker was seen
                                 # under ASan, and 90 clients then wanted only 2 workers); capped at
                                 # 24, 90 clients want 4 whatever the gate learned.
                                 "autopilot.max_limit=24"])


def demand():
    return json.loads(t.request(admin_port, "GET", DEMAND_PATH, timeout=5)[2])


def gjson(doc, path):
    for part in path.split("."):
        doc = doc[part]
    return float(doc)


class Keda:
    """The ScaledObject's loop: replicas = ceil(value / targetValue) above activation, 0 below
    it; up at once, down after cooldown of lower demand."""

    def __init__(self):
        self.sims = {}  # addr -> Proc
        self.replicas, self.history, self.stopping = 0, [0], False
        self.lower_since = None
        self.lock = threading.Lock()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def write_records(self):
        with open(hosts, "w") as f:
            for a in ADDRS:
                if a in self.sims and self.sims[a] is not None:
                    f.write(f"{a} workers.tlab.test\n")
        os.kill(dns.pid, signal.SIGHUP)

    def scale_to(self, n):
        if n > self.replicas:
            new = [a for a in ADDRS if a not in self.sims][: n - self.replicas]
            # A pod's cold start of 1 s of real time (10 simulated at --time-scale 10), twice the
            # gateway's keep-alive interval: with 0.1 s the first request after 0 was sometimes
            # served in 0.37 s, before any keep-alive was due, when KEDA's poll fell right after it.
            procs = {a: t.Proc([os.path.join(t.BIN, "tlab-sim"), "--host", a, "--port", str(WPORT), "--time-scale", "10",
                                "--startup-seconds", "10"], "sim") for a in new}
            for a, pr in procs.items():  # ready pods only: the record comes after the port answers
                t.wait_listening(a, WPORT, 20)
                self.sims[a] = pr
            self.write_records()
        else:
            gone = [a for a in reversed(ADDRS) if a in self.sims][: self.replicas - n]
            leaving = {a: self.sims.pop(a) for a in gone}
            self.write_records()
            # The gateway lets a leaving worker finish its requests; then the pod stops.
            names = {f"{a}-{WPORT}" for a in gone}
            end = time.monotonic() + 20
            while time.monotonic() < end:
                ws = {w["name"] for w in json.loads(t.request(admin_port, "GET", "/admin/workers")[2])["workers"]}
                if not ws & names:
                    break
                time.sleep(0.1)
            for pr in leaving.values():
                pr.stop()
        self.replicas = n
        self.history.append(n)

    def run(self):
        while not self.stopping:
            try:
                v = gjson(demand(), VALUE_LOCATION)
            except Exception:  # noqa: BLE001 - a poll that failed: KEDA keeps the replicas
                time.sleep(POLL_S)
                continue
            want = 0 if v <= ACTIVATION else max(MIN_R, min(MAX_R, math.ceil(v / TARGET)))
            with self.lock:
                if want > self.replicas:
                    self.lower_since = None
                    self.scale_to(want)
                elif want < self.replicas:
                    self.lower_since = self.lower_since or time.monotonic()
                    if time.monotonic() - self.lower_since >= COOLDOWN_S:
                        self.lower_since = None
                        self.scale_to(want)
                else:
                    self.lower_since = None
            time.sleep(POLL_S)

    def stop(self):
        self.stopping = True
        self.th.join(30)
        for pr in self.sims.values():
            pr.stop()


keda = Keda()
d0 = demand()
t.check(d0["workers_wanted"] == 0 and keda.replicas == 0, f"idle: no worker wanted, none running ({d0})")

# The first request after 0: held with keep-alives through the cold start, then served.
t0 = time.monotonic()
s = t.Stream(port, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20, "stream": True},
             headers={"x-request-deadline-ms": "30000"}, timeout=40)
raw = []
for line in s.lines():
    raw.append(line)
took = time.monotonic() - t0
comments = [ln for ln in raw if ln.startswith(":")]
data = [ln for ln in raw if ln.startswith("data: ")]
t.check(data and data[-1] == "data: [DONE]" and not any('"error"' in ln for ln in data),
        f"the first request after 0 is served once a worker is up ({took:.1f} s, {len(data)} events)")
t.check(len(comments) >= 1 and raw.index(comments[0]) < raw.index(data[0]),
        f"with SSE keep-alives while it waited ({len(comments)} before the first token)")
t.check(keda.history[:2] == [0, 1], f"0 -> 1 worker on the first request ({keda.history})")
print(f"first request after 0: served in {took:.2f} s, {len(comments)} keep-alive(s) before its first token", flush=True)

load = t.Load(port, 3, headers={"x-request-deadline-ms": "30000"})
time.sleep(3)
load.set_clients(90)  # at most 24 per worker (autopilot.max_limit above): 90 want 4
end = time.monotonic() + 25
while time.monotonic() < end and keda.replicas < 3:
    time.sleep(0.2)
t.check(keda.replicas >= 3, f"heavy load: 3 or more workers ({keda.history}, demand {demand()})")
time.sleep(2)
load.set_clients(2)
end = time.monotonic() + COOLDOWN_S + 20
while time.monotonic() < end and keda.replicas != 1:
    time.sleep(0.2)
t.check(keda.replicas == 1, f"light load again: back to 1 worker ({keda.history})")
load.set_clients(0)
res = load.stop()
end = time.monotonic() + COOLDOWN_S + 20
while time.monotonic() < end and keda.replicas != 0:
    time.sleep(0.2)
t.check(keda.replicas == 0, f"no load: back to 0 workers ({keda.history})")
keda.stop()

lost = [(st, b[:120]) for st, b in res if st not in (200, 429)]
refused = [b for st, b in res if st == 429]
t.check(len(res) > 50 and not lost, f"no accepted request lost: {len(res)} answered, {len(refused)} refused early, lost {lost[:3]}")
t.check(all("retry-after" in h for h in refused), "every early refusal carries a Retry-After")
peak = max(keda.history)
seq = keda.history
i1 = seq.index(1)
ipeak = seq.index(peak, i1)
t.check(peak >= 3 and 1 in seq[ipeak:] and seq[-1] == 0, f"the workers went 0 -> 1 -> {peak} -> 1 -> 0 ({seq})")
print(f"replicas over the run: {keda.history}; {len(res)} requests answered, {len(refused)} refused early", flush=True)
gw.stop()
dns.stop()
t.stop_all()
t.finish()
