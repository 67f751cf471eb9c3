/*
 * sim_api.c - request validation and reply formatting in vLLM's shapes (vllm/entrypoints/openai/protocol.py,
 * serving_chat.py, serving_completion.py). Chunks are printed directly rather than built with jansson:
 * this is the hot path under 1000 streams, and the only variable strings (token text, model name)
 * are JSON-safe by construction.
 */
#include "sim_api.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_sched.h"
#include "sim_text.h"

const char *sim_api_finish_str(int finish) {
    return finish == SIM_FINISH_STOP    ? "stop"
           : finish == SIM_FINISH_LENGTH ? "length"
           : finish == SIM_FINISH_ABORT  ? "abort"
                                         : NULL;
}

char *sim_api_json_escape(const char *s, char *dst, size_t dstlen) {
    size_t j = 0;
    for (; *s && j + 7 < dstlen; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[j++] = '\\';
            dst[j++] = (char)c;
        } else if (c < 0x20) {
            j += (size_t)snprintf(dst + j, dstlen - j, "\\u%04x", c);
        } else {
            dst[j++] = (char)c;
        }
    }
    dst[j] = '\0';
    return dst;
}

void sim_api_error(struct evbuffer *out, const char *msg, const char *type, int code) {
    json_t *o = json_pack("{s:{s:s,s:s,s:n,s:i}}", "error", "message", msg, "type", type, "param", "code", code);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    evbuffer_add(out, s, strlen(s));
    free(s);
    json_decref(o);
}

/* Bytes of text in a chat message's content: a string, or a list of {"type":"text","text":...} parts. */
static int content_bytes(json_t *content, size_t *bytes, uint64_t *h) {
    if (json_is_string(content)) {
        *bytes += json_string_length(content);
        *h = sim_hash(*h, json_string_value(content), json_string_length(content));
        return 0;
    }
    if (json_is_null(content) || !content)
        return 0;
    if (!json_is_array(content))
        return -1;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        json_t *t = json_object_get(part, "text");
        if (json_is_string(t)) {
            *bytes += json_string_length(t);
            *h = sim_hash(*h, json_string_value(t), json_string_length(t));
        }
    }
    return 0;
}

/* Greedy decoding is prefix-consistent: a prompt that ends with the text the model generated for
 * the prompt before it is continued exactly where that generation left off. vLLM on a GPU gives
 * this (mostly) for free; here it is looked up: the longest run of whole output tokens at the end
 * of the prompt that equals the greedy text of the prompt before it. Only trailing vocabulary
 * words can qualify, so a plain prompt costs one backward scan. */
static void find_continuation(const char *p, size_t len, uint64_t *hash, int *offset) {
    size_t kmax = 0;
    while (kmax < SIM_EOS_MAX && (kmax + 1) * SIM_TOKEN_BYTES <= len && sim_is_token_text(p + len - (kmax + 1) * SIM_TOKEN_BYTES))
        kmax++;
    if (!kmax)
        return;
    /* the prefix hashes at each candidate split, in one forward pass */
    uint64_t h[SIM_EOS_MAX + 1];
    size_t first = len - kmax * SIM_TOKEN_BYTES;
    uint64_t acc = sim_hash(SIM_HASH_INIT, p, first);
    h[kmax] = acc;
    for (size_t k = kmax; k > 0; k--) {
        acc = sim_hash(acc, p + len - k * SIM_TOKEN_BYTES, SIM_TOKEN_BYTES);
        h[k - 1] = acc;
    }
    for (size_t k = kmax; k > 0; k--) {
        const char *tail = p + len - k * SIM_TOKEN_BYTES;
        size_t j = 0;
        while (j < k && memcmp(sim_token_text(h[k], (int)j), tail + j * SIM_TOKEN_BYTES, SIM_TOKEN_BYTES) == 0)
            j++;
        if (j == k && (int)k < sim_eos_position(h[k])) {
            *hash = h[k];
            *offset = (int)k;
            return;
        }
    }
}

#define FAIL(status, type, ...)                                                                                        \
    do {                                                                                                               \
        snprintf(msg, msglen, __VA_ARGS__);                                                                            \
        *etype = type;                                                                                                 \
        json_decref(root);                                                                                             \
        return status;                                                                                                 \
    } while (0)

