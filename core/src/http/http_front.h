/*
 * http_front.h - the gateway's HTTP/1.x server: listening sockets, client connections, request
 * parsing (Debian's http-parser) and replies, on the gateway's libevent loop.
 *
 * Why not evhttp: in the profile, evhttp's header handling (a malloc'd key and value per header,
 * printf per header line, linear case-insensitive lookups) was a third of the gateway's CPU per
 * request, and it answers malformed requests with HTML pages the gateway could not replace.
 * This server keeps a request's header bytes in one block, writes a reply's head and body with
 * one send(), and answers every error it finds itself in OpenAI's error JSON.
 *
 * What it does for every connection, so callers need not:
 *   - one request at a time per connection; pipelined bytes wait until the reply ends;
 *   - keep-alive by HTTP/1.1 rules (HTTP/1.0 with "Connection: keep-alive");
 *   - Content-Length and chunked request bodies, read whole into memory before the handler runs;
 *   - Expect: 100-continue (a 100 is sent; other expectations get 417);
 *   - limits (tlab__http_limits) and their errors: 400 malformed, 413 body too large, 414 target
 *     too long, 431 headers too large, 501 method not implemented, 505 version not HTTP/1.x,
 *     503 past max_connections; each in OpenAI's error JSON with Connection: close;
 *   - timeouts: a whole request must arrive within timeout_ms of the connection's start or of its
 *     previous reply's end (however slowly bytes trickle in: slowloris), and a reply the client
 *     stops reading for timeout_ms is cut. A request being served is never cut by time;
 *   - a client that leaves (EOF, reset) while its request is being served is noticed at once,
 *     even with nothing to write (tlab__http_req_watch); except one that pipelined more than
 *     64 KiB behind it: reading pauses until the reply ends, and the leaving is seen then;
 *   - the Date header on every reply, Content-Length or chunked framing, HEAD without a body.
 *
 * Ownership: the server owns each tlab__http_req. The handler's code answers it exactly once, by
 * tlab__http_reply* or tlab__http_reply_end or tlab__http_reply_abort; after that call the pointer
 * is dead. A client that leaves first: see tlab__http_req_watch.
 *
 * Single-threaded, like the loop: no function here may be called from another thread.
 */
#ifndef TLAB_HTTP_FRONT_H
#define TLAB_HTTP_FRONT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct evbuffer;

typedef struct tlab__http_server tlab__http_server;
typedef struct tlab__http_req tlab__http_req;

typedef enum tlab__http_method {
    TLAB_HTTP_GET,
    TLAB_HTTP_POST,
    TLAB_HTTP_HEAD,
    TLAB_HTTP_PUT,
    TLAB_HTTP_DELETE,
    TLAB_HTTP_OPTIONS,
    TLAB_HTTP_PATCH
} tlab__http_method; /* any other method gets 501 before a handler sees it */

typedef struct tlab__http_limits {
    size_t max_header_bytes; /* request line and headers together; past it 431 (414 for the target alone) */
    size_t max_body_bytes;   /* a body is read into memory up to this; past it 413 and the connection closes */
    long timeout_ms;         /* see the file comment; > 0 */
    long max_connections;    /* open connections at once; past it 503 JSON and close; <= 0: no limit */
} tlab__http_limits;

typedef struct tlab__http_counters {
    size_t open;        /* connections open now */
    uint64_t rejected;  /* turned away at max_connections */
    uint64_t timed_out; /* cut because a request did not arrive whole in time, or a reply went unread */
} tlab__http_counters;

typedef void (*tlab__http_handler)(tlab__http_req *req, void *arg);
typedef void (*tlab__http_gone_fn)(tlab__http_req *req, void *arg);
typedef void (*tlab__http_drained_fn)(tlab__http_req *req, void *arg);

/* ---- servers ---- */

/* Serves the listening socket `listen_fd` (bound, listening, non-blocking; the server owns it
 * from now on, also on failure) and calls on_request(req, arg) for each whole request. NULL on
 * allocation failure. */
tlab__http_server *tlab__http_server_new(struct event_base *base, int listen_fd, const tlab__http_limits *limits,
                                       tlab__http_handler on_request, void *arg);
