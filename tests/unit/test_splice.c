/*
 * test_splice.c - the stream transcript (core/src/relay/splice.c) and the continuation request
 * (resume_body.c): text decoded from chat and completion chunks (escapes, \u surrogates), token
 * counting, finish, the continuation's role chunk dropped and usage rewritten, partial events
 * refused; and the bodies that continue a chat and a completion.
 */
#include <stdlib.h>
#include <string.h>

#include "relay/resume_body.h"
#include "relay/splice.h"
#include "tlab_test.h"

typedef struct sink {
    char buf[4096];
    size_t len;
} sink;

static void to_sink(void *arg, const char *data, size_t len) {
    sink *k = arg;
    memcpy(k->buf + k->len, data, len);
    k->len += len;
    k->buf[k->len] = '\0';
}

static void feed(tlab__splice *s, sink *k, const char *events) {
    tlab__splice_events(s, events, strlen(events), to_sink, k);
}

static void chat_transcript(void) {
    tlab__splice s;
    sink k = {.len = 0};
    tlab__splice_init(&s, 1);
    feed(&s, &k, "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                 "\"finish_reason\":null}]}\n\n");
    feed(&s, &k, "data: {\"choices\":[{\"delta\":{\"content\":\" a\\\"b\\\\\\n\"},\"finish_reason\":null}]}\n\n"
                 ": keep-alive\n\n"
                 "data: {\"choices\":[{\"delta\":{\"content\":\"\\u00e9\\ud83d\\ude00\"},\"finish_reason\":null}]}\n\n");
    CHECK(s.text && strcmp(s.text, " a\"b\\\n\xc3\xa9\xf0\x9f\x98\x80") == 0);
    CHECK(s.tokens == 2);
    CHECK(tlab__splice_resumable(&s));
    CHECK_STR_CONTAINS(k.buf, ": keep-alive\n\n"); /* everything went out as it came */
    size_t before = k.len;
    /* the continuation: its role chunk is dropped, its tokens pass, its usage counts ours */
    tlab__splice_begin_continuation(&s);
    feed(&s, &k, "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n");
    CHECK(k.len == before);
    feed(&s, &k, "data: {\"choices\":[{\"delta\":{\"content\":\" c\"},\"finish_reason\":null}]}\n\n");
    feed(&s, &k, "data: {\"choices\":[{\"delta\":{\"content\":\"\"},\"finish_reason\":\"length\"}]}\n\n");
    CHECK(s.finished && !tlab__splice_resumable(&s));
    feed(&s, &k, "data: {\"id\":\"y\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"total_tokens\":15,\"completion_tokens\":3}}\n\n"
                 "data: [DONE]\n\n");
    CHECK_STR_CONTAINS(k.buf, "\"usage\":{\"prompt_tokens\":10,\"total_tokens\":15,\"completion_tokens\":5}");
    CHECK_STR_CONTAINS(k.buf, "data: [DONE]\n\n");
    tlab__splice_free(&s);
}

static void completion_transcript_and_partial_event(void) {
    tlab__splice s;
    sink k = {.len = 0};
    tlab__splice_init(&s, 0);
    feed(&s, &k, "data: {\"choices\":[{\"index\":0,\"text\":\" the\",\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    CHECK(s.text && strcmp(s.text, " the") == 0 && s.tokens == 1);
    feed(&s, &k, "data: {\"choices\":[{\"text\":\" and"); /* no boundary: the relay overflowed */
    CHECK(!tlab__splice_resumable(&s));
    CHECK_STR_CONTAINS(k.buf, "\" and");
    tlab__splice_free(&s);
}

static void continuation_bodies(void) {
    char why[128];
    json_t *chat = json_loads("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":10,"
                              "\"min_tokens\":5,\"stream\":true}", 0, NULL);
    char *b = tlab__resume_body(chat, 1, " so far", 7, 3, why, sizeof why);
    CHECK(b != NULL);
    CHECK_STR_CONTAINS(b, "\"max_tokens\":7");
    CHECK_STR_CONTAINS(b, "\"min_tokens\":2");
    CHECK_STR_CONTAINS(b, "{\"role\":\"assistant\",\"content\":\" so far\"}");
    CHECK_STR_CONTAINS(b, "\"continue_final_message\":true");
    CHECK_STR_CONTAINS(b, "\"add_generation_prompt\":false");
    CHECK_STR_CONTAINS(json_string_value(json_object_get(json_array_get(json_object_get(chat, "messages"), 0), "role")), "user");
    CHECK(json_array_size(json_object_get(chat, "messages")) == 1); /* the original is untouched */
    free(b);
    CHECK(tlab__resume_body(chat, 1, " x", 2, 10, why, sizeof why) == NULL);
    CHECK_STR_CONTAINS(why, "max_tokens");
    json_decref(chat);

    json_t *cmpl = json_loads("{\"prompt\":[\"once\"],\"max_completion_tokens\":4}", 0, NULL);
    b = tlab__resume_body(cmpl, 0, " upon", 5, 1, why, sizeof why);
    CHECK(b && strstr(b, "\"prompt\":[\"once upon\"]") && strstr(b, "\"max_completion_tokens\":3"));
    free(b);
    json_decref(cmpl);
    json_t *ids = json_loads("{\"prompt\":[1,2,3]}", 0, NULL);
    CHECK(tlab__resume_body(ids, 0, " a", 2, 1, why, sizeof why) == NULL);
    CHECK_STR_CONTAINS(why, "token ids");
    json_decref(ids);
}

int main(void) {
    chat_transcript();
    completion_transcript_and_partial_event();
    continuation_bodies();
    return tlab_test_finish();
}
