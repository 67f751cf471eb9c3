#!/usr/bin/env bash
# A/B of the gateway's batching window: the same bursty open-loop load (tlab-bench, fixed seed)
# through tlab-gateway with window_ms 0, 20 and 50, against one tlab-sim (rtx3050-4gb, time-scale 1).
# Prints one row per window and writes experiments/runs/YYYY-MM-DD_ab_window_<time>.json.
#
# Usage: loadtest/ab_window.sh [BUILD_DIR]
#   WINDOWS="0 20 50"  RATE=8  BURSTINESS=0.3  DURATION=60s  WARMUP=10s  SEED=1
#   ARRIVAL=poisson (or step: STEP_FACTOR=3 STEP_LENGTH=10s STEP_PERIOD=30s)
# The guardrail is off for the A/B (slo_p95_ms very large) so each window is measured as set.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(cd "${1:-build}" && pwd)
WINDOWS=${WINDOWS:-"0 20 50"}
RATE=${RATE:-8}; BURSTINESS=${BURSTINESS:-0.3}; DURATION=${DURATION:-60s}; WARMUP=${WARMUP:-10s}; SEED=${SEED:-1}
ARRIVAL=${ARRIVAL:-poisson}
STEP_ARGS=()
[[ $ARRIVAL == step ]] && STEP_ARGS=(--step-factor "${STEP_FACTOR:-3}" --step-length "${STEP_LENGTH:-10s}" --step-period "${STEP_PERIOD:-30s}")
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$1/health" && return 0; sleep 0.05; done; return 1; }

SIM_PORT=$(free_port)
"$BUILD/bin/tlab-sim" --host 127.0.0.1 --port "$SIM_PORT" --hardware rtx3050-4gb --max-model-len 512 --max-num-seqs 256 \
  --startup-seconds 0 > "$tmp/sim.log" 2>&1 &
pids+=($!)
wait_up "$SIM_PORT" || { echo "ab_window: tlab-sim did not start" >&2; cat "$tmp/sim.log" >&2; exit 1; }

mkdir -p experiments/runs
out="experiments/runs/$(date +%F)_ab_window_$(date +%H%M%S).json"
results=()
for w in $WINDOWS; do
  port=$(free_port)
  cat > "$tmp/gw-$w.yaml" <<YAML
listen: {host: 127.0.0.1, port: $port}
upstream: {url: "http://127.0.0.1:$SIM_PORT"}
log: {level: warn}
plugins:
  - name: queue
    config: {max_inflight: 256}
  - name: batching
    config: {window_ms: $w, max_batch: 64, slo_p95_ms: 3600000}
  - name: metrics
YAML
  "$BUILD/bin/tlab-gateway" -c "$tmp/gw-$w.yaml" --set "plugin_dir=$BUILD/lib/plugins" 2> "$tmp/gw-$w.log" &
  gw=$!; pids+=($gw)
  wait_up "$port" || { echo "ab_window: gateway did not start" >&2; cat "$tmp/gw-$w.log" >&2; exit 1; }
  echo "ab_window: window ${w} ms: $ARRIVAL rate $RATE burstiness $BURSTINESS for $DURATION ..." >&2
  "$BUILD/bin/tlab-bench" --url "http://127.0.0.1:$port" --arrival "$ARRIVAL" --rate "$RATE" --burstiness "$BURSTINESS" \
    "${STEP_ARGS[@]}" --duration "$DURATION" --warmup "$WARMUP" --cooldown 5s --seed "$SEED" \
    --profile "ab_window_${w}ms" --output "$tmp/w$w.json" > "$tmp/w$w.txt" 2>&1 || true
  [[ -s $tmp/w$w.json ]] || { echo "ab_window: tlab-bench wrote no result:" >&2; cat "$tmp/w$w.txt" >&2; exit 1; }
  results+=("$w=$tmp/w$w.json")
  kill -TERM "$gw"; wait "$gw" 2>/dev/null || true
done

python3 - "$out" "${results[@]}" <<'PY'
import json, sys
out, pairs = sys.argv[1], sys.argv[2:]
rows = []
for p in pairs:
    w, path = p.split("=", 1)
    d = json.load(open(path))
    rows.append({"window_ms": int(w), "request_throughput": d["request_throughput"], "request_goodput": d.get("request_goodput"),
                 "completed": d["completed"], "failed": d["failed"], "p50_e2el_ms": d["p50_e2el_ms"], "p95_e2el_ms": d["p95_e2el_ms"],
                 "p50_ttft_ms": d["p50_ttft_ms"], "p95_ttft_ms": d["p95_ttft_ms"], "mean_itl_ms": d["mean_itl_ms"],
                 "slo_verdict": d["slo"]["verdict"], "arrival": d["config"], "result": d})
print(f"{'window':>8} {'req/s':>7} {'goodput':>8} {'ok':>6} {'fail':>5} {'E2E p50':>9} {'E2E p95':>9} {'TTFT p50':>9} {'TTFT p95':>9} {'ITL mean':>9}  SLO")
for r in rows:
    print(f"{r['window_ms']:>6}ms {r['request_throughput']:>7.2f} {r['request_goodput'] or 0:>8.2f} {r['completed']:>6} {r['failed']:>5} "
          f"{r['p50_e2el_ms']:>7.0f}ms {r['p95_e2el_ms']:>7.0f}ms {r['p50_ttft_ms']:>7.0f}ms {r['p95_ttft_ms']:>7.0f}ms "
          f"{r['mean_itl_ms']:>7.1f}ms  {r['slo_verdict']}")
json.dump({"kind": "ab_window", "rows": rows}, open(out, "w"), indent=1)
print(f"ab_window: results in {out}")
PY
