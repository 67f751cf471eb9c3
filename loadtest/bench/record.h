/*
 * record.h - what the generator remembers about each request, and the store that holds them.
 *
 * Times are seconds since the run started (CLOCK_MONOTONIC). Latencies count from `sched`, the
 * time the schedule said to send, not from `sent`: a generator that falls behind shows up in
 * the latencies instead of hiding (coordinated omission), and `sent - sched` is its lag.
 * Records live in fixed blocks, so a pointer to one stays valid while more are added.
 */
#ifndef TLAB_BENCH_RECORD_H
#define TLAB_BENCH_RECORD_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    TLAB_K_OK = 0,
    TLAB_K_HTTP,          /* status >= 400 (or another non-2xx) */
    TLAB_K_TIMEOUT,       /* --timeout */
    TLAB_K_CONNECT,       /* refused / unreachable */
    TLAB_K_NO_RESPONSE,   /* connection closed before any response byte */
    TLAB_K_BROKEN_STREAM, /* the body broke off, or a stream ended without [DONE], or an error event */
    TLAB_K_BAD_RESPONSE,  /* 2xx, but the body is not the JSON we asked for */
    TLAB_K_DROPPED,       /* never sent: --max-inflight was reached (generator lag) */
    TLAB_K_UNFINISHED,    /* still running when the run was interrupted */
    TLAB_K_COUNT
} tlab_kind;

typedef struct {
    double sched;       /* due time (a retry keeps the original one: latencies count from the first arrival) */
    double sent;        /* first attempt handed to the HTTP client; < 0 if never sent */
    double first;       /* first token (stream) or first body byte (non-stream); < 0 if none */
    double last;        /* last token */
    double done;        /* response complete or failed */
    float *itl;         /* gaps between successive token chunks, seconds */
    uint32_t n_itl, cap_itl;
    uint32_t chunks;    /* token-bearing chunks seen */
    uint32_t seq;       /* the request's number in the run, from 0: its body's "user" (runner.c) */
    int32_t usage_out;  /* usage.completion_tokens, -1 if not reported */
    int32_t usage_in;   /* usage.prompt_tokens, -1 if not reported */
    int16_t status;     /* HTTP status, 0 if none */
    uint8_t kind;       /* tlab_kind */
    uint8_t in_window;  /* sched within [warmup, warmup + duration) */
    uint8_t retries;    /* --retry-429: attempts after the first one (the fields above are the last attempt's) */
    uint8_t admitted;   /* attempt that was admitted (an answer other than 429/503): 1 = the first, 2 = the
                           first retry, ...; 0 = never */
} tlab_req;

/* A rejection by the server's admission or queue (429, or 503), as opposed to a failure. */
#define TLAB_STATUS_REJECTED(s) ((s) == 429 || (s) == 503)

#define TLAB_REQ_BLOCK 4096

typedef struct {
    tlab_req **blocks;
    size_t n, nblocks, cap_blocks;
} tlab_reqs;

/* Appends a zeroed record (times set to -1, usage to -1); NULL when out of memory. */
tlab_req *tlab_reqs_add(tlab_reqs *s);
tlab_req *tlab_reqs_at(const tlab_reqs *s, size_t i);
void tlab_reqs_free(tlab_reqs *s);

/* Adds one inter-token gap; returns -1 when out of memory. */
int tlab_req_add_itl(tlab_req *r, double gap);
/* Output tokens: usage when the server reported it, else the counted chunks. */
long tlab_req_output_tokens(const tlab_req *r);
/* A stable name for the error kind: "ok", "http_503", "timeout", ... buf needs 16 bytes. */
const char *tlab_kind_name(const tlab_req *r, char *buf, size_t len);
const char *tlab_kind_base_name(tlab_kind k);

#endif
