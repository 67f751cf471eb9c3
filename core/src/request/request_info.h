/*
 * request_info.h - what validation learns about a request's body, and which API it calls: the
 * facts admission, the policies and the plugins read without parsing the body again.
 */
#ifndef TLAB_REQUEST_INFO_H
#define TLAB_REQUEST_INFO_H

#include <stddef.h>

typedef enum tlab__api_kind { TLAB_KIND_CHAT = 0, TLAB_KIND_COMPLETIONS = 1 } tlab__api_kind;

/* What the rest of the gateway wants to know about a valid request. */
typedef struct tlab__request_info {
    int stream;              /* "stream": true */
    long max_tokens;         /* -1 when absent (the worker's default applies) */
    size_t prompt_bytes;     /* bytes of text in messages[].content / prompt strings */
    size_t prompt_token_ids; /* number of token ids when prompt is given as ids */
    const char *model;       /* borrowed from the body, NULL when absent (or once the request waits) */
} tlab__request_info;

/* The prompt's size in tokens as the gateway estimates it without a tokenizer: each token id,
 * plus about 4 bytes of text a token (OpenAI's rule of thumb for English). The one estimate that
 * key reservations (auth.c) and the policies (req.prompt_tokens) use. */
static inline long tlab__request_info_prompt_tokens(const tlab__request_info *info) {
    return (long)(info->prompt_token_ids + (info->prompt_bytes + 3) / 4);
}

#endif
