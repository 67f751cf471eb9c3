/*
 * http_front_conn.c - the front HTTP/1.x server's connections, the top of its four files: the
 * listener and accept, a connection's states from accept to close, the read loop (http-parser
 * fed straight from one shared read buffer through http_front_parse.c), pipelining, the timeout
 * sweep and the reaper, and the servers of http_front.h. It calls the files below it by name and
 * installs the hf_conn_ops they call back through (a reply ended, the output drained, a write
 * failed); the order and the lifetimes are in http_front_internal.h.
 *
 * The hot path (a keep-alive request answered from its handler): one recv, the parser's
 * callbacks copying the URL and headers into the request's arena, the handler, one send. No
 * epoll_ctl change (the read event stays registered; the write event is only added when the
 * socket does not take a reply at once) and no timer per request (one sweep per server).
 */
#include "http/http_front_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "common/log.h"

#define ACCEPTS_PER_WAKE 64
#define EMFILE_PAUSE_MS 100

/* One read buffer for every connection: a connection keeps no buffer of its own while idle,
 * and the parser copies what it keeps. Single-threaded, like the loop. */
static char rbuf[64 * 1024];

static void conn_kill(hf_conn *c);
static void conn_free(hf_conn *c);

/* ---- connections ---- */

static void reading_on(hf_conn *c) {
    if (!c->reading && event_add(&c->rev, NULL) == 0)
        c->reading = 1;
}

static void reading_off(hf_conn *c) {
    if (c->reading) {
        event_del(&c->rev);
        c->reading = 0;
    }
}

/* Parses the stash from the loop rather than from inside a reply call (the handler may still be
 * on the stack). */
static void kick(hf_conn *c) {
    c->kicked = 1;
    event_active(&c->rev, EV_READ, 1);
}

