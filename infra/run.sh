#!/usr/bin/env bash
# `make run`: starts a worker on 127.0.0.1:8000 and tlab-gateway on 127.0.0.1:8001 in front of it.
#
#   TLAB_ENGINE=sim       (default) tlab-sim, the simulated vLLM (no GPU needed)
#   TLAB_ENGINE=vllm      `vllm serve $TLAB_MODEL` (needs vLLM and a GPU)
#   TLAB_ENGINE=external  no worker started: something already serves the OpenAI API on :8000
#   TLAB_MODEL            model name (default Qwen/Qwen2.5-0.5B-Instruct)
#   TLAB_WORKER_ARGS      extra worker flags (default: --max-model-len 512)
#   TLAB_GATEWAY_ARGS     extra gateway flags, e.g. "--set log.level=debug"
# Ctrl-C stops both; the worker is stopped by its PID.
set -euo pipefail
BUILD=${1:-build}
ENGINE=${TLAB_ENGINE:-sim}
MODEL=${TLAB_MODEL:-Qwen/Qwen2.5-0.5B-Instruct}
WORKER_ARGS=${TLAB_WORKER_ARGS:---max-model-len 512}
WORKER_PORT=8000
GATEWAY_PORT=8001
cd "$(dirname "$0")/.."

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

worker_pid=""
cleanup() {
  if [[ -n $worker_pid ]] && kill -0 "$worker_pid" 2>/dev/null; then
    kill -TERM "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

if port_busy $GATEWAY_PORT; then
  echo "run: port $GATEWAY_PORT is already in use; stop what holds it (ss -ltnp 'sport = :$GATEWAY_PORT')" >&2
  exit 1
fi

case $ENGINE in
  sim)
    if port_busy $WORKER_PORT; then echo "run: port $WORKER_PORT is in use; set TLAB_ENGINE=external to use that server" >&2; exit 1; fi
    # shellcheck disable=SC2086
    "$BUILD/bin/tlab-sim" --host 127.0.0.1 --port $WORKER_PORT --model "$MODEL" $WORKER_ARGS &
    worker_pid=$! ;;
  vllm)
    command -v vllm >/dev/null || { echo "run: TLAB_ENGINE=vllm but the vllm command is not installed" >&2; exit 1; }
    # shellcheck disable=SC2086
    vllm serve "$MODEL" --host 127.0.0.1 --port $WORKER_PORT $WORKER_ARGS &
    worker_pid=$! ;;
  external) ;;
  *) echo "run: unknown TLAB_ENGINE '$ENGINE' (sim, vllm or external)" >&2; exit 2 ;;
esac

if [[ -n $worker_pid ]]; then
  echo "run: waiting for the worker ($ENGINE, pid $worker_pid) on :$WORKER_PORT ..."
  for _ in $(seq 1 1800); do
    kill -0 "$worker_pid" 2>/dev/null || { echo "run: the worker exited during start-up" >&2; exit 1; }
    curl -fsS -o /dev/null "http://127.0.0.1:$WORKER_PORT/health" 2>/dev/null && break
    sleep 0.2
  done
fi

cat <<MSG
run: gateway on http://127.0.0.1:$GATEWAY_PORT  (worker: $ENGINE on :$WORKER_PORT)
  curl http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions -H 'Content-Type: application/json' \\
       -d '{"model":"$MODEL","messages":[{"role":"user","content":"Hello"}],"max_tokens":32}'
MSG
# shellcheck disable=SC2086
"$BUILD/bin/tlab-gateway" -c configs/gateway.yaml --set "plugin_dir=$BUILD/lib/plugins" \
  --set "upstream.url=http://127.0.0.1:$WORKER_PORT" ${TLAB_GATEWAY_ARGS:-}
