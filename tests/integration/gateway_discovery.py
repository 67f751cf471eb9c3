#!/usr/bin/env python3
"""A pool whose members come and go while it serves (docs/workers.md, "Discovery"):
- config errors: discovery with a workers list, file and dns together, a discovery file with a
  bad line at start: exit 2 with file:line:col;
- discovery.file under load: a worker added (the file renamed over) gets requests; a worker removed
  (the file written in place) gets no new ones and finishes those it has; no request fails; a file
  with an error keeps the pool and logs file:line:col; a Kubernetes ConfigMap swap (the ..data
  symlink renamed) is seen;
- discovery.dns against a real DNS server (dnsmasq on 127.0.0.1): the A records are the pool, a
  record added or removed (dnsmasq re-reads its hosts file on SIGHUP) joins or leaves a worker, and
  a DNS server that stops answering keeps the pool as it is.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
TS = 10
tmp = tempfile.mkdtemp(prefix="tlab-discovery-")
POOL = "pool:\n  health_interval_ms: 200\n  eject_ms: 1000\n"


def run_check(text, extra_files=()):
    path = os.path.join(tmp, f"check{len(os.listdir(tmp))}.yaml")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([os.path.join(t.BIN, "tlab-gateway"), "-c", path, "--check-config"], capture_output=True, text=True,
                       timeout=20)
    return path, p


def workers_view(port):
    return {w["name"]: w for w in json.loads(t.request(port, "GET", "/admin/workers", timeout=5)[2])["workers"]}


def write_atomically(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


# --- config errors ---
path, p = run_check("workers:\n  - {name: a, url: 'http://127.0.0.1:1'}\ndiscovery:\n  dns: workers.example\n")
t.check(p.returncode == 2 and f"{path}:3:1:" in p.stderr and "discovery and a workers list" in p.stderr,
        f"discovery with a workers list: exit 2 at 3:1 ({p.returncode}: {p.stderr.strip()[:300]})")
path, p = run_check("discovery:\n  file: w.txt\n  dns: workers.example\n")
t.check(p.returncode == 2 and f"{path}:1:1:" in p.stderr and "pick one source" in p.stderr,
        f"discovery file and dns together: exit 2 at 1:1 ({p.returncode}: {p.stderr.strip()[:300]})")
path, p = run_check("discovery:\n  port: 0\n")
t.check(p.returncode == 2 and f"{path}:2:9:" in p.stderr, f"discovery.port 0: exit 2 at 2:9 ({p.stderr.strip()[:200]})")
bad_list = os.path.join(tmp, "bad-workers.txt")
with open(bad_list, "w") as f:
    f.write("# two workers\nhttp://127.0.0.1:1\ngpu1 127.0.0.1:2\n")
cfg_bad = os.path.join(tmp, "gw-bad.yaml")
with open(cfg_bad, "w") as f:
    f.write(f"discovery:\n  file: {bad_list}\n")
gw_bad, _ = t.start_gateway(1, config=cfg_bad, wait=False)
rc = None
try:
    rc = gw_bad.p.wait(10)
except subprocess.TimeoutExpired:
    pass
t.check(rc == 2 and f"{bad_list}:3:6: the URL must start with http://" in gw_bad.output(),
        f"a discovery file with a bad line at start: exit 2 with its file:line:col ({rc}: {gw_bad.output()[-300:]})")

# --- discovery.file under load ---
sims = [t.start_sim(["--startup-seconds", "0"], time_scale=TS) for _ in range(3)]
url = {f"w{i + 1}": f"http://127.0.0.1:{p}" for i, (_, p) in enumerate(sims)}
listing = os.path.join(tmp, "workers.txt")


def listing_text(names):
    return "# the pool\n" + "".join(f"{n} {url[n]}\n" for n in names)


write_atomically(listing, listing_text(["w1", "w2"]))
cfg = os.path.join(tmp, "gw.yaml")
with open(cfg, "w") as f:
    f.write(f"discovery:\n  file: workers.txt\n{POOL}plugins:\n  - name: metrics\n")  # relative to the config's folder
gw, port = t.start_gateway(1, config=cfg)
view = workers_view(port)
t.check(sorted(view) == ["w1", "w2"], f"the pool is the discovery file's two workers ({sorted(view)})")

load = t.Load(port, 16)
time.sleep(1.5)
write_atomically(listing, listing_text(["w1", "w2", "w3"]))  # renamed over: IN_MOVED_TO
t.check(t.wait_for(lambda: "w3" in workers_view(port), 3), "a worker added to the file joins the pool within 3 s")
t.check(t.wait_for(lambda: workers_view(port)["w3"]["served"] > 0, 5), "the added worker serves requests")
with open(listing, "w") as f:  # written in place: IN_CLOSE_WRITE
    f.write(listing_text(["w2", "w3"]))
t.check(t.wait_for(lambda: "w1" not in workers_view(port) or workers_view(port)["w1"].get("leaving"), 3),
        "a worker removed from the file leaves the pool within 3 s")
t.check(t.wait_for(lambda: "w1" not in workers_view(port), 10), "the removed worker finishes what it had, then is gone")
w1_served = t.metric(port, "gateway_worker_requests_total", 'worker="w1"')
time.sleep(1.5)
t.check(t.metric(port, "gateway_worker_requests_total", 'worker="w1"') == w1_served,
        "no request goes to the removed worker after it left")
res = load.stop()
bad = [(st, b[:120]) for st, b in res if st != 200]
t.check(len(res) > 40 and not bad, f"no request failed while workers joined and left: {len(res)} answered, failures {bad[:3]}")
t.check(sorted(workers_view(port)) == ["w2", "w3"], f"the pool is w2 and w3 ({sorted(workers_view(port))})")

# a file with an error keeps the pool, and says where
with open(listing, "w") as f:
    f.write(listing_text(["w2"]) + "w9 ftp://nowhere\n")
t.check(t.wait_for(lambda: f"{listing}:3:4: the URL must start with http://" in gw.output(), 3),
        "a discovery file with an error is logged as file:line:col")
t.check(sorted(workers_view(port)) == ["w2", "w3"], "and the pool stays as it was")
st, _ = t.completion(port)
t.check(st == 200, f"requests are still served ({st})")
gw.stop()

# an empty pool holds requests (workers an autoscaler starts find them), until their deadline
with open(listing, "w") as f:
    f.write("# nobody yet\n")
cfg_empty = os.path.join(tmp, "gw-empty.yaml")
with open(cfg_empty, "w") as f:
    f.write(f"discovery:\n  file: {listing}\n{POOL}")
gw, port = t.start_gateway(1, config=cfg_empty)
t.check(workers_view(port) == {}, "an empty discovery file: an empty pool")
held = {}
th = threading.Thread(target=lambda: held.update(r=t.completion(port)))
th.start()
time.sleep(0.8)
t.check(th.is_alive(), "a request to the empty pool is held, not refused")
with open(listing, "w") as f:
    f.write(listing_text(["w2"]))
th.join(30)
t.check(held.get("r", (0,))[0] == 200, f"and served once a worker joins ({held.get('r', (0, b''))[0]})")
with open(listing, "w") as f:
    f.write("# gone again\n")
t.check(t.wait_for(lambda: "w2" not in workers_view(port), 5), "the pool is empty again")
t0 = time.monotonic()
st, h, body = t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": "hi", "max_tokens": 5},
                        headers={"x-request-deadline-ms": "1500"}, timeout=30)
took = time.monotonic() - t0
t.check(st == 503 and 1.2 <= took <= 4 and "retry-after" in {k.lower() for k in h},
        f"no worker ever comes: 503 with Retry-After at its deadline ({st} after {took:.1f} s: {body[:160]})")
gw.stop()

# a Kubernetes ConfigMap volume: workers.txt -> ..data/workers.txt, ..data -> ..<timestamp>, swapped by rename
cm = os.path.join(tmp, "configmap")
os.makedirs(os.path.join(cm, "..v1"))
with open(os.path.join(cm, "..v1", "workers.txt"), "w") as f:
    f.write(listing_text(["w1"]))
os.symlink("..v1", os.path.join(cm, "..data"))
os.symlink("..data/workers.txt", os.path.join(cm, "workers.txt"))
cfg_cm = os.path.join(tmp, "gw-cm.yaml")
with open(cfg_cm, "w") as f:
    f.write(f"discovery:\n  file: {cm}/workers.txt\n{POOL}")
gw, port = t.start_gateway(1, config=cfg_cm)
t.check(sorted(workers_view(port)) == ["w1"], "a ConfigMap-mounted file: its worker is the pool")
os.makedirs(os.path.join(cm, "..v2"))
with open(os.path.join(cm, "..v2", "workers.txt"), "w") as f:
    f.write(listing_text(["w2", "w3"]))
os.symlink("..v2", os.path.join(cm, "..data_tmp"))
os.rename(os.path.join(cm, "..data_tmp"), os.path.join(cm, "..data"))
t.check(t.wait_for(lambda: sorted(n for n, w in workers_view(port).items() if not w.get("leaving")) == ["w2", "w3"], 3),
        "the ConfigMap's update (..data renamed) changes the pool within 3 s")
st, _ = t.completion(port)
t.check(st == 200, f"and requests are served ({st})")
gw.stop()
for pr, _ in sims:
    pr.stop()


# --- discovery.dns against dnsmasq ---
dnsmasq = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
t.check(dnsmasq is not None, "dnsmasq is installed (infra/install-deps.sh: dnsmasq-base)")
if dnsmasq:
    addrs = ["127.0.0.2", "127.0.0.3"]
    wport = t.port_free_on(addrs)
    dsims = []
    for a in addrs:
        pr = t.Proc([os.path.join(t.BIN, "tlab-sim"), "--host", a, "--port", str(wport), "--time-scale", str(TS),
                     "--startup-seconds", "0"], "sim")
        dsims.append(pr)
    for a in addrs:
        t.wait_listening(a, wport, 30, step=0.1)
    hosts = os.path.join(tmp, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.2 workers.tlab.test\n")
    dport = t.port_free_on(["127.0.0.1"])
    dns = t.Proc([dnsmasq, "--keep-in-foreground", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}",
                  "--local=/tlab.test/",  # answers for the domain from the hosts file alone: no AAAA is NODATA
                  "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={dport}", "--conf-file=/dev/null",
                  "--local-ttl=0", "--log-facility=-", "--pid-file=", "--user=" + (os.environ.get("USER") or "root")],
                 "dnsmasq")
    time.sleep(0.5)
    cfg_dns = os.path.join(tmp, "gw-dns.yaml")
    with open(cfg_dns, "w") as f:
        f.write(f"discovery:\n  dns: workers.tlab.test\n  port: {wport}\n  interval_ms: 300\n"
                f"  dns_server: 127.0.0.1:{dport}\n{POOL}")
    gw, port = t.start_gateway(1, config=cfg_dns)
    n2, n3 = f"127.0.0.2-{wport}", f"127.0.0.3-{wport}"
    t.check(t.wait_for(lambda: sorted(workers_view(port)) == [n2], 5),
            f"the name's A record is the pool ({sorted(workers_view(port))}; dnsmasq: {dns.output()[-300:]})")
    with open(hosts, "a") as f:
        f.write("127.0.0.3 workers.tlab.test\n")
    os.kill(dns.pid, signal.SIGHUP)
    t.check(t.wait_for(lambda: sorted(workers_view(port)) == [n2, n3], 5), "a record added: its worker joins within 5 s")
    load = t.Load(port, 8)
    t.check(t.wait_for(lambda: all(w["served"] > 0 for w in workers_view(port).values()), 8), "both workers serve")
    with open(hosts, "w") as f:
        f.write("127.0.0.3 workers.tlab.test\n")
    os.kill(dns.pid, signal.SIGHUP)
    t.check(t.wait_for(lambda: n2 not in workers_view(port), 8), "a record removed: its worker leaves, once idle")
    res = load.stop()
    bad = [(st, b[:120]) for st, b in res if st != 200]
    t.check(len(res) > 10 and not bad, f"no request failed as DNS changed: {len(res)} answered, failures {bad[:3]}")
    dns.stop()
    t.check(t.wait_for(lambda: "did not resolve" in gw.output(), 5), "a DNS server that stopped answering is logged")
    t.check(sorted(workers_view(port)) == [n3], "and the pool stays as it was")
    st, _ = t.completion(port)
    t.check(st == 200, f"requests are still served ({st})")
    gw.stop()

    # SRV records: a port per record (a sim on 127.0.0.1 at its own port beside the one on 127.0.0.2)
    csim, cport = t.start_sim(["--startup-seconds", "0"], time_scale=TS)

    def start_dnsmasq(srv):
        args = [dnsmasq, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--local=/tlab.test/",
                "--host-record=a.tlab.test,127.0.0.2", "--host-record=c.tlab.test,127.0.0.1",
                "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={dport}", "--conf-file=/dev/null",
                "--local-ttl=0", "--log-facility=-", "--pid-file=", "--user=" + (os.environ.get("USER") or "root")]
        args += [f"--srv-host=_http._tcp.workers.tlab.test,{target},{p}" for target, p in srv]
        return t.Proc(args, "dnsmasq")

    dns = start_dnsmasq([("a.tlab.test", wport), ("c.tlab.test", cport)])
    time.sleep(0.5)
    with open(cfg_dns, "w") as f:
        f.write(f"discovery:\n  dns: _http._tcp.workers.tlab.test\n  interval_ms: 300\n"
                f"  dns_server: 127.0.0.1:{dport}\n{POOL}")
    gw, port = t.start_gateway(1, config=cfg_dns)
    na, nc = f"127.0.0.2-{wport}", f"127.0.0.1-{cport}"
    t.check(t.wait_for(lambda: sorted(workers_view(port)) == sorted([na, nc]), 5),
            f"SRV records: a worker per record, each at its own port ({sorted(workers_view(port))})")
    results = [t.completion(port)[0] for _ in range(6)]
    t.check(results == [200] * 6, f"requests to the SRV pool are served ({results})")
    dns.stop()
    dns = start_dnsmasq([("c.tlab.test", cport)])
    t.check(t.wait_for(lambda: sorted(workers_view(port)) == [nc], 5), "an SRV record removed: its worker leaves")
    dns.stop()
    gw.stop()
    csim.stop()
    for pr in dsims:
        pr.stop()

t.stop_all()
t.finish()
