/*
 * upstream_policy.h - the one retry and timeout policy of both transports (upstream_http.c, the
 * own client, and upstream_curl.c, libcurl): what is retried, how often, with which budgets,
 * and what each timeout says. Internal to upstream*.c.
 *
 * vLLM closes idle keep-alive connections after about 5 s, so a request sent on a pooled
 * connection the worker has just closed fails with nothing read. Such a failure is safe to retry
 * (the worker saw no request, or answered none of it), once, on a fresh connection, which gets
 * fresh connect and first-byte budgets: the first attempt may have used them up. A failure after
 * any response byte is never retried: the work may have been done, and bytes may have reached
 * the client.
 */
#ifndef TLAB_UPSTREAM_POLICY_H
#define TLAB_UPSTREAM_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "upstream/upstream.h"

typedef struct tlab__attempt {
    long connect_ms, first_byte_ms, total_ms; /* the request's budgets */
    uint64_t connect_deadline, first_byte_deadline, total_deadline; /* on tlab__now_us() */
    uint8_t got_bytes; /* a response byte arrived */
    uint8_t retried;   /* the one retry was used */
} tlab__attempt;

/* Starts the budgets at `now` (microseconds). */
void tlab__attempt_start(tlab__attempt *a, long connect_ms, long first_byte_ms, long total_ms, uint64_t now);
/* A failure before any response byte, of a cause the transport deems retryable (refused, reset,
 * empty reply): returns 1 when the caller must retry on a fresh connection (the retry is then
 * recorded and the connect and first-byte budgets start again at `now`), 0 when it must fail. */
int tlab__attempt_retry(tlab__attempt *a, int cause_retryable, uint64_t now);
/* Which budget a timeout broke, when the transport knows only that one did (libcurl's single
 * timer): the connect budget before a connection, else the first-byte budget before any byte
 * when it is the shorter (as the own client's timer decides), else the total. */
tlab__xfer_result tlab__attempt_timeout_kind(const tlab__attempt *a, int connected);
/* The message of a timeout result (CONNECT, FIRST_BYTE or TOTAL) into buf, naming the config key. */
void tlab__attempt_timeout_detail(const tlab__attempt *a, tlab__xfer_result result, char *buf, size_t len);

#endif
