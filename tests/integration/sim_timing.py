#!/usr/bin/env python3
"""sim_timing.py - the simulator's timing against its own model (docs/simulator.md):
1. a lone request's TTFT and TPOT, measured by the client at time-scale 1, match the step formula
   recomputed here from the profile YAML, within 10 %;
2. saturated throughput rises with max_num_seqs until the KV cache binds, then stops rising (and
   preemptions appear);
3. under prefill load, a larger max_num_batched_tokens raises inter-token latency."""
import time

import simlib
from tlabtest import Stream, check, finish, start_sim

HW = simlib.profile("hw", "rtx3050-4gb")
M = simlib.profile("model", "Qwen2.5-0.5B-Instruct")


def stream_times(port, body):
    """Streams a completion; returns the arrival time (monotonic) of each token chunk."""
    s = Stream(port, body, path="/v1/completions", timeout=30)
    return [s.t0 + at for at, data in s.read() if '"text":"' in data]


# 1. Lone request at time-scale 1.
sim, port = start_sim(args=["--startup-seconds", "0", "--max-model-len", "2048"])
P, N = 200, 60
ttfts, tpots = [], []
for _ in range(3):
    t0 = time.monotonic()
    ts = stream_times(port, {"prompt": list(range(P)), "max_tokens": N, "ignore_eos": True, "stream": True})
    if check(len(ts) == N, f"{N} tokens, got {len(ts)}"):
        ttfts.append(ts[0] - t0)
        tpots.append((ts[-1] - ts[0]) / (N - 1))
want_ttft = simlib.api_seconds(HW) + simlib.step_seconds(HW, M, P, 0, P)
want_tpot = sum(simlib.step_seconds(HW, M, 0, 1, P + i + 1) for i in range(1, N)) / (N - 1)
got_ttft, got_tpot = min(ttfts), min(tpots)
print(f"lone request: TTFT {got_ttft * 1e3:.2f} ms (formula {want_ttft * 1e3:.2f}), "
      f"TPOT {got_tpot * 1e3:.3f} ms (formula {want_tpot * 1e3:.3f})")
check(abs(got_ttft - want_ttft) <= 0.10 * want_ttft, "TTFT within 10 % of the formula")
check(abs(got_tpot - want_tpot) <= 0.10 * want_tpot, "TPOT within 10 % of the formula")
m = simlib.metrics(port)
server_ttft = m["vllm:time_to_first_token_seconds_sum"] / m["vllm:time_to_first_token_seconds_count"]
check(abs(server_ttft - want_ttft) <= 0.02 * want_ttft, f"server TTFT histogram {server_ttft} ~ formula")
sim.stop()


def saturated_tps(extra, n_requests, scale, body, sample=2.0):
    """Floods the sim with n_requests non-streaming requests and returns generated tokens per simulated
    second (and the metrics) over a window where the waiting queue is never empty."""
    pr, port = start_sim(args=["--startup-seconds", "0"] + extra, time_scale=scale)
    socks = [simlib.open_raw(port, "/v1/completions", body) for _ in range(n_requests)]
    time.sleep(0.5)
    m1 = simlib.metrics(port)
    time.sleep(sample)
    m2 = simlib.metrics(port)
    for s in socks:
        s.close()
    pr.stop()
    check(m2["vllm:num_requests_waiting"] > 0, f"{extra}: queue never drained during the window")
    d_tok = m2["vllm:generation_tokens_total"] - m1["vllm:generation_tokens_total"]
    d_sim = m2["tlab_sim:sim_time_seconds"] - m1["tlab_sim:sim_time_seconds"]
    return d_tok / d_sim, m2


# 2. Throughput vs max_num_seqs. gpu_memory_utilization 0.476 leaves ~25.6k KV tokens: ~64 sequences
#    of 200 + 200 tokens.
body = {"prompt": list(range(200)), "max_tokens": 200, "ignore_eos": True, "temperature": 0}
tps = {}
for seqs in (8, 32, 64, 256):
    tps[seqs], mt = saturated_tps(["--max-model-len", "512", "--gpu-memory-utilization", "0.476",
                                   "--max-num-seqs", str(seqs)], 500, 5, body)
    print(f"max_num_seqs {seqs}: {tps[seqs]:.0f} output tok/s, preemptions {mt['vllm:num_preemptions_total']:.0f}")
    if seqs == 256:
        check(mt["vllm:num_preemptions_total"] > 0, "KV-bound config preempts")
check(tps[8] * 1.5 < tps[32] and tps[32] * 1.2 < tps[64], f"throughput rises with max_num_seqs {tps}")
check(tps[256] < tps[64] * 1.25, f"and stops rising once memory binds {tps}")


# 3. Chunk budget vs inter-token latency under prefill load.
def itl_mean(batched):
    pr, port = start_sim(args=["--startup-seconds", "0", "--max-model-len", "4096", "--max-num-batched-tokens",
                               str(batched)], time_scale=20)
    b = {"prompt": list(range(2000)), "max_tokens": 32, "ignore_eos": True}
    socks = [simlib.open_raw(port, "/v1/completions", b) for _ in range(48)]
    v = simlib.wait_metric(port, "vllm:request_success_total.length", lambda x: x >= 48, timeout=30)
    check(v == 48, f"batched {batched}: all 48 finished ({v})")
    m = simlib.metrics(port)
    for s in socks:
        s.close()
    pr.stop()
    return m["vllm:inter_token_latency_seconds_sum"] / m["vllm:inter_token_latency_seconds_count"]


small, large = itl_mean(512), itl_mean(8192)
print(f"ITL mean under prefill load: {small * 1e3:.1f} ms at 512 batched tokens, {large * 1e3:.1f} ms at 8192")
check(large > 1.5 * small, "a larger chunk budget raises inter-token latency")
finish()
