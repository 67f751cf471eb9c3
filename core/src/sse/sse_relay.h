/*
 * sse_relay.h - the byte-level half of the gateway's SSE relay: which of the worker's stream
 * bytes go to the client now, and which wait until the event they belong to is complete.
 *
 * Why hold bytes back: an SSE client acts on an event only at the blank line that ends it, so
 * relaying half an event earlier gains the client nothing. But when the worker's stream breaks
 * mid-event, the gateway appends its own `data: {error}` event (proxy.c); glued onto half an
 * event it would merge into one corrupt event, and the client would never see the error. With
 * the relay holding back unfinished events, what the client has received always ends at an
 * event boundary, and the appended error stands alone.
 *
 * Event-stream rules followed (WHATWG): lines end in LF, CRLF or CR; an empty line ends an
 * event; a line starting with ':' is a comment (keep-alives) and opens no event.
 *
 * Pure bytes, no libevent, no allocation beyond the held tail: fuzzed by
 * tests/fuzz/fuzz_sse_relay.c. Bytes are never lost, duplicated or reordered: everything fed
 * comes out through `out`, in order, by the time tlab__sse_relay_flush returns.
 */
#ifndef TLAB_SSE_RELAY_H
#define TLAB_SSE_RELAY_H

#include <stddef.h>
#include <stdint.h>

/* The gateway's cap on one unfinished event. vLLM's chunks are a few hundred bytes; a longer
 * one goes out in pieces (see `overflowed`) rather than growing memory per stream. */
#define TLAB_SSE_RELAY_MAX_HELD (64u * 1024u)

/* Receives bytes the client may have now. Called zero or more times per feed, in order. */
typedef void (*tlab__sse_out_fn)(void *arg, const char *data, size_t len);

/* Embedded in every request, streaming or not: flags are single bytes to keep it small. */
typedef struct tlab__sse_relay {
    size_t max_held;         /* most bytes of one unfinished event held back */
    char *held;              /* bytes after the last event boundary, not yet sent */
    size_t held_len, held_cap;
    size_t line_len;
    uint64_t events;         /* events ended by a blank line */
    char line_head[12];      /* the current line's first bytes, to spot `data: [DONE]` */
    uint8_t in_line;         /* the current line has at least one byte */
    uint8_t line_is_comment; /* ... and it starts with ':' */
    uint8_t event_open;      /* a field line since the last boundary: an event is being built */
    uint8_t last_cr;         /* the previous byte was CR: an LF now belongs to the same line end */
    uint8_t out_at_boundary; /* what went out so far ends at an event boundary (or nothing went out) */
    uint8_t overflowed;      /* an unfinished event outgrew max_held and went out in pieces */
    uint8_t saw_done;        /* a `data: [DONE]` line was seen */
} tlab__sse_relay;

/* Starts a relay; max_held 0 means TLAB_SSE_RELAY_MAX_HELD. */
void tlab__sse_relay_init(tlab__sse_relay *s, size_t max_held);
/* Takes `len` stream bytes: every byte up to the last event boundary goes to `out` (with any
 * held bytes before them); the rest is held. When the held tail would pass max_held, or cannot
 * be stored (out of memory), it goes out at once instead. Never fails. */
void tlab__sse_relay_feed(tlab__sse_relay *s, const char *data, size_t len, tlab__sse_out_fn out, void *arg);
/* The stream ended normally: the held tail goes out as the worker sent it. */
void tlab__sse_relay_flush(tlab__sse_relay *s, tlab__sse_out_fn out, void *arg);
/* What must precede an event the gateway appends so that it stands alone: "" at a boundary,
 * else "\n\n" (ends the partial line and event; happens only after an overflow or a flush). */
const char *tlab__sse_relay_event_prefix(const tlab__sse_relay *s);
/* Frees the held tail, dropping it (a broken stream: half an event is useless to the client). */
void tlab__sse_relay_free(tlab__sse_relay *s);

#endif
