/*
 * usage_meter.c - reads token usage out of relayed worker responses (see usage_meter.h).
 * A JSON parse happens once per JSON reply, and for SSE only on data lines that mention
 * "usage", so a plain stream costs a scan for newlines.
 */
#include "policy/usage_meter.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

void tlab__usage_meter_init(tlab__usage_meter *m, int stream) {
    memset(m, 0, sizeof *m);
    m->stream = stream;
}

void tlab__usage_meter_free(tlab__usage_meter *m) {
    free(m->buf);
    m->buf = NULL;
    m->len = m->cap = 0;
}

static void append(tlab__usage_meter *m, const char *data, size_t len, size_t limit) {
    if (m->overflow)
        return;
    if (m->len + len > limit) {
        m->overflow = 1;
        return;
    }
    if (m->len + len + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 1024;
        while (cap < m->len + len + 1)
            cap *= 2;
        char *nb = realloc(m->buf, cap);
        if (!nb) {
            m->overflow = 1; /* out of memory: keep counting, stop reading */
            return;
        }
        m->buf = nb;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, data, len);
    m->len += len;
    m->buf[m->len] = '\0';
}

/* Takes usage from a parsed chunk or body; the last one seen wins (continuous_usage_stats
 * sends a running total in every chunk). */
static int plausible(const json_t *v) {
    /* A count past this is a broken worker, and summing two such could overflow. */
    return json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= TLAB_USAGE_MAX_TOKENS;
}

static void take_usage(tlab__usage_meter *m, json_t *doc) {
    json_t *u = json_is_object(doc) ? json_object_get(doc, "usage") : NULL;
    json_t *p = json_object_get(u, "prompt_tokens"), *c = json_object_get(u, "completion_tokens");
    if (plausible(p) && plausible(c)) {
        m->have_usage = 1;
        m->prompt_tokens = json_integer_value(p);
        m->completion_tokens = json_integer_value(c);
    }
}

static void sse_line(tlab__usage_meter *m) {
    static char empty[1];
    char *line = m->buf ? m->buf : empty;
    size_t len = m->len;
    int overflow = m->overflow;
    m->len = 0;
    m->overflow = 0;
    if (len && line[len - 1] == '\r')
        line[--len] = '\0';
    if (strncmp(line, "data:", 5) != 0 && !(overflow && len == 0))
        return;
    if (overflow) {
        m->events++; /* too long to read: still one event */
        return;
    }
    const char *payload = line + 5 + (line[5] == ' ');
    if (strcmp(payload, "[DONE]") == 0)
        return;
    m->events++;
    /* Most chunks carry no usage or "usage":null; parse only those with an object. */
    const char *u = strstr(payload, "\"usage\"");
    if (!u)
        return;
    for (u += 7; *u == ' ' || *u == ':'; u++)
        ;
    if (*u != '{')
        return;
    json_t *doc = json_loads(payload, 0, NULL);
    take_usage(m, doc);
    json_decref(doc);
}

void tlab__usage_meter_feed(tlab__usage_meter *m, const char *data, size_t len) {
    m->bytes += len;
    if (!m->stream) {
        append(m, data, len, TLAB_USAGE_BODY_CAP);
        return;
    }
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        append(m, data, n, TLAB_USAGE_LINE_CAP); /* an overlong line keeps its start: enough to count it */
        if (!nl)
            return;
        sse_line(m);
        data += n + 1;
        len -= n + 1;
    }
}

void tlab__usage_meter_end(tlab__usage_meter *m) {
    if (m->stream) {
        if (m->len || m->overflow)
            sse_line(m);
        return;
    }
    if (m->overflow || !m->len)
        return;
    json_t *doc = json_loadb(m->buf, m->len, 0, NULL);
    take_usage(m, doc);
    json_decref(doc);
}

int64_t tlab__usage_charge(const tlab__usage_meter *m, int dispatched, int status, int64_t prompt_estimate, int64_t reserved) {
    if (m->have_usage)
        return m->prompt_tokens + m->completion_tokens;
    if (m->bytes && m->stream) {
        int64_t used = prompt_estimate + m->events;
        return used < reserved ? used : reserved;
    }
    if (m->bytes)
        return reserved;
    if (dispatched && (status == 499 || status == 504))
        return reserved;
    return 0;
}
