/*
 * rate_limit.h - token buckets for the per-key limits (requests_per_minute, tokens_per_minute).
 *
 * Pure arithmetic on a caller-supplied clock (microseconds), so it runs on the loop with no
 * timer and no thread, and tests drive time by hand. A bucket holds up to one minute's worth
 * and refills continuously at per_minute / 60 s. Levels are kept exactly, in integer units of
 * 1/60,000,000 of a token (one per microsecond at a rate of one token per minute).
 *
 * Tokens are reserved when a request is admitted and settled when it ends: the unused part of
 * the reservation goes back, and usage above it is charged, which may leave the bucket in debt
 * (below zero) so later requests wait for it.
 */
#ifndef TLAB_RATE_LIMIT_H
#define TLAB_RATE_LIMIT_H

#include <stdint.h>

typedef struct tlab__bucket {
    int64_t per_minute; /* capacity and refill per minute; 0 = unlimited */
    int64_t level;      /* scaled units; may be negative (debt) */
    uint64_t last_us;   /* time of the last refill */
} tlab__bucket;

/* A full bucket of per_minute (0 = unlimited: every call below then succeeds at once). */
void tlab__bucket_init(tlab__bucket *b, int64_t per_minute, uint64_t now_us);
/* Microseconds until n tokens are there (0 = now), or -1 when n exceeds the capacity (never). */
int64_t tlab__bucket_wait_us(tlab__bucket *b, int64_t n, uint64_t now_us);
/* Removes n tokens; the level may go below zero. */
void tlab__bucket_take(tlab__bucket *b, int64_t n, uint64_t now_us);
/* Returns n tokens, never above the capacity. */
void tlab__bucket_give(tlab__bucket *b, int64_t n, uint64_t now_us);
/* Whole tokens there now (rounded down; negative in debt). 0 for an unlimited bucket. */
int64_t tlab__bucket_tokens(tlab__bucket *b, uint64_t now_us);

typedef struct tlab__limiter {
    tlab__bucket requests, tokens;
} tlab__limiter;

typedef enum tlab__limit_result {
    TLAB_LIMIT_OK = 0,
    TLAB_LIMIT_REQUESTS,  /* requests_per_minute reached */
    TLAB_LIMIT_TOKENS,    /* not enough tokens_per_minute left for the reservation */
    TLAB_LIMIT_TOO_LARGE, /* the reservation exceeds tokens_per_minute: it can never pass */
} tlab__limit_result;

void tlab__limiter_init(tlab__limiter *l, int64_t requests_per_minute, int64_t tokens_per_minute, uint64_t now_us);
/*
 * Admits one request reserving `reserve` tokens. Both buckets are checked before either is
 * charged, so a refusal costs nothing. On TLAB_LIMIT_REQUESTS or TLAB_LIMIT_TOKENS,
 * *retry_after_s is the whole seconds (at least 1, rounded up) until both buckets would let
 * this request pass; on TLAB_LIMIT_TOO_LARGE it is 0.
 */
tlab__limit_result tlab__limiter_admit(tlab__limiter *l, int64_t reserve, uint64_t now_us, int *retry_after_s);
/* Settles an admitted request's reservation with what it really used (either may be 0). */
void tlab__limiter_settle(tlab__limiter *l, int64_t reserved, int64_t used, uint64_t now_us);

#endif
