#!/usr/bin/env bash
# Runs every libFuzzer binary of a -DTLAB_FUZZ=ON build for a bounded time, one after the other,
# and prints one line per target: executions, new corpus inputs, crashes. Exit 1 if any crashed.
# Usage: tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS [TARGET...]   (targets: validate config ...)
# New inputs go to BUILD_DIR/fuzz-corpus/<target>/ (the checked-in corpus is only read) and
# crashes to BUILD_DIR/fuzz-artifacts/: copy a reproducer into tests/fuzz/corpus/<target>/ once
# the bug is fixed, so ctest replays it in every build.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?build dir}; seconds=${2:-60}; shift 2 || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(validate config keys sse_relay bench_sse)
mkdir -p "$build/fuzz-artifacts"
failed=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_${t}_fuzzer"
  [[ -x $bin ]] || { echo "fuzz: $bin missing (build with -DTLAB_FUZZ=ON and clang)"; failed=1; continue; }
  work="$build/fuzz-corpus/$t"; mkdir -p "$work"
  log="$build/fuzz-artifacts/$t.log"
  dict=()
  case $t in sse_relay | bench_sse) dict=(-dict="$here/sse.dict") ;; esac
  # Leak checks stay on; -timeout flags a single input slower than 10 s as a hang.
  "$bin" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${dict[@]}" \
         -artifact_prefix="$build/fuzz-artifacts/$t-" "$work" "$here/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(ls "$work" | wc -l)
  crashes=$(ls "$build/fuzz-artifacts" | grep -c "^$t-" || true)
  echo "fuzz: $t: ${runs:-?} executions in ${seconds}s, $corpus new corpus inputs, $crashes crash(es), exit $rc"
  if [[ $rc -ne 0 || $crashes -ne 0 ]]; then
    failed=1
    grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -5
  fi
done
exit $failed
