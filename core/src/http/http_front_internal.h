/*
 * http_front_internal.h - what the four files of the front HTTP server share. Not a contract for
 * anyone else: callers use http_front.h. The files, each calling only the ones below it:
 *
 *   http_front_conn.c    connection: the listener, accept, the read loop and pipelining, the
 *                        timeout sweep, the reaper, a connection's states from accept to close
 *   http_front_parse.c   message parsing: http-parser's callbacks, the request object, its getters
 *   http_front_reply.c   reply head: status line, headers, Date, the reply API, error replies
 *   http_front_output.c  output: socket writes, the output buffer, back-pressure, drained
 *
 * Where a lower file must move the connection on (a reply ended, the output drained, a write
 * failed), it calls through the hf_conn_ops table the connection file installs in each
 * connection, never by name: so the order can be read from the calls, and a file can be read
 * knowing only what is below it.
 *
 * Lifetimes, in one place:
 *   - a connection (hf_conn) lives from accept until it is killed (socket closed at once) and then
 *     reaped by the server's reaper event, which runs the gone callback of a request still being
 *     served. A killed connection whose request has no watch stays allocated (dead, no socket)
 *     until that request is answered: the request keeps using it for its peer address.
 *   - a request (tlab__http_req) is created by the parser at a message's first byte, handed to the
 *     handler when whole ("served"), and freed when answered, or after its gone callback.
 * Killing never calls the caller's code; gone callbacks only run from the reaper (or from
 * tlab__http_server_free), so no callback of ours runs inside a call of the caller's. For the same
 * reason tlab__http_server_free must not be called from inside the server's own callbacks (the
 * connection being parsed would be freed under it).
 */
#ifndef TLAB_HTTP_FRONT_INTERNAL_H
#define TLAB_HTTP_FRONT_INTERNAL_H

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include <event2/event.h>
#include <event2/event_struct.h> /* events embedded in their connection: no malloc per event */
#include <http_parser.h>

#include "http/http_front.h"

#define HF_STASH_MAX (64 * 1024) /* pipelined bytes held while a request is served; past it reading waits */
#define HF_LINGER_MS 2000

typedef enum hf_state {
    HF_READ,    /* reading a request, or idle between requests */
    HF_SERVE,   /* a whole request is with the handler until its reply ends */
    HF_DRAIN,   /* reply ended, connection kept, output pending: the next request waits for the drain */
    HF_CLOSING, /* the last reply ended (or an error reply was written): linger once output drains */
    HF_LINGER,  /* shut for writing; discarding what the client still sends until EOF or HF_LINGER_MS */
    HF_DEAD     /* socket closed; see the file comment */
} hf_state;

typedef struct hf_conn hf_conn;

/* How a reply ended, for hf_conn_ops.reply_end. */
typedef enum hf_end {
    HF_END_DONE, /* its last byte is queued: keep-alive, drain or close, by the request */
    HF_END_CUT   /* tlab__http_reply_abort: the connection is cut, no gone callback */
} hf_end;

/*
 * The connection file's calls that the files below it make, installed in every connection (not
 * the server: a dead connection outlives its server's pointer). Each runs on an event of the
 * connection, never per byte: reply_end once per reply, drained when the output buffer empties,
 * kill on a write error.
 */
typedef struct hf_conn_ops {
    /* Frees r (answered, or cut with `how` HF_END_CUT) and moves its connection on: to the next
     * request, to draining, to closing, or for a cut or a dead connection to its end. */
    void (*reply_end)(tlab__http_req *r, hf_end how);
    /* The output buffer just emptied (or, after an error reply, had nothing to write): finishes
     * a drain or a closing, or fires the served request's drained callback. */
    void (*drained)(hf_conn *c);
    /* Closes the socket now; gone callback and free come from the reaper. Calls nothing of the
     * caller's. */
    void (*kill)(hf_conn *c);
} hf_conn_ops;

struct tlab__http_server {
    struct event_base *base;
    int listen_fd;
    struct event listen_ev, resume_ev, sweep_ev, reap_ev;
    tlab__http_limits limits;
    tlab__http_handler on_request;
    void *arg;
    hf_conn *conns; /* live connections (not dead), doubly linked */
    hf_conn *dying; /* killed, waiting for the reaper; linked through next */
    size_t open;
    uint64_t rejected, timed_out;
    time_t warned_emfile_at, warned_reject_at; /* one warning per second at most */
};

