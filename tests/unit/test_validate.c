/*
 * test_validate.c - request validation: a table of bad bodies with the status, message fragment
 * and param each must produce, a table of good bodies with the request info they yield, and the
 * shape of the error JSON sent to clients.
 */
#include <stdlib.h>
#include <string.h>

#include "tlab_test.h"
#include "policy/validate.h"

#define CHAT TLAB_KIND_CHAT
#define COMPL TLAB_KIND_COMPLETIONS

static const tlab__validate_limits limits = {.max_body_bytes = 4096, .max_tokens = 1000};

typedef struct bad_case {
    tlab__api_kind kind;
    const char *body;
    int status;
    const char *needle; /* substring of the message */
    const char *param;  /* "" when the error names no field */
} bad_case;

#define M "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

/* clang-format off: one case per line reads better than the formatter's column layout */
static const bad_case bad_cases[] = {
    /* not a JSON object */
    {CHAT, "", 400, "Request body is empty", ""},
    {CHAT, "hello", 400, "Invalid JSON at line 1, column 5: invalid token near 'hello'", ""},
    {CHAT, "{\"messages\": [\n  {\"role\": \"user\",\n   \"content\": \"hi\"", 400,
     "Invalid JSON at line 3, column 18: '}' expected near end of file", ""},
    {CHAT, "{\"a\":1}}", 400, "Invalid JSON at line 1, column 8: end of file expected", ""},
    {CHAT, "{\"a\":1, }", 400, "Invalid JSON at line 1, column 9", ""},
    {CHAT, "[{" M "}]", 400, "must be a JSON object, but got an array", ""},
    {COMPL, "42", 400, "must be a JSON object, but got an integer", ""},
    {CHAT, "null", 400, "must be a JSON object, but got null", ""},
    /* chat messages */
    {CHAT, "{}", 400, "Missing required parameter: 'messages'.", "messages"},
    {CHAT, "{\"messages\":[]}", 400, "Invalid 'messages': empty array", "messages"},
    {CHAT, "{\"messages\":\"hi\"}", 400, "Invalid type for 'messages': expected an array, but got a string instead.", "messages"},
    {CHAT, "{\"messages\":{}}", 400, "expected an array, but got an object", "messages"},
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}, \"b\"]}", 400,
     "Invalid type for 'messages[1]': expected an object", "messages[1]"},
    {CHAT, "{\"messages\":[{\"content\":\"a\"}]}", 400, "Missing required parameter: 'messages[0].role'.", "messages[0].role"},
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":1,\"content\":\"b\"}]}", 400,
     "Invalid type for 'messages[1].role': expected a string, but got an integer instead.", "messages[1].role"},
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400, "Invalid type for 'messages[0].content'",
     "messages[0].content"},
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":{}}]}", 400, "but got an object instead", "messages[0].content"},
    {CHAT, "{\"messages\":[{\"role\":\"user\"}]}", 400, "Missing required parameter: 'messages[0].content'.",
     "messages[0].content"},
    {CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":null,\"tool_calls\":[]}]}", 400, "Missing required parameter",
     "messages[0].content"},
    {CHAT, "{\"messages\":[{\"role\":\"assistant\",\"content\":null}]}", 400, "Missing required parameter", "messages[0].content"},
    /* completions prompt */
    {COMPL, "{\"model\":\"m\"}", 400, "Missing required parameter: 'prompt'.", "prompt"},
    {COMPL, "{\"prompt\":5}", 400, "Invalid type for 'prompt': expected a string, an array of strings, or an array of token ids",
     "prompt"},
    {COMPL, "{\"prompt\":null}", 400, "but got null instead", "prompt"},
    {COMPL, "{\"prompt\":[]}", 400, "Invalid 'prompt': empty array", "prompt"},
    {COMPL, "{\"prompt\":[\"a\", 1]}", 400, "Invalid type for 'prompt[1]': expected a string like the other prompts", "prompt[1]"},
    {COMPL, "{\"prompt\":[1, \"a\"]}", 400, "Invalid type for 'prompt[1]': expected an integer token id, but got a string",
     "prompt[1]"},
    {COMPL, "{\"prompt\":[1, 2, -3]}", 400, "Invalid value for 'prompt[2]': token ids must be non-negative, but got -3.",
     "prompt[2]"},
    {COMPL, "{\"prompt\":[1, 2.5]}", 400, "expected an integer token id, but got a number", "prompt[1]"},
    {COMPL, "{\"prompt\":[[1, 2], [3, -1]]}", 400, "token ids must be non-negative", "prompt[1][1]"},
    {COMPL, "{\"prompt\":[[1, 2], []]}", 400, "Invalid 'prompt[1]': empty array", "prompt[1]"},
    {COMPL, "{\"prompt\":[[1], 2]}", 400, "expected an array of token ids like the other prompts", "prompt[1]"},
    {COMPL, "{\"prompt\":[{}]}", 400, "Invalid type for 'prompt[0]'", "prompt[0]"},
    {COMPL, "{\"prompt\":[true]}", 400, "but got a boolean instead", "prompt[0]"},
    /* sampling parameters */
    {CHAT, "{" M ",\"max_tokens\":0}", 400, "Invalid value for 'max_tokens': expected an integer from 1 to 1000, but got 0.",
     "max_tokens"},
    {CHAT, "{" M ",\"max_tokens\":-1}", 400, "but got -1.", "max_tokens"},
    {CHAT, "{" M ",\"max_tokens\":1001}", 400, "from 1 to 1000, but got 1001.", "max_tokens"},
    {CHAT, "{" M ",\"max_tokens\":99999999999999999999}", 400, "Invalid JSON", ""},
    {COMPL, "{\"prompt\":\"x\",\"max_tokens\":10.0}", 400,
     "Invalid type for 'max_tokens': expected an integer, but got a number instead.", "max_tokens"},
    {CHAT, "{" M ",\"max_tokens\":\"10\"}", 400, "expected an integer, but got a string", "max_tokens"},
    {CHAT, "{" M ",\"max_completion_tokens\":5000}", 400, "Invalid value for 'max_completion_tokens'", "max_completion_tokens"},
    {CHAT, "{" M ",\"temperature\":\"0.5\"}", 400, "Invalid type for 'temperature': expected a number, but got a string",
     "temperature"},
    {CHAT, "{" M ",\"temperature\":3.5}", 400, "Invalid value for 'temperature': expected a number >= 0 and <= 2, but got 3.5.",
     "temperature"},
    {CHAT, "{" M ",\"temperature\":-0.1}", 400, "but got -0.1.", "temperature"},
    {CHAT, "{" M ",\"top_p\":0}", 400, "Invalid value for 'top_p': expected a number > 0 and <= 1, but got 0.", "top_p"},
    {COMPL, "{\"prompt\":\"x\",\"top_p\":1.01}", 400, "Invalid value for 'top_p'", "top_p"},
    {CHAT, "{" M ",\"stream\":\"yes\"}", 400, "Invalid type for 'stream': expected a boolean, but got a string instead.", "stream"},
    {CHAT, "{" M ",\"stream\":1}", 400, "expected a boolean, but got an integer", "stream"},
    {CHAT, "{" M ",\"n\":0}", 400, "Invalid value for 'n': expected an integer from 1 to", "n"},
    {CHAT, "{" M ",\"n\":1.5}", 400, "Invalid type for 'n'", "n"},
    {CHAT, "{" M ",\"model\":7}", 400, "Invalid type for 'model': expected a string, but got an integer", "model"},
    /* size */
    {CHAT, "{" M ",\"pad\":\"%PAD%\"}", 413, "Request body is 4116 bytes; the limit is 4096 bytes (limits.max_body_bytes)", ""},
};
/* clang-format on */

