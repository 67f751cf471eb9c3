/*
 * validate.c - the request checks of validate.h.
 *
 * Messages follow OpenAI's wording ("Missing required parameter: 'messages'.", "Invalid type for
 * 'max_tokens': expected an integer, but got a string instead.") so clients written against the
 * OpenAI API show something familiar. A JSON null for an optional parameter means "absent", as
 * the OpenAI API treats it.
 */
#include "policy/validate.h"

#include "base/json_fast.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const INVALID = "invalid_request_error";

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

static int bad_type(tlab__error *err, const char *param, const char *want, const json_t *got) {
    return tlab__error_set(err, 400, INVALID, param, "Invalid type for '%s': expected %s, but got %s instead.", param, want,
                          type_name(got));
}

static int missing(tlab__error *err, const char *param) {
    return tlab__error_set(err, 400, INVALID, param, "Missing required parameter: '%s'.", param);
}

/* Optional parameters: absent and null both mean "not given". */
static json_t *optional(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static size_t text_bytes_of_content(const json_t *content) {
    if (json_is_string(content))
        return json_string_length(content);
    size_t i, n = 0;
    json_t *part;
    json_array_foreach(content, i, part) {
        json_t *text = json_object_get(part, "text");
        if (json_is_string(text))
            n += json_string_length(text);
    }
    return n;
}

/* The name of element i of `array`, plus `field` ("messages[3].role"). Formatted only when a
 * check fails: a valid request formats no parameter names. */
static const char *element(char *buf, size_t len, const char *array, size_t i, const char *field) {
    snprintf(buf, len, "%s[%zu]%s", array, i, field);
    return buf;
}

static int check_messages(json_t *body, tlab__request_info *info, tlab__error *err) {
    json_t *msgs = json_object_get(body, "messages");
    char param[64];
    if (!msgs)
        return missing(err, "messages");
    if (!json_is_array(msgs))
        return bad_type(err, "messages", "an array", msgs);
    if (json_array_size(msgs) == 0)
        return tlab__error_set(err, 400, INVALID, "messages",
                              "Invalid 'messages': empty array. Expected an array with at least one message.");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        if (!json_is_object(m))
            return bad_type(err, element(param, sizeof param, "messages", i, ""), "an object", m);
        json_t *role = json_object_get(m, "role");
        if (!role)
            return missing(err, element(param, sizeof param, "messages", i, ".role"));
        if (!json_is_string(role))
            return bad_type(err, element(param, sizeof param, "messages", i, ".role"), "a string", role);
        json_t *content = json_object_get(m, "content");
        if (!content || json_is_null(content)) {
            /* An assistant turn that only calls tools carries no content. */
            int tool_turn = strcmp(json_string_value(role), "assistant") == 0 &&
                            (json_object_get(m, "tool_calls") || json_object_get(m, "function_call"));
            if (tool_turn)
                continue;
            return missing(err, element(param, sizeof param, "messages", i, ".content"));
        }
        if (!json_is_string(content) && !json_is_array(content))
            return bad_type(err, element(param, sizeof param, "messages", i, ".content"), "a string or an array of content parts",
                            content);
        info->prompt_bytes += text_bytes_of_content(content);
    }
    return 0;
}

static int check_token_ids(const json_t *ids, const char *param, tlab__request_info *info, tlab__error *err) {
    char sub[64];
    size_t i;
    json_t *id;
    if (json_array_size(ids) == 0)
        return tlab__error_set(err, 400, INVALID, param, "Invalid '%s': empty array. Expected at least one token id.", param);
    json_array_foreach(ids, i, id) {
        if (!json_is_integer(id))
            return bad_type(err, element(sub, sizeof sub, param, i, ""), "an integer token id", id);
        if (json_integer_value(id) < 0)
            return tlab__error_set(err, 400, INVALID, element(sub, sizeof sub, param, i, ""),
                                  "Invalid value for '%s': token ids must be non-negative, but got %" JSON_INTEGER_FORMAT ".", sub,
                                  json_integer_value(id));
    }
    info->prompt_token_ids += json_array_size(ids);
    return 0;
}

