#!/usr/bin/env python3
"""Per-key rate limits shared by two gateway replicas through a real Redis (auth.redis), on loopback.

Covers: a config with a malformed auth.redis fails --check-config with file:line:col and exit 2;
two tlab-gateways with the same keys file and one redis-server in front of one tlab-sim: one key's
requests_per_minute holds within 5 % of the limit across both replicas under a steady overload
(each replica alone would let through twice as many); a stream's token reservation made on
replica A blocks replica B, and its refund (the stream cancelled on A) reaches B; Redis paused
(SIGSTOP) -> each request is decided by the replica's own bucket after auth.redis_timeout_ms, none
hangs, and the admissions Redis makes when it resumes are given back; SCRIPT FLUSH -> the scripts
are sent again whole; Redis hung for good -> the connection is dropped after 3 timeouts; Redis killed -> the same at once, gateway_shared_limit_up 0; Redis back on its port -> the
gateways reconnect and share again; KEDA's Prometheus trigger for several replicas (read from
infra/k8s/components/shared-limits) answers on a real Prometheus scraping both; a request
still waiting for Redis when the drain starts gets 503.
"""
import json
import os
import signal
import subprocess
import tempfile
import threading
import time

import yaml

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
KEYS = {"shared": "sk-tlab-test-shared-0123456789", "big": "sk-tlab-test-big-0123456789",
        "slow": "sk-tlab-test-slow-0123456789"}
RPM = 60  # the shared key: a bucket of 60, one more per second


def auth(name):
    return {"Authorization": f"Bearer {KEYS[name]}"}


def completion(port, name, max_tokens=1, timeout=10):
    try:
        return t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": max_tokens},
                         headers=auth(name), timeout=timeout)
    except Exception as e:  # noqa: BLE001 - a reset or a hang is what this looks for
        return 0, {}, str(e).encode()


tmp = tempfile.mkdtemp(prefix="tlab-shared-limits-")
with open(os.path.join(tmp, "keys.yaml"), "w") as f:
    f.write(f"""keys:
  - {{name: shared, key: {KEYS['shared']}, requests_per_minute: {RPM}}}
  - {{name: big, key: {KEYS['big']}, tokens_per_minute: 1500}}
  - {{name: slow, key: {KEYS['slow']}, requests_per_minute: 6}}
""")

# --- a malformed address is a config error at start ---
bad = os.path.join(tmp, "bad.yaml")
with open(bad, "w") as f:
    f.write("auth:\n  keys_file: keys.yaml\n  redis: \"redis:6379:1\"\n")
p = subprocess.run([os.path.join(t.BIN, "tlab-gateway"), "--check-config", "-c", bad], capture_output=True, text=True,
                   timeout=10)
t.check(p.returncode == 2 and f"{bad}:3:10: 'auth.redis': 'redis:6379:1' is not host:port" in p.stderr,
        f"bad auth.redis: rc {p.returncode} {p.stderr}")

redis_port = t.free_port()


def start_redis():
    pr = t.Proc(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no",
                 "--dir", tmp], "redis")
    ok = t.wait_for(lambda: subprocess.run(["redis-cli", "-p", str(redis_port), "ping"], capture_output=True,
                                           text=True).stdout.strip() == "PONG", 10)
    if not ok:
        raise RuntimeError(pr.output())
    return pr


redis = start_redis()
# Real time (time scale 1): a 1000-token stream lasts seconds, long enough to be cancelled midway.
sim, sim_port = t.start_sim(["--max-model-len", "4096", "--startup-seconds", "0"])
cfg = os.path.join(tmp, "gateway.yaml")
with open(cfg, "w") as f:
    # 500 ms: no admission falls back on a loaded 2-core machine while Redis is up.
    f.write(f"auth:\n  keys_file: keys.yaml\n  redis: 127.0.0.1:{redis_port}\n  redis_timeout_ms: 500\n"
            "plugins:\n  - name: metrics\n")
gws = []
for _ in range(2):
    admin = t.free_port()
    gw, port = t.start_gateway(sim_port, config=cfg, sets=["admin.listen.host=127.0.0.1", f"admin.listen.port={admin}"])
    gws.append((gw, port, admin))
for gw, _, admin in gws:
    t.check(t.wait_metric(admin, "gateway_shared_limit_up", 1, timeout=10), f"replica up on Redis: {gw.output()[-2000:]}")

# --- one key's limit across both replicas under a steady overload: 2 x 10 requests/s for 25 s ---
RATE, SECONDS = 10, 25
results, lock = [], threading.Lock()


