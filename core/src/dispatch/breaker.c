/*
 * breaker.c - the circuit breaker of breaker.h.
 */
#include "dispatch/breaker.h"

/* A worker that keeps failing its trial is tried at most this much less often than the first
 * time: at the default 1 s, every 30 s. LiteLLM's #40405 (a dead deployment never cooled down)
 * is the failure this avoids; never trying again would be the opposite one. */
#define MAX_EJECTION_FACTOR 30

void tlab__breaker_init(tlab__breaker *b, int threshold, uint64_t base_us) {
    *b = (tlab__breaker){.threshold = threshold > 0 ? threshold : 1, .base_us = base_us, .ejection_us = base_us};
}

int tlab__breaker_routable(const tlab__breaker *b, uint64_t now) {
    return b->state == TLAB_BREAKER_CLOSED || (b->state == TLAB_BREAKER_OPEN && now >= b->open_until_us);
}

int tlab__breaker_allows(tlab__breaker *b, uint64_t now) {
    if (b->state == TLAB_BREAKER_CLOSED)
        return 1;
    if (b->state == TLAB_BREAKER_OPEN && now >= b->open_until_us) {
        b->state = TLAB_BREAKER_HALF_OPEN;
        return 1;
    }
    return 0; /* open, or half-open with its trial under way */
}

void tlab__breaker_success(tlab__breaker *b) {
    b->failures = 0;
    if (b->state != TLAB_BREAKER_CLOSED) {
        b->state = TLAB_BREAKER_CLOSED;
        b->ejection_us = b->base_us;
    }
}

static void open_for(tlab__breaker *b, uint64_t now, uint64_t us) {
    b->state = TLAB_BREAKER_OPEN;
    b->open_until_us = now + us;
    b->failures = 0;
    b->ejections++;
}

void tlab__breaker_eject(tlab__breaker *b, uint64_t now) {
    open_for(b, now, b->ejection_us);
}

int tlab__breaker_failure(tlab__breaker *b, uint64_t now) {
    if (b->state == TLAB_BREAKER_HALF_OPEN) {
        uint64_t next = b->ejection_us * 2, cap = b->base_us * MAX_EJECTION_FACTOR;
        b->ejection_us = next < cap ? next : cap;
        open_for(b, now, b->ejection_us);
        return 1;
    }
    if (b->state == TLAB_BREAKER_OPEN)
        return 0; /* legs sent before the ejection still end */
    if (++b->failures < b->threshold)
        return 0;
    open_for(b, now, b->ejection_us);
    return 1;
}

const char *tlab__breaker_state_name(tlab__breaker_state s) {
    switch (s) {
    case TLAB_BREAKER_CLOSED: return "closed";
    case TLAB_BREAKER_OPEN: return "open";
    case TLAB_BREAKER_HALF_OPEN: return "half_open";
    }
    return "?";
}
