#!/usr/bin/env python3
"""Observability with real parts: Debian's promtool and Prometheus against a running gateway.

- `promtool check metrics` accepts the gateway's /metrics with no problems.
- A real Prometheus scrapes the gateway and tlab-sim every second; a PromQL query over its HTTP
  API returns gateway_requests_total with the number of requests this test sent.
- Every PromQL expression in infra/grafana/dashboards/llm-throughput-lab.json parses and returns
  data from that Prometheus.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
for tool in ("promtool", "prometheus"):
    if not shutil.which(tool):
        t.check(False, f"{tool} is not installed (Debian package prometheus; run make deps)")
        t.finish()

tmp = tempfile.mkdtemp(prefix="tlab-obs-")
cfg = os.path.join(tmp, "gateway.yaml")
with open(cfg, "w") as f:
    f.write("plugins:\n  - name: queue\n    config: {max_inflight: 16}\n  - name: batching\n    config: {window_ms: 5}\n"
            "  - name: metrics\n")
sim, sim_port = t.start_sim(["--max-model-len", "512", "--startup-seconds", "0"], time_scale=20)
gw, port = t.start_gateway(sim_port, config=cfg)

SENT = 25
for i in range(SENT):
    st, _, _ = t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": f"request {i}", "max_tokens": 8})
    t.check(st == 200, f"request {i}: {st}")

# promtool lints the exposition.
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
t.check(lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(),
        f"promtool check metrics: rc={lint.returncode} {lint.stdout.decode()} {lint.stderr.decode()}")

# A real Prometheus scraping both.
prom, query = t.start_prometheus({"tlab-gateway": [f"127.0.0.1:{port}"], "worker": [f"127.0.0.1:{sim_port}"]}, tmp)


# Keep traffic flowing while Prometheus collects a few scrapes, so rate() windows have data.
deadline = time.monotonic() + 30
value = None
while time.monotonic() < deadline:
    t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": "tick", "max_tokens": 2})
    SENT += 1
    r = query('sum(gateway_requests_total{code="200",route="/v1/completions"})')
    samples = query("count_over_time(gateway_in_flight[1m])")
    if (r.get("data", {}).get("result") and samples.get("data", {}).get("result")
            and float(samples["data"]["result"][0]["value"][1]) >= 4):
        break
    time.sleep(0.3)
time.sleep(1.5)  # one more scrape after the last request
r = query('sum(gateway_requests_total{code="200",route="/v1/completions"})')
result = r.get("data", {}).get("result", [])
value = float(result[0]["value"][1]) if result else None
t.check(value == SENT, f"Prometheus sees gateway_requests_total = {value}, the test sent {SENT}")

dash = json.load(open(os.path.join(t.SRC, "infra/grafana/dashboards/llm-throughput-lab.json")))
exprs = [tg["expr"] for p in dash["panels"] for tg in p.get("targets", [])]
t.check(len(exprs) >= 20, f"dashboard has its panels' queries ({len(exprs)})")
for e in exprs:
    r = query(e)
    ok = r.get("status") == "success" and len(r.get("data", {}).get("result", [])) > 0
    t.check(ok, f"dashboard query parses and returns data: {e} -> {str(r)[:300]}")
titles = " ".join(p["title"] for p in dash["panels"])
for want in ("latency", "Requests per second", "Queue depth", "Queue wait", "Worker state", "Errors", "tier", "window",
             "first token", "running and waiting", "KV-cache", "gate limit", "SLO attainment", "Rejections by reason"):
    t.check(want in titles, f"dashboard has a panel for {want}")
prom.stop()
shutil.rmtree(tmp, ignore_errors=True)
t.finish()
