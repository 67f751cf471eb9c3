/*
 * sse_relay.c - holds back unfinished SSE events on their way to the client (see sse_relay.h).
 */
#include "sse/sse_relay.h"

#include <stdlib.h>
#include <string.h>

void tlab__sse_relay_init(tlab__sse_relay *s, size_t max_held) {
    memset(s, 0, sizeof *s);
    s->max_held = max_held ? max_held : TLAB_SSE_RELAY_MAX_HELD;
    s->out_at_boundary = 1;
}

void tlab__sse_relay_free(tlab__sse_relay *s) {
    free(s->held);
    s->held = NULL;
    s->held_len = s->held_cap = 0;
}

static void line_ended(tlab__sse_relay *s) {
    if (!s->in_line) {
        if (s->event_open)
            s->events++;
        s->event_open = 0;
        return;
    }
    if (!s->line_is_comment) {
        s->event_open = 1;
        if ((s->line_len == 12 && memcmp(s->line_head, "data: [DONE]", 12) == 0) ||
            (s->line_len == 11 && memcmp(s->line_head, "data:[DONE]", 11) == 0))
            s->saw_done = 1;
    }
    s->in_line = 0;
    s->line_is_comment = 0;
    s->line_len = 0;
}

/* Advances the line state by one byte; returns whether the stream is now at an event boundary. */
static int step(tlab__sse_relay *s, char c) {
    if (s->last_cr && c == '\n') {
        s->last_cr = 0; /* the LF of a CRLF: the line already ended at the CR */
    } else if (c == '\r' || c == '\n') {
        s->last_cr = c == '\r';
        line_ended(s);
    } else {
        s->last_cr = 0;
        if (!s->in_line)
            s->line_is_comment = c == ':';
        s->in_line = 1;
        if (s->line_len < sizeof s->line_head)
            s->line_head[s->line_len] = c;
        if (s->line_len <= sizeof s->line_head) /* one past: "longer than any match" */
            s->line_len++;
    }
    return !s->in_line && !s->event_open;
}

static int hold(tlab__sse_relay *s, const char *data, size_t len) {
    if (s->held_len + len > s->max_held)
        return -1;
    if (s->held_len + len > s->held_cap) {
        size_t cap = s->held_cap ? s->held_cap : 512;
        while (cap < s->held_len + len)
            cap *= 2;
        char *b = realloc(s->held, cap);
        if (!b)
            return -1;
        s->held = b;
        s->held_cap = cap;
    }
    memcpy(s->held + s->held_len, data, len);
    s->held_len += len;
    return 0;
}

static void send_held(tlab__sse_relay *s, tlab__sse_out_fn out, void *arg) {
    if (s->held_len)
        out(arg, s->held, s->held_len);
    s->held_len = 0;
}

/* Advances the line state over a run of bytes that holds no CR or LF, as `step` would byte by
 * byte (none of them can end at a boundary: each leaves the line open). */
static void step_run(tlab__sse_relay *s, const char *p, size_t n) {
    s->last_cr = 0;
    if (!s->in_line)
        s->line_is_comment = p[0] == ':';
    s->in_line = 1;
    if (s->line_len < sizeof s->line_head) {
        size_t k = sizeof s->line_head - s->line_len;
        memcpy(s->line_head + s->line_len, p, k < n ? k : n);
    }
    size_t most = sizeof s->line_head + 1; /* "longer than any match" */
    s->line_len = s->line_len + n > most ? most : s->line_len + n;
}

void tlab__sse_relay_feed(tlab__sse_relay *s, const char *data, size_t len, tlab__sse_out_fn out, void *arg) {
    size_t cut = 0; /* bytes of data up to the last boundary in this piece */
    /* Line ends are found with memchr, and the bytes between them taken as one run: a byte-by-
     * byte walk was the largest cost of relaying a stream (about 20 instructions a byte). */
    size_t i = 0;
    while (i < len) {
        const char *p = data + i, *lf = memchr(p, '\n', len - i);
        size_t upto = lf ? (size_t)(lf - p) : len - i;
        const char *cr = memchr(p, '\r', upto);
        size_t run = cr ? (size_t)(cr - p) : upto;
        if (run)
            step_run(s, p, run);
        i += run;
        if (i < len) { /* a CR or LF */
            if (step(s, data[i]))
                cut = i + 1;
            i++;
        }
    }
    if (cut) {
        send_held(s, out, arg);
        out(arg, data, cut);
        s->out_at_boundary = 1;
    }
    if (cut == len || hold(s, data + cut, len - cut) == 0)
        return;
    send_held(s, out, arg);
    out(arg, data + cut, len - cut);
    s->out_at_boundary = 0;
    s->overflowed = 1;
}

void tlab__sse_relay_flush(tlab__sse_relay *s, tlab__sse_out_fn out, void *arg) {
    if (!s->held_len)
        return;
    send_held(s, out, arg);
    s->out_at_boundary = 0;
}

const char *tlab__sse_relay_event_prefix(const tlab__sse_relay *s) {
    return s->out_at_boundary ? "" : "\n\n";
}
