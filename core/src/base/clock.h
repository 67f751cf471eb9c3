/*
 * clock.h - the gateway's one clock: monotonic, in microseconds. Every timestamp a request
 * carries (request.h's t[]) and every deadline is on it, so differences never jump with NTP.
 */
#ifndef TLAB_CLOCK_H
#define TLAB_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t tlab__now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#endif
