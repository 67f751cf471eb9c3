#!/usr/bin/env bash
# One chat request through the gateway (or straight to the worker) and a check of the answer.
# Usage: loadtest/smoke.sh [BASE_URL]   (default http://127.0.0.1:8001, the gateway; :8000 is the worker)
# Prints one line, "smoke: OK ..." or "smoke: FAIL ...", and exits 0 or 1.
set -uo pipefail
url=${1:-http://127.0.0.1:8001}
model=${TLAB_MODEL:-Qwen/Qwen2.5-0.5B-Instruct}
body=$(printf '{"model":"%s","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16,"temperature":0}' "$model")
start=$(date +%s%N)
out=$(curl -sS -m 60 -w '\n%{http_code}' -H 'Content-Type: application/json' -d "$body" "$url/v1/chat/completions" 2>&1)
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
if [[ $rc -ne 0 ]]; then
  echo "smoke: FAIL $url: no answer (${out%%$'\n'*})"
  exit 1
fi
code=${out##*$'\n'}
json=${out%$'\n'*}
if [[ $code != 200 ]]; then
  echo "smoke: FAIL $url: HTTP $code: ${json:0:200}"
  exit 1
fi
verdict=$(printf '%s' "$json" | python3 -c '
import json, sys
try:
    r = json.load(sys.stdin)
    text = r["choices"][0]["message"]["content"]
    toks = r.get("usage", {}).get("completion_tokens", "?")
    print("ok" if text else "empty", toks, json.dumps(text[:40]))
except Exception as e:
    print("bad", "-", repr(e)[:80])
')
read -r status toks text <<<"$verdict"
if [[ $status != ok ]]; then
  echo "smoke: FAIL $url: answer is not a chat completion with text ($status $text)"
  exit 1
fi
echo "smoke: OK $url answered in ${ms} ms: $toks tokens, $text"
