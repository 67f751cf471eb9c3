/*
 * test_bench_sse.c - SSE parsing across every split of a stream, comments, CRLF, multi-line data
 * and [DONE]; and the response reader that turns those events into token timestamps and usage.
 */
#include <stdlib.h>
#include <string.h>

#include "response.h"
#include "sse.h"
#include "tlab_test.h"

typedef struct {
    char got[16][128];
    int n;
} sink;

static void on_ev(void *arg, const char *data, size_t len) {
    sink *s = arg;
    if (s->n < 16)
        snprintf(s->got[s->n], sizeof s->got[0], "%.*s", (int)len, data);
    s->n++;
}

static const char *STREAM = ": keep-alive\n\n"
                            "data: {\"a\":1}\n\n"
                            "event: message\r\ndata: {\"b\":2}\r\n\r\n"
                            "data: line1\ndata: line2\n\n"
                            ":comment\r"
                            "data:nospace\r\r"
                            "id: 7\nretry: 10\n\n" /* no data: no event */
                            "data: [DONE]\n\n"
                            "data: unterminated";

static void expect(const sink *s, size_t comments, const tlab_sse *p) {
    CHECK_MSG(s->n == 5, "%d events", s->n);
    CHECK(!strcmp(s->got[0], "{\"a\":1}"));
    CHECK(!strcmp(s->got[1], "{\"b\":2}"));
    CHECK(!strcmp(s->got[2], "line1\nline2"));
    CHECK(!strcmp(s->got[3], "nospace"));
    CHECK(!strcmp(s->got[4], "[DONE]"));
    CHECK(p->comments == comments);
}

static void test_whole(void) {
    sink s = {0};
    tlab_sse p;
    tlab_sse_init(&p, on_ev, &s);
    CHECK(tlab_sse_feed(&p, STREAM, strlen(STREAM)) == 0);
    expect(&s, 2, &p);
    tlab_sse_free(&p);
}

static void test_every_split(void) {
    /* Two pieces, cut at every offset; then one byte at a time. */
    size_t len = strlen(STREAM);
    int ok = 1;
    for (size_t cut = 0; cut <= len; cut++) {
        sink s = {0};
        tlab_sse p;
        tlab_sse_init(&p, on_ev, &s);
        tlab_sse_feed(&p, STREAM, cut);
        tlab_sse_feed(&p, STREAM + cut, len - cut);
        ok &= s.n == 5 && !strcmp(s.got[2], "line1\nline2") && !strcmp(s.got[4], "[DONE]") && p.comments == 2;
        tlab_sse_free(&p);
    }
    CHECK_MSG(ok, "some split point changed the events");
    sink s = {0};
    tlab_sse p;
    tlab_sse_init(&p, on_ev, &s);
    for (size_t i = 0; i < len; i++)
        tlab_sse_feed(&p, STREAM + i, 1);
    expect(&s, 2, &p);
    tlab_sse_free(&p);
}

static void test_empty_data_dispatches(void) {
    sink s = {0};
    tlab_sse p;
    tlab_sse_init(&p, on_ev, &s);
    tlab_sse_feed(&p, "data:\n\n", 7);
    CHECK(s.n == 1 && s.got[0][0] == '\0');
    tlab_sse_free(&p);
}

/* The response reader on a vLLM-like chat stream split in awkward places. */
static void test_response_stream(void) {
    const char *chunks[] = {
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n", /* role only */
        ": ping\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n",
        "\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"con",
        "tent\":\"lo\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"text\":\"!\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":200,\"completion_tokens\":3}}\n\n",
        "data: [DO",
        "NE]\n\n",
    };
    tlab_req rec = {.sched = 0, .sent = 0, .first = -1, .last = -1, .done = -1, .usage_out = -1, .usage_in = -1};
    tlab_response r;
    tlab_response_init(&r, &rec);
    tlab_response_headers(&r, 200, 1);
    for (int i = 0; i < 7; i++)
        tlab_response_data(&r, chunks[i], strlen(chunks[i]), 1.0 + i);
    tlab_response_finish(&r, TLAB_HTTP_DONE, 10.0);
    CHECK(rec.kind == TLAB_K_OK);
    CHECK(rec.chunks == 3);
    /* An event counts when its blank line arrives: "Hel" ends in piece 2 (t=3), "lo" and "!" in piece 3. */
    CHECK_MSG(rec.first == 3.0, "first token at %g", rec.first);
    CHECK(rec.n_itl == 2 && rec.itl[0] == 1.0f && rec.itl[1] == 0.0f);
    CHECK(rec.usage_out == 3 && rec.usage_in == 200);
    CHECK(tlab_req_output_tokens(&rec) == 3);
    free(rec.itl);
}

