/*
 * discovery_srv.c - the pool from SRV records (discovery_srv.h).
 */
#define _DEFAULT_SOURCE

#include "discovery/discovery_srv.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/util.h>

#include "base/clock.h"
#include "common/log.h"
#include "dispatch/pool.h"

#define EDNS_UDP_SIZE 4096 /* 64 records with their addresses pass 512 bytes; EDNS0 asks for this much */

static struct {
    int fd;
    struct event *timer, *reply_ev;
    char *name;
    tlab__discovered_fn found;
    uint16_t id;
    int pending;
    long timeout_ms;
    int outage_logged;
    tlab__discovered list[TLAB_POOL_MAX];
} sv = {.fd = -1};

/* Appends an EDNS0 OPT record (RFC 6891) to a query of `len` bytes: its answer may then be larger
 * than 512 bytes. Returns the new length. */
static int add_edns(unsigned char *q, int len, size_t cap) {
    static const unsigned char opt[11] = {0, 0, 41, EDNS_UDP_SIZE >> 8, EDNS_UDP_SIZE & 0xff, 0, 0, 0, 0, 0, 0};
    if ((size_t)len + sizeof opt > cap)
        return len;
    memcpy(q + len, opt, sizeof opt);
    q[11] = 1; /* ARCOUNT = 1 */
    return len + (int)sizeof opt;
}

static void outage(const char *why) {
    if (!sv.outage_logged)
        tlab__log(TLAB_LOG_WARN, NULL, "discovery: SRV name %s did not resolve (%s): the pool stays as it is until it does",
                  sv.name, why);
    sv.outage_logged = 1;
}

static void add_worker(size_t *n, const char *host, int v6, unsigned port, int by_address) {
    if (*n == TLAB_POOL_MAX)
        return;
    tlab__discovered d;
    char p[8];
    snprintf(p, sizeof p, "%u", port);
    tlab__discovered_name_from(d.name, sizeof d.name, host, p);
    snprintf(d.url, sizeof d.url, v6 && by_address ? "http://[%s]:%u" : "http://%s:%u", host, port);
    for (size_t i = 0; i < *n; i++)
        if (strcmp(sv.list[i].url, d.url) == 0)
            return;
    sv.list[(*n)++] = d;
}

