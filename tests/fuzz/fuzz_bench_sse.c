/*
 * fuzz_bench_sse.c - libFuzzer target for tlab-bench's SSE parser (loadtest/bench/sse.c) and the
 * response reader on top of it (response.c: [DONE], usage, error events, token chunks).
 *
 * Input: bytes 0-3 seed the split points, the rest is a response body. A differential check:
 * the body is parsed whole, byte by byte and in random pieces (empty ones included), and every
 * split must yield the same events (same data, same order), the same comment count, and the same
 * record (kind, token chunks, usage). Events must also be well-formed: no CR in their data (CR
 * and CRLF are line ends), NUL-terminated at their length. Any difference aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "response.h"
#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every event, as <length><data> records, so two runs compare with one memcmp. */
typedef struct {
    char *buf;
    size_t len, cap;
    size_t count;
} events;

static void on_event(void *arg, const char *data, size_t len) {
    events *e = arg;
    if (data[len] != '\0' || memchr(data, '\r', len))
        abort();
    size_t need = e->len + sizeof len + len;
    if (need > e->cap) {
        size_t cap = e->cap ? e->cap : 256;
        while (cap < need)
            cap *= 2;
        char *b = realloc(e->buf, cap);
        if (!b)
            abort();
        e->buf = b;
        e->cap = cap;
    }
    memcpy(e->buf + e->len, &len, sizeof len);
    memcpy(e->buf + e->len + sizeof len, data, len);
    e->len = need;
    e->count++;
}

static uint32_t next(uint32_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Size of the next piece: everything (seed 0), one byte (seed 1), else random, some empty. */
static size_t piece_size(uint32_t *seed, size_t left) {
    size_t piece = left;
    if (*seed == 1) {
        piece = 1;
    } else if (*seed) {
        uint32_t v = next(seed);
        piece = v % 8 == 0 ? 0 : 1 + (v >> 8) % 48;
    }
    return piece < left ? piece : left;
}

typedef struct {
    events ev;
    size_t comments;
    tlab_req rec;
} result;

static result parse(const char *s, size_t n, uint32_t seed) {
    result r;
    memset(&r, 0, sizeof r);
    tlab_sse p;
    tlab_sse_init(&p, on_event, &r.ev);
    uint32_t sp = seed;
    for (size_t pos = 0; pos < n;) {
        size_t piece = piece_size(&sp, n - pos);
        if (tlab_sse_feed(&p, s + pos, piece) != 0)
            abort();
        pos += piece;
    }
    if (p.events != r.ev.count)
        abort();
    r.comments = p.comments;
    tlab_sse_free(&p);

    /* The same body through the response reader, as a 200 event stream. */
    r.rec.sched = r.rec.sent = 0;
    r.rec.first = r.rec.last = r.rec.done = -1;
    r.rec.usage_in = r.rec.usage_out = -1;
    tlab_response resp;
    tlab_response_init(&resp, &r.rec);
    tlab_response_headers(&resp, 200, 1);
    sp = seed;
    for (size_t pos = 0; pos < n;) {
        size_t piece = piece_size(&sp, n - pos);
        tlab_response_data(&resp, s + pos, piece, 1.0);
        pos += piece;
    }
    tlab_response_finish(&resp, TLAB_HTTP_DONE, 2.0);
    free(r.rec.itl);
    r.rec.itl = NULL;
    return r;
}

static void same(const result *a, const result *b) {
    if (a->ev.count != b->ev.count || a->ev.len != b->ev.len || (a->ev.len && memcmp(a->ev.buf, b->ev.buf, a->ev.len) != 0))
        abort(); /* the split changed the events */
    if (a->comments != b->comments)
        abort();
    if (a->rec.kind != b->rec.kind || a->rec.chunks != b->rec.chunks || a->rec.usage_in != b->rec.usage_in ||
        a->rec.usage_out != b->rec.usage_out || a->rec.n_itl != b->rec.n_itl || a->rec.first != b->rec.first)
        abort(); /* the split changed what tlab-bench records */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4)
        return 0;
    uint32_t seed = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
    if (seed < 2)
        seed = 2;
    const char *s = (const char *)data + 4;
    size_t n = size - 4;
    result whole = parse(s, n, 0);
    result bytewise = parse(s, n, 1);
    result split = parse(s, n, seed);
    same(&whole, &bytewise);
    same(&whole, &split);
    free(whole.ev.buf);
    free(bytewise.ev.buf);
    free(split.ev.buf);
    return 0;
}
