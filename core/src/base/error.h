/*
 * error.h - the one error vocabulary of the HTTP side: an OpenAI-shaped error, as every refusal
 * (the front's, a policy's, the relay's) answers it.
 */
#ifndef TLAB_ERROR_H
#define TLAB_ERROR_H

/* An OpenAI-shaped error: {"error":{"message","type","param","code"}}. */
typedef struct tlab__error {
    int status;         /* HTTP status: 400, 413, ... */
    const char *type;   /* "invalid_request_error", ... (static string) */
    char param[64];     /* offending field ("messages[2].role"), "" when none */
    char message[512];
    const char *code;   /* OpenAI's "code" ("invalid_api_key", "rate_limit_exceeded"; static string), NULL = null */
} tlab__error;

/* Formats `err` as OpenAI's error JSON into a new malloc'd string (NULL on allocation failure). */
char *tlab__error_json(const tlab__error *err);

/* Convenience: fills *err from parts (printf-style message; code NULL). Returns -1 for tail calls. */
int tlab__error_set(tlab__error *err, int status, const char *type, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
