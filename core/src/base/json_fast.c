/*
 * json_fast.c - the quick reader of json_fast.h: yajl's parser, jansson values out.
 *
 * yajl (Debian's libyajl, 2.1) does the lexing and the grammar in one pass over the buffer and
 * calls back per token; the callbacks build the jansson values. Where yajl and jansson 2.14's
 * decoder (src/load.c) could part ways, the reader declines instead of deciding, and
 * json_loadb then gives the value or its own error message and position:
 *   - anything yajl refuses (invalid JSON, trailing bytes, a premature end), and what it lets
 *     through after the root: an unfinished token there only asks it for more input;
 *   - a root that is not an object;
 *   - \u0000 (jansson refuses it without JSON_ALLOW_NUL) and unpaired surrogate escapes
 *     (jansson refuses them; yajl would write '?' or a lone surrogate): found by the escape
 *     scan below, before yajl runs, since yajl's callbacks only see the decoded text;
 *   - a raw \v or \f byte: yajl takes them for whitespace, jansson does not (inside a string
 *     both refuse them as control characters);
 *   - integers of 19 digits or more (jansson refuses those past json_int_t), reals that
 *     overflow, real tokens longer than MAX_REAL_CHARS, a locale whose decimal point is not '.';
 *   - containers nested deeper than MAX_DEPTH (jansson allows 2048).
 * yajl checks UTF-8 in strings and keys, but more loosely than jansson (it takes overlong forms,
 * encoded surrogates, code points past U+10FFFF); json_stringn and json_object_setn_new check it
 * again with the code jansson's decoder uses, and refuse what the decoder would.
 * Numbers come to the yajl_number callback as their raw text and are converted here by jansson's
 * rules. A repeated key replaces the earlier value in its place, as json_loadb does (it calls
 * the same function).
 */
#include "base/json_fast.h"

#include <locale.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

/* jansson allows 2048 levels (JSON_PARSER_MAX_DEPTH); requests nest three or four. Deeper ones
 * go to jansson, so the builder's stack is a small array. */
#define MAX_DEPTH 32
/* The longest real this reader converts itself (jansson has no limit). */
#define MAX_REAL_CHARS 64

typedef struct builder {
    const char *buf; /* the input, to tell yajl's pointers into it from its decode buffer's */
    size_t len;
    json_t *root;            /* owned */
    json_t *open[MAX_DEPTH]; /* the open containers, root first (borrowed from their parents) */
    int depth;               /* how many are open */
    const char *key;         /* the innermost object's pending key, set by on_key */
    size_t key_len;
    char *key_copy; /* an escaped key, copied out of yajl's decode buffer */
    yajl_handle h;
    size_t root_end; /* the offset just past the root's closing brace; 0 until then */
} builder;

/* Puts v (a new reference, or NULL when making it failed) in the innermost open container. */
static int add(builder *b, json_t *v) {
    if (!v)
        return 0;
    if (b->depth == 0) { /* the root: only an object is taken here */
        json_decref(v);
        return 0;
    }
    json_t *parent = b->open[b->depth - 1];
    if (json_is_object(parent)) /* checks the key's UTF-8; steals v even when it fails */
        return json_object_setn_new(parent, b->key, b->key_len, v) == 0;
    return json_array_append_new(parent, v) == 0;
}

static int on_null(void *ctx) {
    return add(ctx, json_null());
}

static int on_boolean(void *ctx, int value) {
    return add(ctx, json_boolean(value));
}

/* jansson's number rules on the token's text, which yajl has checked against the grammar
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, the same as jansson's. */
static int on_number(void *ctx, const char *s, size_t n) {
    const char *p = s, *end = s + n;
    int neg = *p == '-';
    p += neg;
    const char *digits = p;
    json_int_t iv = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++)
        if (p - digits < 18)
            iv = iv * 10 + (*p - '0');
    if (p == end) { /* no '.', 'e' or 'E': an integer */
        if (p - digits > 18)
            return 0; /* may not fit json_int_t: jansson says which way it overflows */
        return add(ctx, json_integer(neg ? -iv : iv));
    }
    /* jansson converts with strtod after swapping '.' for the locale's decimal point; in any
     * locale whose point is '.', that is strtod of the token as it is. */
    char text[MAX_REAL_CHARS + 1];
    const char *point = localeconv()->decimal_point;
    if (n > MAX_REAL_CHARS || point[0] != '.' || point[1] != '\0')
        return 0;
    memcpy(text, s, n);
    text[n] = '\0';
    double v = strtod(text, NULL);
    if (isinf(v))
        return 0; /* jansson's "real number overflow" */
    return add(ctx, json_real(v));
}

static int on_string(void *ctx, const unsigned char *s, size_t n) {
    return add(ctx, json_stringn((const char *)s, n)); /* json_stringn checks the UTF-8 */
}

static int on_key(void *ctx, const unsigned char *s, size_t n) {
    builder *b = ctx;
    const char *k = (const char *)s;
    if (k >= b->buf && k + n <= b->buf + b->len) {
        b->key = k; /* unescaped: yajl's pointer is into the input, valid to the end */
    } else {
        /* Decoded into yajl's buffer, which the value's own decoding may overwrite. The decoded
         * key is shorter than its source, so one copy of the input's length fits any. */
        if (!b->key_copy && !(b->key_copy = malloc(b->len ? b->len : 1)))
            return 0;
        memcpy(b->key_copy, k, n);
        b->key = b->key_copy;
    }
    b->key_len = n;
    return 1;
}