/* New limits (SIGHUP). Connections already open keep their current deadline. */
void tlab__http_server_set_limits(tlab__http_server *s, const tlab__http_limits *limits);
void tlab__http_server_counters(const tlab__http_server *s, tlab__http_counters *out);
/* Closes the listener and every connection. Requests still being served are treated as if their
 * clients left (their gone callbacks run). */
void tlab__http_server_free(tlab__http_server *s);

/* ---- the request ---- */

tlab__http_method tlab__http_req_method(const tlab__http_req *req);
/* "GET", "POST", ... */
const char *tlab__http_req_method_name(const tlab__http_req *req);
/* The target's path, as sent (not percent-decoded), without the query; "/" when empty. An
 * absolute-form target (http://host/path) gives its path. */
const char *tlab__http_req_path(const tlab__http_req *req);
/* The first header called `name` (case-insensitive), NULL when absent. Valid until the reply. */
const char *tlab__http_req_header(const tlab__http_req *req, const char *name);
/* The body (NUL-terminated; "" when none) and its length. */
const char *tlab__http_req_body(const tlab__http_req *req, size_t *len);
/* Hands the body over: a malloc'd, NUL-terminated block the caller frees; the request's body is
 * empty afterwards. NULL only on allocation failure. Saves a copy of the bytes. */
char *tlab__http_req_take_body(tlab__http_req *req, size_t *len);
/* The client's numeric address ("127.0.0.1", "::1"), and its port when `port` is not NULL. */
const char *tlab__http_req_peer(const tlab__http_req *req, uint16_t *port);

/*
 * Calls gone(req, arg) once if the client leaves before the request is answered (EOF, reset, a
 * write error, a cut by timeout, or the server being freed). The request is freed when gone
 * returns: gone must not answer it, and nothing may use it afterwards. Replaces an earlier watch;
 * gone NULL removes it. Without a watch, a request whose client left stays valid until it is
 * answered, and the answer goes nowhere.
 */
void tlab__http_req_watch(tlab__http_req *req, tlab__http_gone_fn gone, void *arg);

/* ---- the reply ---- */

/* Adds a reply header (before the reply starts). -1 when name or value holds CR, LF or NUL, or
 * on allocation failure. Date, Content-Length, Transfer-Encoding and Connection are the server's. */
int tlab__http_add_header(tlab__http_req *req, const char *name, const char *value);
/* A reply header added so far (case-insensitive), NULL when absent. */
const char *tlab__http_reply_header(const tlab__http_req *req, const char *name);

/* The whole reply: status line, headers, Content-Length, body; written at once. Answers req.
 * The status line carries the standard reason phrase. HEAD gets the headers only. */
void tlab__http_reply(tlab__http_req *req, int status, const char *body, size_t len);
/* The same with the body in an evbuffer, which is drained. */
void tlab__http_reply_buffer(tlab__http_req *req, int status, struct evbuffer *body);

/* Starts a streamed reply: chunked to HTTP/1.1 clients; to HTTP/1.0 clients the body ends with the
 * connection. Then any number of chunks, then tlab__http_reply_end. Empty chunks are skipped. */
void tlab__http_reply_start(tlab__http_req *req, int status);
void tlab__http_reply_chunk(tlab__http_req *req, const char *data, size_t len);
/* A chunk from an evbuffer, which is drained. */
void tlab__http_reply_chunk_buffer(tlab__http_req *req, struct evbuffer *chunk);
/* Bytes written by the caller that the client's socket has not taken yet. */
size_t tlab__http_reply_backlog(const tlab__http_req *req);
/* Calls drained(req, arg) once, when the backlog next reaches 0 (for back-pressure: pause the
 * source at a high backlog, resume here). drained NULL cancels. */
void tlab__http_reply_on_drained(tlab__http_req *req, tlab__http_drained_fn drained, void *arg);
/* Ends a streamed reply (the last chunk). Answers req. */
void tlab__http_reply_end(tlab__http_req *req);
/* Ends a streamed reply by cutting the connection: the one way to tell an HTTP/1.1 client that a
 * body is incomplete. Also answers a request whose reply has not started (no reply is sent).
 * Answers req; the gone callback does not run. */
void tlab__http_reply_abort(tlab__http_req *req);

#endif
