#!/bin/sh
# bench_realtime.sh - does tlab-sim's step loop keep up with real time under heavy streaming load?
# Starts tlab-sim (h100-80gb, max_num_seqs 256, time-scale 1) and drives it with 1000 concurrent
# streaming clients (200 prompt + 200 output tokens, closed loop) for DURATION seconds, then prints the
# loop-health gauges. PASS when tlab_sim:realtime_ratio >= 0.95 (the clock lost < 5 %).
#   loadtest/sim/bench_realtime.sh [DURATION] [CLIENTS] [extra tlab-sim flags...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
duration=${1:-30}
clients=${2:-1000}
[ $# -ge 2 ] && shift 2 || shift $#
out=$(python3 "$here/sim_load.py" --start-sim "--hardware h100-80gb --max-num-seqs 256 $*" \
      --concurrency "$clients" --duration "$duration" --ramp --prompt-tokens 200 --max-tokens 200)
echo "$out"
echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
s = d["server"]
r = s["tlab_sim:realtime_ratio"]
lag = s["tlab_sim:step_lag_max_seconds"] * 1e3
steps = s["tlab_sim:steps_total"]
verdict = "PASS" if r >= 0.95 else "FAIL"
cpu, errors, tps = d["sim_cpu_seconds"], d["errors"], d["output_tokens_per_s"]
print(f"realtime_ratio={r:.6f} lag_max={lag:.2f}ms steps={steps:.0f} sim_cpu={cpu}s errors={errors} "
      f"out_tok/s={tps} {verdict}")
sys.exit(0 if r >= 0.95 else 1)'