/* Expands "%PAD%" so the over-limit case need not spell out four kilobytes. */
static char *expand(const char *body) {
    const char *pad = strstr(body, "%PAD%");
    size_t len = strlen(body);
    if (!pad)
        return strdup(body);
    size_t fill = 4096 - (len - 5) + 20;
    char *out = malloc(len + fill + 1);
    memcpy(out, body, (size_t)(pad - body));
    memset(out + (pad - body), 'x', fill);
    strcpy(out + (pad - body) + fill, pad + 5);
    return out;
}

static void run_bad_cases(void) {
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        char *body = expand(c->body);
        json_t *out = (json_t *)1;
        tlab__request_info info;
        tlab__error err;
        memset(&err, 0, sizeof err);
        /* Not NUL-terminated at len: the validator must honour len, not strlen. */
        size_t len = strlen(body);
        char *copy = malloc(len + 1);
        memcpy(copy, body, len);
        copy[len] = '}';
        int rc = tlab__validate_request(c->kind, copy, len, &limits, &out, &info, &err);
        CHECK_MSG(rc == -1, "case %zu: expected failure", i);
        CHECK_MSG(out == NULL, "case %zu: *out must be NULL on failure", i);
        CHECK_MSG(err.status == c->status, "case %zu: status %d, want %d", i, err.status, c->status);
        CHECK_MSG(strstr(err.message, c->needle) != NULL, "case %zu: '%s' lacks '%s'", i, err.message, c->needle);
        CHECK_MSG(strcmp(err.param, c->param) == 0, "case %zu: param '%s', want '%s'", i, err.param, c->param);
        CHECK_MSG(err.type && strcmp(err.type, "invalid_request_error") == 0, "case %zu: type", i);
        free(copy);
        free(body);
    }
}

