/*
 * json_fast.c - the quick reader of json_fast.h: one pass over the buffer, jansson values out.
 *
 * It follows jansson 2.14's decoder (src/load.c) rule by rule, and where the two could part
 * ways it declines instead of deciding: \u0000 (refused without JSON_ALLOW_NUL), unpaired
 * surrogates, integers of 19 digits or more (jansson refuses those past json_int_t), reals
 * that overflow, longer number tokens, nesting deeper than MAX_DEPTH, and of course anything
 * that is not valid JSON, so that jansson's error message and position are what the client
 * gets. UTF-8 in strings and keys is checked by jansson itself (json_stringn and
 * json_object_setn_new check it with the same code the decoder uses).
 */
#include "json_fast.h"

#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* jansson allows 2048 levels (JSON_PARSER_MAX_DEPTH); requests nest three or four. Deeper ones
 * go to jansson, so this reader's recursion stays shallow. */
#define MAX_DEPTH 32
/* The longest real this reader converts itself (jansson has no limit). */
#define MAX_REAL_CHARS 64

typedef struct reader {
    const char *p, *end;
    size_t len;    /* of the whole input */
    char *scratch; /* strings with escapes, decoded; made on first need, never longer than the input */
    size_t used;
} reader;

static json_t *read_value(reader *r, int depth);

