/*
 * loopback.h - whether an address is this machine's own: the gateway trusts loopback clients
 * with the operator's routes when auth is off (docs/security.md), and warns when it listens
 * anywhere else without auth.
 */
#ifndef TLAB_LOOPBACK_H
#define TLAB_LOOPBACK_H

#include <string.h>

/* A numeric address ("127.0.0.1", "::1", "::ffff:127.0.0.1") or "localhost": 1 when loopback. */
static inline int tlab__is_loopback(const char *addr) {
    if (!addr)
        return 0;
    if (strncmp(addr, "::ffff:", 7) == 0 || strncmp(addr, "::FFFF:", 7) == 0)
        addr += 7; /* an IPv4 client on an IPv6 socket */
    return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 || strcmp(addr, "localhost") == 0;
}

#endif
