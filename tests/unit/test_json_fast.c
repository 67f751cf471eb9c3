/*
 * test_json_fast.c - the quick body reader (json_fast.c) against jansson's json_loadb.
 *
 * The one rule: whatever the quick reader returns, json_loadb(JSON_DECODE_ANY) returns too,
 * value for value and key for key (compared as compact dumps, which also tell 1 from 1.0).
 * A table says for each input whether the quick reader should take it (the common forms must
 * not fall back to jansson, or the reader is pointless), leave it to jansson, or see it refused
 * by both; then thousands of mutations of request bodies check the rule on inputs nobody wrote.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/json_fast.h"
#include "tlab_test.h"

enum { FAST, JANSSON, INVALID };

typedef struct json_case {
    int want;
    const char *text;
    size_t len; /* 0: strlen(text) */
} json_case;

/* clang-format off */
static const json_case cases[] = {
    /* what clients send */
    {FAST, "{\"model\":\"Qwen/Qwen2.5-0.5B-Instruct\",\"messages\":[{\"role\":\"user\",\"content\":\"Say ok.\"}],\"max_tokens\":1,\"stream\":false}", 0},
    {FAST, " {\n\t\"prompt\" : [1, 2, 3],\r\n \"temperature\": 0.7, \"top_p\": 1e-3, \"n\": null, \"echo\": true }\n", 0},
    {FAST, "{}", 0},
    {FAST, "{\"a\":[]}", 0},
    {FAST, "{\"a\":[[],{},[{}]]}", 0},
    {FAST, "{\"\":\"\"}", 0},
    {FAST, "{\"esc\":\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t\"}", 0},
    {FAST, "{\"u\":\"\\u00e9\\u4e2d\\ud83d\\ude00 \\u0041\"}", 0},
    {FAST, "{\"k\\u00e9y\":1,\"k\\ty\":2}", 0},
    {FAST, "{\"raw\":\"caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80\"}", 0},
    {FAST, "{\"n\":[0,-0,7,-7,123456789012345678,-123456789012345678]}", 0},
    {FAST, "{\"r\":[0.0,-0.0,1.5,-2.25e3,1E2,1e+2,1e-2,0.1,1e-400,2.2250738585072014e-308]}", 0},
    {FAST, "{\"dup\":1,\"other\":2,\"dup\":3}", 0},
    {FAST, "{\"del\":\"\x7f\"}", 0},
    {FAST, "{\"k\\u00e9\":\"v\\n\",\"a\\/b\":{\"c\\\"d\":[\"e\\\\f\",{\"g\\th\":\"\\u00e9\"}]}}", 0}, /* escaped keys, escaped values after them */
    {FAST, "{\"lit\":\"\\\\ud800 \\\\u0000\"}", 0}, /* an escaped backslash, then text: no escape */
    {FAST, "{\"r\":1.00000000000000000000000000000000000000000000000000000000000001}", 0}, /* 64 characters */
    /* valid, but left to jansson */
    {JANSSON, "[1]", 0},
    {JANSSON, "\"text\"", 0},
    {JANSSON, "42", 0},
    {JANSSON, "{\"big\":1234567890123456789}", 0},
    {JANSSON, "{\"big\":-9223372036854775808}", 0},
    {JANSSON, "{\"r\":1.00000000000000000000000000000000000000000000000000000000000000000001}", 0},
    {JANSSON, "{\"r\":1.000000000000000000000000000000000000000000000000000000000000001}", 0}, /* 65 */
    {JANSSON, "{\"deep\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", 0},
    /* invalid: both refuse (jansson's message is the one the client gets) */
    {INVALID, "", 0},
    {INVALID, "{", 0},
    {INVALID, "{\"a\":1", 0},
    {INVALID, "{\"a\":1,}", 0},
    {INVALID, "{\"a\" 1}", 0},
    {INVALID, "{a:1}", 0},
    {INVALID, "{\"a\":1}}", 0},
    {INVALID, "{\"a\":1} x", 0},
    {INVALID, "{\"a\":01}", 0},
    {INVALID, "{\"a\":-}", 0},
    {INVALID, "{\"a\":1.}", 0},
    {INVALID, "{\"a\":.5}", 0},
    {INVALID, "{\"a\":1e}", 0},
    {INVALID, "{\"a\":+1}", 0},
    {INVALID, "{\"a\":1x}", 0},
    {INVALID, "{\"a\":truex}", 0},
    {INVALID, "{\"a\":tru}", 0},
    {INVALID, "{\"a\":True}", 0},
    {INVALID, "{\"a\":1e400}", 0},
    {INVALID, "{\"a\":-1e400}", 0},
    {INVALID, "{\"a\":99999999999999999999}", 0},
    {INVALID, "{\"a\":\"\\u0000\"}", 0},
    {INVALID, "{\"a\":\"\\ud800\"}", 0},
    {INVALID, "{\"a\":\"\\ud800\\u0041\"}", 0},
    {INVALID, "{\"a\":\"\\udc00\"}", 0},
    {INVALID, "{\"a\":\"\\u12\"}", 0},
    {INVALID, "{\"a\":\"\\x\"}", 0},
    {INVALID, "{\"a\":\"tab\there\"}", 0},
    {INVALID, "{\"a\":\"nl\nhere\"}", 0},
    {INVALID, "{\"a\":\"bad \xc3\x28\"}", 0},
    {INVALID, "{\"a\":\"overlong \xc0\xaf\"}", 0},
    {INVALID, "{\"a\":\"surrogate \xed\xa0\x80\"}", 0},
    {INVALID, "{\"a\":\"too big \xf4\x90\x80\x80\"}", 0},
    {INVALID, "{\"k\xff\":1}", 0},
    {INVALID, "{\"a\":\"cut", 0},
    {INVALID, "{\"a\":\"x\"\0}", 10},
    {INVALID, "\xef\xbb\xbf{}", 0},
    /* what yajl alone would take: \v and \f as whitespace, comments, more values, lone surrogates */
    {INVALID, "{\"a\":1\f}", 0},
    {INVALID, "{\v\"a\":1}", 0},
    {INVALID, "{\"a\":1}\v", 0},
    {INVALID, "{/*c*/\"a\":1}", 0},
    {INVALID, "{\"a\":1}//c", 0},
    {INVALID, "{}{}", 0},
    {INVALID, "{}\"nudi", 0}, /* found by fuzz_validate: yajl takes an unfinished token after the root */
    {INVALID, "{}\"x}", 0},
    {INVALID, "{\"a\":1} tru", 0},
    {INVALID, "{\"a\":1}\n-", 0},
    {INVALID, "{} \"", 0},
    {INVALID, "{}\"\\u12", 0},
    {INVALID, "{}1", 0},
    {INVALID, "{\"a\":\"x\\ud800y\"}", 0},
    {INVALID, "{\"a\":\"\\ud800\\ud800\"}", 0},
    {INVALID, "{\"a\":\"\\udbff\\ue000\"}", 0},
    {INVALID, "{\"\\ud800\":1}", 0},
    {INVALID, "{\"k\\u0000\":1}", 0},
    {INVALID, "{\"a\":\"\\ud800\\", 0},
    {INVALID, "{\"a\":\"past U+10FFFF \xf7\xbf\xbf\xbf\"}", 0},
    {INVALID, "{\"\xc0\xaf\":1}", 0},
    {INVALID, "{\"\xed\xa0\x80\":1}", 0},
};
/* clang-format on */

