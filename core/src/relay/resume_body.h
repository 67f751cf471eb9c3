/*
 * resume_body.h - the request that continues a stream cut midway, at another worker: the
 * original body with the text already streamed added to it, and max_tokens lowered by the tokens
 * already sent. Chat: the text becomes a final assistant message continued with vLLM's
 * `continue_final_message: true` and `add_generation_prompt: false`; completions: the text is
 * appended to the prompt. At temperature 0 the new worker then writes what the first would have.
 */
#ifndef TLAB_RESUME_BODY_H
#define TLAB_RESUME_BODY_H

#include <stddef.h>

#include <jansson.h>

/* `orig` is the request's body (not changed). Returns the new body (malloc'd, JSON) or NULL with
 * `why` saying why this request cannot be continued (a prompt of token ids, nothing left to
 * generate, out of memory). */
char *tlab__resume_body(const json_t *orig, int chat, const char *text, size_t text_len, long tokens_sent, char *why,
                        size_t why_len);

#endif