static int open_container(builder *b, json_t *c) {
    if (!c)
        return 0;
    if (b->depth == MAX_DEPTH) {
        json_decref(c);
        return 0;
    }
    if (b->depth == 0) {
        if (!json_is_object(c) || b->root) {
            json_decref(c);
            return 0;
        }
        b->root = c;
    } else if (!add(b, c)) {
        return 0;
    }
    b->open[b->depth++] = c; /* the parent's reference, alive as long as the root */
    return 1;
}

static int on_start_map(void *ctx) {
    return open_container(ctx, json_object());
}

static int on_start_array(void *ctx) {
    return open_container(ctx, json_array());
}

static int on_end(void *ctx) {
    builder *b = ctx;
    if (--b->depth == 0)                             /* yajl matches the brackets */
        b->root_end = yajl_get_bytes_consumed(b->h); /* where yajl's lexer stands: after the '}' */
    return 1;
}

/* 1 when buf[from..len) is jansson's whitespace only. yajl's own check of the bytes after the
 * root lets an unfinished token through ("{}\"x" or "{} tru": its lexer asks for more input,
 * which is not an error), so the reader checks them itself. */
static int only_space_after(const char *buf, size_t from, size_t len) {
    for (size_t i = from; i < len; i++)
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r')
            return 0;
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number, /* the raw text: yajl_integer and yajl_double are not called */
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

/*
 * yajl's own memory for one parse (its handle, lexer, state stack and decode buffer, about
 * 1 KiB for a usual body) comes from a buffer on the stack: malloc and free for each of them
 * cost about a tenth of the whole parse. Past the buffer, and for a block that outgrows it,
 * the C library's allocator. Each block starts with its size, for realloc.
 */
typedef struct arena {
    size_t used;
    _Alignas(max_align_t) unsigned char mem[4096];
} arena;

#define BLOCK_HEAD sizeof(max_align_t)

static int in_arena(const arena *a, const void *p) {
    return (const unsigned char *)p >= a->mem && (const unsigned char *)p < a->mem + sizeof a->mem;
}

static void *arena_malloc(void *ctx, size_t n) {
    arena *a = ctx;
    size_t need = BLOCK_HEAD + (n + BLOCK_HEAD - 1) / BLOCK_HEAD * BLOCK_HEAD;
    if (n > sizeof a->mem || need > sizeof a->mem - a->used)
        return malloc(n);
    unsigned char *block = a->mem + a->used;
    a->used += need;
    memcpy(block, &n, sizeof n);
    return block + BLOCK_HEAD;
}

static void *arena_realloc(void *ctx, void *p, size_t n) {
    if (!p)
        return arena_malloc(ctx, n);
    if (!in_arena(ctx, p))
        return realloc(p, n);
    size_t old;
    memcpy(&old, (unsigned char *)p - BLOCK_HEAD, sizeof old);
    if (n <= old)
        return p;
    void *q = arena_malloc(ctx, n); /* the old block stays used until the parse ends */
    if (q)
        memcpy(q, p, old);
    return q;
}

static void arena_free(void *ctx, void *p) {
    if (!in_arena(ctx, p))
        free(p);
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

/*
 * 1 when buf holds something yajl would read differently from jansson: a \v or \f byte, a
 * \u0000 escape, or a surrogate escape that is not a high one followed by a low one. In valid
 * JSON every backslash is in a string and starts an escape, so taking them pair by pair from
 * the left finds each escape; in invalid JSON the scan may read nonsense, but yajl refuses that
 * input anyway.
 */
static int yajl_would_differ(const char *buf, size_t len) {
    const char *p = buf, *end = buf + len;
    if (memchr(buf, '\v', len) || memchr(buf, '\f', len))
        return 1;
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        if (end - p < 2)
            return 1;
        if (p[1] != 'u') {
            p += 2;
            continue;
        }
        unsigned u, lo;
        if (end - p < 6 || hex4(p + 2, &u) != 0 || u == 0 || (u >= 0xDC00 && u <= 0xDFFF))
            return 1;
        p += 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                return 1;
            p += 6;
        }
    }
    return 0;
}

json_t *tlab__json_fast_object(const char *buf, size_t len) {
#if JANSSON_VERSION_HEX < 0x020e00
    (void)buf;
    (void)len;
    return NULL; /* json_object_setn_new came with jansson 2.14 */
#else
    if (yajl_would_differ(buf, len))
        return NULL;
    builder b = {.buf = buf, .len = len};
    arena a;
    a.used = 0;
    yajl_alloc_funcs funcs = {arena_malloc, arena_realloc, arena_free, &a};
    yajl_handle h = yajl_alloc(&callbacks, &funcs, &b);
    if (!h)
        return NULL;
    b.h = h;
    /* Default options: no comments, UTF-8 checked, no trailing bytes, one value, no partial one. */
    int ok = yajl_parse(h, (const unsigned char *)buf, len) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    free(b.key_copy);
    if (!ok || !b.root || b.depth != 0 || b.root_end == 0 || !only_space_after(buf, b.root_end, len)) {
        json_decref(b.root);
        return NULL;
    }
    return b.root;
#endif
}

json_t *tlab__json_load_body(const char *buf, size_t len, json_error_t *err) {
    json_t *doc = tlab__json_fast_object(buf, len);
    return doc ? doc : json_loadb(buf, len, JSON_DECODE_ANY, err);
}
