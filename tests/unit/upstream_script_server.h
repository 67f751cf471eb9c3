/*
 * upstream_script_server.h - test_upstream's scripted HTTP/1.1 server on the test's event_base
 * (127.0.0.1, a free port): it reads a request head and its Content-Length body, then answers by
 * the request path (upstream_script_server.c: srv_handle). Also the loop helpers that bound each
 * case with a watchdog.
 */
#ifndef TLAB_UPSTREAM_SCRIPT_SERVER_H
#define TLAB_UPSTREAM_SCRIPT_SERVER_H

#include <stddef.h>

#include <event2/event.h>
#include <event2/listener.h>

#define WATCHDOG_MS 5000
#define JSON_BODY "{\"id\":\"cmpl-1\",\"choices\":[{\"text\":\"hello\"}]}"
#define BIG_LEN 300000
#define BURST_CHUNKS 40
#define BURST_CHUNK_LEN 1000

/* The test's loop, shared with the server. */
extern struct event_base *base;

typedef struct sconn {
    struct bufferevent *bev;
    struct event *timer;
    char mode[32]; /* the path being answered over several steps */
    int step;
    int close_after_flush;
    size_t discard; /* request body bytes still to skip (/early) */
    struct sconn *next;
} sconn;

typedef struct script_server {
    struct evconnlistener *lst;
    int port;
    int accepted;
    sconn *conns;
    char *last_req; /* the last request: head and body */
    size_t last_req_len;
    int requests;
    int stream_eof;   /* the /stream connection saw the client close */
    int slow_close_n; /* requests of /slow-close so far */
} script_server;
extern script_server srv;

/* Listens on 127.0.0.1:0 (srv.port); 0 on success. */
int srv_start(void);
void srv_close_all(void);
/* A port on 127.0.0.1 with nothing listening. */
int closed_port(void);
/* The byte at offset i of the large bodies both sides check. */
char pattern_byte(size_t i);
/* Runs the loop until *flag is set or WATCHDOG_MS pass; returns *flag. */
int run_until(const int *flag);
/* Runs the loop for `ms`. */
void run_for(int ms);

#endif
