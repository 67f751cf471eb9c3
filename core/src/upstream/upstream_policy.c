/*
 * upstream_policy.c - see upstream_policy.h.
 */
#include "upstream/upstream_policy.h"

#include <stdio.h>

void tlab__attempt_start(tlab__attempt *a, long connect_ms, long first_byte_ms, long total_ms, uint64_t now) {
    a->connect_ms = connect_ms;
    a->first_byte_ms = first_byte_ms;
    a->total_ms = total_ms;
    a->connect_deadline = now + (uint64_t)connect_ms * 1000;
    a->first_byte_deadline = now + (uint64_t)first_byte_ms * 1000;
    a->total_deadline = now + (uint64_t)total_ms * 1000;
    a->got_bytes = 0;
    a->retried = 0;
}

int tlab__attempt_retry(tlab__attempt *a, int cause_retryable, uint64_t now) {
    if (!cause_retryable || a->retried || a->got_bytes)
        return 0;
    a->retried = 1;
    a->connect_deadline = now + (uint64_t)a->connect_ms * 1000;
    a->first_byte_deadline = now + (uint64_t)a->first_byte_ms * 1000;
    return 1;
}

tlab__xfer_result tlab__attempt_timeout_kind(const tlab__attempt *a, int connected) {
    if (!connected && !a->got_bytes)
        return TLAB_XFER_CONNECT_TIMEOUT;
    if (!a->got_bytes && a->first_byte_ms <= a->total_ms)
        return TLAB_XFER_FIRST_BYTE_TIMEOUT;
    return TLAB_XFER_TOTAL_TIMEOUT;
}

void tlab__attempt_timeout_detail(const tlab__attempt *a, tlab__xfer_result result, char *buf, size_t len) {
    switch (result) {
    case TLAB_XFER_CONNECT_TIMEOUT:
        snprintf(buf, len, "could not connect to the worker within %ld ms (upstream.connect_timeout_ms)", a->connect_ms);
        break;
    case TLAB_XFER_FIRST_BYTE_TIMEOUT:
        snprintf(buf, len, "no response from the worker within %ld ms (upstream.first_byte_timeout_ms)", a->first_byte_ms);
        break;
    default:
        snprintf(buf, len, "the worker did not finish within %ld ms (upstream.total_timeout_ms)", a->total_ms);
        break;
    }
}
