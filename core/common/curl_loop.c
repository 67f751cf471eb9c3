/*
 * curl_loop.c - the "hiperfifo" pattern: one libevent event per socket curl uses, one timer for
 * curl's timeout, and a completion pass after every curl_multi_socket_action.
 */
#include "common/curl_loop.h"

#include <stdlib.h>

struct tlab__curl_loop {
    struct event_base *base;
    CURLM *multi;
    struct event *timer_ev;
    tlab__curl_done_fn on_done;
    void *arg;
};

typedef struct sock_watch {
    struct event *ev;
    tlab__curl_loop *loop;
} sock_watch;

static void check_done(tlab__curl_loop *loop) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(loop->multi, &left)))
        if (msg->msg == CURLMSG_DONE)
            loop->on_done(loop->arg, msg->easy_handle, msg->data.result);
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg) {
    tlab__curl_loop *loop = ((sock_watch *)arg)->loop; /* the watch may be freed by socket_action */
    int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running = 0;
    curl_multi_socket_action(loop->multi, fd, flags, &running);
    check_done(loop); /* may re-add a handle (a retry): curl's timer stays curl's business */
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    tlab__curl_loop *loop = arg;
    int running = 0;
    (void)fd, (void)what;
    curl_multi_socket_action(loop->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(loop);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
    tlab__curl_loop *loop = userp;
    sock_watch *w = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (w) {
            event_free(w->ev);
            free(w);
        }
        curl_multi_assign(loop->multi, s, NULL);
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w)
            return -1;
        w->loop = loop;
        w->ev = event_new(loop->base, s, kind, on_socket_event, w);
        if (!w->ev) {
            free(w);
            return -1;
        }
        curl_multi_assign(loop->multi, s, w);
    } else {
        event_del(w->ev);
        event_assign(w->ev, loop->base, s, kind, on_socket_event, w);
    }
    event_add(w->ev, NULL);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
    tlab__curl_loop *loop = userp;
    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(loop->timer_ev);
    } else {
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        evtimer_add(loop->timer_ev, &tv);
    }
    return 0;
}

tlab__curl_loop *tlab__curl_loop_new(struct event_base *base, tlab__curl_done_fn on_done, void *arg) {
    static int curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return NULL;
        curl_ready = 1;
    }
    tlab__curl_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    loop->base = base;
    loop->on_done = on_done;
    loop->arg = arg;
    loop->multi = curl_multi_init();
    loop->timer_ev = evtimer_new(base, on_timer, loop);
    if (!loop->multi || !loop->timer_ev) {
        tlab__curl_loop_free(loop);
        return NULL;
    }
    curl_multi_setopt(loop->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(loop->multi, CURLMOPT_SOCKETDATA, loop);
    curl_multi_setopt(loop->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(loop->multi, CURLMOPT_TIMERDATA, loop);
    return loop;
}

CURLM *tlab__curl_loop_multi(tlab__curl_loop *loop) {
    return loop->multi;
}

void tlab__curl_loop_free(tlab__curl_loop *loop) {
    if (!loop)
        return;
    if (loop->multi)
        curl_multi_cleanup(loop->multi);
    if (loop->timer_ev)
        event_free(loop->timer_ev);
    free(loop);
}

int tlab__curl_final_headers(CURL *easy, const char *line, size_t len, long *status, char **content_type) {
    if (len > 2 || (len > 0 && line[0] != '\r' && line[0] != '\n'))
        return 0;
    *status = 0;
    *content_type = NULL;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
    if (*status < 200)
        return 0;
    curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, content_type);
    return 1;
}
