/*
 * hostport.c - "host:port" addresses (hostport.h).
 */
#include "base/hostport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tlab__hostport_parse(const char *addr, int default_port, char *host, size_t hostlen, int *port, char *err, size_t errlen) {
    const char *h = addr, *end, *colon;
    if (*addr == '[') {
        h = addr + 1;
        end = strchr(h, ']');
        colon = end && end[1] == ':' ? end + 1 : NULL;
        if (!end || (end[1] && !colon))
            goto bad;
    } else {
        colon = strrchr(addr, ':');
        end = colon ? colon : addr + strlen(addr);
        if (colon && memchr(addr, ':', (size_t)(colon - addr)))
            goto bad; /* an IPv6 address without brackets */
    }
    if (end == h || (size_t)(end - h) >= hostlen)
        goto bad;
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = '\0';
    for (const char *c = host; *c; c++)
        if (!(*c == '.' || *c == '-' || *c == '_' || *c == ':' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
              (*c >= 'A' && *c <= 'Z')))
            goto bad;
    if (strspn(host, "0123456789") == strlen(host))
        goto bad; /* a port alone, no host */
    *port = default_port;
    if (colon) {
        char *e;
        errno = 0;
        long p = strtol(colon + 1, &e, 10);
        if (!colon[1] || *e || errno || p < 1 || p > 65535)
            goto bad;
        *port = (int)p;
    }
    return 0;
bad:
    snprintf(err, errlen, "'%s' is not host:port (a name or an address, an IPv6 one in brackets; the port defaults to %d)", addr,
             default_port);
    return -1;
}

