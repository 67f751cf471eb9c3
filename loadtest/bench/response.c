/*
 * response.c - turns response bytes into a request record (see response.h).
 */
#include "response.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static void read_usage(tlab_req *rec, json_t *root) {
    json_t *usage = json_object_get(root, "usage");
    if (!json_is_object(usage))
        return;
    json_t *out = json_object_get(usage, "completion_tokens"), *in = json_object_get(usage, "prompt_tokens");
    if (json_is_integer(out))
        rec->usage_out = (int32_t)json_integer_value(out);
    if (json_is_integer(in))
        rec->usage_in = (int32_t)json_integer_value(in);
}

static int chunk_has_text(json_t *root) {
    json_t *choices = json_object_get(root, "choices");
    json_t *c0 = json_array_get(choices, 0);
    if (!c0)
        return 0;
    json_t *text = json_object_get(c0, "text");
    if (!text) {
        json_t *delta = json_object_get(c0, "delta");
        text = json_object_get(delta, "content");
        if (!text) /* some servers stream reasoning separately; it is still generated tokens */
            text = json_object_get(delta, "reasoning_content");
    }
    return json_is_string(text) && json_string_length(text) > 0;
}

static void on_event(void *arg, const char *data, size_t len) {
    tlab_response *r = arg;
    tlab_req *rec = r->rec;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        r->saw_done = 1;
        return;
    }
    json_t *root = json_loadb(data, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        r->stream_error = 1;
        return;
    }
    if (json_object_get(root, "error")) {
        r->stream_error = 1;
    } else {
        if (chunk_has_text(root)) {
            if (rec->first < 0) {
                rec->first = r->now;
            } else if (tlab_req_add_itl(rec, r->now - rec->last) != 0) {
                r->oom = 1;
            }
            rec->last = r->now;
            rec->chunks++;
        }
        read_usage(rec, root);
    }
    json_decref(root);
}

void tlab_response_init(tlab_response *r, tlab_req *rec) {
    memset(r, 0, sizeof *r);
    r->rec = rec;
}

void tlab_response_headers(tlab_response *r, int status, int is_event_stream) {
    r->rec->status = (int16_t)status;
    r->is_sse = is_event_stream && status >= 200 && status < 300;
    if (r->is_sse)
        tlab_sse_init(&r->sse, on_event, r);
}

void tlab_response_data(tlab_response *r, const char *data, size_t len, double now) {
    r->now = now;
    if (r->is_sse) {
        if (tlab_sse_feed(&r->sse, data, len) != 0)
            r->oom = 1;
        return;
    }
    if (r->rec->first < 0 && len)
        r->rec->first = now;
    if (r->rec->status >= 300)
        return; /* error bodies are not kept: the status says enough */
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b) {
            r->oom = 1;
            return;
        }
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
}

static tlab_kind finish_kind(tlab_response *r, tlab_http_result result) {
    tlab_req *rec = r->rec;
    switch (result) {
    case TLAB_HTTP_TIMEOUT: return TLAB_K_TIMEOUT;
    case TLAB_HTTP_CONNECT: return TLAB_K_CONNECT;
    case TLAB_HTTP_NO_RESPONSE: return TLAB_K_NO_RESPONSE;
    case TLAB_HTTP_BROKEN: return rec->status >= 300 ? TLAB_K_HTTP : TLAB_K_BROKEN_STREAM;
    case TLAB_HTTP_FAILED: return TLAB_K_NO_RESPONSE;
    case TLAB_HTTP_DONE: break;
    }
    if (rec->status < 200 || rec->status >= 300)
        return TLAB_K_HTTP;
    if (r->oom)
        return TLAB_K_BAD_RESPONSE;
    if (r->is_sse)
        return r->stream_error || !r->saw_done ? TLAB_K_BROKEN_STREAM : TLAB_K_OK;
    json_t *root = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    if (!json_is_object(root) || json_object_get(root, "error")) {
        json_decref(root);
        return TLAB_K_BAD_RESPONSE;
    }
    read_usage(rec, root);
    /* A whole body arrives at once: it counts as one chunk when it has text. */
    if (json_array_size(json_object_get(root, "choices")) > 0)
        rec->chunks = 1;
    json_decref(root);
    return TLAB_K_OK;
}

void tlab_response_finish(tlab_response *r, tlab_http_result result, double now) {
    r->rec->done = now;
    r->rec->kind = (uint8_t)finish_kind(r, result);
    if (r->is_sse)
        tlab_sse_free(&r->sse);
    free(r->body);
    r->body = NULL;
}
