/*
 * retry_promises.c - a ring of (key, promised time), oldest first. Promises are made in
 * nearly increasing time (gate.c spaces them at the drain rate), so the expired ones are at the
 * front and leave from there; a lookup scans what is open, a few hundred entries at most during
 * a burst, and is skipped entirely while the ring is empty (the common case: no burst).
 */
#include "dispatch/retry_promises.h"

#include "base/fnv1a.h"

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

uint64_t tlab__promise_key(const char *body, size_t len, const char *authorization) {
    uint64_t h = tlab__fnv1a64(body, len);
    if (authorization)
        for (const unsigned char *p = (const unsigned char *)authorization; *p; p++)
            h = (h ^ *p) * 0x100000001b3ULL;
    return h ? h : 1; /* 0 marks a used-up slot */
}

/* Drops the promises whose window closed before now_s, and used-up ones at the front. */
static void expire(double now_s) {
    while (count && (ring[head].key == 0 || ring[head].at_s + TLAB_PROMISE_LATE_S < now_s)) {
        if (ring[head].key != 0) /* its window closed unclaimed */
            show_rate -= SHOW_WEIGHT * show_rate;
        head = (head + 1) % TLAB_PROMISES_MAX;
        count--;
    }
}

void tlab__promises_add(uint64_t key, double at_s) {
    if (count == TLAB_PROMISES_MAX) { /* full: the oldest is forgotten */
        head = (head + 1) % TLAB_PROMISES_MAX;
        count--;
    }
    ring[(head + count) % TLAB_PROMISES_MAX] = (promise){.key = key ? key : 1, .at_s = at_s};
    count++;
    made++;
}

int tlab__promises_claim(uint64_t key, double now_s) {
    expire(now_s);
    for (size_t i = 0; i < count; i++) {
        promise *p = &ring[(head + i) % TLAB_PROMISES_MAX];
        if (p->key == key && now_s >= p->at_s - TLAB_PROMISE_EARLY_S && now_s <= p->at_s + TLAB_PROMISE_LATE_S) {
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
    for (size_t i = 0; i < count; i++) {
        const promise *p = &ring[(head + i) % TLAB_PROMISES_MAX];
        n += p->key != 0 && p->at_s >= now_s - 1.0 && p->at_s <= now_s + horizon_s;
    }
    return n;
}

size_t tlab__promises_open(double now_s) {
    expire(now_s);
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        n += ring[(head + i) % TLAB_PROMISES_MAX].key != 0;
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
