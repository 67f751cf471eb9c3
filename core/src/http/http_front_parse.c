/*
 * http_front_parse.c - the front HTTP/1.x server's message parsing: the request line's check,
 * http-parser's callbacks, which copy the URL and headers into the request's arena and enforce
 * the limits, the refusal of a request the parser or a limit rejected (its reply is written by
 * http_front_reply.c), and the request getters of http_front.h. Called by the connection file;
 * calls only the reply and output files (http_front_internal.h gives the order).
 *
 * A request is one allocation: the struct and, after it, its arena (URL\0, then name\0value\0
 * per header, then the path when it needs a copy). Until it is handed to the handler only its
 * connection points at it, so the arena grows by realloc of the whole block (c->req follows).
 * No malloc per header; lookups are a walk over a handful of short strings.
 */
#include "http/http_front_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ARENA0 256 /* the arena's first size: the headers of a typical API request fit */

static const char *const method_names[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"};

static int method_of(unsigned m) {
    switch (m) {
    case HTTP_GET:
        return TLAB_HTTP_GET;
    case HTTP_POST:
        return TLAB_HTTP_POST;
    case HTTP_HEAD:
        return TLAB_HTTP_HEAD;
    case HTTP_PUT:
        return TLAB_HTTP_PUT;
    case HTTP_DELETE:
        return TLAB_HTTP_DELETE;
    case HTTP_OPTIONS:
        return TLAB_HTTP_OPTIONS;
    case HTTP_PATCH:
        return TLAB_HTTP_PATCH;
    default:
        return -1;
    }
}

/* ---- the arena ---- */

static tlab__http_req *req_new(hf_conn *c) {
    tlab__http_req *r = malloc(sizeof *r + ARENA0);
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r);
    r->c = c;
    r->arena_cap = ARENA0;
    r->path_off = UINT32_MAX;
    return r;
}

void hf_req_free(tlab__http_req *r) {
    free(r->body);
    free(r->rh);
    free(r);
}

/* Room for n more arena bytes. The request may move: the caller re-reads c->req. -1 when out of
 * memory. */
static int arena_reserve(hf_conn *c, size_t n) {
    tlab__http_req *r = c->req;
    if ((size_t)r->arena_len + n <= r->arena_cap)
        return 0;
    size_t cap = r->arena_cap;
    while (cap < (size_t)r->arena_len + n)
        cap *= 2;
    if (cap > UINT32_MAX || !(r = realloc(r, sizeof *r + cap)))
        return -1;
    r->arena_cap = (uint32_t)cap;
    c->req = r;
    return 0;
}

static int arena_put(hf_conn *c, const char *p, size_t n) {
    if (arena_reserve(c, n))
        return -1;
    tlab__http_req *r = c->req;
    memcpy(r->arena + r->arena_len, p, n);
    r->arena_len += (uint32_t)n;
    return 0;
}

/* ---- parser callbacks ---- */

/* Records the first error a callback finds (a later one must not replace it) and stops the
 * parser. msg NULL: refuse words it from the status. */
static int fail(hf_conn *c, int status, const char *msg) {
    if (!c->err_status) {
        c->err_status = (uint16_t)status;
        c->err_msg = msg;
    }
    return -1;
}

static int fail_oom(hf_conn *c) {
    return fail(c, 500, "out of memory reading the request");
}

static int on_message_begin(http_parser *p) {
    hf_conn *c = p->data;
    if (!c->req && !(c->req = req_new(c)))
        return fail_oom(c);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
    hf_conn *c = p->data;
    tlab__http_req *r = c->req;
    if (r->last_cb == HF_CB_NONE) {
        int m = method_of(p->method); /* known to http-parser (TRACE, CONNECT, ...) but not served */
        if (m < 0)
            return fail(c, 501, NULL);
        r->method = (uint8_t)m;
        r->last_cb = HF_CB_URL;
        r->head_bytes = (uint32_t)strlen(method_names[m]) + 12; /* " ", " HTTP/1.x\r\n" */
    }
    if (r->arena_len + n > c->s->limits.max_header_bytes)
        return fail(c, 414, NULL);
    r->head_bytes += (uint32_t)n;
    return arena_put(c, at, n) ? fail_oom(c) : 0;
}