static void test_response_failures(void) {
    /* No [DONE]: broken stream. */
    tlab_req rec = {.first = -1, .last = -1, .usage_out = -1, .usage_in = -1};
    tlab_response r;
    tlab_response_init(&r, &rec);
    tlab_response_headers(&r, 200, 1);
    const char *c = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n";
    tlab_response_data(&r, c, strlen(c), 1);
    tlab_response_finish(&r, TLAB_HTTP_DONE, 2);
    CHECK(rec.kind == TLAB_K_BROKEN_STREAM && rec.chunks == 1 && tlab_req_output_tokens(&rec) == 1);
    free(rec.itl);
    /* An error event (the gateway's after-first-byte timeout), then [DONE]. */
    rec = (tlab_req){.first = -1, .last = -1, .usage_out = -1, .usage_in = -1};
    tlab_response_init(&r, &rec);
    tlab_response_headers(&r, 200, 1);
    c = "data: {\"error\":{\"message\":\"timeout\"}}\n\ndata: [DONE]\n\n";
    tlab_response_data(&r, c, strlen(c), 1);
    tlab_response_finish(&r, TLAB_HTTP_DONE, 2);
    CHECK(rec.kind == TLAB_K_BROKEN_STREAM);
    /* HTTP 400 with a JSON body. */
    rec = (tlab_req){.first = -1, .last = -1, .usage_out = -1, .usage_in = -1};
    tlab_response_init(&r, &rec);
    tlab_response_headers(&r, 400, 0);
    c = "{\"error\":{\"message\":\"too long\"}}";
    tlab_response_data(&r, c, strlen(c), 1);
    tlab_response_finish(&r, TLAB_HTTP_DONE, 2);
    CHECK(rec.kind == TLAB_K_HTTP && rec.status == 400);
    char buf[16];
    CHECK(!strcmp(tlab_kind_name(&rec, buf, sizeof buf), "http_400"));
    /* Non-streaming 200 with usage. */
    rec = (tlab_req){.first = -1, .last = -1, .usage_out = -1, .usage_in = -1};
    tlab_response_init(&r, &rec);
    tlab_response_headers(&r, 200, 0);
    c = "{\"choices\":[{\"message\":{\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}";
    tlab_response_data(&r, c, 10, 1);
    tlab_response_data(&r, c + 10, strlen(c) - 10, 1.5);
    tlab_response_finish(&r, TLAB_HTTP_DONE, 2);
    CHECK(rec.kind == TLAB_K_OK && rec.usage_out == 2 && rec.first == 1);
    /* 200 with a body that is not JSON. */
    rec = (tlab_req){.first = -1, .last = -1, .usage_out = -1, .usage_in = -1};
    tlab_response_init(&r, &rec);
    tlab_response_headers(&r, 200, 0);
    tlab_response_data(&r, "<html>", 6, 1);
    tlab_response_finish(&r, TLAB_HTTP_DONE, 2);
    CHECK(rec.kind == TLAB_K_BAD_RESPONSE);
    /* Transport failures. */
    rec = (tlab_req){.first = -1, .last = -1, .usage_out = -1, .usage_in = -1};
    tlab_response_init(&r, &rec);
    tlab_response_finish(&r, TLAB_HTTP_CONNECT, 2);
    CHECK(rec.kind == TLAB_K_CONNECT);
    tlab_response_init(&r, &rec);
    tlab_response_finish(&r, TLAB_HTTP_TIMEOUT, 2);
    CHECK(rec.kind == TLAB_K_TIMEOUT);
}

int main(void) {
    test_whole();
    test_every_split();
    test_empty_data_dispatches();
    test_response_stream();
    test_response_failures();
    return tlab_test_finish();
}
