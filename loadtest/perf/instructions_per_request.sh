#!/usr/bin/env bash
# CPU cost per proxied request, in instructions, for tlab-gateway and nginx, counted by
# valgrind's callgrind: a figure that does not move with the machine's load, unlike every
# timing (the VMs this project is measured on have 2 shared vCPUs and no hardware counters).
#
# Each proxy runs under callgrind in front of tlab-perf-upstream; tlab-perf-latency sends N1 and
# then, in a second run, N2 small non-streaming chat requests at concurrency 1. The marginal
# cost (Ir(N2) - Ir(N1)) / (N2 - N1) cancels start-up and shutdown. User-space instructions only
# (syscalls and the kernel's TCP work are not counted). The gateway runs the default chain
# (queue, batching window 0, metrics) and the Lua policies, as in side_by_side.py.
#
# With --syscalls, each proxy runs under `strace -f -c` instead, and the figure is system calls
# per request (the same marginal count): the kernel-side cost callgrind does not see.
#
# With --stream, the request is streamed: "stream": true, the upstream sends 4 token events, a
# usage event and [DONE] with no pacing (--chunks 4 --interval-ms 0), and the probe reads each
# stream to its end (--ttft); the relay's cost per event is then part of the figure.
#
# Usage: loadtest/perf/instructions_per_request.sh [--syscalls] [--stream] [BUILD_DIR] [N1] [N2]   (default build 500 2500)
set -euo pipefail
mode=instructions
stream=0
while [[ ${1:-} == --* ]]; do
  case $1 in
    --syscalls) mode=syscalls ;;
    --stream) stream=1 ;;
    *) echo "instructions_per_request: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
n1=${2:-500}
n2=${3:-2500}
bin=$build/bin
tool=valgrind; [[ $mode == syscalls ]] && tool=strace
for t in $tool; do command -v $t >/dev/null || { echo "instructions_per_request: $t not found (infra/install-deps.sh installs valgrind; strace is Debian's strace)" >&2; exit 3; }; done
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $nginx ]] || { echo "instructions_per_request: nginx not found: run infra/install-deps.sh (Debian nginx-light)" >&2; exit 3; }
tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ok() { for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.1; done; echo "port $1 never answered" >&2; exit 1; }

up_args=() probe_args=()
if [[ $stream == 1 ]]; then
  echo '{"model":"Qwen/Qwen2.5-0.5B-Instruct","messages":[{"role":"user","content":"Say ok."}],"max_tokens":4,"stream":true}' >"$tmp/body.json"
  up_args=(--chunks 4 --interval-ms 0) probe_args=(--ttft)
else
  echo '{"model":"Qwen/Qwen2.5-0.5B-Instruct","messages":[{"role":"user","content":"Say ok."}],"max_tokens":1,"stream":false}' >"$tmp/body.json"
fi
cat >"$tmp/gateway.yaml" <<Y
log:
  level: warn
policies:
  admission: $root/scripts-lua/admission.lua
  degradation: $root/scripts-lua/degradation.lua
plugins:
  - name: queue
    config: {max_depth: 1024, max_inflight: 1024}
  - name: batching
    config: {window_ms: 0}
  - name: metrics
Y

up_port=$(free_port)
"$bin/tlab-perf-upstream" --port "$up_port" "${up_args[@]+"${up_args[@]}"}" >/dev/null 2>&1 &
pids+=($!)
wait_ok "$up_port"

# Runs one proxy under callgrind (or strace) for N requests; prints its total instructions (or calls).
measure() {
  local kind=$1 n=$2 port; port=$(free_port)
  local out=$tmp/$kind.$n.cg log=$tmp/$kind.$n.log
  local run=(valgrind --tool=callgrind --callgrind-out-file="$out")
  [[ $mode == syscalls ]] && run=(strace -f -c -o "$out")
  if [[ $kind == gateway ]]; then
    "${run[@]}" "$bin/tlab-gateway" -c "$tmp/gateway.yaml" \
      --set listen.host=127.0.0.1 --set "listen.port=$port" --set "upstream.url=http://127.0.0.1:$up_port" \
      --set "plugin_dir=$build/lib/plugins" >"$log" 2>&1 &
  else
    local d=$tmp/nginx.$n; mkdir -p "$d"; chmod 755 "$d"
    cat >"$d/nginx.conf" <<C
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $d/cb; proxy_temp_path $d/px; fastcgi_temp_path $d/fc; uwsgi_temp_path $d/uw; scgi_temp_path $d/sc;
  keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$up_port; keepalive 64; keepalive_requests 1000000; }
  server { listen 127.0.0.1:$port;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; } }
}
C
    "${run[@]}" "$nginx" -p "$d" -c "$d/nginx.conf" >"$log" 2>&1 &
  fi
  local pid=$!
  pids+=($pid)
  wait_ok "$port"
  "$bin/tlab-perf-latency" --body "$tmp/body.json" "${probe_args[@]+"${probe_args[@]}"}" --rounds "$n" --warmup 0 "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
  # strace waits for the process it started: stop that one (valgrind's child is itself).
  if [[ $mode == syscalls ]]; then pkill -TERM -P "$pid" || true; else kill -TERM "$pid"; fi
  wait "$pid" 2>/dev/null || true
  if [[ $mode == syscalls ]]; then
    awk '$NF == "total" { print $4 }' "$out" | head -1
  else
    grep -m1 "Collected" "$log" | awk '{gsub(",", "", $4); print $4}'
  fi
}

unit="instructions/request"; col=Ir
[[ $mode == syscalls ]] && unit="syscalls/request" && col=calls
printf '%-8s %14s %14s %22s\n' proxy "$col($n1)" "$col($n2)" "$unit"
for kind in nginx gateway; do
  a=$(measure "$kind" "$n1"); b=$(measure "$kind" "$n2")
  printf '%-8s %14s %14s %22.0f\n' "$kind" "$a" "$b" "$(python3 -c "print(($b - $a) / ($n2 - $n1))")"
done