typedef struct good_case {
    tlab__api_kind kind;
    const char *body;
    int stream;
    long max_tokens;
    size_t prompt_bytes, prompt_token_ids;
    const char *model; /* NULL when absent */
} good_case;

static const good_case good_cases[] = {
    {CHAT, "{" M "}", 0, -1, 2, 0, NULL},
    {CHAT,
     "{\"model\":\"qwen\",\"messages\":[{\"role\":\"system\",\"content\":\"abc\"},{\"role\":\"user\",\"content\":\"hello\"}],"
     "\"max_tokens\":200,\"temperature\":0,\"top_p\":1,\"n\":1,\"stream\":true}",
     1, 200, 8, 0, "qwen"},
    {CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"four\"},"
     "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},{\"type\":\"text\",\"text\":\"ab\"}]}]}",
     0, -1, 6, 0, NULL},
    {CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},"
     "{\"role\":\"tool\",\"content\":\"r\"}],\"max_completion_tokens\":7}",
     0, 7, 2, 0, NULL},
    {CHAT, "{" M ",\"max_tokens\":1000,\"max_completion_tokens\":5}", 0, 1000, 2, 0, NULL},
    {CHAT, "{" M ",\"max_tokens\":null,\"temperature\":null,\"stream\":null,\"model\":null}", 0, -1, 2, 0, NULL},
    {CHAT, "{" M ",\"temperature\":2,\"top_p\":0.001,\"stream\":false}", 0, -1, 2, 0, NULL},
    {COMPL, "{\"model\":\"m\",\"prompt\":\"hello world\",\"max_tokens\":1}", 0, 1, 11, 0, "m"},
    {COMPL, "{\"prompt\":\"\"}", 0, -1, 0, 0, NULL},
    {COMPL, "{\"prompt\":[\"ab\",\"cde\"],\"stream\":true}", 1, -1, 5, 0, NULL},
    {COMPL, "{\"prompt\":[0, 1, 151643]}", 0, -1, 0, 3, NULL},
    {COMPL, "{\"prompt\":[[1, 2], [3], [4, 5, 6]],\"n\":3}", 0, -1, 0, 6, NULL},
    {COMPL, "\n  {\"prompt\": \"caf\xc3\xa9\"}  \n", 0, -1, 5, 0, NULL},
};

static void run_good_cases(void) {
    for (size_t i = 0; i < sizeof good_cases / sizeof good_cases[0]; i++) {
        const good_case *c = &good_cases[i];
        json_t *out = NULL;
        tlab__request_info info;
        tlab__error err;
        memset(&info, 0x5a, sizeof info);
        int rc = tlab__validate_request(c->kind, c->body, strlen(c->body), &limits, &out, &info, &err);
        CHECK_MSG(rc == 0, "good case %zu: %s", i, rc ? err.message : "");
        if (rc)
            continue;
        CHECK_MSG(json_is_object(out), "good case %zu: out", i);
        CHECK_MSG(info.stream == c->stream, "good case %zu: stream %d", i, info.stream);
        CHECK_MSG(info.max_tokens == c->max_tokens, "good case %zu: max_tokens %ld", i, info.max_tokens);
        CHECK_MSG(info.prompt_bytes == c->prompt_bytes, "good case %zu: prompt_bytes %zu", i, info.prompt_bytes);
        CHECK_MSG(info.prompt_token_ids == c->prompt_token_ids, "good case %zu: token ids %zu", i, info.prompt_token_ids);
        CHECK_MSG(c->model ? info.model && strcmp(info.model, c->model) == 0 : info.model == NULL, "good case %zu: model", i);
        json_decref(out);
    }
}

