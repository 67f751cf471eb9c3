/*
 * test_sim_api.c - request validation with vLLM's messages (a table of bad bodies), token counting of
 * prompts, and the exact bytes of chunks and errors.
 */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_api.h"
#include "sim_sched.h"
#include "sim_text.h"
#include "tlab_test.h"

/* Passes an array as a pointer, so CHECK_STR_CONTAINS's NULL test does not trip -Waddress. */
static inline const char *S(const char *s) { return s; }

typedef struct bad {
    int kind;
    const char *body;
    int status;
    const char *msg;
} bad;

static const bad bad_cases[] = {
    {SIM_API_CHAT, "{", 400, "JSON decode error"},
    {SIM_API_CHAT, "{\"messages\":[]}", 400, "messages"},
    {SIM_API_CHAT, "{\"model\":\"other\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 404,
     "The model `other` does not exist."},
    {SIM_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":100}", 400,
     "This model's maximum context length is 64 tokens. However, you requested 101 tokens (1 in the messages, 100 in "
     "the completion). Please reduce the length of the messages or completion."},
    {SIM_API_COMPLETION, "{\"prompt\":\"hi\",\"max_tokens\":0}", 400, "max_tokens must be at least 1, got 0."},
    {SIM_API_COMPLETION, "{\"prompt\":\"hi\",\"temperature\":-1}", 400, "temperature must be non-negative"},
    {SIM_API_COMPLETION, "{\"prompt\":\"hi\",\"max_tokens\":5,\"min_tokens\":6}", 400,
     "min_tokens must be less than or equal to max_tokens=5, got 6."},
    {SIM_API_COMPLETION, "{\"prompt\":\"hi\",\"stream_options\":{\"include_usage\":true}}", 400,
     "Stream options can only be defined when `stream=True`."},
    {SIM_API_COMPLETION, "{\"prompt\":[]}", 400, "Prompt cannot be empty"},
    {SIM_API_COMPLETION, "{\"max_tokens\":3}", 400, "prompt"},
    {SIM_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"continue_final_message\":true}", 400,
     "Cannot set both `continue_final_message` and `add_generation_prompt` to True."},
};

static void test_bad(void) {
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad *c = &bad_cases[i];
        sim_api_req r;
        char msg[512] = "";
        const char *etype = NULL;
        int rc = sim_api_parse(c->kind, c->body, strlen(c->body), "m", 64, &r, msg, sizeof msg, &etype);
        CHECK_MSG(rc == c->status, "case %zu: status %d", i, rc);
        CHECK_STR_CONTAINS(S(msg), c->msg);
        CHECK(etype && !strcmp(etype, c->status == 404 ? "NotFoundError" : "BadRequestError"));
    }
}

static void test_counting(void) {
    CHECK(sim_count_tokens(0) == 1 && sim_count_tokens(4) == 1 && sim_count_tokens(5) == 2);
    CHECK(sim_count_tokens(797) == 200 && sim_count_tokens(800) == 200 && sim_count_tokens(801) == 201);
    sim_api_req r;
    char msg[256];
    const char *et;
    const char *ids = "{\"prompt\":[1,2,3,4,5],\"max_tokens\":2,\"ignore_eos\":true}";
    CHECK(sim_api_parse(SIM_API_COMPLETION, ids, strlen(ids), "m", 64, &r, msg, sizeof msg, &et) == 0);
    CHECK(r.prompt_tokens == 5 && r.max_tokens == 2 && r.ignore_eos == 1);
    const char *chat = "{\"messages\":[{\"role\":\"system\",\"content\":\"12345678\"},{\"role\":\"user\",\"content\":"
                       "[{\"type\":\"text\",\"text\":\"abcde\"}]}]}";
    CHECK(sim_api_parse(SIM_API_CHAT, chat, strlen(chat), "m", 64, &r, msg, sizeof msg, &et) == 0);
    CHECK(r.prompt_tokens == 2 + 2);  /* per message, no template overhead */
    CHECK(r.max_tokens == 64 - 4);    /* default: the rest of the context */
    CHECK(r.temperature == 1.0);
    /* Same prompt, same hash; different prompt, different hash. */
    sim_api_req a, b;
    const char *p1 = "{\"prompt\":\"hello\"}", *p2 = "{\"prompt\":\"hellp\"}";
    sim_api_parse(SIM_API_COMPLETION, p1, strlen(p1), "m", 64, &a, msg, sizeof msg, &et);
    sim_api_parse(SIM_API_COMPLETION, p1, strlen(p1), "m", 64, &b, msg, sizeof msg, &et);
    CHECK(a.prompt_hash == b.prompt_hash);
    sim_api_parse(SIM_API_COMPLETION, p2, strlen(p2), "m", 64, &b, msg, sizeof msg, &et);
    CHECK(a.prompt_hash != b.prompt_hash);
    for (int i = 0; i < 100; i++)
        CHECK(strlen(sim_token_text(42, i)) == SIM_TOKEN_BYTES);
}