/* The rule, for one input. Returns what happened: FAST, JANSSON or INVALID. */
static int check_one(const char *text, size_t len) {
    json_error_t jerr;
    json_t *fast = tlab__json_fast_object(text, len);
    json_t *ref = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    int got = fast ? FAST : ref ? JANSSON : INVALID;
    if (fast) {
        char *a = json_dumps(fast, JSON_COMPACT | JSON_ENCODE_ANY);
        char *b = ref ? json_dumps(ref, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        CHECK_MSG(b && strcmp(a, b) == 0 && json_equal(fast, ref), "%.*s: quick reader %s, jansson %s", (int)len, text, a,
                  b ? b : jerr.text);
        free(a);
        free(b);
    }
    json_decref(fast);
    json_decref(ref);
    return got;
}

static void test_table(void) {
    static const char *const names[] = {"the quick reader", "jansson only", "refused"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const json_case *c = &cases[i];
        int got = check_one(c->text, c->len ? c->len : strlen(c->text));
        CHECK_MSG(got == c->want, "case %zu (%s): wanted %s, got %s", i, c->text, names[c->want], names[got]);
    }
}

/* Nesting: the quick reader takes MAX_DEPTH (32) levels of containers and leaves deeper ones to
 * jansson, which refuses a value deeper than 2048 (counting the root as 1; yajl alone has no
 * limit). */
static void test_depth(void) {
    static const int levels[] = {32, 33, 2047, 2048, 5000};
    static const int want[] = {FAST, JANSSON, JANSSON, INVALID, INVALID};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        int n = levels[i]; /* the root object and n - 1 arrays in it */
        char *buf = malloc((size_t)n * 2 + 16), *p = buf;
        p += sprintf(p, "{\"d\":");
        for (int k = 1; k < n; k++)
            *p++ = '[';
        *p++ = '1';
        for (int k = 1; k < n; k++)
            *p++ = ']';
        *p++ = '}';
        int got = check_one(buf, (size_t)(p - buf));
        CHECK_MSG(got == want[i], "%d levels: wanted %d, got %d", n, want[i], got);
        free(buf);
    }
}

