#!/usr/bin/env python3
"""Access control with real processes: tlab-gateway (auth.keys_file, admin listener) in front of
tlab-sim on loopback.

Covers: no key / wrong key -> 401 in OpenAI's error shape (code invalid_api_key, WWW-Authenticate),
right key -> 200, /health open without a key; requests_per_minute -> 429 with Retry-After, then
200 after the refill; tokens_per_minute: a reservation (prompt + max_tokens) blocks a second
request while the first streams, a cancelled stream gives back its unused tokens, and a short
real usage (usage.completion_tokens) settles so that a request that would not fit without the
refund passes; gateway_key_tokens_total is the real usage; admission.lua sees req.api_key_name;
the admin listener serves /metrics and /admin/*, the main port 404s them; without an admin
listener they need an admin key (401 / 403 / 200); SIGHUP reloads the keys file (a broken one
keeps the old keys). No key text reaches the logs.
"""
import json
import os
import signal
import tempfile
import time

import tlabtest as t

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
KEYS = {
    "open": "sk-tlab-test-open-0123456789",      # no limits
    "rpm": "sk-tlab-test-rpm-0123456789",        # 30 requests per minute
    "tok": "sk-tlab-test-tok-0123456789",        # tokens per minute set from a probe below
    "big": "sk-tlab-test-big-0123456789",        # 1500 tokens per minute
    "ops": "sk-tlab-test-ops-0123456789",        # admin
    "blocked": "sk-tlab-test-blocked-01234567",  # refused by admission.lua by name
}


def auth(name):
    return {"Authorization": f"Bearer {KEYS[name]}"}


def completion(port, name, prompt="x", max_tokens=1, **extra):
    body = {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    body.update(extra)
    return t.request(port, "POST", "/v1/completions", body, headers=auth(name) if name else None)


def openai_error(body):
    try:
        e = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return None
    return e if set(e.keys()) == {"message", "type", "param", "code"} and isinstance(e["message"], str) else None


sim, sim_port = t.start_sim(["--max-model-len", "2048", "--startup-seconds", "0"], time_scale=5)

# A prompt whose natural end (no ignore_eos; at temperature 0 a function of the prompt) comes
# well before max_tokens=100, found on the sim itself: with it, a 100-token reservation is settled by a much shorter real usage.
short_prompt, short_usage = None, None
for i in range(200):
    p = f"probe {i}"
    st, _, body = t.request(sim_port, "POST", "/v1/completions", {"model": MODEL, "prompt": p, "max_tokens": 100,
                                                               "temperature": 0})
    u = json.loads(body)["usage"] if st == 200 else None
    if u and u["completion_tokens"] <= 70:
        short_prompt, short_usage = p, u
        break
if not t.check(short_prompt is not None, "no probe prompt ends within 70 tokens"):
    t.finish()
prompt_est = (len(short_prompt) + 3) // 4  # the gateway's estimate: ceil(bytes / 4)
reserve = prompt_est + 100
# Room for one reservation but not two, even after a few seconds of refill; the refund from the
# short usage (<= 70 + prompt) makes room for a second one.
tok_limit = 2 * reserve - 20

tmp = tempfile.mkdtemp(prefix="tlab-auth-")
os.makedirs(os.path.join(tmp, "auth"))
keys_file = os.path.join(tmp, "auth", "keys.yaml")
with open(keys_file, "w") as f:
    f.write(keys_text := f"""keys:
  - {{name: open, key: {KEYS['open']}}}
  - {{name: rpm, key: {KEYS['rpm']}, requests_per_minute: 30}}
  - {{name: tok, key: {KEYS['tok']}, tokens_per_minute: {tok_limit}}}
  - {{name: big, key: {KEYS['big']}, tokens_per_minute: 1500}}
  - {{name: ops, key: {KEYS['ops']}, admin: true}}
  - {{name: blocked, key: {KEYS['blocked']}}}
""")
with open(os.path.join(tmp, "admission.lua"), "w") as f:
    f.write("""function on_request(req)
  if req.api_key_name == "blocked" then gw.reject(403, 0, "key " .. req.api_key_name .. " is blocked", "blocked") end
end
""")
cfg = os.path.join(tmp, "gateway.yaml")
admin_port = t.free_port()
with open(cfg, "w") as f:
    # keys_file and the policy are relative to this file's directory.
    f.write(f"auth:\n  keys_file: auth/keys.yaml\npolicies:\n  admission: admission.lua\n"
            f"admin:\n  listen:\n    host: 127.0.0.1\n    port: {admin_port}\nplugins:\n  - name: metrics\n")
rc = os.spawnv(os.P_WAIT, os.path.join(t.BIN, "tlab-gateway"), ["tlab-gateway", "--check-config", "-c", cfg])
t.check(rc == 0, f"--check-config: {rc}")
gw, port = t.start_gateway(sim_port, config=cfg)

# --- authentication ---
st, h, body = completion(port, None)
e = openai_error(body)
t.check(st == 401 and e and e["code"] == "invalid_api_key" and e["param"] is None
        and e["type"] == "invalid_request_error", f"no key: {st} {body}")
t.check(h.get("www-authenticate") == "Bearer", f"no key: WWW-Authenticate {h}")
st, _, body = t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": 1},
                        headers={"Authorization": "Bearer " + KEYS["open"][:-1]})
