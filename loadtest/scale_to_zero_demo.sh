#!/usr/bin/env bash
# Scale-to-zero, end to end: tlab-gateway with the supervisor plugin and tlab-sim as its worker,
# on free loopback ports, with a short idle timeout. Prints a timeline:
#   idle -> load arrives -> worker starts (cold start measured) -> load served -> idle ->
#   worker sleeps (vLLM sleep mode) -> a request wakes it -> idle -> sleeps, then stops ->
#   the next request starts it again (the two first-request latencies compared).
# Usage: loadtest/scale_to_zero_demo.sh [BUILD_DIR]   (env: STARTUP_S=3 SLEEP_S=2 IDLE_S=6 REQUESTS=8)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(cd "${1:-build}" && pwd)
STARTUP_S=${STARTUP_S:-3}
SLEEP_S=${SLEEP_S:-2}
IDLE_S=${IDLE_S:-6}
REQUESTS=${REQUESTS:-8}
MODEL=Qwen/Qwen2.5-0.5B-Instruct
tmp=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GW_PORT=$(free_port); WORKER_PORT=$(free_port)
cat > "$tmp/gateway.yaml" <<YAML
listen: {host: 127.0.0.1, port: $GW_PORT}
upstream: {url: "http://127.0.0.1:$WORKER_PORT"}
log: {level: warn}
plugins:
  - name: queue
  - name: supervisor
    config:
      engine: sim
      profile: safe
      profiles_dir: $PWD/configs/model_profiles
      sim_command: $BUILD/bin/tlab-sim
      sim_args: ["--startup-seconds", "$STARTUP_S"]
      sleep_after_s: $SLEEP_S
      idle_timeout_s: $IDLE_S
      log_file: $tmp/worker.log
  - name: metrics
YAML
"$BUILD/bin/tlab-gateway" -c "$tmp/gateway.yaml" --set "plugin_dir=$BUILD/lib/plugins" 2> "$tmp/gateway.log" &
GW_PID=$!
trap 'kill -TERM $GW_PID 2>/dev/null; wait $GW_PID 2>/dev/null; rm -rf "$tmp"' EXIT
T0=$(date +%s.%N)
now() { python3 -c "import time; print(f'{time.time() - $T0:6.2f}s')"; }
state() { curl -s "http://127.0.0.1:$GW_PORT/admin/worker" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
metric() { curl -s "http://127.0.0.1:$GW_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
req() { curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$GW_PORT/v1/completions" \
          -H 'Content-Type: application/json' -d "{\"model\":\"$MODEL\",\"prompt\":\"hello\",\"max_tokens\":16}"; }
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$GW_PORT/health" && break; sleep 0.05; done

echo "[$(now)] 1. idle: worker state = $(state), no worker process"
echo "[$(now)] 2. load arrives: $REQUESTS requests at once"
pids=()
for i in $(seq "$REQUESTS"); do req > "$tmp/r$i" & pids+=($!); done
sleep 0.2
echo "[$(now)] 3. worker state = $(state) (cold start under way; requests wait in the gateway queue)"
wait_for() { for _ in $(seq 600); do [[ $(state) == "$1" ]] && return 0; sleep 0.05; done; return 1; }
# The requests ending says the worker ran (polling for "running" can miss it on a busy machine:
# a short load is served and the worker asleep again between two polls).
wait "${pids[@]}"
echo "[$(now)]    worker ran; cold start $(metric gateway_worker_cold_start_seconds_sum) s (gateway_worker_cold_start_seconds)"
ok=$(cat "$tmp"/r* | awk '$1 == 200' | wc -l)
echo "[$(now)] 4. load served: $ok/$REQUESTS answered 200; slowest $(cat "$tmp"/r* | awk '{print $2}' | sort -n | tail -1) s (includes the cold start)"
echo "[$(now)] 5. idle: nothing queued or in flight; sleep_after_s = $SLEEP_S, idle_timeout_s = $IDLE_S"
wait_for sleeping
echo "[$(now)] 6. worker asleep (vLLM sleep mode: GPU memory freed, process kept)"
read -r wcode wsecs < <(req)
echo "[$(now)] 7. a request wakes it: $wcode in $wsecs s (gateway_worker_wakes_total $(metric gateway_worker_wakes_total))"
wait_for sleeping
echo "[$(now)] 8. asleep again; stopping once idle_timeout_s has passed in total"
wait_for idle
echo "[$(now)] 9. worker stopped (gateway_worker_stops_total $(metric gateway_worker_stops_total))"
read -r code secs < <(req)
echo "[$(now)] 10. the next request: $code in $secs s: the worker started again (gateway_worker_starts_total $(metric gateway_worker_starts_total))"
python3 -c "print(f'first request after sleep {float(\"$wsecs\"):.3f} s vs after stop {float(\"$secs\"):.3f} s: {float(\"$secs\")/float(\"$wsecs\"):.1f}x')"
[[ $ok == "$REQUESTS" && $code == 200 && $wcode == 200 ]] && echo "demo: OK" || { echo "demo: FAILED"; exit 1; }