static uint32_t rng = 2463534242u;

static uint32_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* Random edits of real bodies: the bytes that matter to a JSON reader, inserted, replaced,
 * deleted, or the body cut short. */
static void test_mutations(void) {
    static const char *const seeds[] = {
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Say ok.\"}],\"max_tokens\":1,\"stream\":false}",
        "{\"prompt\":[[1,2],[3]],\"temperature\":0.5,\"top_p\":1,\"n\":2,\"logit_bias\":{\"50256\":-100}}",
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"caf\xc3\xa9 \\u00e9\\ud83d\\ude00\"}]}]}",
        "{\"a\":-0.0e+1,\"b\":[true,false,null],\"c\":{\"d\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}}",
    };
    static const char alphabet[] = "{}[]\":,\\ \n0123456789-+.eEutrfalsn\x01\x1f\x7f\xc3\xa9\xed\xa0\xf4\x90\xff" "dDbB8\v\f/*";
    char buf[512];
    int counts[3] = {0, 0, 0};
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        for (int round = 0; round < 2500; round++) {
            size_t len = strlen(seeds[s]);
            memcpy(buf, seeds[s], len);
            int edits = 1 + (int)(next_rand() % 3);
            for (int e = 0; e < edits && len > 0; e++) {
                size_t at = next_rand() % len;
                char c = alphabet[next_rand() % (sizeof alphabet - 1)];
                switch (next_rand() % 4) {
                case 0: /* replace */
                    buf[at] = c;
                    break;
                case 1: /* insert, also after the last byte */
                    at = next_rand() % (len + 1);
                    if (len + 1 < sizeof buf) {
                        memmove(buf + at + 1, buf + at, len - at);
                        buf[at] = c;
                        len++;
                    }
                    break;
                case 2: /* delete */
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                    break;
                default: /* cut */
                    len = at;
                    break;
                }
            }
            counts[check_one(buf, len)]++;
        }
    }
    /* Not a rule, a sanity check of the mutator: it must reach all three outcomes. */
    CHECK_MSG(counts[FAST] > 100 && counts[JANSSON] > 0 && counts[INVALID] > 100, "fast %d, jansson only %d, refused %d",
              counts[FAST], counts[JANSSON], counts[INVALID]);
}

int main(void) {
    test_table();
    test_depth();
    test_mutations();
    return tlab_test_finish();
}
