#!/usr/bin/env bash
# `make run`: tlab-gateway on 127.0.0.1:8001 with its worker on 127.0.0.1:8000.
#
# The gateway's supervisor plugin owns the worker (configs/gateway.yaml): it starts it on the
# first request, stops it after 180 s idle, and restarts it after a crash.
#   TLAB_ENGINE=auto      (default) vLLM when `vllm` and an NVIDIA GPU are present, else tlab-sim
#   TLAB_ENGINE=sim       tlab-sim, the simulated vLLM (no GPU needed)
#   TLAB_ENGINE=vllm      `vllm serve` with the model profile's knobs (configs/model_profiles/safe.yaml)
#   TLAB_ENGINE=external  no supervisor: something already serves the OpenAI API on :8000
#                         (configs/gateway-external.yaml)
#   TLAB_GATEWAY_ARGS     extra gateway flags, e.g. "--set log.level=debug"
# Ctrl-C stops the gateway, which stops its worker.
set -euo pipefail
BUILD=${1:-build}
export TLAB_ENGINE=${TLAB_ENGINE:-auto}
GATEWAY_PORT=8001
cd "$(dirname "$0")/.."
BUILD=$(cd "$BUILD" && pwd)
export PATH="$BUILD/bin:$PATH"   # the supervisor finds tlab-sim here

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_busy $GATEWAY_PORT; then
  echo "run: port $GATEWAY_PORT is already in use; stop what holds it (ss -ltnp 'sport = :$GATEWAY_PORT')" >&2
  exit 1
fi
config=configs/gateway.yaml
case $TLAB_ENGINE in
  auto|sim|vllm)
    if port_busy 8000; then
      echo "run: port 8000 is in use, but the supervisor starts the worker there; stop it, or use TLAB_ENGINE=external" >&2
      exit 1
    fi ;;
  external) config=configs/gateway-external.yaml ;;
  *) echo "run: unknown TLAB_ENGINE '$TLAB_ENGINE' (auto, sim, vllm or external)" >&2; exit 2 ;;
esac
mkdir -p experiments

cat <<MSG
run: gateway on http://127.0.0.1:$GATEWAY_PORT (worker: $TLAB_ENGINE on :8000; started on the first request)
  curl http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions -H 'Content-Type: application/json' \\
       -d '{"model":"Qwen/Qwen2.5-0.5B-Instruct","messages":[{"role":"user","content":"Hello"}],"max_tokens":32}'
  metrics: http://127.0.0.1:$GATEWAY_PORT/metrics   worker state: http://127.0.0.1:$GATEWAY_PORT/admin/worker
MSG
# shellcheck disable=SC2086
exec "$BUILD/bin/tlab-gateway" -c "$config" --set "plugin_dir=$BUILD/lib/plugins" ${TLAB_GATEWAY_ARGS:-}