/* Ends the entry being written: the URL, or a header's name or value. */
static int end_entry(hf_conn *c) {
    tlab__http_req *r = c->req;
    if (r->last_cb == HF_CB_VALUE) { /* trailing whitespace is not part of a value (a NUL precedes it) */
        while (r->arena[r->arena_len - 1] == ' ' || r->arena[r->arena_len - 1] == '\t')
            r->arena_len--;
    }
    if (arena_put(c, "", 1))
        return -1;
    r = c->req;
    if (r->last_cb == HF_CB_URL)
        r->hdr_off = r->arena_len;
    return 0;
}

/* Counts request bytes against max_header_bytes (the parser's own limit is a fixed 80 KB). */
static int head_grow(hf_conn *c, size_t n) {
    tlab__http_req *r = c->req;
    r->head_bytes += (uint32_t)n;
    if (r->head_bytes > c->s->limits.max_header_bytes)
        return fail(c, 431, NULL);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
    hf_conn *c = p->data;
    /* The non-strict parser reads "Transfer-Encoding : chunked" as the framing header; a proxy in
     * front may not, and the two would split the stream differently (smuggling). RFC 9112
     * section 5.1: no whitespace between a field name and its colon, answered with 400. */
    if (memchr(at, ' ', n) || memchr(at, '\t', n))
        return fail(c, 400, "malformed request: whitespace in a header name");
    if (c->req->headers_done) /* a chunked body's trailer: counted, not kept */
        return head_grow(c, n + 4);
    size_t counted = n;
    if (c->req->last_cb != HF_CB_FIELD) {
        if (end_entry(c))
            return fail_oom(c);
        if (c->req->nhdr == UINT16_MAX)
            return fail(c, 431, NULL);
        c->req->nhdr++;
        counted += 4; /* ": ", CRLF */
    }
    c->req->last_cb = HF_CB_FIELD;
    if (head_grow(c, counted))
        return -1;
    return arena_put(c, at, n) ? fail_oom(c) : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
    hf_conn *c = p->data;
    if (c->req->headers_done)
        return head_grow(c, n);
    if (c->req->last_cb == HF_CB_FIELD && end_entry(c))
        return fail_oom(c);
    c->req->last_cb = HF_CB_VALUE;
    if (head_grow(c, n))
        return -1;
    return arena_put(c, at, n) ? fail_oom(c) : 0;
}

/* The path out of the URL: its tail when nothing follows it, else a copy. 400 when the URL does
 * not parse. */
static int set_path(hf_conn *c) {
    tlab__http_req *r = c->req;
    struct http_parser_url u;
    size_t url_len = r->hdr_off - 1;
    if (r->arena[0] == '/' && !strpbrk(r->arena, "?#")) { /* origin-form, the usual: the URL is the path */
        r->path_off = 0;
        return 0;
    }
    http_parser_url_init(&u);
    if (http_parser_parse_url(r->arena, url_len, 0, &u))
        return fail(c, 400, "malformed request: invalid request target");
    if (!(u.field_set & (1 << UF_PATH)) || u.field_data[UF_PATH].len == 0)
        return 0; /* path_off stays UINT32_MAX: "/" */
    size_t off = u.field_data[UF_PATH].off, len = u.field_data[UF_PATH].len;
    if (off + len == url_len) {
        r->path_off = (uint32_t)off;
        return 0;
    }
    if (arena_reserve(c, len + 1))
        return fail_oom(c);
    r = c->req;
    r->path_off = r->arena_len;
    memcpy(r->arena + r->arena_len, r->arena + off, len);
    r->arena[r->arena_len + len] = '\0';
    r->arena_len += (uint32_t)len + 1;
    return 0;
}