static void skip_space(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static char *put_utf8(char *o, unsigned u) {
    if (u < 0x80) {
        *o++ = (char)u;
    } else if (u < 0x800) {
        *o++ = (char)(0xC0 | (u >> 6));
        *o++ = (char)(0x80 | (u & 0x3F));
    } else if (u < 0x10000) {
        *o++ = (char)(0xE0 | (u >> 12));
        *o++ = (char)(0x80 | ((u >> 6) & 0x3F));
        *o++ = (char)(0x80 | (u & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (u >> 18));
        *o++ = (char)(0x80 | ((u >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((u >> 6) & 0x3F));
        *o++ = (char)(0x80 | (u & 0x3F));
    }
    return o;
}

/*
 * The string whose opening quote is at r->p: *s and *n get its bytes, which are the input's own
 * when it has no escapes, else decoded into the scratch buffer (each string gets its own part
 * of it, so a key stays valid while its value is read). -1: leave it to jansson.
 */
static int read_string(reader *r, const char **s, size_t *n) {
    const char *start = ++r->p, *p = start, *end = r->end;
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
        p++;
    if (p == end || (unsigned char)*p < 0x20)
        return -1; /* unterminated, or a control character: jansson's error */
    if (*p == '"') {
        *s = start;
        *n = (size_t)(p - start);
        r->p = p + 1;
        return 0;
    }
    /* Escapes: the decoded text is never longer than its source (\uXXXX gives at most 3 bytes,
     * a surrogate pair 4), so one buffer of the input's length holds every string's. */
    if (!r->scratch && !(r->scratch = malloc(r->len ? r->len : 1)))
        return -1;
    char *out = r->scratch + r->used, *o = out;
    memcpy(o, start, (size_t)(p - start));
    o += p - start;
    for (;;) {
        if (p == end)
            return -1;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            *o++ = (char)c;
            p++;
            continue;
        }
        if (end - p < 2)
            return -1;
        switch (p[1]) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned u, lo;
            if (end - p < 6 || hex4(p + 2, &u) != 0)
                return -1;
            p += 6;
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                p += 6;
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            } else if (u == 0 || (u >= 0xDC00 && u <= 0xDFFF)) {
                return -1; /* \u0000 needs JSON_ALLOW_NUL; a lone low surrogate is an error */
            }
            o = put_utf8(o, u);
            continue;
        }
        default:
            return -1;
        }
        p += 2;
    }
    *s = out;
    *n = (size_t)(o - out);
    r->used += *n;
    r->p = p + 1;
    return 0;
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* jansson's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static json_t *read_number(reader *r) {
    const char *start = r->p, *p = start, *end = r->end;
    int neg = p < end && *p == '-';
    p += neg;
    if (p == end || !is_digit(*p))
        return NULL;
    const char *digits = p;
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p))
            return NULL; /* a leading zero: jansson's "invalid token" */
    } else {
        while (p < end && is_digit(*p))
            p++;
    }
    if (p == end || (*p != '.' && *p != 'e' && *p != 'E')) {
        if (p - digits > 18)
            return NULL; /* may not fit json_int_t: jansson says which way it overflows */
        json_int_t v = 0;
        for (const char *d = digits; d < p; d++)
            v = v * 10 + (*d - '0');
        r->p = p;
        return json_integer(neg ? -v : v);
    }
    if (*p == '.') {
        p++;
        if (p == end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    /* jansson converts with strtod after swapping '.' for the locale's decimal point; in any
     * locale whose point is '.', that is strtod of the token as it is. */
    char text[MAX_REAL_CHARS + 1];
    size_t n = (size_t)(p - start);
    const char *point = localeconv()->decimal_point;
    if (n > MAX_REAL_CHARS || point[0] != '.' || point[1] != '\0')
        return NULL;
    memcpy(text, start, n);
    text[n] = '\0';
    double v = strtod(text, NULL);
    if (isinf(v))
        return NULL; /* jansson's "real number overflow" */
    r->p = p;
    return json_real(v);
}

static json_t *read_literal(reader *r, const char *word, size_t n, json_t *value) {
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return NULL;
    r->p += n; /* "truex" and the like fail at the next token, as in jansson */
    return value;
}

static json_t *read_object(reader *r, int depth) {
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    r->p++;
    skip_space(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return obj;
    }
    for (;;) {
        const char *key;
        size_t key_len;
        if (r->p == r->end || *r->p != '"' || read_string(r, &key, &key_len) != 0)
            break;
        skip_space(r);
        if (r->p == r->end || *r->p != ':')
            break;
        r->p++;
        skip_space(r);
        json_t *v = read_value(r, depth + 1);
        /* A repeated key replaces the earlier value in its place, as json_loadb does (it calls
         * the same function); the key's UTF-8 is checked here. */
        if (!v || json_object_setn_new(obj, key, key_len, v) != 0)
            break;
        skip_space(r);
        if (r->p == r->end)
            break;
        if (*r->p == '}') {
            r->p++;
            return obj;
        }
        if (*r->p != ',')
            break;
        r->p++;
        skip_space(r);
    }
    json_decref(obj);
    return NULL;
}

static json_t *read_array(reader *r, int depth) {
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    r->p++;
    skip_space(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return arr;
    }
    for (;;) {
        json_t *v = read_value(r, depth + 1);
        if (!v || json_array_append_new(arr, v) != 0)
            break;
        skip_space(r);
        if (r->p == r->end)
            break;
        if (*r->p == ']') {
            r->p++;
            return arr;
        }
        if (*r->p != ',')
            break;
        r->p++;
        skip_space(r);
    }
    json_decref(arr);
    return NULL;
}

static json_t *read_value(reader *r, int depth) {
    if (r->p == r->end || depth > MAX_DEPTH)
        return NULL;
    switch (*r->p) {
    case '{':
        return read_object(r, depth);
    case '[':
        return read_array(r, depth);
    case '"': {
        const char *s;
        size_t n;
        return read_string(r, &s, &n) == 0 ? json_stringn(s, n) : NULL; /* json_stringn checks the UTF-8 */
    }
    case 't':
        return read_literal(r, "true", 4, json_true());
    case 'f':
        return read_literal(r, "false", 5, json_false());
    case 'n':
        return read_literal(r, "null", 4, json_null());
    default:
        return *r->p == '-' || is_digit(*r->p) ? read_number(r) : NULL;
    }
}

json_t *tlab_json_fast_object(const char *buf, size_t len) {
#if JANSSON_VERSION_HEX < 0x020e00
    (void)buf;
    (void)len;
    return NULL; /* json_object_setn_new came with jansson 2.14 */
#else
    reader r = {.p = buf, .end = buf + len, .len = len};
    skip_space(&r);
    json_t *doc = r.p < r.end && *r.p == '{' ? read_object(&r, 1) : NULL;
    if (doc) {
        skip_space(&r);
        if (r.p != r.end) { /* trailing bytes: jansson's "end of file expected" */
            json_decref(doc);
            doc = NULL;
        }
    }
    free(r.scratch);
    return doc;
#endif
}
