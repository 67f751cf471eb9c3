/*
 * retry_promises.c - a ring of (key, promised time), kept in time order (tlab__promises_add
 * sorts the rare promise that comes out of order into place). The expired ones are at the front
 * and leave from there, and a lookup binary-searches the start of the times it cares about and
 * scans only those: a scan of the whole book cost 9 us per request with 4096 open promises
 * (tlab-admission-cost). Nothing is scanned while the book is empty: no burst.
 */
#include "dispatch/retry_promises.h"

#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

typedef struct promise {
    uint64_t key; /* 0: used up */
    double at_s;
} promise;

static promise ring[TLAB_PROMISES_MAX];
static size_t head, count;
static uint64_t made, claimed;
/* The share of promises whose retry came: a moving average over promises as they resolve (claimed,
 * or expired unclaimed). Room is kept only in that proportion: clients that do not retry (a
 * benchmark without --retry-429, a batch job that gives up) must not make the gateway keep slots
 * idle for them, which would refuse more fresh arrivals, promise more and keep more room. */
static double show_rate;
#define SHOW_WEIGHT 0.05

/* Every request pays this at arrival: XXH3 reads 8 bytes and more at a time, where FNV-1a's
 * byte loop took 3.7 us for a 200-token chat body. */
uint64_t tlab__promise_key(const char *body, size_t len, const char *authorization) {
    uint64_t h = XXH3_64bits(body, len);
    if (authorization)
        h = XXH3_64bits_withSeed(authorization, strlen(authorization), h);
    return h ? h : 1; /* 0 marks a used-up slot */
}

static promise *at(size_t i) {
    return &ring[(head + i) % TLAB_PROMISES_MAX];
}

/* The first promise whose time is at least t. */
static size_t first_from(double t) {
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (at(mid)->at_s < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Drops the promises whose window closed before now_s, and used-up ones at the front. */
static void expire(double now_s) {
    while (count && (at(0)->key == 0 || at(0)->at_s + TLAB_PROMISE_LATE_S < now_s)) {
        if (at(0)->key != 0) /* its window closed unclaimed */
            show_rate -= SHOW_WEIGHT * show_rate;
        head = (head + 1) % TLAB_PROMISES_MAX;
        count--;
    }
}

/* Kept in time order: a promise for a cold start (the worker's start time, a per-request
 * deadline) can be seconds out of order with the spaced ones, and an unsorted book would stop
 * the searches and the expiry early. Usually it goes at the end; otherwise a few move up. */
void tlab__promises_add(uint64_t key, double at_s) {
    if (count == TLAB_PROMISES_MAX) { /* full: the oldest is forgotten, as if its client never came */
        if (at(0)->key != 0)
            show_rate -= SHOW_WEIGHT * show_rate;
        head = (head + 1) % TLAB_PROMISES_MAX;
        count--;
    }
    size_t i = count;
    while (i > 0 && at(i - 1)->at_s > at_s) {
        *at(i) = *at(i - 1);
        i--;
    }
    *at(i) = (promise){.key = key ? key : 1, .at_s = at_s};
    count++;
    made++;
}

int tlab__promises_claim(uint64_t key, double now_s) {
    if (!key)
        return 0; /* 0 marks a used-up slot, never a request */
    expire(now_s);
    /* The book is in time order: these are exactly the promises whose window is open now. */
    for (size_t i = first_from(now_s - TLAB_PROMISE_LATE_S); i < count && at(i)->at_s <= now_s + TLAB_PROMISE_EARLY_S;
         i++) {
        promise *p = at(i);
        if (p->key == key) {
            p->key = 0;
            claimed++;
            show_rate += SHOW_WEIGHT * (1.0 - show_rate);
            expire(now_s);
            return 1;
        }
    }
    return 0;
}

size_t tlab__promises_due(double now_s, double horizon_s) {
    expire(now_s);
    size_t n = 0;
    for (size_t i = first_from(now_s - 1.0); i < count && at(i)->at_s <= now_s + horizon_s; i++)
        n += at(i)->key != 0;
    return n;
}

size_t tlab__promises_open(double now_s) {
    expire(now_s);
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        n += at(i)->key != 0;
    return n;
}

double tlab__promises_show_rate(void) {
    return show_rate;
}

void tlab__promises_counts(uint64_t *made_out, uint64_t *claimed_out) {
    *made_out = made;
    *claimed_out = claimed;
}

void tlab__promises_reset(void) {
    head = count = 0;
    made = claimed = 0;
    show_rate = 0;
}
