#!/usr/bin/env bash
# Installs the Debian 12 and npm packages the project needs, and only those missing.
# Usage: infra/install-deps.sh [--check] [--fuzz]
#   --check  exit 0 when everything is present, 1 otherwise (prints what is missing)
#   --fuzz   also clang and its runtime (libFuzzer, sanitizers) for `make fuzz`
# As root it runs apt-get; otherwise it prints the exact command to run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

DEB_PKGS=(
  build-essential cmake pkg-config
  libevent-dev libcurl4-openssl-dev libhttp-parser-dev libssl-dev liblua5.4-dev lua5.4 libjansson-dev libyajl-dev libyaml-dev libmimalloc-dev libxxhash-dev
  curl python3 valgrind prometheus nodejs npm python3-locust gnuplot-nox
  nginx-light dnsmasq-base python3-yaml libhiredis-dev redis-server
)
check=0
for arg in "$@"; do
  case $arg in
    --check) check=1 ;;
    --fuzz) DEB_PKGS+=(clang libclang-rt-14-dev) ;; # Debian 12's clang is 14; libFuzzer is in -rt
    *) echo "usage: $0 [--check] [--fuzz]" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${DEB_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm may come from another source than Debian; accept them if they run.
if command -v node >/dev/null && command -v npm >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi

npm_missing=0
[ -d "$here/tests/e2e/node_modules/openai" ] || npm_missing=1
[ -d "$here/tests/k8s/node_modules/kubernetes-models" ] || npm_missing=1

if [[ $check -eq 1 ]]; then
  [[ ${#missing[@]} -eq 0 && $npm_missing -eq 0 ]] && exit 0
  [[ ${#missing[@]} -gt 0 ]] && echo "missing Debian packages: ${missing[*]}"
  [[ $npm_missing -eq 1 ]] && echo "missing npm packages in tests/e2e (openai) or tests/k8s (kubernetes-models)"
  exit 1
fi

if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $(id -u) -eq 0 ]]; then
    echo "install-deps: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "install-deps: not root; run:"
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi

if [[ $npm_missing -eq 1 ]]; then
  for d in tests/e2e tests/k8s; do
    echo "install-deps: npm ci in $d"
    (cd "$here/$d" && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --silent; else npm install --no-audit --no-fund --silent; fi)
  done
fi
echo "install-deps: all dependencies present"
