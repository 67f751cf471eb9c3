/*
 * validate.h - checks an OpenAI request body before anything is queued.
 *
 * The checks are the gateway's contract with clients (see docs/architecture.md). Unknown fields
 * are left alone and passed through to the worker untouched (vLLM extras: ignore_eos,
 * min_tokens, stream_options, ...).
 */
#ifndef TLAB_VALIDATE_H
#define TLAB_VALIDATE_H

#include <stddef.h>
#include <jansson.h>

typedef enum tlab_api_kind { TLAB_KIND_CHAT = 0, TLAB_KIND_COMPLETIONS = 1 } tlab_api_kind;

typedef struct tlab_validate_limits {
    long long max_body_bytes; /* larger bodies get 413 */
    long max_tokens;          /* max_tokens must be 1..max_tokens */
} tlab_validate_limits;

/* What the rest of the gateway wants to know about a valid request. */
typedef struct tlab_request_info {
    int stream;              /* "stream": true */
    long max_tokens;         /* -1 when absent (the worker's default applies) */
    size_t prompt_bytes;     /* bytes of text in messages[].content / prompt strings */
    size_t prompt_token_ids; /* number of token ids when prompt is given as ids */
    const char *model;       /* borrowed from the body, NULL when absent (or once the request waits) */
} tlab_request_info;

/* An OpenAI-shaped error: {"error":{"message","type","param","code"}}. */
typedef struct tlab_error {
    int status;         /* HTTP status: 400, 413, ... */
    const char *type;   /* "invalid_request_error", ... (static string) */
    char param[64];     /* offending field ("messages[2].role"), "" when none */
    char message[512];
    const char *code;   /* OpenAI's "code" ("invalid_api_key", "rate_limit_exceeded"; static string), NULL = null */
} tlab_error;

/*
 * Parses and checks `body` (len bytes, not necessarily NUL-terminated) for `kind`.
 * On success returns 0, stores the parsed object in *out (caller owns the reference) and fills
 * *info. On failure returns -1 and fills *err; *out is NULL. Checks, in order:
 *  - len <= max_body_bytes, else 413;
 *  - the body is one JSON object, else 400 with the parse error's line and column;
 *  - chat: "messages" is a non-empty array of objects, each with a string "role" and a string or
 *    array "content" (null is allowed for assistant messages with tool_calls);
 *  - completions: "prompt" is a string, a non-empty array of strings, or a non-empty array of
 *    non-negative integer token ids (or an array of such arrays);
 *  - "max_tokens" (and "max_completion_tokens") when present is an integer in 1..max_tokens;
 *  - "temperature" a number in 0..2, "top_p" a number in (0, 1], "stream" a boolean, "n" a
 *    positive integer, "model" a string, when present.
 */
int tlab_validate_request(tlab_api_kind kind, const char *body, size_t len, const tlab_validate_limits *limits,
                          json_t **out, tlab_request_info *info, tlab_error *err);

/* Formats `err` as OpenAI's error JSON into a new malloc'd string (NULL on allocation failure). */
char *tlab_error_json(const tlab_error *err);

/* Convenience: fills *err from parts (printf-style message; code NULL). Returns -1 for tail calls. */
int tlab_error_set(tlab_error *err, int status, const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
