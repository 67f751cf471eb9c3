/*
 * test_hostport.c - "host:port" addresses (core/src/base/hostport.h): auth.redis is checked with
 * this when the config loads.
 */
#include <string.h>

#include "base/hostport.h"
#include "tlab_test.h"

static int parse(const char *addr, char *host, int *port) {
    char err[200];
    return tlab__hostport_parse(addr, 6379, host, 256, port, err, sizeof err);
}

int main(void) {
    char host[256], err[200];
    int port = 0;
    CHECK(parse("127.0.0.1:7000", host, &port) == 0 && strcmp(host, "127.0.0.1") == 0 && port == 7000);
    CHECK(parse("redis", host, &port) == 0 && strcmp(host, "redis") == 0 && port == 6379);
    CHECK(parse("redis.tlab.svc.cluster.local:6380", host, &port) == 0 && strcmp(host, "redis.tlab.svc.cluster.local") == 0 &&
          port == 6380);
    CHECK(parse("[::1]:6390", host, &port) == 0 && strcmp(host, "::1") == 0 && port == 6390);
    CHECK(parse("[fd00::7]", host, &port) == 0 && strcmp(host, "fd00::7") == 0 && port == 6379);
    CHECK(parse("::1", host, &port) != 0);          /* IPv6 needs brackets */
    CHECK(parse("redis:", host, &port) != 0);
    CHECK(parse("6379", host, &port) != 0); /* a port without its host */
    CHECK(parse("redis:0", host, &port) != 0);
    CHECK(parse("redis:65536", host, &port) != 0);
    CHECK(parse("redis:63x", host, &port) != 0);
    CHECK(parse(":6379", host, &port) != 0);
    CHECK(parse("redis://h:1", host, &port) != 0);
    CHECK(parse("[::1", host, &port) != 0);
    CHECK(parse("[::1]x", host, &port) != 0);
    CHECK(parse("a b:1", host, &port) != 0);
    CHECK(tlab__hostport_parse("r:1:2", 6379, host, sizeof host, &port, err, sizeof err) == -1 &&
          strcmp(err, "'r:1:2' is not host:port (a name or an address, an IPv6 one in brackets; the port defaults to 6379)") == 0);
    char small[4];
    CHECK(tlab__hostport_parse("toolong:1", 6379, small, sizeof small, &port, err, sizeof err) == -1);
    return tlab_test_finish();
}
