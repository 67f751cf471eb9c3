/*
 * sse.h - an incremental Server-Sent Events parser (the WHATWG event-stream rules that matter
 * for OpenAI-style streams): bytes arrive in arbitrary pieces, lines end in LF, CRLF or CR,
 * ':' lines are comments (keep-alives), "data:" lines accumulate, a blank line dispatches.
 * Fields other than data (event, id, retry) are accepted and ignored.
 */
#ifndef TLAB_BENCH_SSE_H
#define TLAB_BENCH_SSE_H

#include <stddef.h>

/* Called once per dispatched event with its data (lines joined by '\n', NUL-terminated). */
typedef void (*tlab_sse_event_fn)(void *arg, const char *data, size_t len);

typedef struct {
    char *line;     /* the current, unfinished line */
    size_t line_len, line_cap;
    char *data;     /* data of the event being built */
    size_t data_len, data_cap;
    int has_data;   /* a data field was seen (an empty "data:" still dispatches) */
    int last_cr;    /* the previous byte was CR: a following LF belongs to the same line end */
    size_t comments;
    size_t events;
    tlab_sse_event_fn on_event;
    void *arg;
} tlab_sse;

void tlab_sse_init(tlab_sse *p, tlab_sse_event_fn on_event, void *arg);
/* Feeds bytes; calls on_event for each complete event. Returns 0, or -1 when out of memory
 * (the parser is then unusable). on_event must not call tlab_sse_free on this parser. */
int tlab_sse_feed(tlab_sse *p, const char *buf, size_t len);
/* Frees buffers. An event not yet ended by a blank line is discarded, as the spec says. */
void tlab_sse_free(tlab_sse *p);

#endif
