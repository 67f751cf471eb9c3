#!/usr/bin/env python3
"""sim_api.py - tlab-sim's OpenAI API against vLLM's shapes, field by field: /v1/models, chat and
completions (non-streaming and SSE, with usage), token counting, determinism, sampling fields,
errors, /health and /metrics names."""
import json
import os

import simlib
from tlabtest import SRC, check, finish, request, start_sim

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
PROMPT_200 = open(os.path.join(SRC, "configs", "prompts", "prompt_200.txt")).read()

sim, port = start_sim(time_scale=50, args=["--startup-seconds", "0", "--max-model-len", "4096"])


def post(path, body):
    st, h, data = request(port, "POST", path, body)
    return st, h, data


# /v1/models
st, h, data = request(port, "GET", "/v1/models")
m = json.loads(data)
check(st == 200 and m["object"] == "list" and len(m["data"]) == 1, "models list")
d = m["data"][0]
check(d["id"] == MODEL and d["object"] == "model" and d["owned_by"] == "vllm" and d["root"] == MODEL, f"model {d}")
check(d["max_model_len"] == 4096 and d["parent"] is None and isinstance(d["created"], int), "model fields")

# /health
st, _, data = request(port, "GET", "/health")
check(st == 200 and data == b"", "health 200, empty body")

# Chat, non-streaming, prompt_200 = 200 prompt tokens.
st, h, data = post("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": PROMPT_200}],
                                            "max_tokens": 10, "ignore_eos": True, "temperature": 0})
r = json.loads(data)
check(st == 200 and h.get("content-type") == "application/json", "chat 200 json")
check(list(r.keys()) == ["id", "object", "created", "model", "choices", "usage", "prompt_logprobs",
                         "kv_transfer_params"], f"chat keys {list(r.keys())}")
check(r["id"].startswith("chatcmpl-") and r["object"] == "chat.completion" and r["model"] == MODEL, "chat ids")
c = r["choices"][0]
check(list(c.keys()) == ["index", "message", "logprobs", "finish_reason", "stop_reason"], f"choice keys {c.keys()}")
check(c["message"]["role"] == "assistant" and c["finish_reason"] == "length" and c["stop_reason"] is None, "choice")
check(len(c["message"]["content"]) == 40, "10 tokens of 4 bytes")
check(r["usage"] == {"prompt_tokens": 200, "total_tokens": 210, "completion_tokens": 10,
                     "prompt_tokens_details": None}, f"usage {r['usage']}")
first_text = c["message"]["content"]

# Determinism: same prompt, same text; another prompt, other text; sampling with a seed is repeatable.
_, _, data = post("/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPT_200}], "max_tokens": 10,
                                           "ignore_eos": True, "temperature": 0})
check(json.loads(data)["choices"][0]["message"]["content"] == first_text, "same prompt, same output")
_, _, data = post("/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPT_200 + "!"}],
                                           "max_tokens": 10, "ignore_eos": True, "temperature": 0})
check(json.loads(data)["choices"][0]["message"]["content"] != first_text, "other prompt, other output")
outs = [json.loads(post("/v1/completions", {"prompt": "abc", "max_tokens": 8, "temperature": 0.8, "seed": s,
                                             "ignore_eos": True})[2])["choices"][0]["text"] for s in (1, 1, 2)]
check(outs[0] == outs[1] and outs[0] != outs[2], "seeded sampling repeatable")

# Chat streaming with include_usage: vLLM's chunk sequence.
st, h, data = post("/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPT_200}], "max_tokens": 5,
                                            "ignore_eos": True, "stream": True, "temperature": 0,
                                            "stream_options": {"include_usage": True}})