/* vLLM extras must reach the worker exactly as the client sent them. */
static void test_passthrough(void) {
    const char *body = "{\"model\":\"m\",\"prompt\":[1,2],\"ignore_eos\":true,\"min_tokens\":3,"
                       "\"stream_options\":{\"include_usage\":true},\"x_custom\":[null,{\"a\":1.5}]}";
    json_t *out = NULL;
    tlab__request_info info;
    tlab__error err;
    CHECK(tlab__validate_request(COMPL, body, strlen(body), &limits, &out, &info, &err) == 0);
    json_t *orig = json_loads(body, 0, NULL);
    CHECK(json_equal(out, orig));
    CHECK(json_is_true(json_object_get(out, "ignore_eos")));
    CHECK(json_integer_value(json_object_get(out, "min_tokens")) == 3);
    json_decref(orig);
    json_decref(out);
}

/* The body exactly at the limit is accepted; one byte more is not. */
static void test_limit_edge(void) {
    char body[65], xs[52];
    tlab__validate_limits small = {.max_body_bytes = 64, .max_tokens = 10};
    json_t *out = NULL;
    tlab__request_info info;
    tlab__error err;
    memset(xs, 'x', sizeof xs - 1);
    xs[sizeof xs - 1] = '\0';
    int n = snprintf(body, sizeof body, "{\"prompt\":\"%s\"}", xs);
    CHECK(n == 64);
    CHECK(tlab__validate_request(COMPL, body, 64, &small, &out, &info, &err) == 0);
    json_decref(out);
    small.max_body_bytes = 63;
    CHECK(tlab__validate_request(COMPL, body, 64, &small, &out, &info, &err) == -1);
    CHECK(err.status == 413 && out == NULL);
}

static void check_error_json(const tlab__error *e, const char *want_param) {
    char *s = tlab__error_json(e);
    CHECK(s != NULL);
    if (!s)
        return;
    json_error_t jerr;
    json_t *doc = json_loads(s, 0, &jerr);
    CHECK_MSG(doc != NULL, "error JSON does not parse: %s: %s", s, jerr.text);
    CHECK(json_object_size(doc) == 1);
    json_t *inner = json_object_get(doc, "error");
    CHECK(json_is_object(inner) && json_object_size(inner) == 4);
    CHECK(json_is_string(json_object_get(inner, "message")));
    CHECK(json_is_string(json_object_get(inner, "type")));
    CHECK(json_is_null(json_object_get(inner, "code")));
    json_t *param = json_object_get(inner, "param");
    if (want_param)
        CHECK(json_is_string(param) && strcmp(json_string_value(param), want_param) == 0);
    else
        CHECK(json_is_null(param));
    json_decref(doc);
    free(s);
}

static void test_error_json(void) {
    tlab__error e;
    CHECK(tlab__error_set(&e, 400, "invalid_request_error", "messages[1].role", "bad \"%s\"\n\\ %d", "role", 7) == -1);
    CHECK(e.status == 400 && strcmp(e.param, "messages[1].role") == 0);
    char *s = tlab__error_json(&e);
    CHECK(s && strcmp(s, "{\"error\":{\"message\":\"bad \\\"role\\\"\\n\\\\ 7\",\"type\":\"invalid_request_error\","
                         "\"param\":\"messages[1].role\",\"code\":null}}") == 0);
    free(s);
    check_error_json(&e, "messages[1].role");

    tlab__error_set(&e, 413, "invalid_request_error", NULL, "too big");
    check_error_json(&e, NULL);

    /* jansson quotes body bytes in its parse errors; invalid UTF-8 there must not lose the body. */
    json_t *out;
    tlab__request_info info;
    const char bad[] = "{\"a\": \xff\xfe}";
    CHECK(tlab__validate_request(CHAT, bad, sizeof bad - 1, &limits, &out, &info, &e) == -1);
    CHECK_MSG(strstr(e.message, "Invalid JSON at line 1") != NULL, "%s", e.message);
    check_error_json(&e, NULL);

    /* A message cut by the 512-byte buffer in the middle of a UTF-8 sequence still encodes. */
    char longmsg[600];
    memset(longmsg, 'a', sizeof longmsg);
    for (size_t i = 500; i + 2 < sizeof longmsg; i += 2)
        memcpy(longmsg + i, "\xc3\xa9", 2);
    longmsg[sizeof longmsg - 1] = '\0';
    tlab__error_set(&e, 400, "invalid_request_error", "", "%s", longmsg);
    check_error_json(&e, NULL);
}

int main(void) {
    run_bad_cases();
    run_good_cases();
    test_passthrough();
    test_limit_edge();
    test_error_json();
    return tlab_test_finish();
}
