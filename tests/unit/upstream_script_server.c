/*
 * upstream_script_server.c - the scripted server and loop helpers of upstream_script_server.h.
 */
#include "upstream_script_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

script_server srv;

static void sconn_free(sconn *s) {
    for (sconn **pp = &srv.conns; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    if (s->timer)
        event_free(s->timer);
    bufferevent_free(s->bev);
    free(s);
}

static void srv_send(sconn *s, const char *text) {
    bufferevent_write(s->bev, text, strlen(text));
}

static void srv_send_close(sconn *s, const char *text) {
    srv_send(s, text);
    s->close_after_flush = 1;
}

static void srv_later(sconn *s, int ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

char pattern_byte(size_t i) {
    return (char)('a' + i % 26);
}

static void srv_send_json(sconn *s) {
    char resp[256];
    snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(JSON_BODY), JSON_BODY);
    srv_send(s, resp);
}

/* Steps of the answers that take time. */
static void srv_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    sconn *s = arg;
    int step = s->step++;
    char chunk[64];
    if (strcmp(s->mode, "/sse") == 0) {
        if (step < 4) {
            char ev[32];
            snprintf(ev, sizeof ev, "data: %d\n\n", step);
            snprintf(chunk, sizeof chunk, "%zx\r\n%s\r\n", strlen(ev), ev);
            srv_send(s, chunk);
            srv_later(s, 20);
        } else {
            srv_send(s, "0\r\n\r\n");
        }
    } else if (strcmp(s->mode, "/stream") == 0) {
        srv_send(s, "7\r\ndata: x\r\n");
        srv_later(s, 20);
    } else if (strcmp(s->mode, "/continue") == 0) {
        srv_send_json(s);
    } else if (strcmp(s->mode, "/extra-late") == 0) {
        srv_send(s, "HTTP/1.1 200 OK\r\n");
    } else if (strcmp(s->mode, "/slow-close") == 0) {
        sconn_free(s);
    }
}

