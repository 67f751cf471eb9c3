/*
 * breaker.h - one worker's circuit breaker (passive health), as Envoy's outlier detection and
 * the SGLang router do it: consecutive failures eject the worker for a while; when the while is
 * over, one request (or health probe) is let through half-open; its success closes the breaker,
 * its failure ejects again for twice as long (up to 30 times the base).
 *
 * A pure state machine on a caller's clock: no I/O, no timer (route.c asks it on every pick).
 */
#ifndef TLAB_BREAKER_H
#define TLAB_BREAKER_H

#include <stdint.h>

typedef enum tlab__breaker_state {
    TLAB_BREAKER_CLOSED = 0,    /* routable */
    TLAB_BREAKER_OPEN = 1,      /* ejected until open_until_us */
    TLAB_BREAKER_HALF_OPEN = 2, /* one trial in flight; its outcome decides */
} tlab__breaker_state;

typedef struct tlab__breaker {
    tlab__breaker_state state;
    int failures;           /* consecutive, while closed */
    int threshold;          /* failures that eject (pool.eject_after_failures) */
    uint64_t base_us;       /* first ejection (pool.eject_ms) */
    uint64_t ejection_us;   /* the current ejection's length: doubles on each failed trial */
    uint64_t open_until_us;
    uint64_t ejections;     /* times ejected, for the metrics */
} tlab__breaker;

void tlab__breaker_init(tlab__breaker *b, int threshold, uint64_t base_us);
/* Whether a request may go to the worker at `now`. An open breaker whose time is over turns
 * half-open and admits exactly one trial (the caller must report its outcome). */
int tlab__breaker_allows(tlab__breaker *b, uint64_t now);
/* Whether it would allow, without taking the half-open trial (for filters and listings). */
int tlab__breaker_routable(const tlab__breaker *b, uint64_t now);
/* Outcomes. A failure returns 1 when it ejected the worker (to log it once). */
void tlab__breaker_success(tlab__breaker *b);
int tlab__breaker_failure(tlab__breaker *b, uint64_t now);
/* Ejects at once (a stalled worker, a health check that failed): no threshold. */
void tlab__breaker_eject(tlab__breaker *b, uint64_t now);
const char *tlab__breaker_state_name(tlab__breaker_state s);

#endif
