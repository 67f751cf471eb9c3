/*
 * usage_meter.h - what a worker's response says about the tokens it used, read from the bytes
 * the gateway relays anyway: `usage` of a JSON reply, or of the last SSE chunk that carries one
 * (stream_options.include_usage), else the number of SSE data events (about one per token with
 * vLLM). Used to settle a key's token reservation (docs/security.md).
 *
 * Feeding is incremental and bounded: a JSON body is kept up to TLAB_USAGE_BODY_CAP bytes, an
 * SSE line up to TLAB_USAGE_LINE_CAP; past that the meter only counts.
 */
#ifndef TLAB_USAGE_METER_H
#define TLAB_USAGE_METER_H

#include <stddef.h>
#include <stdint.h>

#define TLAB_USAGE_BODY_CAP (1u << 20)
#define TLAB_USAGE_LINE_CAP (64u << 10)
/* Larger token counts in a usage object are ignored as implausible. */
#define TLAB_USAGE_MAX_TOKENS 1000000000000LL

typedef struct tlab__usage_meter {
    int stream; /* the reply is SSE */
    char *buf;  /* JSON: the body so far; SSE: the current line */
    size_t len, cap;
    int overflow;   /* the body (or current line) passed its cap */
    uint64_t bytes; /* body bytes fed */
    int64_t events; /* SSE data events other than [DONE] */
    int have_usage; /* a usage object with integer prompt_tokens and completion_tokens was seen */
    int64_t prompt_tokens, completion_tokens;
} tlab__usage_meter;

void tlab__usage_meter_init(tlab__usage_meter *m, int stream);
/* Feeds response body bytes in arrival order (any split). */
void tlab__usage_meter_feed(tlab__usage_meter *m, const char *data, size_t len);
/* The body is complete (or cut off): parses a JSON body, and a last SSE line without newline. */
void tlab__usage_meter_end(tlab__usage_meter *m);
void tlab__usage_meter_free(tlab__usage_meter *m);

/*
 * The tokens to charge a request that reserved `reserved` (prompt_estimate of them for the
 * prompt), given what its meter saw (after _end), whether it was dispatched to the worker and
 * its final status (499 client gone, 504 timeout, ...):
 *  - usage seen: prompt_tokens + completion_tokens;
 *  - SSE relayed without usage: prompt_estimate + events, at most `reserved`;
 *  - a JSON body relayed without a readable usage: `reserved`;
 *  - dispatched, nothing relayed, and the client left (499) or it timed out (504): `reserved`,
 *    since the worker may have generated the whole answer for nobody;
 *  - anything else (never dispatched, worker unreachable or answered an error): 0.
 */
int64_t tlab__usage_charge(const tlab__usage_meter *m, int dispatched, int status, int64_t prompt_estimate, int64_t reserved);

#endif
