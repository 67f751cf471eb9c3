#!/usr/bin/env bash
# Builds the image that infra/container/Containerfile describes, without pulling a base image:
# `buildah from scratch` plus this Debian 12 machine's own files - the Release build installed to
# /opt/tlab, configs and policies, and exactly the shared libraries (and dynamic loader) that
# its programs and plugins link, found with ldd. For machines that reach Debian's mirrors but no
# container registry; where docker.io answers, build the Containerfile instead (same layout,
# same user, same entry point).
#
# Then it checks the image: `--version` of each program, `--check-config` of the shipped config,
# and one completion through the image's tlab-gateway in front of the image's tlab-sim (both run
# with `buildah run --isolation chroot --network host` on free loopback ports).
#
# Usage: infra/container/build-from-host.sh [--no-check] [TAG]   (TAG: llm-throughput-lab:<version>)
# Needs buildah (Debian package buildah) and root, or a rootless buildah setup. Exit 0 when built
# and checked; 1 on any failure (the step is named).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
check=1
if [[ ${1:-} == --no-check ]]; then check=0; shift; fi
if [[ ${1:-} == -h || ${1:-} == --help ]]; then sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi
version=$(sed -n 's/^project(llm-throughput-lab VERSION \([0-9.]*\).*/\1/p' "$here/CMakeLists.txt")
tag=${1:-llm-throughput-lab:${version:-0.0.0}}
command -v buildah >/dev/null || { echo "build-from-host: buildah not found (apt-get install buildah)" >&2; exit 1; }
step() { echo "build-from-host: $*" >&2; }

work=$(mktemp -d)
ctrs=()
cleanup() {
  for c in "${ctrs[@]+"${ctrs[@]}"}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
  # Each `buildah run` leads its own process group (setsid below), which its program joins:
  # stopping the group stops the program too, not just buildah.
  for p in ${pids:-}; do kill -TERM -- "-$p" 2>/dev/null || true; done
  sleep 1
  for p in ${pids:-}; do kill -KILL -- "-$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

step "Release build in $work/build"
cmake -S "$here" -B "$work/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/build" -j"$(nproc)" >/dev/null
root=$work/root
cmake --install "$work/build" --prefix "$root/opt/tlab" >/dev/null
mkdir -p "$root/opt/tlab/share/tlab" "$root/etc/tlab" "$root/tmp"
cp -r "$here/configs" "$here/scripts-lua" "$root/opt/tlab/share/tlab/"
cp "$here/infra/k8s/base/config/gateway.yaml" "$root/etc/tlab/gateway.yaml"
cp "$here/scripts-lua/admission.lua" "$root/etc/tlab/admission.lua"
chmod 1777 "$root/tmp"

step "shared libraries (ldd)"
libs=$(for f in "$root"/opt/tlab/bin/* "$root"/opt/tlab/lib/tlab/plugins/*.so; do
  ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
done | sort -u)
for lib in $libs; do
  cp --parents -L "$lib" "$root/"
done
# Debian 12 is usrmerged: /lib and /lib64 are links into /usr, and the programs ask for
# /lib64/ld-linux-x86-64.so.2.
for d in lib lib64; do
  if [[ -L /$d && -d $root/usr/$d ]]; then
    [[ -d $root/$d && ! -L $root/$d ]] && cp -a "$root/$d/." "$root/usr/$d/" && rm -rf "${root:?}/$d"
    ln -sfn "usr/$d" "$root/$d"
  fi
done
[[ -f /etc/ssl/certs/ca-certificates.crt ]] && cp --parents /etc/ssl/certs/ca-certificates.crt "$root/"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\ntlab:x:10001:10001::/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\ntlab:x:10001:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
echo "build-from-host: $(echo "$libs" | wc -l) libraries, $(du -sh "$root" | cut -f1) in all" >&2

step "image $tag"
ctr=$(buildah from scratch)
ctrs+=("$ctr")
buildah copy "$ctr" "$root" / >/dev/null
buildah config --env PATH=/opt/tlab/bin --env TLAB_CONFIG_DIR=/opt/tlab/share/tlab/configs \
  --workingdir /opt/tlab/share/tlab --user 10001:10001 --port 8001 --port 9091 --port 8000 \
  --cmd '["tlab-gateway", "-c", "/etc/tlab/gateway.yaml"]' \
  --label org.opencontainers.image.title=llm-throughput-lab --label "org.opencontainers.image.version=$version" "$ctr"
buildah commit --quiet "$ctr" "$tag" >/dev/null
echo "build-from-host: built $tag ($(buildah images --format '{{.Size}}' "$tag" | head -1))"
[[ $check -eq 1 ]] || exit 0

step "checks in the image"
run() { buildah run --isolation chroot --network host "$@"; }
c=$(buildah from "$tag")
ctrs+=("$c")
for p in tlab-gateway tlab-sim tlab-bench tlab-tune; do
  run "$c" -- "$p" --version >/dev/null || { step "FAILED: $p --version in the image"; exit 1; }
done
run "$c" -- tlab-gateway --check-config -c /opt/tlab/share/tlab/configs/gateway.yaml >/dev/null ||
  { step "FAILED: --check-config of the shipped config in the image"; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sp=$(free_port); gp=$(free_port)
setsid buildah run --isolation chroot --network host "$c" -- tlab-sim --host 127.0.0.1 --port "$sp" --startup-seconds 0 --time-scale 20 >"$work/sim.log" 2>&1 &
pids=$!
printf 'listen: {host: 127.0.0.1, port: %s}\nupstream: {url: "http://127.0.0.1:%s"}\nplugins:\n  - name: queue\n  - name: metrics\n' \
  "$gp" "$sp" >"$work/smoke.yaml"
buildah copy "$c" "$work/smoke.yaml" /tmp/smoke.yaml >/dev/null
setsid buildah run --isolation chroot --network host "$c" -- tlab-gateway -c /tmp/smoke.yaml >"$work/gw.log" 2>&1 &
pids="$pids $!"
ok=0
for _ in $(seq 100); do
  if out=$(curl -sf -m 5 "http://127.0.0.1:$gp/v1/completions" -H 'Content-Type: application/json' \
      -d '{"model": "Qwen/Qwen2.5-0.5B-Instruct", "prompt": "hello", "max_tokens": 4}' 2>/dev/null); then
    ok=1; break
  fi
  sleep 0.2
done
if [[ $ok -ne 1 || $out != *'"completion_tokens":4'* ]]; then
  step "FAILED: a completion through the image's gateway and sim"; cat "$work/sim.log" "$work/gw.log" >&2; exit 1
fi
echo "build-from-host: checked: --version of 4 programs, --check-config, a completion through the image's gateway and tlab-sim"