e = openai_error(body)
t.check(st == 401 and e and e["code"] == "invalid_api_key", f"wrong key (a prefix of a real one): {st} {body}")
t.check(KEYS["open"][:-1].encode() not in body, "the 401 does not echo the key")
for bad in ({"Authorization": KEYS["open"]}, {"Authorization": "Basic " + KEYS["open"]}, {"Authorization": "Bearer "}):
    st, _, _ = t.request(port, "POST", "/v1/completions", {"model": MODEL, "prompt": "x", "max_tokens": 1}, headers=bad)
    t.check(st == 401, f"malformed Authorization {bad}: {st}")
st, h, body = completion(port, "open", max_tokens=3)
t.check(st == 200 and json.loads(body)["usage"]["completion_tokens"] == 3, f"right key: {st} {body[:200]}")
t.check("x-ratelimit-limit-requests" not in h, "no rate-limit headers for an unlimited key")
st, _, body = t.request(port, "POST", "/v1/chat/completions",
                        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
                        headers={"authorization": "bearer " + KEYS["open"]})
t.check(st == 200, f"chat, scheme and header name in lower case: {st} {body[:200]}")
st, _, _ = t.request(port, "GET", "/v1/models")
t.check(st == 401, f"/v1/models without a key: {st}")
st, _, _ = t.request(port, "GET", "/v1/models", headers=auth("open"))
t.check(st == 200, f"/v1/models with a key: {st}")
st, _, _ = t.request(port, "GET", "/health")
t.check(st == 200, f"/health stays open: {st}")
st, _, body = t.request(port, "GET", "/nope", headers=auth("open"))
t.check(st == 404 and openai_error(body), f"unknown route with a key: {st}")

# admission.lua sees the key's name, never the key.
st, _, body = completion(port, "blocked")
e = openai_error(body)
t.check(st == 403 and e and "key blocked is blocked" in e["message"], f"policy by key name: {st} {body}")

# --- requests_per_minute: 30 in the bucket, one more every 2 s ---
ok, limited = 0, None
for i in range(45):
    st, h, body = completion(port, "rpm")
    if st != 200:
        limited = (st, h, body)
        break
    ok += 1
t.check(ok >= 30 and limited is not None, f"rpm: {ok} requests passed before a refusal")
if limited:
    st, h, body = limited
    e = openai_error(body)
    t.check(st == 429 and e and e["code"] == "rate_limit_exceeded" and e["type"] == "requests",
            f"rpm refusal: {st} {body}")
    ra = int(h.get("retry-after", "0"))
    t.check(1 <= ra <= 2, f"rpm Retry-After {h.get('retry-after')}")
    t.check(h.get("x-ratelimit-limit-requests") == "30", f"x-ratelimit headers on the 429: {h}")
    time.sleep(ra + 0.1)
    st, _, body = completion(port, "rpm")
    t.check(st == 200, f"rpm after Retry-After: {st} {body}")

# --- tokens_per_minute: reservation and settlement from the real usage ---
st, h, body = completion(port, "tok", prompt=short_prompt, max_tokens=100)
t.check(st == 200 and json.loads(body)["usage"] == short_usage, f"tok first: {st} {body[:300]}")
t.check(h.get("x-ratelimit-limit-tokens") == str(tok_limit), f"tok headers {h}")
used = short_usage["prompt_tokens"] + short_usage["completion_tokens"]
# Without settlement only tok_limit - reserve (< reserve) would be left; with it, tok_limit - used.
st, _, body = completion(port, "tok", prompt=short_prompt, max_tokens=100)
t.check(st == 200, f"tok second, fits only after the settlement ({used} used of {reserve} reserved): {st} {body[:300]}")
st, h, body = completion(port, "tok", prompt=short_prompt, max_tokens=tok_limit)
e = openai_error(body)
t.check(st == 429 and e and e["type"] == "tokens" and "retry-after" not in h,
        f"a reservation above the limit can never pass: {st} {h} {body}")
st, _, body = completion(port, "tok", prompt="x", max_tokens=10000)
t.check(st == 400, f"max_tokens above limits.max_tokens is still a 400: {st}")

# A stream holds its reservation; a second request that does not fit waits for it...
big = t.Stream(port, {"model": MODEL, "prompt": "x", "max_tokens": 1000, "ignore_eos": True, "stream": True},
               path="/v1/completions", headers={"Authorization": "Bearer " + KEYS["big"]}, timeout=20)
