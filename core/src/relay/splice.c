/*
 * splice.c - the stream transcript and the continuation rewrite (splice.h).
 */
#include "relay/splice.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

void tlab__splice_init(tlab__splice *s, int chat) {
    memset(s, 0, sizeof *s);
    s->chat = (unsigned char)(chat != 0);
}

void tlab__splice_free(tlab__splice *s) {
    free(s->text);
    s->text = NULL;
    s->len = s->cap = 0;
}

int tlab__splice_resumable(const tlab__splice *s) {
    return !s->lost && !s->finished;
}

void tlab__splice_begin_continuation(tlab__splice *s) {
    s->resuming = 1;
    s->tokens_before = s->tokens;
}

static int append(tlab__splice *s, const char *p, size_t n) {
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *t = realloc(s->text, cap);
        if (!t)
            return -1;
        s->text = t;
        s->cap = cap;
    }
    memcpy(s->text + s->len, p, n);
    s->len += n;
    s->text[s->len] = '\0';
    return 0;
}

static int hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        *v <<= 4;
        if (c >= '0' && c <= '9')
            *v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            *v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            *v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    return 0;
}

static size_t utf8(unsigned cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the JSON string starting after its opening quote at p (end: the event's end) into s's
 * text. Returns the decoded length, or -1 on a malformed string. */
static long decode_string(tlab__splice *s, const char *p, const char *end) {
    long n = 0;
    while (p < end && *p != '"') {
        const char *run = p;
        while (p < end && *p != '"' && *p != '\\')
            p++;
        if (p > run) {
            if (append(s, run, (size_t)(p - run)) != 0)
                return -1;
            n += p - run;
        }
        if (p >= end || *p == '"')
            break;
        if (p + 1 >= end)
            return -1;
        char c = p[1], buf[4];
        size_t k = 1;
        p += 2;
        switch (c) {
        case '"': buf[0] = '"'; break;
        case '\\': buf[0] = '\\'; break;
        case '/': buf[0] = '/'; break;
        case 'b': buf[0] = '\b'; break;
        case 'f': buf[0] = '\f'; break;
        case 'n': buf[0] = '\n'; break;
        case 'r': buf[0] = '\r'; break;
        case 't': buf[0] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (end - p < 4 || hex4(p, &cp) != 0)
                return -1;
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, &lo) == 0 &&
                lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            k = utf8(cp, buf);
            break;
        }
        default: return -1;
        }
        if (append(s, buf, k) != 0)
            return -1;
        n += (long)k;
    }
    return p < end ? n : -1;
}

static const char *find(const char *p, const char *end, const char *needle) {
    size_t n = strlen(needle);
    while (p + n <= end) {
        const char *q = memchr(p, needle[0], (size_t)(end - p));
        if (!q || q + n > end)
            return NULL;
        if (memcmp(q, needle, n) == 0)
            return q;
        p = q + 1;
    }
    return NULL;
}

/* The two keys read from every event, in one pass over its bytes: the first `"finish_reason":"`
 * and the first text key (`key`, n bytes). Each starts with '"', so find() per key stopped at
 * every one of the ~25 quotes of a vLLM chunk, twice, for a memchr and a memcmp: about 300 ns an
 * event, 60 us on a 200-token stream, paid by every stream in a pool (the transcript is kept
 * there only) and the largest cost a pool adds per request. Here a quote costs a memcmp only
 * when the next two bytes match a key's (about 110 ns an event, the whole transcript). */
static void find_keys(const char *p, const char *end, const char *key, size_t n, const char **finish, const char **text) {
    static const char fin[] = "\"finish_reason\":\"";
    *finish = *text = NULL;
    for (; p + 3 <= end && (!*finish || !*text); p++) {
        if (*p != '"')
            continue;
        if (!*finish && p[1] == fin[1] && p[2] == fin[2] && (size_t)(end - p) >= sizeof fin - 1 &&
            memcmp(p, fin, sizeof fin - 1) == 0)
            *finish = p;
        else if (!*text && p[1] == key[1] && p[2] == key[2] && (size_t)(end - p) >= n && memcmp(p, key, n) == 0)
            *text = p;
    }
}

/* A continuation's usage event: the tokens sent before the cut were prompt to the new worker
 * and are completion tokens to the client. Rewritten whole (once per stream). */
static void fix_usage(tlab__splice *s, const char *json, size_t len, tlab__sse_out_fn out, void *arg) {
    json_t *o = json_loadb(json, len, 0, NULL), *u = o ? json_object_get(o, "usage") : NULL;
    json_t *pt = u ? json_object_get(u, "prompt_tokens") : NULL, *ct = u ? json_object_get(u, "completion_tokens") : NULL;
    char *text = NULL;
    if (json_is_integer(pt) && json_is_integer(ct)) {
        json_int_t p = json_integer_value(pt) - s->tokens_before, c = json_integer_value(ct) + s->tokens_before;
        json_object_set_new(u, "prompt_tokens", json_integer(p > 0 ? p : 0));
        json_object_set_new(u, "completion_tokens", json_integer(c));
        json_object_set_new(u, "total_tokens", json_integer((p > 0 ? p : 0) + c));
        text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    if (text) {
        out(arg, "data: ", 6);
        out(arg, text, strlen(text));
        out(arg, "\n\n", 2);
    } else {
        out(arg, "data: ", 6);
        out(arg, json, len);
        out(arg, "\n\n", 2);
    }
    free(text);
    json_decref(o);
}

/* One event, `ev` to `end` (without its blank line). Returns 1 when it was written already (or
 * dropped), 0 when it goes out as it is. */
static int one_event(tlab__splice *s, const char *ev, const char *end, tlab__sse_out_fn out, void *arg) {
    if (end - ev < 7 || memcmp(ev, "data: {", 7) != 0)
        return 0; /* [DONE], comments: as they are */
    const char *json = ev + 6;
    const char *fin, *key;
    if (s->chat)
        find_keys(json, end, "\"content\":\"", 11, &fin, &key);
    else
        find_keys(json, end, "\"text\":\"", 8, &fin, &key);
    if (fin)
        s->finished = 1;
    long got = 0;
    if (key) {
        got = decode_string(s, key + (s->chat ? 11 : 8), end);
        if (got < 0) {
            s->lost = 1;
            return 0;
        }
        if (got > 0)
            s->tokens++;
    }
    if (!s->resuming)
        return 0;
    if (s->chat && got == 0 && find(json, end, "\"role\":") && !find(json, end, "\"finish_reason\":\""))
        return 1; /* the continuation's role chunk: the client has one */
    if (find(json, end, "\"usage\":{") && find(json, end, "\"prompt_tokens\":")) {
        fix_usage(s, json, (size_t)(end - json), out, arg);
        return 1;
    }
    return 0;
}

void tlab__splice_events(tlab__splice *s, const char *data, size_t len, tlab__sse_out_fn out, void *arg) {
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *boundary = find(p, end, "\n\n");
        if (!boundary) {
            /* Not a whole event (the relay's overflow path): out as it is, and no resume. */
            s->lost = 1;
            out(arg, p, (size_t)(end - p));
            return;
        }
        if (!one_event(s, p, boundary, out, arg))
            out(arg, p, (size_t)(boundary + 2 - p));
        p = boundary + 2;
    }
}
