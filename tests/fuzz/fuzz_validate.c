/*
 * fuzz_validate.c - libFuzzer target for request validation (tlab__validate_request and
 * tlab__error_json): any body, for both routes, must give a clean verdict, never a crash, a leak
 * or an error that is not valid OpenAI error JSON. And the quick body reader (json_fast.c) must
 * never return a value that jansson's json_loadb would not return for the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/json_fast.h"
#include "policy/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_quick_reader(const char *text, size_t size) {
    json_t *fast = tlab__json_fast_object(text, size);
    if (!fast)
        return;
    json_t *ref = json_loadb(text, size, JSON_DECODE_ANY, NULL);
    char *a = json_dumps(fast, JSON_COMPACT | JSON_ENCODE_ANY);
    char *b = ref ? json_dumps(ref, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!a || !b || strcmp(a, b) != 0 || !json_equal(fast, ref))
        abort();
    free(a);
    free(b);
    json_decref(fast);
    json_decref(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_quick_reader((const char *)data, size);
    tlab__validate_limits limits = {.max_body_bytes = 1 << 20, .max_tokens = 4096};
    for (int kind = 0; kind < 2; kind++) {
        json_t *out = NULL;
        tlab__request_info info;
        tlab__error err;
        if (tlab__validate_request((tlab__api_kind)kind, (const char *)data, size, &limits, &out, &info, &err) == 0) {
            if (!json_is_object(out))
                abort();
            json_decref(out);
        } else {
            if (out || err.status < 400 || err.status > 599)
                abort();
            char *text = tlab__error_json(&err);
            json_t *back = text ? json_loads(text, 0, NULL) : NULL;
            if (!back || !json_is_string(json_object_get(json_object_get(back, "error"), "message")))
                abort();
            json_decref(back);
            free(text);
        }
    }
    return 0;
}
