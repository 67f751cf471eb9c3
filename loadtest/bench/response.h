/*
 * response.h - reading one response into its record: SSE chunks become token timestamps and
 * inter-token gaps, the usage chunk (or a JSON body's usage) gives token counts, and the way
 * the response ended decides the error kind.
 *
 * A token chunk is an event whose first choice carries non-empty text (completions `text`, chat
 * `delta.content`), as vllm bench serve counts them; the role-only first chat chunk and the
 * usage-only last chunk are not tokens.
 */
#ifndef TLAB_BENCH_RESPONSE_H
#define TLAB_BENCH_RESPONSE_H

#include "http_client.h"
#include "record.h"
#include "sse.h"

typedef struct {
    tlab_req *rec;
    double now;       /* time of the bytes being fed (set by the caller before each feed) */
    int is_sse;
    int saw_done;     /* data: [DONE] */
    int stream_error; /* an {"error": ...} event, or an event that is not JSON */
    int oom;
    tlab_sse sse;
    char *body;       /* non-stream body */
    size_t body_len, body_cap;
} tlab_response;

/* Starts reading rec's response. */
void tlab_response_init(tlab_response *r, tlab_req *rec);
void tlab_response_headers(tlab_response *r, int status, int is_event_stream);
/* Feeds body bytes that arrived at time now. */
void tlab_response_data(tlab_response *r, const char *data, size_t len, double now);
/* Ends the response at time now: sets rec->done, kind, usage. Frees r's buffers. */
void tlab_response_finish(tlab_response *r, tlab_http_result result, double now);

#endif
