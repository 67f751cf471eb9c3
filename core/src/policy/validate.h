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

#include "base/error.h"
#include "request/request_info.h"

typedef struct tlab__validate_limits {
    long long max_body_bytes; /* larger bodies get 413 */
    long max_tokens;          /* max_tokens must be 1..max_tokens */
} tlab__validate_limits;

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
int tlab__validate_request(tlab__api_kind kind, const char *body, size_t len, const tlab__validate_limits *limits,
                          json_t **out, tlab__request_info *info, tlab__error *err);

#endif
