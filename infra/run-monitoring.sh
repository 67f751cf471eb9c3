#!/usr/bin/env bash
# Prometheus without Docker: runs Debian's `prometheus` with infra/prometheus/prometheus.yml,
# storing data under experiments/prometheus/, on 127.0.0.1:9090 (PROM_PORT to change).
# Ctrl-C stops it. For Grafana, see docs/observability.md ("Grafana without Docker").
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PROM_PORT:-9090}
command -v prometheus >/dev/null || { echo "run-monitoring: install Debian's prometheus (apt-get install prometheus)" >&2; exit 1; }
mkdir -p experiments/prometheus
echo "run-monitoring: Prometheus on http://127.0.0.1:$PORT  (scraping the gateway :8001 and the worker :8000)"
echo "run-monitoring: try http://127.0.0.1:$PORT/graph?g0.expr=sum(rate(gateway_requests_total[1m]))"
exec prometheus --config.file=infra/prometheus/prometheus.yml --storage.tsdb.path=experiments/prometheus \
  --web.listen-address="127.0.0.1:$PORT"