static int check_prompt(json_t *body, tlab__request_info *info, tlab__error *err) {
    json_t *prompt = json_object_get(body, "prompt");
    char param[64];
    if (!prompt)
        return missing(err, "prompt");
    if (json_is_string(prompt)) {
        info->prompt_bytes = json_string_length(prompt);
        return 0;
    }
    const char *want = "a string, an array of strings, or an array of token ids";
    if (!json_is_array(prompt))
        return bad_type(err, "prompt", want, prompt);
    if (json_array_size(prompt) == 0)
        return tlab__error_set(err, 400, INVALID, "prompt", "Invalid 'prompt': empty array. Expected %s.", want);

    /* The first element decides which of the three array forms this is; the rest must match it. */
    json_t *first = json_array_get(prompt, 0);
    if (json_is_integer(first))
        return check_token_ids(prompt, "prompt", info, err);
    size_t i;
    json_t *el;
    json_array_foreach(prompt, i, el) {
        if (json_is_string(first)) {
            if (!json_is_string(el))
                return bad_type(err, element(param, sizeof param, "prompt", i, ""), "a string like the other prompts", el);
            info->prompt_bytes += json_string_length(el);
        } else if (json_is_array(first)) {
            if (!json_is_array(el))
                return bad_type(err, element(param, sizeof param, "prompt", i, ""), "an array of token ids like the other prompts",
                                el);
            if (check_token_ids(el, element(param, sizeof param, "prompt", i, ""), info, err) < 0)
                return -1;
        } else {
            return bad_type(err, element(param, sizeof param, "prompt", i, ""), "a string, a token id, or an array of token ids",
                            el);
        }
    }
    return 0;
}

static int check_int(json_t *body, const char *key, long long lo, long long hi, long long *out, tlab__error *err) {
    json_t *v = optional(body, key);
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return bad_type(err, key, "an integer", v);
    long long n = json_integer_value(v);
    if (n < lo || n > hi)
        return tlab__error_set(err, 400, INVALID, key,
                              "Invalid value for '%s': expected an integer from %lld to %lld, but got %lld.", key, lo, hi, n);
    *out = n;
    return 0;
}

/* lo_open: whether `lo` itself is refused (top_p must be > 0). */
static int check_number(json_t *body, const char *key, double lo, int lo_open, double hi, tlab__error *err) {
    json_t *v = optional(body, key);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return bad_type(err, key, "a number", v);
    double d = json_number_value(v);
    if (d < lo || (lo_open && d == lo) || d > hi)
        return tlab__error_set(err, 400, INVALID, key, "Invalid value for '%s': expected a number %s %g and <= %g, but got %g.", key,
                              lo_open ? ">" : ">=", lo, hi, d);
    return 0;
}

static int check_fields(tlab__api_kind kind, json_t *body, const tlab__validate_limits *limits, tlab__request_info *info,
                        tlab__error *err) {
    if ((kind == TLAB_KIND_CHAT ? check_messages(body, info, err) : check_prompt(body, info, err)) < 0)
        return -1;

    json_t *model = optional(body, "model");
    if (model && !json_is_string(model))
        return bad_type(err, "model", "a string", model);
    info->model = json_string_value(model);

    long long max_tokens = -1, max_completion = -1, n = 1;
    if (check_int(body, "max_tokens", 1, limits->max_tokens, &max_tokens, err) < 0 ||
        check_int(body, "max_completion_tokens", 1, limits->max_tokens, &max_completion, err) < 0 ||
        check_number(body, "temperature", 0, 0, 2, err) < 0 || check_number(body, "top_p", 0, 1, 1, err) < 0 ||
        check_int(body, "n", 1, LLONG_MAX, &n, err) < 0)
        return -1;
    info->max_tokens = (long)(max_tokens >= 0 ? max_tokens : max_completion);

    json_t *stream = optional(body, "stream");
    if (stream && !json_is_boolean(stream))
        return bad_type(err, "stream", "a boolean", stream);
    info->stream = json_is_true(stream);
    return 0;
}

int tlab__validate_request(tlab__api_kind kind, const char *body, size_t len, const tlab__validate_limits *limits, json_t **out,
                          tlab__request_info *info, tlab__error *err) {
    tlab__request_info local = {0, -1, 0, 0, NULL};
    json_error_t jerr;
    *out = NULL;
    if ((long long)len > limits->max_body_bytes)
        return tlab__error_set(err, 413, INVALID, NULL, "Request body is %zu bytes; the limit is %lld bytes (limits.max_body_bytes)",
                              len, limits->max_body_bytes);
    if (len == 0)
        return tlab__error_set(err, 400, INVALID, NULL, "Request body is empty; expected a JSON object.");

    /* The quick reader takes the usual body; anything it declines (a non-object, invalid JSON,
     * rarer forms) is parsed by jansson, whose value or error message is then the answer.
     * Any JSON value parses, so that a bare number or string gets "must be an object". */
    json_t *doc = tlab__json_load_body(body, len, &jerr);
    if (!doc)
        return tlab__error_set(err, 400, INVALID, NULL, "Invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
    if (!json_is_object(doc)) {
        tlab__error_set(err, 400, INVALID, NULL, "Request body must be a JSON object, but got %s.", type_name(doc));
        json_decref(doc);
        return -1;
    }
    if (check_fields(kind, doc, limits, &local, err) < 0) {
        json_decref(doc);
        return -1;
    }
    *out = doc;
    *info = local;
    return 0;
}