static int on_headers_complete(http_parser *p) {
    hf_conn *c = p->data;
    if (c->req->last_cb == HF_CB_FIELD) { /* a header without a value */
        if (end_entry(c))
            return fail_oom(c);
        c->req->last_cb = HF_CB_VALUE;
    }
    if (end_entry(c))
        return fail_oom(c);
    c->req->headers_done = 1;
    if (p->http_major != 1)
        return fail(c, 505, NULL);
    if (set_path(c))
        return -1;
    tlab__http_req *r = c->req;
    if (r->arena_cap - r->arena_len >= 64) {
        /* Give the slack back before the request waits (10,000 waiting requests are the memory
         * budget); glibc shrinks in place, and the request is still only the connection's. */
        tlab__http_req *fit = realloc(r, sizeof *r + r->arena_len);
        if (fit) {
            c->req = r = fit;
            r->arena_cap = r->arena_len;
        }
    }
    r->minor = p->http_minor ? 1 : 0;

    uint64_t cl = p->content_length;
    int chunked = (p->flags & F_CHUNKED) != 0;
    int has_length = !chunked && cl != ULLONG_MAX && cl > 0;
    if (has_length) {
        if (cl > c->s->limits.max_body_bytes)
            return fail(c, 413, NULL);
        if (!(r->body = malloc((size_t)cl + 1))) /* the exact size: take_body hands it over as is */
            return fail_oom(c);
        r->body_cap = (size_t)cl + 1;
    }
    const char *expect = hf_find_header(r->arena + r->hdr_off, r->nhdr, "Expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0)
            return fail(c, 417, "unsupported Expect header (only 100-continue is)");
        if (r->minor >= 1 && (chunked || has_length)) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            struct iovec v = {(void *)cont, sizeof cont - 1};
            if (hf_conn_output(c, &v, 1, NULL))
                return -1; /* the connection is dead */
        }
    }
    return 0;
}

static int on_chunk_header(http_parser *p) {
    hf_conn *c = p->data; /* content_length is this chunk's size: refuse it before it arrives */
    if (p->content_length > c->s->limits.max_body_bytes - c->req->body_len)
        return fail(c, 413, NULL);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
    hf_conn *c = p->data;
    tlab__http_req *r = c->req;
    size_t max = c->s->limits.max_body_bytes;
    if (n > max - r->body_len)
        return fail(c, 413, NULL);
    if (r->body_len + n + 1 > r->body_cap) { /* chunked: grow by doubling, up to the limit */
        size_t cap = r->body_cap ? r->body_cap * 2 : 4096;
        if (cap < r->body_len + n + 1)
            cap = r->body_len + n + 1;
        if (cap > max + 1)
            cap = max + 1;
        char *b = realloc(r->body, cap);
        if (!b)
            return fail_oom(c);
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, n);
    r->body_len += n;
    return 0;
}

