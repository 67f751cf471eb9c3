/*
 * splice.h - what a stream has sent its client, kept so that a stream cut midway can go on at
 * another worker and reach the client as one stream (docs/workers.md, "Failover").
 *
 * It reads the worker's events as they go out (whole events: the SSE relay holds back partial
 * ones): the answer's text so far (chat: choices[0].delta.content; completions:
 * choices[0].text), the events that carried text (vLLM sends one token per event by default),
 * and whether a finish_reason went out. On a continuation leg it also rewrites what the new
 * worker sends: its role chunk is dropped (the client had one), and its usage event counts the
 * tokens sent before the cut as completion tokens, not prompt tokens.
 *
 * The scan reads each event in place for three keys instead of parsing it (jansson costs about
 * 110 instructions a byte: more than the rest of the relay on a 200-token stream); only the one
 * usage event of a continuation is parsed and rewritten.
 */
#ifndef TLAB_SPLICE_H
#define TLAB_SPLICE_H

#include <stddef.h>

#include "sse/sse_relay.h"

typedef struct tlab__splice {
    char *text;       /* the answer's text the client has, decoded from JSON */
    size_t len, cap;
    long tokens;      /* events that carried text: tokens sent, at vLLM's default stream interval */
    long tokens_before; /* tokens sent before the current leg (a continuation's) */
    unsigned char chat;
    unsigned char resuming; /* the current leg continues a cut one */
    unsigned char finished; /* a finish_reason went out: there is nothing to continue */
    unsigned char lost;     /* an event it could not follow (too big, several choices, bad JSON): no resume */
} tlab__splice;

void tlab__splice_init(tlab__splice *s, int chat);
void tlab__splice_free(tlab__splice *s);
/* Whole events on their way to the client: recorded, and on a continuation leg rewritten; what
 * goes out is written to `out` (the same bytes, but for a continuation's role chunk and usage). */
void tlab__splice_events(tlab__splice *s, const char *data, size_t len, tlab__sse_out_fn out, void *arg);
/* Whether the stream can go on elsewhere: text was followed, and no finish went out. */
int tlab__splice_resumable(const tlab__splice *s);
/* The next leg continues this one. */
void tlab__splice_begin_continuation(tlab__splice *s);

#endif
