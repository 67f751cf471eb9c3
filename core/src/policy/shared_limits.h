/*
 * shared_limits.h - the per-key token buckets kept in Redis, so that N gateway replicas enforce
 * one limit instead of N (auth.redis; docs/kubernetes.md "Several gateway replicas").
 *
 * The buckets are those of rate_limit.h (one minute's worth, continuous refill, reserve at
 * admission, settle at the end), evaluated by a Lua script inside Redis so that a check and its
 * charge are one atomic step whichever replica sends it, on Redis' clock (replicas' clocks may
 * differ). A key's buckets are named by prefix, key name and limit, so a changed limit starts a
 * full bucket, as a reload does for the local ones.
 *
 * Everything runs on the loop (hiredis' async API on libevent; a host name is resolved with
 * evdns). When Redis does not answer within auth.redis_timeout_ms, or is not connected, the
 * caller decides with its local bucket: the limit then holds per replica (fail-open), counted in
 * gateway_shared_limit_fallbacks_total; an admission Redis grants after its request stopped
 * waiting is released. A lost connection is retried every second; three admissions in a row past
 * the timeout drop it (a hung Redis), and TCP keepalive notices a peer that vanished.
 */
#ifndef TLAB_SHARED_LIMITS_H
#define TLAB_SHARED_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "policy/rate_limit.h"

/* Starts connecting to `addr` ("host[:port]", base/hostport.h; port 6379 by default). 0, or -1 with a message. */
int tlab__shared_limits_start(struct event_base *base, const char *addr, const char *prefix, long timeout_ms, char *err,
                              size_t errlen);
/* Closes the connection; calls waiting for an answer get TLAB_SHARED_UNAVAILABLE first. */
void tlab__shared_limits_stop(void);
int tlab__shared_limits_enabled(void);

#define TLAB_SHARED_UNAVAILABLE (-1) /* Redis did not decide: use the local bucket */

/* Redis' decision: a tlab__limit_result, or TLAB_SHARED_UNAVAILABLE. The remaining counts are
 * whole tokens in each bucket after the decision (-1 for a limit the key does not have). */
typedef struct tlab__shared_verdict {
    int result;
    int retry_after_s;
    int64_t remaining_requests, remaining_tokens;
} tlab__shared_verdict;

typedef void (*tlab__shared_admit_fn)(void *arg, const tlab__shared_verdict *v);
typedef struct tlab__shared_call tlab__shared_call;

/*
 * Asks Redis to admit one request of key `name` reserving `reserve` tokens (the semantics of
 * tlab__limiter_admit). Returns a call whose fn(arg, verdict) runs once, later, on the loop (after
 * the answer, the timeout or a stop); or NULL when Redis is not connected now (decide locally).
 */
tlab__shared_call *tlab__shared_limits_admit(const char *name, int64_t requests_per_minute, int64_t tokens_per_minute,
                                             int64_t reserve, tlab__shared_admit_fn fn, void *arg);
/* The call's fn will not run (its request ended first). If Redis admits it anyway, the charge
 * is given back. */
void tlab__shared_limits_cancel(tlab__shared_call *call);
/* Settles an admission Redis made (with the limits it was made under): returns reserved - used
 * to the token bucket, or charges the excess (tlab__limiter_settle). Sent without waiting. */
void tlab__shared_limits_settle(const char *name, int64_t requests_per_minute, int64_t tokens_per_minute, int64_t reserved,
                                int64_t used);

#endif