check(st == 200 and h.get("content-type", "").startswith("text/event-stream"), "sse content type")
ev = simlib.sse_events(data)
check(ev[-1] == "[DONE]", "ends with [DONE]")
role = ev[0]
check(list(role.keys()) == ["id", "object", "created", "model", "choices"], f"chunk keys {role.keys()}")
check(role["object"] == "chat.completion.chunk" and role["id"].startswith("chatcmpl-"), "chunk object")
check(role["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                           "finish_reason": None}], f"role chunk {role['choices']}")
toks = ev[1:-2]
check(len(toks) == 5, f"5 token chunks, got {len(toks)}")
check(all(t["id"] == role["id"] for t in toks), "same id in every chunk")
check(toks[0]["choices"] == [{"index": 0, "delta": {"content": toks[0]["choices"][0]["delta"]["content"]},
                              "logprobs": None, "finish_reason": None}], f"token chunk {toks[0]}")
check(toks[-1]["choices"][0]["finish_reason"] == "length" and "stop_reason" in toks[-1]["choices"][0], "final chunk")
check("usage" not in toks[0], "no usage in token chunks")
u = ev[-2]
check(u["choices"] == [] and u["usage"] == {"prompt_tokens": 200, "total_tokens": 205, "completion_tokens": 5},
      f"usage chunk {u}")
check("".join(t["choices"][0]["delta"]["content"] for t in toks) == first_text[:20], "stream text = non-stream text")

# Completions streaming without usage; prompt as token ids.
st, h, data = post("/v1/completions", {"prompt": list(range(37)), "max_tokens": 3, "ignore_eos": True,
                                       "stream": True})
ev = simlib.sse_events(data)
check(len(ev) == 4 and ev[-1] == "[DONE]", "3 chunks + DONE")
ch = ev[0]
check(ch["object"] == "text_completion" and ch["id"].startswith("cmpl-"), "completion chunk object")
check(list(ch["choices"][0].keys()) == ["index", "text", "logprobs", "finish_reason", "stop_reason"],
      f"completion chunk choice keys {ch['choices'][0].keys()}")
check(ev[2]["choices"][0]["finish_reason"] == "length", "final completion chunk")
st, h, data = post("/v1/completions", {"prompt": list(range(37)), "max_tokens": 3, "ignore_eos": True})
r = json.loads(data)
check(r["usage"]["prompt_tokens"] == 37 and r["object"] == "text_completion", "token-id prompt counted")
check(list(r["choices"][0].keys()) == ["index", "text", "logprobs", "finish_reason", "stop_reason",
                                       "prompt_logprobs"], "completion choice keys")
st, _, data = post("/v1/completions", {"prompt": PROMPT_200, "max_tokens": 1})
check(json.loads(data)["usage"]["prompt_tokens"] == 200, "prompt_200 string = 200 tokens")

# EOS: without ignore_eos the text stops by itself ("stop"); min_tokens holds it back.
r = json.loads(post("/v1/completions", {"prompt": "hello", "max_tokens": 2000, "temperature": 0})[2])
n_stop = r["usage"]["completion_tokens"]
check(r["choices"][0]["finish_reason"] == "stop" and 16 <= n_stop <= 512, f"natural stop at {n_stop}")
check(len(r["choices"][0]["text"]) == 4 * (n_stop - 1), "EOS carries no text")
r = json.loads(post("/v1/completions", {"prompt": "hello", "max_tokens": 2000, "min_tokens": n_stop + 7,
                                        "temperature": 0})[2])
check(r["usage"]["completion_tokens"] == n_stop + 7 and r["choices"][0]["finish_reason"] == "stop", "min_tokens")
r = json.loads(post("/v1/completions", {"prompt": "hello", "max_tokens": 5})[2])
check(r["choices"][0]["finish_reason"] == "length", "max_tokens before EOS")

# Errors in vLLM's shape.
st, h, data = post("/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPT_200}],
                                            "max_tokens": 4000})
e = json.loads(data)
check(st == 400 and list(e.keys()) == ["error"], f"error envelope {e}")
e = e["error"]
check(list(e.keys()) == ["message", "type", "param", "code"], f"error keys {e}")
check(e["type"] == "BadRequestError" and e["param"] is None and e["code"] == 400, "error fields")
check(e["message"] == "This model's maximum context length is 4096 tokens. However, you requested 4200 tokens "
      "(200 in the messages, 4000 in the completion). Please reduce the length of the messages or completion.",
      e["message"])
st, _, data = post("/v1/completions", {"model": "gpt-4", "prompt": "x"})
e = json.loads(data)["error"]
check(st == 404 and e["type"] == "NotFoundError" and e["message"] == "The model `gpt-4` does not exist.", f"{e}")
st, _, data = post("/v1/completions", {"prompt": "x", "temperature": -0.5})
check(st == 400 and "temperature must be non-negative" in json.loads(data)["error"]["message"], "temperature error")
st, _, data = request(port, "POST", "/v1/completions", body="{not json")
check(st == 400 and json.loads(data)["error"]["code"] == 400, "bad json")
st, _, data = request(port, "GET", "/nope")
check(st == 404 and json.loads(data) == {"detail": "Not Found"}, "unknown route")

# /metrics names.
st, h, data = request(port, "GET", "/metrics")
text = data.decode()
for name in ["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
             "vllm:num_preemptions_total", "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
             "vllm:time_to_first_token_seconds_bucket", "vllm:inter_token_latency_seconds_bucket",
             "vllm:e2e_request_latency_seconds_bucket", "vllm:request_queue_time_seconds_bucket",
             "tlab_sim:aborted_requests_total", "tlab_sim:step_lag_seconds", "tlab_sim:realtime_ratio"]:
    check(name in text, f"/metrics has {name}")
check("# TYPE vllm:time_to_first_token_seconds histogram" in text, "histogram type line")
check('vllm:cache_config_info{block_size="16"' in text and 'num_gpu_blocks="' in text, "cache_config_info")
mt = simlib.metrics(port)
check(mt["vllm:generation_tokens_total"] > 0 and mt["vllm:prompt_tokens_total"] >= 200, "token counters move")
simlib.stop_clean(sim)
finish()