/* Reads an optional integer field; returns -2 if present but not an integer (or null). */
static int opt_int(json_t *root, const char *key, long long *out, int *present) {
    json_t *v = json_object_get(root, key);
    *present = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return -2;
    *out = json_integer_value(v);
    *present = 1;
    return 0;
}

int sim_api_parse(int kind, const char *body, size_t len, const char *served_model, int max_model_len, sim_api_req *out,
                  char *msg, size_t msglen, const char **etype) {
    json_error_t jerr;
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root) {
        snprintf(msg, msglen, "JSON decode error: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        *etype = "BadRequestError";
        return 400;
    }
    if (!json_is_object(root))
        FAIL(400, "BadRequestError", "Input should be a valid dictionary or object to extract fields from");

    json_t *model = json_object_get(root, "model");
    if (model && !json_is_null(model)) {
        if (!json_is_string(model))
            FAIL(400, "BadRequestError", "model: Input should be a valid string");
        if (strcmp(json_string_value(model), served_model) != 0)
            FAIL(404, "NotFoundError", "The model `%s` does not exist.", json_string_value(model));
    }

    uint64_t h = SIM_HASH_INIT;
    const char *completion_prompt = NULL;
    size_t completion_prompt_len = 0;
    if (kind == SIM_API_CHAT) {
        json_t *msgs = json_object_get(root, "messages");
        if (!json_is_array(msgs) || json_array_size(msgs) == 0)
            FAIL(400, "BadRequestError", "messages: Field required (a non-empty list of messages)");
        json_t *cfm = json_object_get(root, "continue_final_message"), *agp = json_object_get(root, "add_generation_prompt");
        if ((cfm && !json_is_null(cfm) && !json_is_boolean(cfm)) || (agp && !json_is_null(agp) && !json_is_boolean(agp)))
            FAIL(400, "BadRequestError", "continue_final_message, add_generation_prompt: Input should be a valid boolean");
        /* vLLM's ChatCompletionRequest: add_generation_prompt defaults to true */
        int cont = json_is_true(cfm), gen_prompt = !agp || json_is_null(agp) || json_is_true(agp);
        if (cont && gen_prompt)
            FAIL(400, "BadRequestError", "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
        size_t i, last = json_array_size(msgs) - 1;
        json_t *m;
        long long tokens = 0;
        json_array_foreach(msgs, i, m) {
            size_t bytes = 0;
            if (!json_is_object(m))
                FAIL(400, "BadRequestError", "messages.%zu: Input should be a valid dictionary", i);
            json_t *role = json_object_get(m, "role");
            if (cont && i == last) {
                /* The message being continued is output so far, not prompt: the text seed is the
                 * one of the messages before it, and the answer goes on after its tokens. */
                uint64_t ignored = SIM_HASH_INIT;
                if (content_bytes(json_object_get(m, "content"), &bytes, &ignored))
                    FAIL(400, "BadRequestError", "messages.%zu.content: Input should be a valid string or list", i);
                out->text_offset = (int)(bytes / SIM_TOKEN_BYTES);
                tokens += (long long)((bytes + SIM_TOKEN_BYTES - 1) / SIM_TOKEN_BYTES);
                continue;
            }
            if (json_is_string(role))
                h = sim_hash(h, json_string_value(role), json_string_length(role));
            if (content_bytes(json_object_get(m, "content"), &bytes, &h))
                FAIL(400, "BadRequestError", "messages.%zu.content: Input should be a valid string or list", i);
            /* Each message is tokenized on its own; no chat-template overhead is added (see README). */
            if (bytes)
                tokens += (long long)((bytes + SIM_TOKEN_BYTES - 1) / SIM_TOKEN_BYTES);
        }
        out->prompt_tokens = tokens < 1 ? 1 : tokens > 0x3fffffff ? 0x3fffffff : (int)tokens;
    } else {
        json_t *p = json_object_get(root, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1 && !json_is_integer(json_array_get(p, 0)))
            p = json_array_get(p, 0); /* ["text"] or [[ids]] */
        if (json_is_string(p)) {
            h = sim_hash(h, json_string_value(p), json_string_length(p));
            out->prompt_tokens = sim_count_tokens(json_string_length(p));
            completion_prompt = json_string_value(p);
            completion_prompt_len = json_string_length(p);
        } else if (json_is_array(p) && json_array_size(p) > 0) {
            size_t i;
            json_t *id;
            json_array_foreach(p, i, id) {
                if (!json_is_integer(id))
                    FAIL(400, "BadRequestError",
                         "prompt: tlab-sim takes one prompt per request: a string or a list of token ids");
                long long v = json_integer_value(id);
                h = sim_hash(h, &v, sizeof v);
            }
            out->prompt_tokens = (int)json_array_size(p);
        } else if (json_is_array(p) && json_array_size(p) == 0) {
            FAIL(400, "BadRequestError", "Prompt cannot be empty");
        } else {
            FAIL(400, "BadRequestError", "prompt: Field required (a string or a list of token ids)");
        }
    }
    out->prompt_hash = h;

    long long v;
    int present;
    json_t *n = json_object_get(root, "n");
    if (n && !json_is_null(n) && (!json_is_integer(n) || json_integer_value(n) != 1))
        FAIL(400, "BadRequestError", "n: tlab-sim only supports n=1");

    json_t *st = json_object_get(root, "stream");
    if (st && !json_is_null(st) && !json_is_boolean(st))
        FAIL(400, "BadRequestError", "stream: Input should be a valid boolean");
    out->stream = json_is_true(st);
    json_t *so = json_object_get(root, "stream_options");
    if (so && !json_is_null(so)) {
        if (!out->stream)
            FAIL(400, "BadRequestError", "Stream options can only be defined when `stream=True`.");
        out->include_usage = json_is_true(json_object_get(so, "include_usage"));
    }
    json_t *ie = json_object_get(root, "ignore_eos");
    if (ie && !json_is_null(ie) && !json_is_boolean(ie))
        FAIL(400, "BadRequestError", "ignore_eos: Input should be a valid boolean");
    out->ignore_eos = json_is_true(ie);

    json_t *t = json_object_get(root, "temperature");
    out->temperature = 1.0; /* vLLM's default when the request omits it */
    if (t && !json_is_null(t)) {
        if (!json_is_number(t))
            FAIL(400, "BadRequestError", "temperature: Input should be a valid number");
        out->temperature = json_number_value(t);
        if (out->temperature < 0 || isnan(out->temperature))
            FAIL(400, "BadRequestError", "temperature must be non-negative, got %g.", out->temperature);
    }
    if (completion_prompt && out->temperature == 0)
        find_continuation(completion_prompt, completion_prompt_len, &out->prompt_hash, &out->text_offset);
    if (opt_int(root, "seed", &v, &present))
        FAIL(400, "BadRequestError", "seed: Input should be a valid integer");
    if (present) {
        out->has_seed = 1;
        out->seed = (uint64_t)v;
    }

    long long max_tokens = -1;
    if (opt_int(root, "max_tokens", &v, &present))
        FAIL(400, "BadRequestError", "max_tokens: Input should be a valid integer");
    if (present)
        max_tokens = v;
    if (kind == SIM_API_CHAT) {
        if (opt_int(root, "max_completion_tokens", &v, &present))
            FAIL(400, "BadRequestError", "max_completion_tokens: Input should be a valid integer");
        if (present)
            max_tokens = v; /* vLLM prefers max_completion_tokens over the deprecated max_tokens */
    }
    if (opt_int(root, "min_tokens", &v, &present))
        FAIL(400, "BadRequestError", "min_tokens: Input should be a valid integer");
    long long min_tokens = present ? v : 0;

    int p = out->prompt_tokens;
    if (max_tokens < 0 && max_tokens != -1)
        FAIL(400, "BadRequestError", "max_tokens must be at least 1, got %lld.", max_tokens);
    if (max_tokens == 0)
        FAIL(400, "BadRequestError", "max_tokens must be at least 1, got 0.");
    if (p >= max_model_len && max_tokens == -1)
        FAIL(400, "BadRequestError",
             "This model's maximum context length is %d tokens. However, you requested %d tokens in the messages, "
             "Please reduce the length of the messages.",
             max_model_len, p);
    if (max_tokens != -1 && (long long)p + max_tokens > max_model_len)
        FAIL(400, "BadRequestError",
             "This model's maximum context length is %d tokens. However, you requested %lld tokens (%d in the "
             "messages, %lld in the completion). Please reduce the length of the messages or completion.",
             max_model_len, (long long)p + max_tokens, p, max_tokens);
    out->max_tokens = max_tokens == -1 ? max_model_len - p : (int)max_tokens;
    if (min_tokens < 0)
        FAIL(400, "BadRequestError", "min_tokens must be greater than or equal to 0, got %lld.", min_tokens);
    if (min_tokens > out->max_tokens)
        FAIL(400, "BadRequestError", "min_tokens must be less than or equal to max_tokens=%d, got %lld.",
             out->max_tokens, min_tokens);
    out->min_tokens = (int)min_tokens;
    json_decref(root);
    return 0;
}

static const char *object_name(const sim_api_fmt *f, int chunk) {
    if (f->kind == SIM_API_CHAT)
        return chunk ? "chat.completion.chunk" : "chat.completion";
    return "text_completion";
}

void sim_api_chunk(struct evbuffer *out, const sim_api_fmt *f, const char *text, int first, int finish) {
    const char *obj = object_name(f, 1);
    const char *fin = sim_api_finish_str(finish);
    if (f->kind == SIM_API_CHAT) {
        if (first)
            evbuffer_add_printf(out,
                                "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":\"%s\",\"choices\":[{"
                                "\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
                                "\"finish_reason\":null}]}\n\n",
                                f->id, obj, f->created, f->model);
        if (fin)
            evbuffer_add_printf(out,
                                "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":\"%s\",\"choices\":[{"
                                "\"index\":0,\"delta\":{\"content\":\"%s\"},\"logprobs\":null,\"finish_reason\":\"%s\","
                                "\"stop_reason\":null}]}\n\n",
                                f->id, obj, f->created, f->model, text, fin);
        else
            evbuffer_add_printf(out,
                                "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":\"%s\",\"choices\":[{"
                                "\"index\":0,\"delta\":{\"content\":\"%s\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
                                f->id, obj, f->created, f->model, text);
    } else {
        evbuffer_add_printf(out,
                            "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":\"%s\",\"choices\":[{"
                            "\"index\":0,\"text\":\"%s\",\"logprobs\":null,\"finish_reason\":%s%s%s,\"stop_reason\":null}"
                            "]}\n\n",
                            f->id, obj, f->created, f->model, text, fin ? "\"" : "", fin ? fin : "null", fin ? "\"" : "");
    }
}

void sim_api_usage_chunk(struct evbuffer *out, const sim_api_fmt *f, int prompt_tokens, int completion_tokens) {
    evbuffer_add_printf(out,
                        "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%lld,\"model\":\"%s\",\"choices\":[],"
                        "\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d,\"completion_tokens\":%d}}\n\n",
                        f->id, object_name(f, 1), f->created, f->model, prompt_tokens, prompt_tokens + completion_tokens,
                        completion_tokens);
}

void sim_api_done(struct evbuffer *out) { evbuffer_add(out, "data: [DONE]\n\n", 14); }

void sim_api_full(struct evbuffer *out, const sim_api_fmt *f, const char *text, int finish, int prompt_tokens,
                  int completion_tokens) {
    const char *fin = sim_api_finish_str(finish);
    if (f->kind == SIM_API_CHAT)
        evbuffer_add_printf(out,
                            "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,\"model\":\"%s\",\"choices\":[{"
                            "\"index\":0,\"message\":{\"role\":\"assistant\",\"reasoning_content\":null,\"content\":\"%s\","
                            "\"tool_calls\":[]},\"logprobs\":null,\"finish_reason\":\"%s\",\"stop_reason\":null}],",
                            f->id, f->created, f->model, text, fin);
    else
        evbuffer_add_printf(out,
                            "{\"id\":\"%s\",\"object\":\"text_completion\",\"created\":%lld,\"model\":\"%s\",\"choices\":[{"
                            "\"index\":0,\"text\":\"%s\",\"logprobs\":null,\"finish_reason\":\"%s\",\"stop_reason\":null,"
                            "\"prompt_logprobs\":null}],",
                            f->id, f->created, f->model, text, fin);
    evbuffer_add_printf(out,
                        "\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d,\"completion_tokens\":%d,"
                        "\"prompt_tokens_details\":null},%s\"kv_transfer_params\":null}",
                        prompt_tokens, prompt_tokens + completion_tokens, completion_tokens,
                        f->kind == SIM_API_CHAT ? "\"prompt_logprobs\":null," : "");
}
