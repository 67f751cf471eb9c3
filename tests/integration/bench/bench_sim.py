#!/usr/bin/env python3
"""tlab-bench against tlab-sim, straight and through tlab-gateway: the JSON has vLLM's keys,
the counts add up, tokens match the workload, the CSV has one row per request, and
--fail-on-slo turns a missed SLO into exit 1."""
import os

import benchlib
from tlabtest import check, finish, start_gateway, start_sim

VLLM_KEYS = ["date", "backend", "model_id", "num_prompts", "request_rate", "burstiness", "max_concurrency", "duration",
             "completed", "failed", "total_input_tokens", "total_output_tokens", "request_throughput", "request_goodput",
             "output_throughput", "total_token_throughput", "max_concurrent_requests"]
for m in ("ttft", "tpot", "itl", "e2el"):
    VLLM_KEYS += [f"mean_{m}_ms", f"median_{m}_ms", f"std_{m}_ms", f"p99_{m}_ms", f"p90_{m}_ms", f"p95_{m}_ms"]

sim, sim_port = start_sim(["--startup-seconds", "0"], time_scale=10)
gw, gw_port = start_gateway(sim_port)


def check_result(tag, rc, res, rows, rate, window, max_tokens):
    check(rc == 0, f"{tag}: exit {rc}")
    if not check(res is not None, f"{tag}: no JSON result"):
        return
    for k in VLLM_KEYS:
        check(k in res, f"{tag}: JSON lacks {k}")
    n = res["num_prompts"]
    check(abs(n - rate * window) <= 1, f"{tag}: {n} requests due in the window, want {rate * window}")
    check(res["completed"] + res["failed"] == n, f"{tag}: completed + failed != num_prompts: {res}")
    check(res["failed"] == 0 and res["error_rate"] == 0, f"{tag}: errors {res['errors_by_kind']}")
    check(res["total_output_tokens"] == max_tokens * res["completed"], f"{tag}: output tokens {res['total_output_tokens']}")
    check(abs(res["request_throughput"] - res["completed"] / res["duration"]) < 1e-6, f"{tag}: request_throughput")
    check(0 < res["median_ttft_ms"] <= res["p99_ttft_ms"] <= res["p99_e2el_ms"], f"{tag}: latency order")
    check(res["mean_tpot_ms"] > 0 and res["mean_itl_ms"] > 0, f"{tag}: tpot/itl")
    check(res["generator"]["dropped_by_max_inflight"] == 0, f"{tag}: drops")
    check(res["slo"]["verdict"] == "pass", f"{tag}: verdict {res['slo']}")
    check(len(rows) == res["generator"]["sent"], f"{tag}: {len(rows)} CSV rows, sent {res['generator']['sent']}")
    in_window = [r for r in rows if r["in_window"] == "1"]
    check(len(in_window) == n, f"{tag}: CSV in-window rows {len(in_window)} != {n}")
    check(all(r["error_kind"] == "ok" and int(r["output_tokens"]) == max_tokens for r in rows), f"{tag}: CSV rows")
    gaps = in_window[0]["itl_ms"].split(";") if in_window else []
    check(len(gaps) == max_tokens - 1, f"{tag}: {len(gaps)} ITL gaps in a row, want {max_tokens - 1}")


# The reference workload (chat, 200/200), through the gateway and direct, constant rate.
for tag, port in (("gateway", gw_port), ("direct", sim_port)):
    rc, out, err, res, rows = benchlib.run(["--url", f"http://127.0.0.1:{port}", "--arrival", "constant", "--rate", "4",
                                            "--duration", "5", "--warmup", "1", "--cooldown", "1"], f"ref-{tag}")
    check_result(tag, rc, res, rows, 4, 5, 200)
    check("Successful requests:" in out and "SLO verdict:" in out, f"{tag}: table on stdout:\n{out}")
    check("\r" not in out, f"{tag}: progress line printed although stdout is not a terminal")
    if res:
        check(res["endpoint_type"] == "openai-chat" and res["total_input_tokens"] > 0, f"{tag}: {res['endpoint_type']}")

# Completions with token ids, Poisson arrivals, through the gateway.
rc, out, err, res, rows = benchlib.run(["--url", f"http://127.0.0.1:{gw_port}", "--workload", "fixed_200_200_completions",
                                        "--rate", "4", "--duration", "4", "--warmup", "0", "--cooldown", "0",
                                        "--seed", "3"], "completions")
check(rc == 0 and res and res["endpoint_type"] == "openai", f"completions: rc {rc}")
if res:
    check(res["failed"] == 0 and res["total_input_tokens"] == 200 * res["completed"],
          f"completions: input tokens {res['total_input_tokens']} for {res['completed']}")
    check(res["completed"] == res["num_prompts"] and res["num_prompts"] > 5, f"completions: counts {res['num_prompts']}")

# An SLO nobody can meet: exit 1 with --fail-on-slo, exit 0 without.
args = ["--url", f"http://127.0.0.1:{sim_port}", "--rate", "5", "--duration", "2", "--warmup", "0", "--cooldown", "0",
        "--slo", "e2e_p95=1ms,ttft=1ms"]
rc, out, err, res, rows = benchlib.run(args + ["--fail-on-slo"], "slo-fail")
check(rc == 1, f"--fail-on-slo with a missed SLO exited {rc}")
check(res and res["slo"]["verdict"] == "fail" and res["request_goodput"] == 0, "missed SLO: verdict and goodput")
check("FAIL" in out, "table says FAIL")
rc, out, err, res, rows = benchlib.run(args, "slo-nofail")
check(rc == 0, f"a missed SLO without --fail-on-slo exited {rc}")

# Closed loop: N in flight, no schedule.
rc, out, err, res, rows = benchlib.run(["--url", f"http://127.0.0.1:{sim_port}", "--concurrency", "4", "--duration", "3",
                                        "--warmup", "0", "--cooldown", "0"], "closed")
check(rc == 0 and res and res["max_concurrency"] == 4 and res["max_concurrent_requests"] == 4,
      f"closed loop: {res and res['max_concurrent_requests']}")
check(res and res["completed"] > 4 and res["failed"] == 0, "closed loop completed requests")

# The default output path: experiments/runs/YYYY-MM-DD_runXX_<profile>.json, numbered per day.
import subprocess  # noqa: E402
runs = os.path.join(benchlib.TMP, "runs")
for _ in range(2):
    p = subprocess.run([benchlib.BENCH, "--url", f"http://127.0.0.1:{sim_port}", "--rate", "5", "--duration", "1",
                        "--warmup", "0", "--cooldown", "0", "--runs-dir", runs, "--profile", "smoke"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, f"default path run: {p.stderr}")
names = sorted(os.listdir(runs)) if os.path.isdir(runs) else []
check(len(names) == 4 and names[0].endswith("_run01_smoke.csv") and names[3].endswith("_run02_smoke.json"),
      f"run files: {names}")
finish()