/* The answer's workers; -1 when it is not one (the pool is kept). */
static int parse(const unsigned char *msg, int len, const char **why) {
    ns_msg m;
    if (ns_initparse(msg, len, &m) < 0)
        return *why = "a garbled answer", -1;
    if (ns_msg_getflag(m, ns_f_tc))
        return *why = "the answer was truncated (more records than fit a UDP answer)", -1;
    int rcode = ns_msg_getflag(m, ns_f_rcode);
    if (rcode == ns_r_nxdomain)
        return 0; /* an answer: no such name, so no worker */
    if (rcode != ns_r_noerror)
        return *why = rcode == ns_r_refused ? "refused" : "server failure", -1;
    size_t n = 0;
    for (int i = 0; i < ns_msg_count(m, ns_s_an); i++) {
        ns_rr rr;
        char target[NS_MAXDNAME];
        if (ns_parserr(&m, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != ns_t_srv || ns_rr_rdlen(rr) < 7)
            continue;
        const unsigned char *rd = ns_rr_rdata(rr);
        unsigned port = (unsigned)(rd[4] << 8 | rd[5]);
        if (!port || dn_expand(ns_msg_base(m), ns_msg_end(m), rd + 6, target, sizeof target) < 0)
            continue;
        /* The target's addresses, when the server sent them along. */
        int any = 0;
        for (int j = 0; j < ns_msg_count(m, ns_s_ar); j++) {
            ns_rr ar;
            char ip[INET6_ADDRSTRLEN];
            if (ns_parserr(&m, ns_s_ar, j, &ar) < 0 || strcasecmp(ns_rr_name(ar), target) != 0)
                continue;
            if (ns_rr_type(ar) == ns_t_a && ns_rr_rdlen(ar) == 4 && inet_ntop(AF_INET, ns_rr_rdata(ar), ip, sizeof ip)) {
                add_worker(&n, ip, 0, port, 1);
                any = 1;
            } else if (ns_rr_type(ar) == ns_t_aaaa && ns_rr_rdlen(ar) == 16 && inet_ntop(AF_INET6, ns_rr_rdata(ar), ip, sizeof ip)) {
                add_worker(&n, ip, 1, port, 1);
                any = 1;
            }
        }
        if (!any && strcmp(target, ".") != 0 && target[0])
            add_worker(&n, target, 0, port, 0);
    }
    return (int)n;
}

static void on_reply(evutil_socket_t fd, short what, void *arg) {
    (void)arg;
    if (what & EV_TIMEOUT) {
        sv.pending = 0;
        event_del(sv.reply_ev);
        outage("no answer");
        return;
    }
    unsigned char buf[EDNS_UDP_SIZE];
    ssize_t got;
    while ((got = recv(fd, buf, sizeof buf, 0)) >= 0) {
        if (got < 12 || (uint16_t)(buf[0] << 8 | buf[1]) != sv.id || !sv.pending)
            continue; /* a late answer to an earlier query, or noise */
        sv.pending = 0;
        event_del(sv.reply_ev);
        const char *why = NULL;
        int n = parse(buf, (int)got, &why);
        if (n < 0) {
            outage(why);
            return;
        }
        if (sv.outage_logged)
            tlab__log(TLAB_LOG_INFO, NULL, "discovery: SRV name %s resolves again", sv.name);
        sv.outage_logged = 0;
        sv.found(sv.list, (size_t)n, "DNS SRV");
        return;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && sv.pending) {
        /* ICMP port unreachable comes back as ECONNREFUSED on a connected socket: no server there. */
        sv.pending = 0;
        event_del(sv.reply_ev);
        outage(strerror(errno));
    }
}

static void ask(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    if (sv.pending)
        return; /* the last query is still out (its timeout is shorter than the interval) */
    unsigned char q[NS_PACKETSZ + 16];
    int len = res_mkquery(ns_o_query, sv.name, ns_c_in, ns_t_srv, NULL, 0, NULL, q, NS_PACKETSZ);
    if (len < 12) {
        outage("the name cannot be put in a query");
        return;
    }
    len = add_edns(q, len, sizeof q);
    sv.id = (uint16_t)(sv.id * 31421u + 6927u + (uint16_t)tlab__now_us());
    q[0] = (unsigned char)(sv.id >> 8);
    q[1] = (unsigned char)(sv.id & 0xff);
    if (send(sv.fd, q, (size_t)len, 0) != len) {
        outage(strerror(errno));
        return;
    }
    sv.pending = 1;
    struct timeval tv = {sv.timeout_ms / 1000, (sv.timeout_ms % 1000) * 1000};
    event_add(sv.reply_ev, &tv);
}

/* "ip[:port]", "[v6]:port" or resolv.conf's first server into a socket address. */
static int server_address(const char *server, struct sockaddr_storage *ss, socklen_t *sl) {
    if (*server) {
        int len = (int)sizeof *ss;
        if (evutil_parse_sockaddr_port(server, (struct sockaddr *)ss, &len) != 0)
            return -1;
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        if (ss->ss_family == AF_INET && !in->sin_port)
            in->sin_port = htons(53);
        if (ss->ss_family == AF_INET6 && !in6->sin6_port)
            in6->sin6_port = htons(53);
        *sl = (socklen_t)len;
        return 0;
    }
    if (res_init() != 0 || _res.nscount < 1)
        return -1;
    memcpy(ss, &_res.nsaddr_list[0], sizeof _res.nsaddr_list[0]);
    *sl = sizeof _res.nsaddr_list[0];
    return 0;
}

int tlab__discovery_srv_start(struct event_base *base, const char *name, long interval_ms, const char *server,
                              tlab__discovered_fn found, char *err, size_t errlen) {
    tlab__discovery_srv_stop();
    sv.found = found;
    sv.timeout_ms = interval_ms / 2 > 2000 ? 2000 : interval_ms / 2;
    sv.id = (uint16_t)tlab__now_us();
    if (!(sv.name = strdup(name)))
        return snprintf(err, errlen, "out of memory"), -1;
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    memset(&ss, 0, sizeof ss);
    if (server_address(server, &ss, &sl) != 0)
        return snprintf(err, errlen, *server ? "discovery.dns_server: '%s' is not an IP address with an optional :port"
                                             : "discovery.dns: no nameserver in /etc/resolv.conf%s; set discovery.dns_server",
                        server),
               -1;
    sv.fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sv.fd < 0 || connect(sv.fd, (struct sockaddr *)&ss, sl) != 0)
        return snprintf(err, errlen, "discovery.dns: cannot open a socket to the nameserver: %s", strerror(errno)), -1;
    if (!(sv.reply_ev = event_new(base, sv.fd, EV_READ | EV_PERSIST, on_reply, NULL)) ||
        !(sv.timer = event_new(base, -1, EV_PERSIST, ask, NULL)))
        return snprintf(err, errlen, "out of memory"), -1;
    struct timeval tv = {interval_ms / 1000, (interval_ms % 1000) * 1000};
    event_add(sv.timer, &tv);
    ask(-1, 0, NULL);
    return 0;
}

void tlab__discovery_srv_stop(void) {
    if (sv.timer)
        event_free(sv.timer);
    if (sv.reply_ev)
        event_free(sv.reply_ev);
    if (sv.fd >= 0)
        close(sv.fd);
    free(sv.name);
    memset(&sv, 0, sizeof sv);
    sv.fd = -1;
}