static int on_message_complete(http_parser *p) {
    hf_conn *c = p->data;
    tlab__http_req *r = c->req;
    if (r->body)
        r->body[r->body_len] = '\0';
    r->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    http_parser_pause(p, 1); /* execute returns here: later bytes are the next request's */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/* ---- refusals ---- */

/* Answers a request the parser refused (c->err_status, else from the parser's error `e`) with
 * its error reply; the connection closes. */
static void refuse(hf_conn *c, enum http_errno e) {
    const tlab__http_limits *lim = &c->s->limits;
    int status = c->err_status;
    const char *msg = c->err_msg;
    char buf[160];
    if (!status) {
        if (e == HPE_INVALID_METHOD)
            status = 501;
        else if (e == HPE_HEADER_OVERFLOW)
            status = c->req && c->req->last_cb == HF_CB_URL ? 414 : 431; /* http-parser's own cap, still in the target */
        else
            status = 400;
    }
    if (!msg) {
        switch (status) {
        case 400:
            snprintf(buf, sizeof buf, "malformed request: %s", http_errno_description(e));
            break;
        case 413:
            snprintf(buf, sizeof buf, "request body too large (limit %zu bytes)", lim->max_body_bytes);
            break;
        case 414:
            snprintf(buf, sizeof buf, "request target too long (limit %zu bytes)", lim->max_header_bytes);
            break;
        case 431:
            snprintf(buf, sizeof buf, "request headers too large (limit %zu bytes)", lim->max_header_bytes);
            break;
        case 501:
            snprintf(buf, sizeof buf, "method not implemented");
            break;
        case 505:
            snprintf(buf, sizeof buf, "HTTP version not supported (HTTP/1.0 and HTTP/1.1 are)");
            break;
        default:
            snprintf(buf, sizeof buf, "%s", http_status_str((enum http_status)status));
        }
        msg = buf;
    }
    if (c->req) {
        hf_req_free(c->req);
        c->req = NULL;
    }
    hf_error_reply(c, status, status == 500 ? "server_error" : NULL, msg);
}

/* ---- feeding the parser ---- */

/*
 * Debian's http-parser is built non-strict: it reads "GET / HTTX/1.1" as HTTP/1.1, "GET /" as an
 * HTTP/0.9 request, and "GARBAGE" as a method it does not know (501, though no request line was
 * sent at all). So a request line that is whole in the bytes at hand is checked first for
 * METHOD SP TARGET SP HTTP/d.d; one split across reads (a client trickling it) is left to the
 * parser alone. 0 when the line is whole and malformed.
 */
static int request_line_ok(const char *p, size_t len) {
    size_t i = 0;
    while (i < len && (p[i] == '\r' || p[i] == '\n')) /* empty lines before a request are allowed */
        i++;
    const char *line = p + i, *lf = memchr(line, '\n', len - i);
    if (!lf)
        return 1;
    size_t n = (size_t)(lf - line);
    if (n && line[n - 1] == '\r')
        n--;
    const char *sp = memchr(line, ' ', n);
    return sp && sp != line && n >= 10 && sp < line + n - 9 && memcmp(line + n - 9, " HTTP/", 6) == 0 &&
           line[n - 3] >= '0' && line[n - 3] <= '9' && line[n - 2] == '.' && line[n - 1] >= '0' && line[n - 1] <= '9';
}

hf_parse_result hf_parse(hf_conn *c, const char *data, size_t len, size_t *used) {
    *used = 0;
    if (!c->req && !request_line_ok(data, len)) {
        c->err_status = 400;
        c->err_msg = "malformed request line (expected METHOD TARGET HTTP/1.x)";
        refuse(c, HPE_OK);
        return HF_PARSE_STOP;
    }
    size_t n = http_parser_execute(&c->parser, &settings, data, len);
    *used = n;
    if (c->state == HF_DEAD) /* the 100 Continue could not be written */
        return HF_PARSE_STOP;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED && !c->err_status)
        return HF_PARSE_WHOLE;
    if (e != HPE_OK || c->err_status) {
        refuse(c, e);
        return HF_PARSE_STOP;
    }
    return n ? HF_PARSE_MORE : HF_PARSE_STOP;
}

/* ---- getters ---- */

tlab__http_method tlab__http_req_method(const tlab__http_req *req) {
    return (tlab__http_method)req->method;
}

const char *tlab__http_req_method_name(const tlab__http_req *req) {
    return method_names[req->method];
}

const char *tlab__http_req_path(const tlab__http_req *req) {
    return req->path_off == UINT32_MAX ? "/" : req->arena + req->path_off;
}

const char *tlab__http_req_header(const tlab__http_req *req, const char *name) {
    return hf_find_header(req->arena + req->hdr_off, req->nhdr, name);
}

const char *tlab__http_req_body(const tlab__http_req *req, size_t *len) {
    if (len)
        *len = req->body_len;
    return req->body ? req->body : "";
}

char *tlab__http_req_take_body(tlab__http_req *req, size_t *len) {
    char *b = req->body;
    size_t n = req->body_len;
    if (!b) {
        if (!(b = malloc(1)))
            return NULL;
        b[0] = '\0';
    }
    req->body = NULL;
    req->body_len = req->body_cap = 0;
    if (len)
        *len = n;
    return b;
}

const char *tlab__http_req_peer(const tlab__http_req *req, uint16_t *port) {
    if (port)
        *port = req->c->port;
    return req->c->peer;
}

void tlab__http_req_watch(tlab__http_req *req, tlab__http_gone_fn gone, void *arg) {
    req->gone = gone;
    req->gone_arg = arg;
}
