/*
 * rate_limit.c - token buckets and the two-bucket limiter of rate_limit.h.
 */
#include "policy/rate_limit.h"

#define SCALE 60000000LL /* microseconds per minute: one scaled unit per microsecond at 1 token/min */
/* Debt is bounded so that no amount of over-use can overflow the level. */
#define MIN_LEVEL (-(INT64_MAX / 4))

static int64_t capacity(const tlab__bucket *b) {
    return b->per_minute * SCALE;
}

static void refill(tlab__bucket *b, uint64_t now_us) {
    if (now_us <= b->last_us)
        return;
    uint64_t dt = now_us - b->last_us;
    b->last_us = now_us;
    int64_t missing = capacity(b) - b->level;
    if (missing <= 0)
        return;
    /* Compare times before multiplying: per_minute * dt can overflow after a long idle spell. */
    if (dt >= (uint64_t)(missing / b->per_minute) + 1)
        b->level = capacity(b);
    else
        b->level += b->per_minute * (int64_t)dt;
    if (b->level > capacity(b))
        b->level = capacity(b);
}

void tlab__bucket_init(tlab__bucket *b, int64_t per_minute, uint64_t now_us) {
    b->per_minute = per_minute > 0 ? per_minute : 0;
    b->level = capacity(b);
    b->last_us = now_us;
}

int64_t tlab__bucket_wait_us(tlab__bucket *b, int64_t n, uint64_t now_us) {
    if (b->per_minute == 0 || n <= 0)
        return 0;
    if (n > b->per_minute)
        return -1;
    refill(b, now_us);
    int64_t need = n * SCALE - b->level;
    if (need <= 0)
        return 0;
    return (need + b->per_minute - 1) / b->per_minute; /* round up: never early */
}

void tlab__bucket_take(tlab__bucket *b, int64_t n, uint64_t now_us) {
    if (b->per_minute == 0 || n <= 0)
        return;
    refill(b, now_us);
    int64_t room = b->level - MIN_LEVEL;
    b->level = n >= room / SCALE ? MIN_LEVEL : b->level - n * SCALE;
}

void tlab__bucket_give(tlab__bucket *b, int64_t n, uint64_t now_us) {
    if (b->per_minute == 0 || n <= 0)
        return;
    refill(b, now_us);
    int64_t missing = capacity(b) - b->level;
    b->level = n >= missing / SCALE + 1 ? capacity(b) : b->level + n * SCALE;
    if (b->level > capacity(b))
        b->level = capacity(b);
}

int64_t tlab__bucket_tokens(tlab__bucket *b, uint64_t now_us) {
    if (b->per_minute == 0)
        return 0;
    refill(b, now_us);
    int64_t t = b->level / SCALE;
    return b->level < 0 && b->level % SCALE ? t - 1 : t; /* floor */
}

void tlab__limiter_init(tlab__limiter *l, int64_t requests_per_minute, int64_t tokens_per_minute, uint64_t now_us) {
    tlab__bucket_init(&l->requests, requests_per_minute, now_us);
    tlab__bucket_init(&l->tokens, tokens_per_minute, now_us);
}

static int whole_seconds(int64_t us) {
    int64_t s = (us + 999999) / 1000000;
    if (s < 1)
        s = 1;
    return s > 86400 * 365 ? 86400 * 365 : (int)s;
}

tlab__limit_result tlab__limiter_admit(tlab__limiter *l, int64_t reserve, uint64_t now_us, int *retry_after_s) {
    *retry_after_s = 0;
    int64_t wait_tok = tlab__bucket_wait_us(&l->tokens, reserve, now_us);
    if (wait_tok < 0)
        return TLAB_LIMIT_TOO_LARGE;
    int64_t wait_req = tlab__bucket_wait_us(&l->requests, 1, now_us);
    if (wait_req > 0 || wait_tok > 0) {
        *retry_after_s = whole_seconds(wait_req > wait_tok ? wait_req : wait_tok);
        return wait_req > 0 ? TLAB_LIMIT_REQUESTS : TLAB_LIMIT_TOKENS;
    }
    tlab__bucket_take(&l->requests, 1, now_us);
    tlab__bucket_take(&l->tokens, reserve, now_us);
    return TLAB_LIMIT_OK;
}

void tlab__limiter_settle(tlab__limiter *l, int64_t reserved, int64_t used, uint64_t now_us) {
    if (used < reserved)
        tlab__bucket_give(&l->tokens, reserved - used, now_us);
    else if (used > reserved)
        tlab__bucket_take(&l->tokens, used - reserved, now_us);
}
