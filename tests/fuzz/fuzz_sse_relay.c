/*
 * fuzz_sse_relay.c - libFuzzer target for the gateway's SSE relay (core/src/sse/sse_relay.c).
 *
 * Input: byte 0 picks the held-bytes cap (0: the gateway's 64 KiB; else small, to reach the
 * overflow path), bytes 1-4 seed the split points, the rest is the worker's stream. The stream
 * goes through the relay three times, whole, byte by byte and in random pieces (empty ones
 * included), and each run is checked against a plain reference reading of the whole stream.
 * Any broken invariant aborts:
 *   - bytes out (fed ones, then the flushed tail) are exactly the bytes in, in order;
 *   - without overflow, what is out before the flush is the stream up to its last event boundary,
 *     whatever the split: never half an event;
 *   - the event count and the [DONE] sighting match the reference;
 *   - the prefix for an appended event is "" exactly when what went out ends at a boundary.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sse/sse_relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    char *buf;
    size_t len;
} sink;

static void collect(void *arg, const char *data, size_t len) {
    sink *k = arg;
    if (len == 0)
        abort(); /* an empty piece is a pointless write on the client socket */
    memcpy(k->buf + k->len, data, len);
    k->len += len;
}

/* The reference: the whole stream at once, line by line, as the WHATWG rules read it. */
typedef struct {
    size_t boundary; /* end of the last complete line after which no event is open */
    uint64_t events;
    int saw_done;
} reference;

static reference read_whole(const char *s, size_t n) {
    reference ref = {0, 0, 0};
    int event_open = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '\r' && s[j] != '\n')
            j++;
        if (j == n)
            break; /* an unfinished line */
        size_t line = j - i, end = j + 1;
        if (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n')
            end++;
        if (line == 0) {
            if (event_open)
                ref.events++;
            event_open = 0;
        } else if (s[i] != ':') {
            event_open = 1;
            if ((line == 12 && memcmp(s + i, "data: [DONE]", 12) == 0) || (line == 11 && memcmp(s + i, "data:[DONE]", 11) == 0))
                ref.saw_done = 1;
        }
        if (!event_open)
            ref.boundary = end;
        i = end;
    }
    return ref;
}

static uint32_t next(uint32_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Runs the relay over the stream in pieces: whole when seed is 0, one byte at a time when it is
 * 1, else random sizes. Checks the invariants that hold for any split and returns what went out
 * before the flush. */
static sink run(const char *s, size_t n, size_t max_held, uint32_t seed, const reference *ref) {
    tlab__sse_relay r;
    tlab__sse_relay_init(&r, max_held);
    sink k = {malloc(n + 1), 0};
    if (!k.buf)
        abort();
    size_t pos = 0;
    while (pos < n) {
        size_t piece = n - pos;
        if (seed == 1) {
            piece = 1;
        } else if (seed) {
            uint32_t v = next(&seed);
            piece = v % 8 == 0 ? 0 : 1 + (v >> 8) % 64; /* mostly small pieces, some empty */
            if (piece > n - pos)
                piece = n - pos;
        }
        tlab__sse_relay_feed(&r, s + pos, piece, collect, &k);
        pos += piece;
        if (k.len > pos || memcmp(k.buf, s, k.len) != 0)
            abort(); /* out is always a prefix of what came in */
        if (!r.overflowed && k.len + r.held_len != pos)
            abort();
    }
    if (r.events != ref->events || r.saw_done != ref->saw_done)
        abort();
    if (!r.overflowed && (k.len != ref->boundary || !r.out_at_boundary))
        abort(); /* the client holds exactly the complete events */
    size_t before = k.len;
    tlab__sse_relay_flush(&r, collect, &k);
    if (k.len != n || memcmp(k.buf, s, n) != 0)
        abort(); /* nothing lost, duplicated or reordered */
    const char *prefix = tlab__sse_relay_event_prefix(&r);
    if ((*prefix == '\0') != (r.out_at_boundary != 0))
        abort();
    if (!r.overflowed && k.len > before && *prefix == '\0')
        abort(); /* a flushed partial event must be closed before an appended one */
    tlab__sse_relay_free(&r);
    k.len = before;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5)
        return 0;
    size_t max_held = data[0] ? (size_t)data[0] : 0;
    uint32_t seed = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 | (uint32_t)data[4] << 24;
    if (seed < 2)
        seed = 2;
    const char *s = (const char *)data + 5;
    size_t n = size - 5;
    reference ref = read_whole(s, n);
    sink whole = run(s, n, max_held, 0, &ref);
    sink split = run(s, n, max_held, seed, &ref);
    sink bytewise = run(s, n, max_held, 1, &ref);
    free(whole.buf);
    free(split.buf);
    free(bytewise.buf);
    return 0;
}
