/*
 * resume_body.c - the continuation request (resume_body.h).
 */
#include "relay/resume_body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lowers an integer field by `sent`; 0 when absent. -1 when nothing would be left. */
static int lower(json_t *body, const char *key, long sent, int keep_zero) {
    json_t *v = json_object_get(body, key);
    if (!json_is_integer(v))
        return 0;
    json_int_t left = json_integer_value(v) - sent;
    if (left < (keep_zero ? 0 : 1))
        return keep_zero ? (json_object_set_new(body, key, json_integer(0)), 0) : -1;
    json_object_set_new(body, key, json_integer(left));
    return 0;
}

static int continue_chat(json_t *body, const char *text, size_t len) {
    json_t *msgs = json_object_get(body, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return -1;
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    json_t *role = json_object_get(last, "role"), *content = json_object_get(last, "content");
    if (json_is_true(json_object_get(body, "continue_final_message")) && json_is_string(role) &&
        strcmp(json_string_value(role), "assistant") == 0 && json_is_string(content)) {
        /* The client prefilled the answer itself: the streamed text goes on after its prefill. */
        size_t n = json_string_length(content);
        char *joined = malloc(n + len + 1);
        if (!joined)
            return -1;
        memcpy(joined, json_string_value(content), n);
        memcpy(joined + n, text, len);
        joined[n + len] = '\0';
        int rc = json_object_set_new(last, "content", json_stringn(joined, n + len));
        free(joined);
        return rc;
    }
    json_t *m = json_pack("{s:s, s:s%}", "role", "assistant", "content", text, len);
    if (!m || json_array_append_new(msgs, m) != 0)
        return -1;
    json_object_set_new(body, "continue_final_message", json_true());
    json_object_set_new(body, "add_generation_prompt", json_false());
    return 0;
}

static int continue_completion(json_t *body, const char *text, size_t len) {
    json_t *p = json_object_get(body, "prompt");
    json_t *holder = NULL;
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0))) {
        holder = p;
        p = json_array_get(p, 0);
    }
    if (!json_is_string(p))
        return -1;
    size_t n = json_string_length(p);
    char *joined = malloc(n + len + 1);
    if (!joined)
        return -1;
    memcpy(joined, json_string_value(p), n);
    memcpy(joined + n, text, len);
    json_t *s = json_stringn(joined, n + len);
    free(joined);
    return holder ? json_array_set_new(holder, 0, s) : json_object_set_new(body, "prompt", s);
}

char *tlab__resume_body(const json_t *orig, int chat, const char *text, size_t text_len, long tokens_sent, char *why,
                        size_t why_len) {
    json_t *body = json_deep_copy(orig);
    char *out = NULL;
    if (!body) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    if (lower(body, "max_tokens", tokens_sent, 0) != 0 || lower(body, "max_completion_tokens", tokens_sent, 0) != 0) {
        snprintf(why, why_len, "its max_tokens were all sent");
    } else if (lower(body, "min_tokens", tokens_sent, 1), (chat ? continue_chat(body, text ? text : "", text_len)
                                                                : continue_completion(body, text ? text : "", text_len)) != 0) {
        snprintf(why, why_len, chat ? "its messages cannot be continued" : "its prompt is not one string (token ids)");
    } else if (!(out = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        snprintf(why, why_len, "out of memory");
    }
    json_decref(body);
    return out;
}
