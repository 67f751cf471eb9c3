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
print(f"realtime_ratio={r:.4f} lag_max={s[\"tlab_sim:step_lag_max_seconds\"] * 1e3:.2f}ms "
      f"steps={s[\"tlab_sim:steps_total\"]:.0f} sim_cpu={d[\"sim_cpu_seconds\"]}s errors={d[\"errors\"]} "
      + ("PASS" if r >= 0.95 else "FAIL"))
sys.exit(0 if r >= 0.95 else 1)'