def send_paced(port, start, offset):
    for i in range(RATE * SECONDS):
        delay = start + offset + i / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent = time.monotonic()
        st, _, body = completion(port, "shared")
        with lock:
            results.append((sent, st, body))


start = time.monotonic() + 0.2
threads = [threading.Thread(target=send_paced, args=(port, start, k / (2 * RATE))) for k, (_, port, _) in enumerate(gws)]
for th in threads:
    th.start()
for th in threads:
    th.join(SECONDS + 60)
statuses = [st for _, st, _ in results]
ok = statuses.count(200)
span = max(s for s, _, _ in results) - min(s for s, _, _ in results)
expected = RPM + RPM / 60 * span  # the full bucket, then the refill over the run
t.check(set(statuses) <= {200, 429}, f"only 200 and 429: {sorted(set(statuses))} {[b[:200] for _, s, b in results if s not in (200, 429)][:3]}")
t.check(abs(ok - expected) <= 0.05 * expected,
        f"{ok} requests admitted across 2 replicas in {span:.1f} s; the limit allows {expected:.1f} (+-5 %)")
print(f"shared limit: {ok} admitted of {len(results)} sent in {span:.1f} s across 2 replicas; the limit allows "
      f"{expected:.1f}; one replica alone would allow {expected:.1f} by itself ({2 * expected:.1f} for two)", flush=True)
per_replica = [t.metric(admin, "gateway_rate_limited_total", 'key="shared"') or 0 for _, _, admin in gws]
t.check(all(n > 0 for n in per_replica), f"both replicas refused some: {per_replica}")
t.check(all((t.metric(admin, "gateway_shared_limit_fallbacks_total") or 0) == 0 for _, _, admin in gws),
        "no admission fell back to a local bucket while Redis was up")

# --- a token reservation made on A blocks B; its refund on A reaches B ---
(gw_a, port_a, admin_a), (gw_b, port_b, admin_b) = gws
stream = t.Stream(port_a, {"model": MODEL, "prompt": "x", "max_tokens": 1000, "ignore_eos": True, "stream": True},
                  path="/v1/completions", headers=auth("big"), timeout=20)
events = len(stream.read_events(2))
t.check(stream.status == 200 and events >= 2, f"stream on A: {stream.status} {events}")
st, h, body = completion(port_b, "big", max_tokens=1000)
t.check(st == 429 and b'"tokens"' in body, f"B sees A's reservation: {st} {body[:300]}")
t.check(h.get("x-ratelimit-limit-tokens") == "1500", f"B's x-ratelimit headers {h}")
stream.close()
st, _, body = t.retry_until(lambda: completion(port_b, "big", max_tokens=1000), 200, 5)
t.check(st == 200, f"B after A's stream was cancelled and refunded: {st} {body[:200]}")

# --- Redis lost its scripts (a restart, SCRIPT FLUSH): sent again whole, still shared ---
subprocess.run(["redis-cli", "-p", str(redis_port), "script", "flush"], capture_output=True, timeout=10)
before = t.metric(admin_a, "gateway_shared_limit_fallbacks_total") or 0
st, h, _ = completion(port_a, "slow")
t.check(st == 200 and h.get("x-ratelimit-remaining-requests") == "5", f"after SCRIPT FLUSH: {st} {h}")
t.check((t.metric(admin_a, "gateway_shared_limit_fallbacks_total") or 0) == before, "decided by Redis after SCRIPT FLUSH")

# --- Redis paused: each request decided locally after the timeout (500 ms), none hangs; the
# admissions Redis makes once it resumes, which nobody waits for, are given back ---
os.kill(redis.pid, signal.SIGSTOP)
t0 = time.monotonic()
answers = [completion(port_a, "slow")[0] for _ in range(2)]
took = time.monotonic() - t0
os.kill(redis.pid, signal.SIGCONT)
t.check(answers == [200, 200], f"answers with Redis paused (the replica's own bucket is full): {answers}")
t.check(took < 5, f"2 requests with Redis paused took {took:.2f} s")
t.check((t.metric(admin_a, "gateway_shared_limit_fallbacks_total", 'reason="timeout"') or 0) == 2,
        "fallbacks counted as timeouts")
time.sleep(0.5)  # Redis runs the two late admissions, then their releases
# The shared bucket had 5 left; with the late admissions kept it would have 3 (plus a refill of
# 0.1 a second), so the 5th request below would be refused.
answers = [completion(port_b, "slow")[0] for _ in range(5)]
t.check(answers == [200] * 5, f"late admissions were released: B gets the 5 left: {answers}")
t.check(completion(port_b, "slow")[0] == 429, "and then the limit")
t.check(gw_a.alive(), "replica A kept its connection or reconnected")
t.check(t.wait_metric(admin_a, "gateway_shared_limit_up", 1, timeout=5), "A is up on Redis after the pause")