static void srv_handle(sconn *s, const char *path) {
    snprintf(s->mode, sizeof s->mode, "%s", path);
    s->step = 0;
    if (strcmp(path, "/json") == 0 || strncmp(path, "/v1/", 4) == 0) {
        srv_send_json(s);
    } else if (strcmp(path, "/head") == 0) { /* what a HEAD gets: the length of a body not sent */
        srv_send(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n");
    } else if (strcmp(path, "/sse") == 0) {
        srv_send(s, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
        srv_later(s, 20);
    } else if (strcmp(path, "/eof") == 0) {
        srv_send_close(s, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil-eof-0123456789");
    } else if (strcmp(path, "/garbage") == 0) {
        srv_send(s, "this is not HTTP at all\r\n\r\n");
    } else if (strcmp(path, "/cut") == 0) {
        srv_send_close(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    } else if (strcmp(path, "/silent") == 0) {
        /* never answers */
    } else if (strcmp(path, "/endless") == 0) {
        srv_send(s, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    } else if (strcmp(path, "/stream") == 0) {
        srv_send(s, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "7\r\ndata: 0\r\n");
        srv_later(s, 20);
    } else if (strcmp(path, "/big") == 0) {
        char head[128];
        snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", BIG_LEN);
        srv_send(s, head);
        char *body = malloc(BIG_LEN);
        for (size_t i = 0; i < BIG_LEN; i++)
            body[i] = pattern_byte(i);
        bufferevent_write(s->bev, body, BIG_LEN);
        free(body);
    } else if (strcmp(path, "/burst") == 0) {
        /* many chunks in one write: they reach the client in one read */
        struct evbuffer *out = evbuffer_new();
        evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (size_t c = 0; c < BURST_CHUNKS; c++) {
            evbuffer_add_printf(out, "%x\r\n", BURST_CHUNK_LEN);
            for (size_t i = 0; i < BURST_CHUNK_LEN; i++) {
                char b = pattern_byte(c * BURST_CHUNK_LEN + i);
                evbuffer_add(out, &b, 1);
            }
            evbuffer_add(out, "\r\n", 2);
        }
        evbuffer_add(out, "0\r\n\r\n", 5);
        bufferevent_write_buffer(s->bev, out);
        evbuffer_free(out);
    } else if (strcmp(path, "/continue") == 0) {
        srv_send(s, "HTTP/1.1 100 Continue\r\n\r\n");
        srv_later(s, 30);
    } else if (strcmp(path, "/continue1") == 0) {
        srv_send(s, "HTTP/1.1 100 Continue\r\n\r\n");
        srv_send_json(s);
    } else if (strcmp(path, "/extra") == 0) {
        srv_send_json(s);
        srv_send(s, "HTTP/1.1 200 OK\r\n");
    } else if (strcmp(path, "/extra-late") == 0) {
        srv_send_json(s);
        srv_later(s, 30);
    } else if (strcmp(path, "/slow-close") == 0) {
        /* the first request is accepted, held, then dropped without a byte; the retry is answered */
        if (srv.slow_close_n++ == 0)
            srv_later(s, 300);
        else
            srv_send_json(s);
    } else {
        srv_send_close(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
}

static size_t head_content_length(const char *head) {
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
            return (size_t)strtoul(p + 17, NULL, 10);
    return 0;
}

static void srv_read(struct bufferevent *bev, void *arg) {
    sconn *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        if (s->discard) {
            size_t n = evbuffer_get_length(in);
            n = n < s->discard ? n : s->discard;
            evbuffer_drain(in, n);
            s->discard -= n;
            if (s->discard)
                return;
        }
        struct evbuffer_ptr at = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (at.pos < 0)
            return;
        size_t head_len = (size_t)at.pos + 4;
        char *head = malloc(head_len + 1);
        evbuffer_copyout(in, head, head_len);
        head[head_len] = '\0';
        size_t cl = head_content_length(head);
        char path[64] = "";
        sscanf(head, "%*s %63s", path);
        if (strcmp(path, "/early") == 0) {
            /* answers from the head alone, then skips the body, as a server refusing it would */
            evbuffer_drain(in, head_len);
            free(head);
            s->discard = cl;
            srv_send(s, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n");
            srv.requests++;
            continue;
        }
        if (evbuffer_get_length(in) < head_len + cl) {
            free(head);
            return;
        }
        free(srv.last_req);
        srv.last_req = malloc(head_len + cl + 1);
        evbuffer_remove(in, srv.last_req, head_len + cl);
        srv.last_req[head_len + cl] = '\0';
        srv.last_req_len = head_len + cl;
        srv.requests++;
        free(head);
        srv_handle(s, path);
    }
}

static void srv_write(struct bufferevent *bev, void *arg) {
    sconn *s = arg;
    if (s->close_after_flush && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        sconn_free(s);
}

static void srv_event(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    sconn *s = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (strcmp(s->mode, "/stream") == 0)
            srv.stream_eof = 1;
        sconn_free(s);
    }
}

static void srv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *arg) {
    (void)l;
    (void)sa;
    (void)socklen;
    (void)arg;
    sconn *s = calloc(1, sizeof *s);
    s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    s->timer = evtimer_new(base, srv_tick, s);
    s->next = srv.conns;
    srv.conns = s;
    srv.accepted++;
    bufferevent_setcb(s->bev, srv_read, srv_write, srv_event, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

int srv_start(void) {
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    srv.lst = evconnlistener_new_bind(base, srv_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
                                      (struct sockaddr *)&sin, sizeof sin);
    if (!srv.lst)
        return -1;
    socklen_t len = sizeof sin;
    getsockname(evconnlistener_get_fd(srv.lst), (struct sockaddr *)&sin, &len);
    srv.port = ntohs(sin.sin_port);
    return 0;
}

void srv_close_all(void) {
    while (srv.conns)
        sconn_free(srv.conns);
}

/* A port on 127.0.0.1 with nothing listening. */
int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    bind(fd, (struct sockaddr *)&sin, sizeof sin);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd);
    return ntohs(sin.sin_port);
}

/* ---- the loop ---- */

static int watchdog_fired;

static void on_watchdog(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    watchdog_fired = 1;
}

/* Runs the loop until *flag is set or WATCHDOG_MS pass; returns *flag. */
int run_until(const int *flag) {
    struct event *wd = evtimer_new(base, on_watchdog, NULL);
    struct timeval tv = {WATCHDOG_MS / 1000, (WATCHDOG_MS % 1000) * 1000};
    watchdog_fired = 0;
    evtimer_add(wd, &tv);
    while (!*flag && !watchdog_fired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(wd);
    return *flag;
}

static void on_flag_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    *(int *)arg = 1;
}

/* Runs the loop for `ms`. */
void run_for(int ms) {
    int done = 0;
    struct event *t = evtimer_new(base, on_flag_timer, &done);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(t, &tv);
    run_until(&done);
    event_free(t);
}

