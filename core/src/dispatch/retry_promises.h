/*
 * retry_promises.h - the Retry-After promises the gateway made, so that it can keep them.
 *
 * A deadline refusal (429 at arrival, or 503 for a queued request judged unreachable; not a
 * queue timeout) tells the client when a retry would be served. During a burst the retry comes
 * back into a queue that new arrivals filled meanwhile, and is refused again: measured, only
 * 42 % of retries were admitted at their first retry.
 * Keeping the promise means knowing the retry when it arrives. Clients do not echo a token (the
 * openai SDK retries a 429 with the same request after its Retry-After), so a promise is keyed
 * by what a retry repeats: the request's body and its Authorization header. A request that
 * matches a promise inside its window is a promised retry; the queue puts it ahead of the
 * requests that arrived fresh in its class (docs/autopilot.md, "Retry-After").
 *
 * Two different clients sending byte-identical bodies share promises: one may take the other's
 * turn, which changes who waits, not how many are served.
 */
#ifndef TLAB_RETRY_PROMISES_H
#define TLAB_RETRY_PROMISES_H

#include <stddef.h>
#include <stdint.h>

/* Most promises outstanding; older ones are forgotten first (a burst refuses at most a few
 * hundred requests per second, each promise lives for seconds). */
#define TLAB_PROMISES_MAX 4096
/* A retry counts from this long before its promised time (clients round Retry-After down, or
 * come early) until this long after it (a slow client, a retry with back-off on top). */
#define TLAB_PROMISE_EARLY_S 1.0
#define TLAB_PROMISE_LATE_S 10.0

/* What identifies a retry of this request: its body and its Authorization header (NULL: none). */
uint64_t tlab__promise_key(const char *body, size_t len, const char *authorization);
/* The gateway told the client with this key to come back at `at_s` (seconds, any clock the
 * claims use too). */
void tlab__promises_add(uint64_t key, double at_s);
/* 1 when a promise for `key` is open at `now_s` (it is then used up), else 0. */
int tlab__promises_claim(uint64_t key, double now_s);
/* Promises whose retry is due from a second ago to `horizon_s` from now and has not come yet:
 * the room a fresh arrival must leave them (gate.c counts them ahead of it). A retry more than a
 * second late holds no room: a client that gave up must not keep capacity idle. */
size_t tlab__promises_due(double now_s, double horizon_s);
/* The share of promises whose retry came (a moving average, 0 before any came): the room kept is
 * tlab__promises_due x this. */
double tlab__promises_show_rate(void);
/* Promises still open or to come at `now_s`. */
size_t tlab__promises_open(double now_s);
/* Promises made and promises claimed by their retry, since start (for /metrics). */
void tlab__promises_counts(uint64_t *made, uint64_t *claimed);
/* Forgets every promise and zeroes the counts (tests). */
void tlab__promises_reset(void);

#endif
