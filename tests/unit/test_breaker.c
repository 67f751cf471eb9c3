/*
 * test_breaker.c - the per-worker circuit breaker (core/src/dispatch/breaker.c): consecutive
 * failures eject, one half-open trial at a time, a failed trial doubles the ejection up to its
 * cap, a success closes it, and a success in between resets the count.
 */
#include "dispatch/breaker.h"
#include "tlab_test.h"

static void ejects_after_consecutive_failures(void) {
    tlab__breaker b;
    tlab__breaker_init(&b, 3, 1000);
    CHECK(tlab__breaker_allows(&b, 0));
    CHECK(tlab__breaker_failure(&b, 10) == 0);
    CHECK(tlab__breaker_failure(&b, 20) == 0);
    tlab__breaker_success(&b); /* not consecutive any more */
    CHECK(tlab__breaker_failure(&b, 30) == 0);
    CHECK(tlab__breaker_failure(&b, 40) == 0);
    CHECK(tlab__breaker_failure(&b, 50) == 1);
    CHECK(b.state == TLAB_BREAKER_OPEN && b.ejections == 1);
    CHECK(!tlab__breaker_allows(&b, 1049));
    CHECK(!tlab__breaker_routable(&b, 1049));
    CHECK(tlab__breaker_routable(&b, 1050));
}

static void one_trial_at_a_time(void) {
    tlab__breaker b;
    tlab__breaker_init(&b, 1, 1000);
    CHECK(tlab__breaker_failure(&b, 0) == 1);
    CHECK(tlab__breaker_allows(&b, 1000));  /* the trial */
    CHECK(b.state == TLAB_BREAKER_HALF_OPEN);
    CHECK(!tlab__breaker_allows(&b, 1001)); /* nothing else while it runs */
    CHECK(!tlab__breaker_routable(&b, 1001));
    tlab__breaker_success(&b);
    CHECK(b.state == TLAB_BREAKER_CLOSED && tlab__breaker_allows(&b, 1002));
}

static void failed_trials_back_off_to_a_cap(void) {
    tlab__breaker b;
    tlab__breaker_init(&b, 1, 1000);
    uint64_t now = 0;
    CHECK(tlab__breaker_failure(&b, now) == 1);
    uint64_t expect = 1000;
    for (int i = 0; i < 10; i++) {
        now = b.open_until_us;
        CHECK(tlab__breaker_allows(&b, now));
        CHECK(tlab__breaker_failure(&b, now) == 1);
        expect = expect * 2 > 30000 ? 30000 : expect * 2;
        CHECK_MSG(b.open_until_us - now == expect, "trial %d: ejected for %llu us, expected %llu", i,
                  (unsigned long long)(b.open_until_us - now), (unsigned long long)expect);
    }
    /* a success forgets the backoff */
    CHECK(tlab__breaker_allows(&b, b.open_until_us));
    tlab__breaker_success(&b);
    CHECK(tlab__breaker_failure(&b, 5) == 1 && b.open_until_us == 1005);
}

static void eject_skips_the_threshold(void) {
    tlab__breaker b;
    tlab__breaker_init(&b, 5, 2000);
    tlab__breaker_eject(&b, 100);
    CHECK(b.state == TLAB_BREAKER_OPEN && b.open_until_us == 2100);
    /* legs that were already running end while it is open: no extra ejection */
    CHECK(tlab__breaker_failure(&b, 200) == 0 && b.ejections == 1);
    CHECK_STR_CONTAINS(tlab__breaker_state_name(b.state), "open");
}

int main(void) {
    ejects_after_consecutive_failures();
    one_trial_at_a_time();
    failed_trials_back_off_to_a_cap();
    eject_skips_the_threshold();
    return tlab_test_finish();
}