static void linger_start(hf_conn *c) {
    if (c->peer_eof) {
        conn_kill(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = HF_LINGER;
    c->deadline_ms = hf_now_ms() + HF_LINGER_MS;
    reading_on(c);
}

static void linger_read(hf_conn *c) {
    for (int i = 0; i < 4; i++) {
        ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (n > 0)
            continue;
        if (n < 0 && hf_would_block())
            return;
        conn_kill(c);
        return;
    }
}

/* The connection waits for its next request, which gets a whole timeout from now (not from the
 * end of a reply that then took long to drain). */
static void read_next(hf_conn *c) {
    c->deadline_ms = hf_now_ms() + c->s->limits.timeout_ms;
    c->state = HF_READ;
    reading_on(c);
}

static void dispatch(hf_conn *c) {
    tlab__http_req *r = c->req;
    c->state = HF_SERVE;
    r->served = 1;
    c->s->on_request(r, c->s->arg);
}

/* Feeds bytes to the parser while the connection reads requests; a request answered from its
 * handler lets the rest follow at once. Returns the bytes consumed. */
static size_t conn_parse(hf_conn *c, const char *data, size_t len) {
    size_t done = 0;
    c->in_parse = 1;
    while (c->state == HF_READ && done < len) {
        size_t n;
        hf_parse_result r = hf_parse(c, data + done, len - done, &n);
        done += n;
        if (r == HF_PARSE_WHOLE)
            dispatch(c);
        else if (r == HF_PARSE_STOP)
            break;
    }
    c->in_parse = 0;
    return done;
}

static void stash_add(hf_conn *c, const char *p, size_t n) {
    if (c->stash_off) {
        memmove(c->stash, c->stash + c->stash_off, c->stash_len);
        c->stash_off = 0;
    }
    if ((size_t)c->stash_len + n > c->stash_cap) {
        size_t cap = (size_t)c->stash_len + n;
        char *s = realloc(c->stash, cap);
        if (!s) {
            conn_kill(c);
            return;
        }
        c->stash = s;
        c->stash_cap = (uint32_t)cap;
    }
    memcpy(c->stash + c->stash_len, p, n);
    c->stash_len += (uint32_t)n;
    if (c->stash_len >= HF_STASH_MAX)
        reading_off(c); /* resumed when the reply ends */
}

static void parse_stash(hf_conn *c) {
    size_t done = conn_parse(c, c->stash + c->stash_off, c->stash_len);
    if (c->state == HF_DEAD)
        return;
    if (c->state == HF_CLOSING || c->state == HF_LINGER)
        done = c->stash_len;
    c->stash_off += (uint32_t)done;
    c->stash_len -= (uint32_t)done;
    if (!c->stash_len) {
        free(c->stash);
        c->stash = NULL;
        c->stash_off = c->stash_cap = 0;
    }
}

/* EOF or an error from the client. */
static void client_closed(hf_conn *c, int eof) {
    if (eof && c->state == HF_CLOSING) { /* a half-close: the reply may still be read */
        c->peer_eof = 1;
        reading_off(c);
        return;
    }
    conn_kill(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg) {
    hf_conn *c = arg;
    if (c->kicked) {
        c->kicked = 0;
        if (c->state == HF_READ && c->stash_len)
            parse_stash(c);
        return; /* a readable socket is reported again: the event is level-triggered */
    }
    if (c->state == HF_LINGER) {
        linger_read(c);
        return;
    }
    ssize_t n = recv(fd, rbuf, sizeof rbuf, 0);
    if (n <= 0) {
        if (n < 0 && hf_would_block())
            return;
        client_closed(c, n == 0);
        return;
    }
    if (c->state == HF_READ && !c->stash_len) {
        size_t done = conn_parse(c, rbuf, (size_t)n);
        if (done < (size_t)n && (c->state == HF_SERVE || c->state == HF_DRAIN))
            stash_add(c, rbuf + done, (size_t)n - done);
    } else if (c->state == HF_READ || c->state == HF_SERVE) {
        stash_add(c, rbuf, (size_t)n);
        if (c->state == HF_READ)
            parse_stash(c);
    } /* else closing: the bytes are dropped */
}

/* hf_conn_ops.reply_end: see http_front_internal.h. */
static void conn_reply_end(tlab__http_req *r, hf_end how) {
    hf_conn *c = r->c;
    int keep = r->keep_alive && !r->close;
    c->req = NULL;
    hf_req_free(r);
    if (c->state == HF_DEAD) {
        if (c->reaped)
            conn_free(c);
        return;
    }
    if (how == HF_END_CUT) {
        conn_kill(c);
        return;
    }
    if (!keep) {
        c->state = HF_CLOSING;
        if (!c->writing)
            linger_start(c);
        return;
    }
    http_parser_pause(&c->parser, 0);
    if (c->writing) {
        c->state = HF_DRAIN; /* read_next when it drains */
        reading_off(c);
        return;
    }
    read_next(c);
    if (c->stash_len && !c->in_parse)
        kick(c);
}

/* hf_conn_ops.drained: see http_front_internal.h. */
static void conn_drained(hf_conn *c) {
    switch (c->state) {
    case HF_CLOSING:
        linger_start(c);
        break;
    case HF_DRAIN:
        read_next(c);
        if (c->stash_len)
            parse_stash(c);
        break;
    case HF_SERVE:
        if (c->req && c->req->drained) {
            tlab__http_drained_fn fn = c->req->drained;
            c->req->drained = NULL;
            fn(c->req, c->req->drained_arg);
        }
        break;
    default:
        break;
    }
}

/* hf_conn_ops.kill: see http_front_internal.h. */
static void conn_kill(hf_conn *c) {
    if (c->state == HF_DEAD)
        return;
    tlab__http_server *s = c->s;
    event_del(&c->rev); /* also takes them off the active queue */
    event_del(&c->wev);
    c->reading = c->writing = c->kicked = c->wkicked = c->fkicked = 0;
    close(c->fd);
    c->fd = -1;
    if (c->req && !c->req->served) {
        hf_req_free(c->req);
        c->req = NULL;
    }
    if (c->out) {
        evbuffer_free(c->out);
        c->out = NULL;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->open--;
    c->state = HF_DEAD;
    c->prev = NULL;
    c->next = s->dying;
    s->dying = c;
    event_active(&s->reap_ev, EV_TIMEOUT, 1);
}

/* Frees a dead connection that is reaped and has no request. */
static void conn_free(hf_conn *c) {
    if (c->wkicked || c->fkicked) /* an activation that will not be needed */
        event_del(&c->wev);
    free(c->stash);
    if (c->out)
        evbuffer_free(c->out);
    free(c);
}

/* Runs the gone callbacks of the killed connections' requests and frees what nobody holds. A
 * request without a watch keeps its (dead) connection until it is answered; its drained
 * callback, if one waits, runs now: its backlog is 0 from here on. */
static void reap(tlab__http_server *s) {
    hf_conn *c;
    while ((c = s->dying) != NULL) {
        s->dying = c->next;
        c->next = NULL;
        c->reaped = 1;
        tlab__http_req *r = c->req;
        if (!r) {
            conn_free(c);
        } else if (r->gone) {
            r->in_gone = 1;
            r->gone(r, r->gone_arg);
            c->req = NULL;
            hf_req_free(r);
            conn_free(c);
        } else if (r->drained) {
            tlab__http_drained_fn fn = r->drained;
            r->drained = NULL;
            fn(r, r->drained_arg); /* may answer r, which frees r and c */
        }
    }
}

static void on_reap(evutil_socket_t fd, short what, void *arg) {
    reap(arg);
}

static void set_peer(hf_conn *c, const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, c->peer, sizeof c->peer);
        c->port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) /* a dual-stack listener: show the IPv4 address */
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], c->peer, sizeof c->peer);
        else
            inet_ntop(AF_INET6, &a->sin6_addr, c->peer, sizeof c->peer);
        c->port = ntohs(a->sin6_port);
    }
}

