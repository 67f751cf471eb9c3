/*
 * upstream_wire.c - the bytes and addresses of upstream_http.c's transfers (upstream_wire.h).
 */
#include "upstream/upstream_wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *tlab__wire_parse_url(const char *url, tlab__wire_endpoint *o) {
    if (strncmp(url, "http://", 7) != 0)
        return NULL;
    const char *host = url + 7, *end = host + strcspn(host, "/?#");
    const char *port_at = NULL, *host_end;
    char name[64];
    memset(o, 0, sizeof *o);
    if (memchr(host, '@', (size_t)(end - host)))
        return NULL;
    if (*host == '[') {
        const char *close_br = memchr(host, ']', (size_t)(end - host));
        if (!close_br)
            return NULL;
        host_end = close_br + 1;
        port_at = host_end < end && *host_end == ':' ? host_end + 1 : NULL;
        size_t n = (size_t)(close_br - host - 1);
        if (n >= sizeof name)
            return NULL;
        memcpy(name, host + 1, n);
        name[n] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&o->addr;
        if (inet_pton(AF_INET6, name, &a->sin6_addr) != 1)
            return NULL;
        a->sin6_family = AF_INET6;
        o->addrlen = sizeof *a;
    } else {
        const char *colon = memchr(host, ':', (size_t)(end - host));
        host_end = colon ? colon : end;
        port_at = colon ? colon + 1 : NULL;
        size_t n = (size_t)(host_end - host);
        if (n == 0 || n >= sizeof name)
            return NULL;
        memcpy(name, host, n);
        name[n] = '\0';
        struct sockaddr_in *a = (struct sockaddr_in *)&o->addr;
        if (strcasecmp(name, "localhost") == 0)
            strcpy(name, "127.0.0.1");
        if (inet_pton(AF_INET, name, &a->sin_addr) != 1)
            return NULL;
        a->sin_family = AF_INET;
        o->addrlen = sizeof *a;
    }
    long port = 80;
    if (port_at && port_at < end) {
        char *stop;
        port = strtol(port_at, &stop, 10);
        if (stop != end || port < 1 || port > 65535)
            return NULL;
    }
    if (o->addr.ss_family == AF_INET)
        ((struct sockaddr_in *)&o->addr)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&o->addr)->sin6_port = htons((uint16_t)port);
    if ((size_t)(end - host) >= sizeof o->hostport)
        return NULL;
    memcpy(o->hostport, host, (size_t)(end - host));
    o->hostport[end - host] = '\0';
    return end;
}

static char *append(char *p, const char *s, size_t n) {
    memcpy(p, s, n);
    return p + n;
}

char *tlab__wire_build_request(const tlab__xfer_request *rq, const char *path, const char *hostport, size_t *len) {
    int has_body = strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0;
    size_t plen = strlen(path), mlen = strlen(rq->method), hlen = strlen(hostport);
    size_t need = mlen + 1 + (plen ? plen : 1) + 11 + 8 + hlen + 2 + 40 + 2 + (has_body ? rq->body_len : 0);
    for (size_t i = 0; rq->headers && rq->headers[i]; i++)
        need += strlen(rq->headers[i]) + 2;
    char *buf = malloc(need), *p = buf;
    if (!buf)
        return NULL;
    p = append(p, rq->method, mlen);
    *p++ = ' ';
    p = plen ? append(p, path, plen) : append(p, "/", 1);
    p = append(p, " HTTP/1.1\r\nHost: ", 17);
    p = append(p, hostport, hlen);
    p = append(p, "\r\n", 2);
    for (size_t i = 0; rq->headers && rq->headers[i]; i++) {
        p = append(p, rq->headers[i], strlen(rq->headers[i]));
        p = append(p, "\r\n", 2);
    }
    if (has_body)
        p += sprintf(p, "Content-Length: %zu\r\n", rq->body_len);
    p = append(p, "\r\n", 2);
    if (has_body && rq->body_len)
        p = append(p, rq->body, rq->body_len);
    *len = (size_t)(p - buf);
    return buf;
}
