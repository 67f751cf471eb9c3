/*
 * test_retry_promises.c - the book of Retry-After promises (core/src/dispatch/retry_promises.c):
 * a retry is known by its body and Authorization inside its promise's window, once; expired
 * promises leave; a full book forgets the oldest.
 */
#include <string.h>

#include "dispatch/retry_promises.h"
#include "tlab_test.h"

static void keys(void) {
    const char *a = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"user\":\"u1\"}";
    const char *b = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"user\":\"u2\"}";
    uint64_t ka = tlab__promise_key(a, strlen(a), NULL);
    CHECK(ka == tlab__promise_key(a, strlen(a), NULL)); /* a retry repeats its body */
    CHECK(ka != tlab__promise_key(b, strlen(b), NULL));
    CHECK(ka != tlab__promise_key(a, strlen(a), "Bearer sk-1")); /* another key's identical body */
    CHECK(tlab__promise_key(a, strlen(a), "Bearer sk-1") != tlab__promise_key(a, strlen(a), "Bearer sk-2"));
    CHECK(tlab__promise_key("", 0, NULL) != 0); /* 0 marks a used slot */
}

static void windows(void) {
    tlab__promises_reset();
    CHECK(tlab__promises_claim(7, 100.0) == 0); /* nothing promised */
    tlab__promises_add(7, 100.0);
    tlab__promises_add(8, 101.0);
    CHECK(tlab__promises_open(90.0) == 2);
    CHECK(tlab__promises_claim(7, 100.0 - TLAB_PROMISE_EARLY_S - 0.1) == 0); /* too early */
    CHECK(tlab__promises_claim(9, 100.0) == 0);                             /* not promised */
    CHECK(tlab__promises_claim(7, 100.0 - TLAB_PROMISE_EARLY_S + 0.1) == 1); /* a client that rounded down */
    CHECK(tlab__promises_claim(7, 100.5) == 0);                             /* once */
    CHECK(tlab__promises_due(100.5, 1.0) == 1);  /* 8 at 101 holds room for the next second */
    CHECK(tlab__promises_due(99.0, 1.0) == 0);   /* not yet */
    CHECK(tlab__promises_due(102.5, 1.0) == 0);  /* 1.5 s late: it holds no room any more */
    CHECK(tlab__promises_claim(8, 101.0 + TLAB_PROMISE_LATE_S - 0.1) == 1); /* a slow client */
    tlab__promises_add(9, 200.0);
    CHECK(tlab__promises_claim(9, 200.0 + TLAB_PROMISE_LATE_S + 0.1) == 0); /* expired */
    CHECK(tlab__promises_open(300.0) == 0);
    uint64_t made, claimed;
    double shown = tlab__promises_show_rate();
    CHECK_MSG(shown > 0.09 && shown < 0.1, "two retries came, one promise expired: show rate %.3f", shown);
    tlab__promises_counts(&made, &claimed);
    CHECK_MSG(made == 3 && claimed == 2, "made %llu claimed %llu", (unsigned long long)made, (unsigned long long)claimed);
}

/* Clients that never retry: the room kept for them fades; clients that do: it grows. */
static void show_rate_learns(void) {
    tlab__promises_reset();
    CHECK(tlab__promises_show_rate() == 0);
    for (uint64_t i = 1; i <= 60; i++)
        tlab__promises_add(i, (double)i);
    for (uint64_t i = 1; i <= 60; i++)
        CHECK(tlab__promises_claim(i, (double)i));
    CHECK_MSG(tlab__promises_show_rate() > 0.9, "all came: %.3f", tlab__promises_show_rate());
    for (uint64_t i = 1; i <= 60; i++)
        tlab__promises_add(100 + i, 100.0 + (double)i);
    CHECK(tlab__promises_open(500.0) == 0); /* all expired unclaimed */
    CHECK_MSG(tlab__promises_show_rate() < 0.1, "none came: %.3f", tlab__promises_show_rate());
}

/* A cold-start promise seconds later than the spaced ones that follow it: the book stays in time
 * order, so the later ones are still found and expire on time. */
static void out_of_order_promises(void) {
    tlab__promises_reset();
    tlab__promises_add(1, 136.0); /* a cold start: 36 s */
    tlab__promises_add(2, 111.0);
    tlab__promises_add(3, 112.0);
    CHECK(tlab__promises_due(111.0, 1.0) == 2);
    CHECK(tlab__promises_claim(2, 111.0) == 1);
    CHECK(tlab__promises_claim(3, 112.5) == 1);
    CHECK(tlab__promises_open(130.0) == 1); /* 2 and 3 used, 1 still to come */
    CHECK(tlab__promises_claim(1, 136.0) == 1);
    CHECK(tlab__promises_claim(0, 136.0) == 0); /* 0 is a used slot's mark, never a request's key */
}

static void a_full_book_forgets_the_oldest(void) {
    tlab__promises_reset();
    for (uint64_t i = 1; i <= TLAB_PROMISES_MAX + 10; i++)
        tlab__promises_add(i, 50.0);
    CHECK(tlab__promises_open(50.0) == TLAB_PROMISES_MAX);
    CHECK(tlab__promises_claim(5, 50.0) == 0);  /* forgotten */
    CHECK(tlab__promises_claim(11, 50.0) == 1); /* kept */
    CHECK(tlab__promises_claim(TLAB_PROMISES_MAX + 10, 50.0) == 1);
    tlab__promises_reset();
}

int main(void) {
    keys();
    windows();
    show_rate_learns();
    out_of_order_promises();
    a_full_book_forgets_the_oldest();
    return tlab_test_finish();
}