# --- a Redis that stays hung: three admissions in a row past the timeout drop the connection,
# so later requests do not each wait the timeout; it comes back when Redis does ---
os.kill(redis.pid, signal.SIGSTOP)
answers = [completion(port_a, "shared")[0] for _ in range(3)]
dropped = t.wait_metric(admin_a, "gateway_shared_limit_up", 0, timeout=3)
t0 = time.monotonic()
more = completion(port_a, "shared")[0]
quick = time.monotonic() - t0
os.kill(redis.pid, signal.SIGCONT)
t.check(set(answers + [more]) <= {200, 429}, f"answers while Redis hangs: {answers} {more}")
t.check(dropped and "dropping the connection" in gw_a.output(), "the hung connection is dropped")
t.check(quick < 0.4, f"after the drop a request is decided at once ({quick:.2f} s), not after the timeout")
t.check(t.wait_metric(admin_a, "gateway_shared_limit_up", 1, timeout=5), "reconnected once Redis answers")

# --- Redis gone: decided locally at once; back on its port: shared again ---
redis.stop(signal.SIGKILL)
t.check(t.wait_metric(admin_a, "gateway_shared_limit_up", 0, timeout=5), "gateway_shared_limit_up 0 without Redis")
answers = [completion(port_b, "shared")[0] for _ in range(3)]
t.check(set(answers) <= {200, 429}, f"answers without Redis: {answers}")
t.check("unavailable: each replica enforces the per-key limits alone" in gw_b.output(), "the loss is logged")
redis = start_redis()
for gw, _, admin in gws:
    t.check(t.wait_metric(admin, "gateway_shared_limit_up", 1, timeout=10), f"reconnected: {gw.output()[-1500:]}")
before = t.metric(admin_b, "gateway_shared_limit_fallbacks_total") or 0
st, h, _ = completion(port_b, "shared")
t.check(st in (200, 429) and h.get("x-ratelimit-limit-requests") == str(RPM), f"after the reconnect: {st} {h}")
t.check((t.metric(admin_b, "gateway_shared_limit_fallbacks_total") or 0) == before, "decided by Redis again")
keys = subprocess.run(["redis-cli", "-p", str(redis_port), "--scan", "--pattern", "tlab:ratelimit:{shared}:*"],
                      capture_output=True, text=True).stdout.split()
t.check("tlab:ratelimit:{shared}:requests:60" in keys, f"the bucket in Redis under the default prefix: {keys}")

# --- KEDA's Prometheus trigger for several replicas (components/shared-limits), read from the
# manifest, run by a real Prometheus scraping both replicas: both are counted, the query answers ---
with open(os.path.join(t.SRC, "infra/k8s/components/shared-limits/workers-scaledobject-prometheus.yaml")) as f:
    trigger = yaml.safe_load(f)["spec"]["triggers"][0]["metadata"]
prom, query = t.start_prometheus({"tlab-gateway": [f"127.0.0.1:{admin}" for _, _, admin in gws]}, tmp)
counted = t.wait_for(lambda: (query("count(gateway_demand_requests)").get("data", {}).get("result") or [{"value": [0, "0"]}])[0]["value"][1] == "2", 20)
t.check(counted, "Prometheus scrapes gateway_demand_requests from both replicas")
r = query(trigger["query"])
res = r.get("data", {}).get("result", [])
t.check(r.get("status") == "success" and len(res) == 1 and float(res[0]["value"][1]) == 0,
        f"the trigger's query answers 0 workers wanted with nothing queued: {trigger['query']} -> {str(r)[:300]}")
cap = query("max(gateway_demand_capacity_per_worker)").get("data", {}).get("result", [])
t.check(cap and float(cap[0]["value"][1]) >= 1, f"one worker's capacity is there: {cap}")
prom.stop()

# --- a request still waiting for Redis when the drain starts gets the drain's 503, and the
# gateway still exits cleanly ---
os.kill(redis.pid, signal.SIGSTOP)
late = {}
th = threading.Thread(target=lambda: late.update(r=completion(port_a, "shared")))
th.start()
time.sleep(0.2)
gw_a.p.send_signal(signal.SIGTERM)
th.join(10)
os.kill(redis.pid, signal.SIGCONT)
st, _, body = late.get("r", (None, None, b""))
t.check(st == 503 and b"shutting down" in body, f"waiting for Redis at the drain: {st} {body[:200]}")
t.check(gw_a.p.wait(10) == 0, f"the draining gateway exits 0: {gw_a.output()[-1500:]}")

t.finish()
