/*
 * http_front_output.c - the front HTTP/1.x server's output, the bottom of its four files: bytes
 * onto a client's socket, the output buffer and the write event for what the socket does not
 * take, output deferred to the end of a loop turn, and back-pressure (the backlog, the drained
 * callback). It knows nothing of HTTP: a write error kills the connection, and an emptied buffer
 * is reported, through c->ops (http_front_internal.h).
 *
 * Every write goes out with as few system calls as it can: the caller's iovecs (a head and its
 * body, a chunk's size line, data and CRLF) are one sendmsg, with no copy. Only what the socket
 * does not take is copied into the connection's evbuffer, and only then is the write event added.
 */
#include "http/http_front_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#define MAX_IOV 24

/* Appends to c->out. -1 (rest drained) when out of memory. */
static int append(hf_conn *c, const struct iovec *iov, int n, struct evbuffer *rest) {
    if (!c->out && !(c->out = evbuffer_new()))
        goto fail;
    for (int i = 0; i < n; i++)
        if (iov[i].iov_len && evbuffer_add(c->out, iov[i].iov_base, iov[i].iov_len))
            goto fail;
    if (rest && evbuffer_get_length(rest) && evbuffer_add_buffer(c->out, rest))
        goto fail;
    return 0;
fail:
    if (rest)
        evbuffer_drain(rest, evbuffer_get_length(rest));
    return -1;
}

/* c->out has bytes the socket did not take: wait for it to be writable. */
static int start_writing(hf_conn *c) {
    /* libevent does not register an event with epoll when it is added while active (activated
     * for deferred output or a drained callback and not yet run): the activation is dropped
     * first, and its flags stay for hf_on_write to honour when the socket is writable. */
    if (c->fkicked || c->wkicked)
        event_del(&c->wev);
    if (event_add(&c->wev, NULL))
        return -1;
    c->writing = 1;
    c->wdeadline_ms = hf_now_ms() + c->s->limits.timeout_ms;
    return 0;
}

static int flush(hf_conn *c);

/* Writes what c->out holds now; the rest waits for the write event. -1 when the connection died. */
static int send_out(hf_conn *c) {
    if (flush(c) || (evbuffer_get_length(c->out) && start_writing(c))) {
        c->ops->kill(c);
        return -1;
    }
    return 0;
}

int hf_conn_output_later(hf_conn *c, const struct iovec *iov, int n, struct evbuffer *rest) {
    if (c->state == HF_DEAD) {
        if (rest)
            evbuffer_drain(rest, evbuffer_get_length(rest));
        return -1;
    }
    if (append(c, iov, n, rest)) { /* append drained `rest` */
        c->ops->kill(c); /* out of memory: a cut reply is all that is left to give */
        return -1;
    }
    if (c->writing || c->deferred)
        return 0; /* goes with what is already waiting */
    c->deferred = 1;
    if (!c->fkicked) {
        c->fkicked = 1;
        event_active(&c->wev, EV_WRITE, 1);
    }
    return 0;
}

void hf_conn_output_now(hf_conn *c) {
    if (c->deferred && c->state != HF_DEAD) {
        c->deferred = 0;
        send_out(c);
    }
}

