/*
 * sse.c - incremental event-stream parsing (see sse.h).
 */
#include "sse.h"

#include <stdlib.h>
#include <string.h>

void tlab_sse_init(tlab_sse *p, tlab_sse_event_fn on_event, void *arg) {
    memset(p, 0, sizeof *p);
    p->on_event = on_event;
    p->arg = arg;
}

void tlab_sse_free(tlab_sse *p) {
    free(p->line);
    free(p->data);
    p->line = p->data = NULL;
    p->line_len = p->line_cap = p->data_len = p->data_cap = 0;
}

static int grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    char *b = realloc(*buf, c);
    if (!b)
        return -1;
    *buf = b;
    *cap = c;
    return 0;
}

/* One complete line (without its end). */
static int process_line(tlab_sse *p, const char *line, size_t len) {
    if (len == 0) {
        if (p->has_data) {
            p->data[p->data_len] = '\0';
            p->events++;
            p->on_event(p->arg, p->data, p->data_len);
        }
        p->has_data = 0;
        p->data_len = 0;
        return 0;
    }
    if (line[0] == ':') {
        p->comments++;
        return 0;
    }
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    if (name_len != 4 || memcmp(line, "data", 4) != 0)
        return 0;
    const char *val = colon ? colon + 1 : line + len;
    size_t vlen = (size_t)(line + len - val);
    if (vlen && *val == ' ') {
        val++;
        vlen--;
    }
    size_t need = p->data_len + (p->has_data ? 1 : 0) + vlen + 1;
    if (grow(&p->data, &p->data_cap, need) != 0)
        return -1;
    if (p->has_data)
        p->data[p->data_len++] = '\n';
    memcpy(p->data + p->data_len, val, vlen);
    p->data_len += vlen;
    p->has_data = 1;
    return 0;
}

int tlab_sse_feed(tlab_sse *p, const char *buf, size_t len) {
    size_t i = 0;
    while (i < len) {
        if (p->last_cr && buf[i] == '\n') { /* the LF of a CRLF split across two feeds */
            p->last_cr = 0;
            i++;
            continue;
        }
        p->last_cr = 0;
        /* Find the next line end in this piece. */
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r')
            j++;
        if (j == len) { /* no end yet: keep the partial line */
            if (grow(&p->line, &p->line_cap, p->line_len + (j - i) + 1) != 0)
                return -1;
            memcpy(p->line + p->line_len, buf + i, j - i);
            p->line_len += j - i;
            return 0;
        }
        int rc;
        if (p->line_len) {
            if (grow(&p->line, &p->line_cap, p->line_len + (j - i) + 1) != 0)
                return -1;
            memcpy(p->line + p->line_len, buf + i, j - i);
            p->line_len += j - i;
            rc = process_line(p, p->line, p->line_len);
            p->line_len = 0;
        } else {
            rc = process_line(p, buf + i, j - i); /* the common case: no copy */
        }
        if (rc != 0)
            return -1;
        if (buf[j] == '\r') {
            if (j + 1 < len && buf[j + 1] == '\n')
                j++;
            else if (j + 1 == len)
                p->last_cr = 1;
        }
        i = j + 1;
    }
    return 0;
}