static char *take(struct evbuffer *b) {
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    return s;
}

static void test_format(void) {
    struct evbuffer *b = evbuffer_new();
    sim_api_fmt f = {.kind = SIM_API_CHAT, .id = "chatcmpl-x", .created = 7, .model = "m"};
    sim_api_chunk(b, &f, " the", 0, SIM_FINISH_NONE);
    char *s = take(b);
    CHECK(!strcmp(s, "data: {\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\","
                     "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" the\"},\"logprobs\":null,\"finish_reason\":null}]}"
                     "\n\n"));
    free(s);
    sim_api_error(b, "bad", "BadRequestError", 400);
    s = take(b);
    CHECK(!strcmp(s, "{\"error\":{\"message\":\"bad\",\"type\":\"BadRequestError\",\"param\":null,\"code\":400}}"));
    free(s);
    f.kind = SIM_API_COMPLETION;
    sim_api_chunk(b, &f, " and", 0, SIM_FINISH_LENGTH);
    s = take(b);
    CHECK_STR_CONTAINS(s, "\"object\":\"text_completion\"");
    CHECK_STR_CONTAINS(s, "\"text\":\" and\",\"logprobs\":null,\"finish_reason\":\"length\",\"stop_reason\":null");
    free(s);
    char esc[64];
    CHECK(!strcmp(sim_api_json_escape("a\"b\\c\n", esc, sizeof esc), "a\\\"b\\\\c\\u000a"));
    evbuffer_free(b);
}

/* Greedy text is prefix-consistent, as on a GPU: a chat continued with continue_final_message,
 * or a completion prompt ending in the text generated for it, goes on where that text stopped. */
static void test_continuation(void) {
    sim_api_req a, b;
    char msg[256], body[1024], gen[64] = "";
    const char *et;
    const char *chat = "{\"messages\":[{\"role\":\"user\",\"content\":\"tell me\"}],\"temperature\":0}";
    CHECK(sim_api_parse(SIM_API_CHAT, chat, strlen(chat), "m", 4096, &a, msg, sizeof msg, &et) == 0 && a.text_offset == 0);
    for (int i = 0; i < 3; i++)
        strcat(gen, sim_token_text(a.prompt_hash, i));
    snprintf(body, sizeof body,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"tell me\"},{\"role\":\"assistant\",\"content\":\"%s\"}],"
             "\"continue_final_message\":true,\"add_generation_prompt\":false,\"temperature\":0}", gen);
    CHECK(sim_api_parse(SIM_API_CHAT, body, strlen(body), "m", 4096, &b, msg, sizeof msg, &et) == 0);
    CHECK(b.prompt_hash == a.prompt_hash && b.text_offset == 3 && b.prompt_tokens == a.prompt_tokens + 3);

    const char *cmpl = "{\"prompt\":\"once upon a time\",\"temperature\":0}";
    CHECK(sim_api_parse(SIM_API_COMPLETION, cmpl, strlen(cmpl), "m", 4096, &a, msg, sizeof msg, &et) == 0 && a.text_offset == 0);
    gen[0] = '\0';
    for (int i = 0; i < 5; i++)
        strcat(gen, sim_token_text(a.prompt_hash, i));
    snprintf(body, sizeof body, "{\"prompt\":\"once upon a time%s\",\"temperature\":0}", gen);
    CHECK(sim_api_parse(SIM_API_COMPLETION, body, strlen(body), "m", 4096, &b, msg, sizeof msg, &et) == 0);
    CHECK(b.prompt_hash == a.prompt_hash && b.text_offset == 5);
    /* the same words in another order are a new prompt */
    snprintf(body, sizeof body, "{\"prompt\":\"once upon a time%s%s\",\"temperature\":0}", sim_token_text(a.prompt_hash, 1),
             sim_token_text(a.prompt_hash, 0));
    CHECK(sim_api_parse(SIM_API_COMPLETION, body, strlen(body), "m", 4096, &b, msg, sizeof msg, &et) == 0);
    CHECK(b.text_offset == 0 || b.prompt_hash != a.prompt_hash);
}

int main(void) {
    test_bad();
    test_continuation();
    test_counting();
    test_format();
    return tlab_test_finish();
}
