/*
 * perf_upstream.c - tlab-perf-upstream: a minimal OpenAI-shaped server (evhttp, one thread) that
 * answers as fast as it can, to measure tlab-bench's own ceiling without a model or simulator in
 * the way; it can also fail on purpose, for tlab-bench's error-accounting tests.
 *
 * POST to any path:
 *   non-streaming request ("stream" absent or false): one small chat.completion JSON, at once or,
 *     with --delay-ms MS, after MS (a worker with a fixed service time, for proxy comparisons);
 *   "stream": true: --chunks SSE token chunks, one every --interval-ms, a usage chunk, [DONE].
 * Faults, counted over all requests in arrival order (1-based):
 *   --fail-every N   the Nth, 2Nth, ... request gets 500 with an OpenAI error body;
 *   --break-every N  the Nth, ... streaming request is cut off after its first chunk.
 * GET /health answers 200. Prints "ready PORT" on stdout once listening.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "perf_flags.h"

static long opt_chunks = 16, opt_interval_ms = 0, opt_fail_every = 0, opt_break_every = 0, opt_delay_ms = 0;
static unsigned long n_requests;
static struct event_base *base;

typedef struct {
    struct evhttp_request *req;
    struct event *timer;
    long sent;
    int cut;
    int delayed; /* a non-streaming answer held for --delay-ms, not a stream */
} stream;

static void stream_free(stream *s) {
    event_free(s->timer);
    free(s);
}

static void on_close(struct evhttp_connection *conn, void *arg) {
    /* The client went away mid-stream: stop the timer; evhttp frees the request. */
    stream *s = arg;
    stream_free(s);
}

static void send_json_answer(struct evhttp_request *req) {
    struct evbuffer *b = evbuffer_new();
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evbuffer_add_printf(b, "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":1,\"total_tokens\":9}}");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    stream *s = arg;
    if (s->delayed) {
        evhttp_connection_set_closecb(evhttp_request_get_connection(s->req), NULL, NULL);
        send_json_answer(s->req);
        stream_free(s);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (s->sent < opt_chunks) {
        evbuffer_add_printf(b, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%ld \"},\"finish_reason\":null}]}\n\n",
                            s->sent);
        s->sent++;
        evhttp_send_reply_chunk(s->req, b);
        evbuffer_free(b);
        if (s->cut) {
            struct evhttp_connection *conn = evhttp_request_get_connection(s->req);
            evhttp_connection_set_closecb(conn, NULL, NULL);
            stream_free(s);
            evhttp_connection_free(conn); /* the stream breaks off: no [DONE], no chunk end */
            return;
        }
        struct timeval tv = {opt_interval_ms / 1000, (opt_interval_ms % 1000) * 1000};
        evtimer_add(s->timer, &tv);
        return;
    }
    evbuffer_add_printf(b, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":%ld,\"total_tokens\":%ld}}\n\ndata: [DONE]\n\n",
                        opt_chunks, opt_chunks + 8);
    evhttp_send_reply_chunk(s->req, b);
    evbuffer_free(b);
    evhttp_connection_set_closecb(evhttp_request_get_connection(s->req), NULL, NULL);
    evhttp_send_reply_end(s->req);
    stream_free(s);
}

static int wants_stream(struct evhttp_request *req) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, (ssize_t)len);
    if (!body)
        return 0;
    /* A substring test is enough for the bodies tlab-bench sends, and keeps the server fast. */
    const char *p = memmem(body, len, "\"stream\":true", 13);
    if (!p)
        p = memmem(body, len, "\"stream\": true", 14);
    return p != NULL;
}

static void on_request(struct evhttp_request *req, void *arg) {
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    if (evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
        evhttp_send_reply(req, 200, "OK", NULL);
        return;
    }
    unsigned long n = ++n_requests;
    struct evbuffer *b = evbuffer_new();
    if (opt_fail_every && n % (unsigned long)opt_fail_every == 0) {
        evhttp_add_header(out, "Content-Type", "application/json");
        evbuffer_add_printf(b, "{\"error\":{\"message\":\"injected failure\",\"type\":\"InternalServerError\",\"code\":500}}");
        evhttp_send_reply(req, 500, "Internal Server Error", b);
        evbuffer_free(b);
        return;
    }
    evbuffer_free(b);
    if (!wants_stream(req) && opt_delay_ms <= 0) {
        send_json_answer(req);
        return;
    }
    stream *s = calloc(1, sizeof *s);
    s->req = req;
    s->cut = opt_break_every && n % (unsigned long)opt_break_every == 0;
    s->timer = evtimer_new(base, on_tick, s);
    if (!wants_stream(req)) {
        /* Held like a stream's first chunk: a client that leaves meanwhile frees it (on_close). */
        s->delayed = 1;
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_close, s);
        struct timeval tv = {opt_delay_ms / 1000, (opt_delay_ms % 1000) * 1000};
        evtimer_add(s->timer, &tv);
        return;
    }
    evhttp_add_header(out, "Content-Type", "text/event-stream");
    evhttp_send_reply_start(req, 200, "OK");
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_close, s);
    struct timeval tv = {opt_interval_ms / 1000, (opt_interval_ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    event_base_loopbreak(base);
}

static const char usage[] =
    "usage: tlab-perf-upstream --port P [--chunks N] [--interval-ms MS] [--fail-every N] [--break-every N] [--delay-ms MS]\n"
    "\n"
    "A minimal fast OpenAI-shaped upstream on 127.0.0.1:P; prints \"ready P\" once listening.\n"
    "  --chunks N        a streamed answer has N token chunks\n"
    "  --interval-ms MS  time between chunks\n"
    "  --fail-every N    every Nth request answers 500\n"
    "  --break-every N   every Nth stream is cut midway\n"
    "  --delay-ms MS     a fixed service time before each answer\n"
    "  -h, --help, -V, --version\n";

int main(int argc, char **argv) {
    int port = 0;
    if (perf_help_or_version(argc, argv, "tlab-perf-upstream", usage))
        return 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = atol(argv[i + 1]);
        if (!strcmp(argv[i], "--port"))
            port = (int)v;
        else if (!strcmp(argv[i], "--chunks"))
            opt_chunks = v;
        else if (!strcmp(argv[i], "--interval-ms"))
            opt_interval_ms = v;
        else if (!strcmp(argv[i], "--fail-every"))
            opt_fail_every = v;
        else if (!strcmp(argv[i], "--break-every"))
            opt_break_every = v;
        else if (!strcmp(argv[i], "--delay-ms"))
            opt_delay_ms = v;
        else {
            fputs(usage, stderr);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    evhttp_set_gencb(http, on_request, NULL);
    struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port);
    if (!sock) {
        fprintf(stderr, "tlab-perf-upstream: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    /* Accepted sockets inherit TCP_NODELAY on Linux. Without it, a stream's first chunk waits
     * behind the unacknowledged headers for the client's delayed ACK (~40 ms): Nagle's algorithm. */
    int one = 1;
    setsockopt(evhttp_bound_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, NULL), *sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    printf("ready %d\n", port);
    fflush(stdout);
    event_base_dispatch(base);
    event_free(sigint);
    event_free(sigterm);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
