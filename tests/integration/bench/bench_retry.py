#!/usr/bin/env python3
"""tlab-bench's per-second time slices and --retry-429, against tlab-sim behind a tlab-gateway
whose queue is tiny (2 at the worker, 2 waiting), so the gateway itself answers 429 with
Retry-After: the slices add up to the run's totals, a retried request keeps its original due time
(its e2e includes the Retry-After wait), and the retry counts add up."""
import os

import benchlib
from tlabtest import check, finish, start_gateway, start_sim

sim, sim_port = start_sim(["--startup-seconds", "0"], time_scale=10)
cfg = os.path.join(benchlib.TMP, "tiny-queue.yaml")
with open(cfg, "w") as f:
    f.write("plugins:\n  - name: queue\n    config: {max_depth: 2, max_inflight: 2, retry_after_s: 1}\n")
gw, gw_port = start_gateway(sim_port, config=cfg)


def check_slices(tag, res, rows):
    ts = res.get("timeslices")
    if not check(ts and ts["width_s"] == 1 and ts["slices"], f"{tag}: no timeslices: {ts}"):
        return
    sl = ts["slices"]
    check([s["t_s"] for s in sl] == list(range(len(sl))), f"{tag}: slice starts {[s['t_s'] for s in sl]}")
    n_rows = len(rows)
    check(sum(s["offered"] for s in sl) == n_rows, f"{tag}: offered {sum(s['offered'] for s in sl)} != {n_rows} requests")
    ok = sum(1 for r in rows if r["error_kind"] == "ok")
    check(sum(s["completed"] for s in sl) == ok, f"{tag}: completed in slices != {ok} successes")
    for s in sl:
        check(s["offered"] == s["good"] + (s["offered"] - s["good"]) and s["good"] <= s["admitted"] <= s["offered"],
              f"{tag}: slice {s}")
        check(s["rejected"] + s["errors"] <= s["offered"], f"{tag}: slice {s}")
        check((s["p95_e2e_ms"] is None) == (s["completed"] == 0), f"{tag}: p95 without completions {s}")
    rejected = sum(1 for r in rows if r["error_kind"] in ("http_429", "http_503"))
    check(sum(s["rejected"] for s in sl) == rejected, f"{tag}: rejected in slices != {rejected}")


# Straight to the worker, nothing rejected: every request of the run in the slices.
rc, out, err, res, rows = benchlib.run(["--url", f"http://127.0.0.1:{sim_port}", "--rate", "10", "--duration", "3",
                                        "--warmup", "0", "--cooldown", "0", "--seed", "2"], "slices-direct")
check(rc == 0 and res is not None, f"direct: rc {rc} {err}")
if res:
    check_slices("direct", res, rows)
    check("retry" not in res, "direct: a retry section without --retry-429")
    check(sum(s["rejected"] for s in res["timeslices"]["slices"]) == 0, "direct: rejections")
    check(sum(s["good"] for s in res["timeslices"]["slices"]) == len(rows), "direct: every request good")

# Through the tiny gateway without retries: 429s are rejections, never admitted.
args = ["--url", f"http://127.0.0.1:{gw_port}", "--rate", "25", "--duration", "3", "--warmup", "0", "--cooldown", "0",
        "--seed", "5"]
rc, out, err, res, rows = benchlib.run(args, "no-retry")
if check(rc == 0 and res is not None, f"no retry: rc {rc} {err}"):
    check_slices("no retry", res, rows)
    n429 = res["errors_by_kind"].get("http_429", 0)
    check(n429 > 0, f"no retry: the tiny queue rejected nothing: {res['errors_by_kind']}")
    check(all(r["retries"] == "0" for r in rows), "no retry: a request was retried")
    check(all(r["admitted_attempt"] == "0" for r in rows if r["error_kind"] == "http_429"), "no retry: a 429 admitted")

# With --retry-429: the same load, rejected requests come back after Retry-After (1 s).
rc, out, err, res, rows = benchlib.run(args + ["--retry-429", "--retry-max", "4"], "retry")
if check(rc == 0 and res is not None and "retry" in res, f"retry: rc {rc} {err}"):
    check_slices("retry", res, rows)
    rt = res["retry"]
    check(rt["max_retries"] == 4 and rt["retried_requests"] > 0, f"retry: nothing retried: {rt}")
    check(rt["admitted_at_first_retry"] + rt["admitted_at_later_retry"] + rt["never_admitted"] == rt["retried_requests"],
          f"retry: counts do not add up: {rt}")
    check(rt["retries_sent"] >= rt["retried_requests"], f"retry: {rt}")
    share = rt["first_retry_admitted_share"]
    check(share is not None and abs(share - rt["admitted_at_first_retry"] / rt["retried_requests"]) < 1e-9, f"retry: share {rt}")
    check("Admitted at first retry (%):" in out, f"retry: no retry section in the table:\n{out}")
    retried = [r for r in rows if int(r["retries"]) > 0]
    check(all(int(r["retries"]) <= 4 for r in rows), "retry: more than --retry-max retries")
    # Open loop with the original due time: a retried success waited at least one Retry-After (1 s).
    ok_retried = [r for r in retried if r["error_kind"] == "ok"]
    check(ok_retried and all(float(r["e2e_ms"]) >= 1000 for r in ok_retried),
          f"retry: a retried success reports e2e < 1 s: {[r['e2e_ms'] for r in ok_retried][:5]}")
    check(all(int(r["admitted_attempt"]) == int(r["retries"]) + 1 for r in ok_retried), "retry: admitted_attempt")
    never = [r for r in retried if r["admitted_attempt"] == "0"]
    check(all(r["error_kind"] == "http_429" and r["retries"] == "4" for r in never),
          f"retry: a never-admitted request stopped before its 4 retries: {never[:3]}")
    # Retries do not shift the schedule: as many requests due as without them (same seed).
    check(len(rows) == res["generator"]["sent"] + res["generator"]["dropped_by_max_inflight"], "retry: rows != sent")

# Bad usage.
for bad in (["--retry-429", "--early-stop"], ["--retry-429", "--concurrency", "2"], ["--retry-max", "0"],
            ["--retry-max", "300"], ["--timeslice", "10us"]):
    rc, out, err, res, rows = benchlib.run(bad, "bad")
    check(rc == 2, f"{bad}: exit {rc}")

finish()
