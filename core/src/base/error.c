/*
 * error.c - OpenAI-shaped errors (error.h): filled in one call, written as OpenAI's JSON.
 */
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>

#include <jansson.h>

static const char *const INVALID = "invalid_request_error";

int tlab__error_set(tlab__error *err, int status, const char *type, const char *param, const char *fmt, ...) {
    va_list ap;
    err->status = status;
    err->type = type;
    err->code = NULL;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* The message can hold bytes jansson quoted from the body, or a UTF-8 sequence cut by
 * truncation; jansson refuses such strings, so fall back to plain ASCII rather than to no body. */
static json_t *message_string(const char *msg) {
    json_t *s = json_string(msg);
    if (s)
        return s;
    char ascii[sizeof(((tlab__error *)0)->message)];
    size_t i;
    for (i = 0; msg[i] && i + 1 < sizeof ascii; i++)
        ascii[i] = (unsigned char)msg[i] < 0x80 ? msg[i] : '?';
    ascii[i] = '\0';
    return json_string(ascii);
}

char *tlab__error_json(const tlab__error *err) {
    json_t *param = err->param[0] ? json_string(err->param) : json_null();
    json_t *code = err->code ? json_string(err->code) : json_null();
    json_t *doc = json_pack("{s:{s:o,s:s,s:o,s:o}}", "error", "message", message_string(err->message), "type",
                            err->type ? err->type : INVALID, "param", param ? param : json_null(), "code",
                            code ? code : json_null());
    if (!doc)
        return NULL;
    char *out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return out;
}