static const hf_conn_ops conn_ops = {
    .reply_end = conn_reply_end,
    .drained = conn_drained,
    .kill = conn_kill,
};

static int conn_new(tlab__http_server *s, int fd, const struct sockaddr_storage *ss) {
    hf_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    c->s = s;
    c->ops = &conn_ops;
    c->fd = fd;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, s->base, fd, EV_WRITE | EV_PERSIST, hf_on_write, c);
    if (event_add(&c->rev, NULL)) {
        free(c);
        return -1;
    }
    c->reading = 1;
    set_peer(c, ss);
    c->state = HF_READ;
    c->deadline_ms = hf_now_ms() + s->limits.timeout_ms;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->open++;
    return 0;
}

/* ---- the listener ---- */

static void on_resume(evutil_socket_t fd, short what, void *arg) {
    tlab__http_server *s = arg;
    event_add(&s->listen_ev, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg) {
    tlab__http_server *s = arg;
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        /* Linux: the socket inherits TCP_NODELAY from the listener. */
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The pending connection stays queued: retry after a pause rather than spin. */
                struct timeval tv = {0, EMFILE_PAUSE_MS * 1000};
                int err = errno;
                event_del(&s->listen_ev);
                evtimer_add(&s->resume_ev, &tv);
                time_t now = time(NULL);
                if (now != s->warned_emfile_at) {
                    s->warned_emfile_at = now;
                    LOG_WARN("front: cannot accept (%s); pausing accepts for %d ms", strerror(err), EMFILE_PAUSE_MS);
                }
            }
            return;
        }
        if (s->limits.max_connections > 0 && (long)s->open >= s->limits.max_connections) {
            hf_reject(s, fd);
            continue;
        }
        if (conn_new(s, fd, &ss))
            close(fd); /* out of memory: the client sees a close */
    }
}

/* ---- the timeout sweep ---- */

static void on_sweep(evutil_socket_t fd, short what, void *arg) {
    tlab__http_server *s = arg;
    int64_t now = hf_now_ms();
    hf_conn *c, *next;
    for (c = s->conns; c; c = next) {
        next = c->next; /* killing calls nothing of the caller's: next stays valid */
        if ((c->writing && now >= c->wdeadline_ms) || (c->state == HF_READ && now >= c->deadline_ms)) {
            s->timed_out++;
            conn_kill(c);
        } else if (c->state == HF_LINGER && now >= c->deadline_ms) {
            conn_kill(c);
        }
    }
}

static int arm_sweep(tlab__http_server *s) {
    long iv = s->limits.timeout_ms / 4;
    if (iv > 1000)
        iv = 1000;
    if (iv < 10)
        iv = 10;
    struct timeval tv = {iv / 1000, (iv % 1000) * 1000};
    return event_add(&s->sweep_ev, &tv);
}

static void set_limits(tlab__http_server *s, const tlab__http_limits *limits) {
    s->limits = *limits;
    if (s->limits.timeout_ms <= 0)
        s->limits.timeout_ms = 60000;
}

/* ---- servers ---- */

tlab__http_server *tlab__http_server_new(struct event_base *base, int listen_fd, const tlab__http_limits *limits,
                                       tlab__http_handler on_request, void *arg) {
    tlab__http_server *s = calloc(1, sizeof *s);
    if (!s) {
        close(listen_fd);
        return NULL;
    }
    s->base = base;
    s->listen_fd = listen_fd;
    set_limits(s, limits);
    s->on_request = on_request;
    s->arg = arg;
    event_assign(&s->listen_ev, base, listen_fd, EV_READ | EV_PERSIST, on_accept, s);
    evtimer_assign(&s->resume_ev, base, on_resume, s);
    event_assign(&s->sweep_ev, base, -1, EV_PERSIST, on_sweep, s);
    event_assign(&s->reap_ev, base, -1, 0, on_reap, s);
    if (event_add(&s->listen_ev, NULL) || arm_sweep(s)) {
        event_del(&s->listen_ev);
        close(listen_fd);
        free(s);
        return NULL;
    }
    return s;
}

void tlab__http_server_set_limits(tlab__http_server *s, const tlab__http_limits *limits) {
    set_limits(s, limits);
    arm_sweep(s);
}

void tlab__http_server_counters(const tlab__http_server *s, tlab__http_counters *out) {
    out->open = s->open;
    out->rejected = s->rejected;
    out->timed_out = s->timed_out;
}

void tlab__http_server_free(tlab__http_server *s) {
    if (!s)
        return;
    event_del(&s->listen_ev);
    event_del(&s->resume_ev);
    event_del(&s->sweep_ev);
    close(s->listen_fd);
    while (s->conns)
        conn_kill(s->conns);
    reap(s); /* gone callbacks run now, as the contract says */
    event_del(&s->reap_ev);
    free(s);
}