struct hf_conn {
    tlab__http_server *s; /* dangling once reaped: a dead connection never uses it */
    const hf_conn_ops *ops;
    hf_conn *prev, *next;
    tlab__http_req *req;   /* being read or served; NULL between requests */
    struct evbuffer *out; /* reply bytes the socket has not taken; NULL until first needed */
    char *stash;          /* bytes read past the request being served (pipelining) */
    uint32_t stash_off, stash_len, stash_cap;
    int fd;
    uint8_t state;          /* hf_state */
    unsigned reading : 1;   /* rev is added */
    unsigned writing : 1;   /* wev is added: output is pending */
    unsigned in_parse : 1;  /* inside hf_conn_parse: a reply ending now must not start the next request */
    unsigned kicked : 1;    /* rev was activated to parse the stash (no recv needed) */
    unsigned wkicked : 1;   /* wev was activated to report a drain */
    unsigned fkicked : 1;   /* wev was activated to send the deferred output at the end of the loop turn */
    unsigned deferred : 1;  /* c->out holds streamed output not yet tried on the socket (see hf_conn_output_later) */
    unsigned reaped : 1;    /* dead and reaped; freed when its orphan request is answered */
    unsigned peer_eof : 1;  /* the client shut its side while we were still writing */
    uint16_t err_status;    /* an error found by a parser callback; it sticks */
    const char *err_msg;    /* its message (static) */
    uint16_t port;
    int64_t deadline_ms;  /* HF_READ: the whole request by then; HF_LINGER: close by then */
    int64_t wdeadline_ms; /* output pending: cut without write progress by then */
    http_parser parser;
    struct event rev, wev;
    char peer[INET6_ADDRSTRLEN];
};

enum { HF_CB_NONE, HF_CB_URL, HF_CB_FIELD, HF_CB_VALUE };

struct tlab__http_req {
    hf_conn *c;
    uint32_t arena_len, arena_cap; /* the arena: see the end of the struct */
    uint32_t hdr_off, path_off; /* path_off UINT32_MAX: "/" */
    uint32_t head_bytes;        /* request line + headers, as counted against max_header_bytes */
    uint16_t nhdr;
    uint8_t method; /* tlab__http_method */
    uint8_t minor;  /* HTTP/1.<minor> */
    uint8_t last_cb;
    unsigned headers_done : 1;
    unsigned served : 1;     /* handed to the handler */
    unsigned keep_alive : 1; /* by the request (http_should_keep_alive) */
    unsigned close : 1;      /* the reply said Connection: close */
    unsigned started : 1;    /* a streamed reply started */
    unsigned chunked : 1;    /* ... with chunked framing */
    unsigned no_body : 1;    /* ... that carries no body (HEAD, 1xx, 204, 304) */
    unsigned in_gone : 1;    /* its gone callback is running: replies are ignored */
    char *body;              /* NUL-terminated when not NULL; body_cap counts the NUL */
    size_t body_len, body_cap;
    char *rh; /* reply headers added by the caller: name\0value\0 each */
    uint32_t rh_len, rh_cap;
    uint16_t nrh;
    tlab__http_gone_fn gone;
    void *gone_arg;
    tlab__http_drained_fn drained;
    void *drained_arg;
    /* The request's bytes, in the same allocation: URL\0, then name\0value\0 per header from
     * hdr_off, then a copy of the path when it is not the URL's tail. */
    char arena[];
};

/* Monotonic milliseconds (the coarse clock: deadlines need no better, and it is the cheapest). */
static inline int64_t hf_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The last recv or send failed only because the socket has nothing more now (or a signal). */
static inline int hf_would_block(void) {
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* ---- http_front_parse.c (calls the reply and output files) ---- */

typedef enum hf_parse_result {
    HF_PARSE_WHOLE, /* c->req is whole; the parser is paused: the bytes after it are the next request's */
    HF_PARSE_MORE,  /* the bytes were taken; the request is not whole yet */
    HF_PARSE_STOP   /* nothing more to parse now: refused (error reply written, the connection is
                       closing or dead), dead, or the parser took nothing */
} hf_parse_result;

/* Feeds data[0..len) to the parser of c's request (one is created at a message's first byte);
 * *used: the bytes taken. A request refused by the parser or a limit is answered here. */
hf_parse_result hf_parse(hf_conn *c, const char *data, size_t len, size_t *used);
/* Frees a request (not its connection). */
void hf_req_free(tlab__http_req *r);

/* ---- http_front_reply.c (calls the output file) ---- */

/* The first value of header `name` (case-insensitive) in a name\0value\0 block of `n` entries,
 * NULL when absent: the format of both a request's headers and a reply's. */
const char *hf_find_header(const char *block, unsigned n, const char *name);
/* Answers a request the parser refused: OpenAI error JSON, Connection: close, then a lingering
 * close. `type` NULL means "invalid_request_error". */
void hf_error_reply(hf_conn *c, int status, const char *type, const char *message);
/* Turns away a connection past max_connections: 503 JSON straight on the socket, then close. */
void hf_reject(tlab__http_server *s, int fd);

/* ---- http_front_output.c (calls nothing of the front's but c->ops) ---- */

/* Writes iov[0..n) and then all of `rest` (may be NULL; it is drained) after what is pending;
 * what the socket does not take waits in c->out. A write error kills the connection. 0 or -1. */
int hf_conn_output(hf_conn *c, const struct iovec *iov, int n, struct evbuffer *rest);
/* Queues iov[0..n) and `rest` to go out at the end of this loop turn, with whatever else is
 * written until then, in one sendmsg (or with the next immediate output, which sends it all). */
int hf_conn_output_later(hf_conn *c, const struct iovec *iov, int n, struct evbuffer *rest);
/* What waits for the end of the loop turn goes now (a reply ends: its last bytes follow). */
void hf_conn_output_now(hf_conn *c);
/* The write event's callback. */
void hf_on_write(evutil_socket_t fd, short what, void *arg);

#endif
