#!/usr/bin/env bash
# tlab-bench's own ceiling: how much load one tlab-bench process sends on one core, against
# tlab-perf-upstream (a minimal evhttp server that answers at once) pinned to another core.
#   1. small non-streaming requests at RATE_SMALL req/s (default 5000)
#   2. streaming: STREAM_RATE req/s of 50-chunk streams, one chunk every 100 ms, so about
#      STREAM_RATE x 5 s responses are open at once (default 500 -> ~2500 concurrent SSE streams)
# A step passes when every request in the window succeeded, none was dropped, and fewer than
# 0.1 % were sent more than 10 ms late. Results go to stdout; record them in docs/performance.md.
# Usage: loadtest/bench/ceiling.sh [BUILD_DIR]   (env: RATE_SMALL, STREAM_RATE, SECONDS_EACH)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
bin=$build/bin
rate_small=${RATE_SMALL:-5000}
stream_rate=${STREAM_RATE:-500}
secs=${SECONDS_EACH:-20}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

ncpu=$(nproc)
pin_up=() ; pin_bench=()
if command -v taskset >/dev/null && [[ $ncpu -ge 2 ]]; then pin_up=(taskset -c 1); pin_bench=(taskset -c 0); fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_upstream() {
  local port; port=$(free_port)
  "${pin_up[@]}" "$bin/tlab-perf-upstream" --port "$port" "$@" >"$tmp/up.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  echo "$port"
}

cat >"$tmp/small.yaml" <<Y
endpoint: chat
prompt_file: $root/configs/prompts/prompt_200.txt
max_tokens: 1
stream: false
Y
cat >"$tmp/stream.yaml" <<Y
endpoint: chat
prompt_file: $root/configs/prompts/prompt_200.txt
max_tokens: 50
stream: true
Y

# Runs one step; prints a summary line and returns 0 when it passes.
step() {
  local name=$1 port=$2 workload=$3 rate=$4 warm=$5
  local out=$tmp/$name.json
  /usr/bin/time -f "%U %S %e" -o "$tmp/$name.time" "${pin_bench[@]}" "$bin/tlab-bench" --url "http://127.0.0.1:$port" \
    --workload "$workload" --arrival constant --rate "$rate" --duration "$secs" --warmup "$warm" --cooldown 1 \
    --slo none --progress never --output "$out" >/dev/null
  python3 - "$out" "$tmp/$name.time" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); u, s, wall = map(float, open(sys.argv[2]).read().split()[-3:])
g = r["generator"]
late_frac = g["late_over_10ms"] / max(1, g["sent"])
ok = r["failed"] == 0 and g["dropped_by_max_inflight"] == 0 and late_frac < 0.001
print(f"{sys.argv[3]}: offered {r['request_rate']:.0f} req/s, achieved {r['request_throughput']:.0f} req/s, "
      f"completed {r['completed']}, failed {r['failed']}, peak in flight {r['max_concurrent_requests']}, "
      f"send lag p99 {g['p99_lag_ms']:.2f} ms max {g['max_lag_ms']:.1f} ms, late>10ms {g['late_over_10ms']}, "
      f"dropped {g['dropped_by_max_inflight']}, p99 e2e {r['p99_e2el_ms']:.1f} ms, p99 itl {r['p99_itl_ms']:.1f} ms, "
      f"tlab-bench CPU {100 * (u + s) / wall:.0f}% of one core -> {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
}

echo "tlab-bench ceiling on $(uname -m), $ncpu CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), ${secs} s per step"
rc=0
port=$(start_upstream)
step "small-nonstream" "$port" "$tmp/small.yaml" "$rate_small" 2 || rc=1
port=$(start_upstream --chunks 50 --interval-ms 100)
step "sse-streams" "$port" "$tmp/stream.yaml" "$stream_rate" 6 || rc=1
exit $rc
