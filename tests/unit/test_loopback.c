/*
 * test_loopback.c - which addresses count as this machine's own (core/src/base/loopback.h): the
 * operator's routes answer only those while auth is off.
 */
#include "base/loopback.h"
#include "tlab_test.h"

int main(void) {
    CHECK(tlab__is_loopback("127.0.0.1"));
    CHECK(tlab__is_loopback("127.0.0.5"));
    CHECK(tlab__is_loopback("::1"));
    CHECK(tlab__is_loopback("::ffff:127.0.0.1"));
    CHECK(tlab__is_loopback("localhost"));
    CHECK(!tlab__is_loopback("0.0.0.0"));
    CHECK(!tlab__is_loopback("::"));
    CHECK(!tlab__is_loopback("10.0.0.7"));
    CHECK(!tlab__is_loopback("::ffff:10.0.0.7"));
    CHECK(!tlab__is_loopback("128.0.0.1"));
    CHECK(!tlab__is_loopback("fd00::1"));
    CHECK(!tlab__is_loopback(""));
    CHECK(!tlab__is_loopback(NULL));
    return tlab_test_finish();
}
