/*
 * upstream_wire.h - what upstream_http.c sends and where: a URL's endpoint (address and Host
 * header) and a request's bytes (internal to upstream*.c).
 */
#ifndef TLAB_UPSTREAM_WIRE_H
#define TLAB_UPSTREAM_WIRE_H

#include <stddef.h>
#include <sys/socket.h>

#include "upstream/upstream_backend.h"

typedef struct tlab__wire_endpoint {
    char hostport[280]; /* the Host header's value, as the URL spells it */
    struct sockaddr_storage addr;
    socklen_t addrlen;
} tlab__wire_endpoint;

/* Parses "http://host[:port]" at the start of url. host is an IPv4 or [IPv6] address, or
 * "localhost" (127.0.0.1). Returns where the path begins, or NULL when the own client cannot
 * carry the URL (https, a host name to resolve, user info, a bad port). */
const char *tlab__wire_parse_url(const char *url, tlab__wire_endpoint *out);
/* The request line, Host, rq's headers, Content-Length (not for GET or HEAD) and the body, in one
 * malloc'd buffer of *len bytes; NULL when out of memory. */
char *tlab__wire_build_request(const tlab__xfer_request *rq, const char *path, const char *hostport, size_t *len);

#endif