events = len(big.read_events(2))
t.check(big.status == 200 and events >= 2, f"big stream started: {big.status} {events}")
st, h, body = completion(port, "big", max_tokens=1000)
e = openai_error(body)
t.check(st == 429 and e and e["type"] == "tokens" and e["code"] == "rate_limit_exceeded", f"big second: {st} {body}")
ra = int(h.get("retry-after", "0"))
t.check(10 <= ra <= 25, f"big Retry-After {ra}: (1001 - 499) tokens at 25 tokens/s")
# ...and gets room as soon as the stream is cancelled: only its relayed events are charged.
big.close()
st, _, body = t.retry_until(lambda: completion(port, "big", max_tokens=1000), 200, 5)
t.check(st == 200, f"big after the cancelled stream's refund: {st} {body[:200]}")

# --- metrics on the admin listener only ---
st, _, body = t.request(port, "GET", "/metrics", headers=auth("ops"))
e = openai_error(body)
t.check(st == 404 and e and e["type"] == "invalid_request_error", f"/metrics on the main port: {st} {body}")
st, _, body = t.request(port, "GET", "/admin/policies", headers=auth("ops"))
t.check(st == 404 and openai_error(body), f"/admin/policies on the main port: {st}")
st, _, _ = t.request(admin_port, "GET", "/admin/policies")
t.check(st == 200, f"/admin/policies on the admin port: {st}")
st, _, _ = t.request(admin_port, "POST", "/v1/completions", {"model": MODEL, "prompt": "x"}, headers=auth("open"))
t.check(st == 404, f"/v1 on the admin port: {st}")
t.check(t.request(admin_port, "GET", "/health")[0] == 200, "/health on the admin port")
fails = t.metric(admin_port, "gateway_auth_failures_total")
t.check(fails is not None and fails >= 5, f"gateway_auth_failures_total {fails}")
t.check(t.metric(admin_port, "gateway_rate_limited_total", 'key="rpm",limit="requests"') == 1,
        "gateway_rate_limited_total{key=rpm}")
t.check((t.metric(admin_port, "gateway_rate_limited_total", 'key="big",limit="tokens"') or 0) >= 1,
        "gateway_rate_limited_total{key=big}")
# The tok key's first two requests were settled from the usage the worker reported.
charged = t.metric(admin_port, "gateway_key_tokens_total", 'key="tok"')
t.check(charged == 2 * used, f"gateway_key_tokens_total{{key=tok}} {charged} != {2 * used}")

# --- SIGHUP reloads the keys file; a broken one leaves the old keys in force ---
KEYS["new"] = "sk-tlab-test-new-0123456789"
with open(keys_file + ".tmp", "w") as f:
    f.write(keys_text.replace(f"  - {{name: open, key: {KEYS['open']}}}", f"  - {{name: new, key: {KEYS['new']}}}"))
os.rename(keys_file + ".tmp", keys_file)
os.kill(gw.pid, signal.SIGHUP)
deadline, st = time.monotonic() + 5, 0
while time.monotonic() < deadline and st != 200:
    time.sleep(0.05)
    st = completion(port, "new")[0]
t.check(st == 200, f"a key added by the reload: {st}")
t.check(completion(port, "open")[0] == 401, "a key removed by the reload")
with open(keys_file, "w") as f:
    f.write("keys:\n  - name: new\n    key: short\n")
os.kill(gw.pid, signal.SIGHUP)
deadline = time.monotonic() + 5
while time.monotonic() < deadline and "keys file not reloaded" not in gw.output():
    time.sleep(0.05)
t.check(f"{keys_file}:3:10: 'keys[0].key' must be 16..512" in gw.output(), "the reload error names file:line:col")
t.check(completion(port, "new")[0] == 200, "after a broken reload the previous keys stay")
t.check(t.metric(admin_port, "gateway_auth_reloads_total", 'result="ok"') == 1
        and t.metric(admin_port, "gateway_auth_reloads_total", 'result="error"') == 1, "gateway_auth_reloads_total")
with open(keys_file, "w") as f:
    f.write(keys_text)

# --- without an admin listener, the operator routes need an admin key on the main port ---
gw2, port2 = t.start_gateway(sim_port, config=cfg, sets=["admin.listen.port="])
st, _, body = t.request(port2, "GET", "/metrics")
t.check(st == 401 and openai_error(body), f"/metrics without a key: {st}")
st, _, body = t.request(port2, "GET", "/metrics", headers=auth("open"))
e = openai_error(body)
t.check(st == 403 and e and e["type"] == "permission_error", f"/metrics with a client key: {st} {body}")
st, _, body = t.request(port2, "GET", "/metrics", headers=auth("ops"))
t.check(st == 200 and b"gateway_auth_failures_total" in body, f"/metrics with the admin key: {st}")

# --- auth off (the default) changes nothing ---
gw3, port3 = t.start_gateway(sim_port)
t.check(completion(port3, None)[0] == 200, "no auth: no key needed")

# No key text in any log line.
for pr in (gw, gw2, gw3):
    out = pr.output()
    leaked = [n for n, k in KEYS.items() if k in out or k[:-1] in out]
    t.check(not leaked, f"keys in the log: {leaked}")
t.finish()
