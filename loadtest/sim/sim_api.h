/*
 * sim_api.h - the OpenAI/vLLM wire format for tlab-sim: parsing and validating a chat or completion
 * request body (jansson), and writing replies, SSE chunks and errors in vLLM's exact shapes.
 * No sockets here: output goes to an evbuffer the caller sends.
 */
#ifndef SIM_API_H
#define SIM_API_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum sim_api_kind { SIM_API_CHAT = 1, SIM_API_COMPLETION = 2 };

/* A validated request. */
typedef struct sim_api_req {
    int kind;
    int stream, include_usage;
    int prompt_tokens;
    int max_tokens;   /* resolved: the request's, or max_model_len - prompt_tokens */
    int min_tokens;
    int ignore_eos;
    double temperature;
    int has_seed;
    uint64_t seed;
    uint64_t prompt_hash;
    /* Output tokens already in the prompt: the generation goes on from this token of the text
     * seeded by prompt_hash (chat: continue_final_message; completions: a prompt that ends with
     * the greedy text of the prompt before it). 0 for a fresh answer. */
    int text_offset;
} sim_api_req;

/* What a reply is tagged with. model must already be JSON-safe (see sim_api_json_escape). */
typedef struct sim_api_fmt {
    int kind;
    char id[48];
    long long created;
    const char *model;
} sim_api_fmt;

/*
 * Parses and validates body. Returns 0 on success; otherwise the HTTP status (400 or 404) with
 * vLLM's message in msg and its error type ("BadRequestError", "NotFoundError") in *etype.
 */
int sim_api_parse(int kind, const char *body, size_t len, const char *served_model, int max_model_len, sim_api_req *out,
                  char *msg, size_t msglen, const char **etype);

/*
 * Writes {"error":{"message":...,"type":...,"param":null,"code":...}}: vLLM's ErrorResponse since
 * vllm-project/vllm PR #22099 (v0.10.2, Aug 2025). Older vLLM sent the same fields flat, with
 * "object":"error", which the openai SDKs cannot read ("400 status code (no body)").
 */
void sim_api_error(struct evbuffer *out, const char *msg, const char *type, int code);

/* Writes one SSE event for output token text (role chunk first when first is set, for chat). */
void sim_api_chunk(struct evbuffer *out, const sim_api_fmt *f, const char *text, int first, int finish);
/* Writes the usage-only SSE event (stream_options.include_usage) and nothing else. */
void sim_api_usage_chunk(struct evbuffer *out, const sim_api_fmt *f, int prompt_tokens, int completion_tokens);
/* Writes "data: [DONE]". */
void sim_api_done(struct evbuffer *out);
/* Writes a whole non-streaming reply; text is the full output. */
void sim_api_full(struct evbuffer *out, const sim_api_fmt *f, const char *text, int finish, int prompt_tokens,
                  int completion_tokens);

/* Writes s as a JSON string body (no quotes) into dst; returns dst. */
char *sim_api_json_escape(const char *s, char *dst, size_t dstlen);

/* finish (enum sim_finish) as vLLM's finish_reason string. */
const char *sim_api_finish_str(int finish);

#endif
