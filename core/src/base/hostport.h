/*
 * hostport.h - "host:port" addresses in the config (auth.redis): checked when the config loads,
 * so a typo is a file:line:col error at start, and split again where the address is used.
 */
#ifndef TLAB_HOSTPORT_H
#define TLAB_HOSTPORT_H

#include <stddef.h>

/* "host:port" or "host" (then `default_port`); host is a name, an IPv4 address or an IPv6 one in
 * brackets ("[::1]:6379"). Fills host (without brackets) and port; 0, or -1 with a message. */
int tlab__hostport_parse(const char *addr, int default_port, char *host, size_t hostlen, int *port, char *err, size_t errlen);

#endif