int hf_conn_output(hf_conn *c, const struct iovec *iov, int n, struct evbuffer *rest) {
    size_t rest_len = rest ? evbuffer_get_length(rest) : 0;
    if (c->state == HF_DEAD)
        goto drop;
    if (c->writing || c->deferred) { /* behind what is pending: queue it all */
        if (append(c, iov, n, rest))
            goto fail;
        if (c->writing)
            return 0;
        c->deferred = 0; /* the deferred bytes go now, with these, in one sendmsg */
        return send_out(c);
    }
    struct iovec v[MAX_IOV];
    int k = 0;
    size_t own = 0;
    for (int i = 0; i < n && k < MAX_IOV - 1; i++)
        if (iov[i].iov_len) {
            v[k++] = iov[i];
            own += iov[i].iov_len;
        }
    int own_k = k;
    if (rest_len) {
        int m = evbuffer_peek(rest, -1, NULL, v + k, MAX_IOV - k);
        k += m < MAX_IOV - k ? m : MAX_IOV - k; /* the rest of `rest` waits in c->out */
    }
    ssize_t w = 0;
    if (k) {
        struct msghdr msg = {.msg_iov = v, .msg_iovlen = (size_t)k};
        w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (!hf_would_block()) {
                c->ops->kill(c);
                goto drop;
            }
            w = 0;
        }
    }
    size_t sent = (size_t)w;
    if (sent == own + rest_len) {
        if (rest_len)
            evbuffer_drain(rest, rest_len);
        return 0;
    }
    if (!c->out && !(c->out = evbuffer_new()))
        goto fail;
    for (int i = 0; i < own_k; i++) {
        if (sent >= v[i].iov_len) {
            sent -= v[i].iov_len;
            continue;
        }
        if (evbuffer_add(c->out, (const char *)v[i].iov_base + sent, v[i].iov_len - sent))
            goto fail;
        sent = 0;
    }
    if (rest_len && (evbuffer_drain(rest, sent) || evbuffer_add_buffer(c->out, rest)))
        goto fail;
    if (start_writing(c))
        goto fail;
    return 0;
fail:
    c->ops->kill(c); /* out of memory: a cut reply is all that is left to give */
drop:
    if (rest_len)
        evbuffer_drain(rest, evbuffer_get_length(rest));
    return -1;
}

/* Writes pending output until the socket stops taking it. -1 on a write error. */
static int flush(hf_conn *c) {
    for (int round = 0; round < 4; round++) {
        struct iovec v[MAX_IOV];
        int n = evbuffer_peek(c->out, -1, NULL, v, MAX_IOV);
        if (n > MAX_IOV)
            n = MAX_IOV;
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += v[i].iov_len;
        struct msghdr msg = {.msg_iov = v, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (w < 0)
            return hf_would_block() ? 0 : -1;
        evbuffer_drain(c->out, (size_t)w);
        c->wdeadline_ms = hf_now_ms() + c->s->limits.timeout_ms;
        if ((size_t)w < total || evbuffer_get_length(c->out) == 0)
            return 0;
    }
    return 0;
}

void hf_on_write(evutil_socket_t fd, short what, void *arg) {
    hf_conn *c = arg;
    if (c->fkicked) { /* the end of the loop turn: what was deferred goes in one sendmsg */
        c->fkicked = 0;
        if (c->deferred && c->state != HF_DEAD) {
            c->deferred = 0;
            if (send_out(c))
                return;
        }
        if (c->writing || !c->wkicked)
            return; /* a drained callback waits for the write event */
    }
    c->wkicked = 0;
    if (c->state == HF_DEAD) { /* activated for the drained callback of an unwatched request */
        tlab__http_req *r = c->req;
        if (r && r->drained) {
            tlab__http_drained_fn fn = r->drained;
            r->drained = NULL;
            fn(r, r->drained_arg);
        }
        return;
    }
    if (c->writing) {
        if (flush(c)) {
            c->ops->kill(c);
            return;
        }
        if (evbuffer_get_length(c->out))
            return;
        event_del(&c->wev);
        c->writing = 0;
    }
    c->ops->drained(c);
}

/* ---- back-pressure ---- */

size_t tlab__http_reply_backlog(const tlab__http_req *req) {
    const hf_conn *c = req->c;
    return c->state != HF_DEAD && c->out ? evbuffer_get_length(c->out) : 0;
}

/* drained runs once, always from the loop (never inside this call): when the pending output
 * next empties; soon, when nothing is pending now (a caller registering just after the backlog
 * emptied must not wait forever); for a request whose client left, once it is noticed (from
 * the reaper) or soon (registered afterwards): its backlog is 0 for good. */
void tlab__http_reply_on_drained(tlab__http_req *req, tlab__http_drained_fn drained, void *arg) {
    hf_conn *c = req->c;
    req->drained = drained;
    req->drained_arg = arg;
    if (!drained || c->writing || c->wkicked)
        return;
    if (c->state == HF_SERVE || (c->state == HF_DEAD && c->reaped)) { /* dead, not reaped: the reaper */
        c->wkicked = 1;
        event_active(&c->wev, EV_WRITE, 1);
    }
}
