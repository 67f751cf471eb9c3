/*
 * discovery_dns.c - the pool from a DNS name's A and AAAA records (discovery_dns.h).
 */
#include "discovery/discovery_dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>

#include "common/log.h"
#include "dispatch/pool.h"

static struct {
    struct evdns_base *dns;
    struct event *timer;
    char *name;
    long port;
    tlab__discovered_fn found;
    int answered[2];                  /* 1: records or an authoritative "none"; 0: no answer (timeout, failure) */
    int left;                         /* queries of this round still out */
    char why[160];                    /* the latest failure, for the log */
    int outage_logged;
    tlab__discovered list[TLAB_POOL_MAX];
    size_t n;
} dn;

static void add_address(const char *ip, int v6) {
    if (dn.n == TLAB_POOL_MAX)
        return;
    tlab__discovered d;
    char port[16];
    snprintf(port, sizeof port, "%ld", dn.port);
    tlab__discovered_name_from(d.name, sizeof d.name, ip, port);
    snprintf(d.url, sizeof d.url, v6 ? "http://[%s]:%ld" : "http://%s:%ld", ip, dn.port);
    for (size_t i = 0; i < dn.n; i++)
        if (strcmp(dn.list[i].url, d.url) == 0)
            return; /* a resolver may repeat a record */
    dn.list[dn.n++] = d;
}

static void round_done(void) {
    if (!dn.answered[0] || !dn.answered[1]) {
        /* Without both answers a worker missing from the list may only be unanswered: keep the pool. */
        if (!dn.outage_logged)
            tlab__log(TLAB_LOG_WARN, NULL, "discovery: DNS name %s did not resolve (%s): the pool stays as it is until it does",
                      dn.name, dn.why);
        dn.outage_logged = 1;
        return;
    }
    if (dn.outage_logged)
        tlab__log(TLAB_LOG_INFO, NULL, "discovery: DNS name %s resolves again", dn.name);
    dn.outage_logged = 0;
    dn.found(dn.list, dn.n, "DNS");
}

static void on_answer(int result, char type, int count, int ttl, void *addresses, void *arg) {
    (void)ttl;
    int which = arg == &dn.answered[1];
    if (result == DNS_ERR_SHUTDOWN || result == DNS_ERR_CANCEL)
        return; /* the gateway is stopping: dn may be gone */
    if (result == DNS_ERR_NONE) {
        dn.answered[which] = 1;
        for (int i = 0; i < count; i++) {
            char ip[INET6_ADDRSTRLEN];
            if (type == DNS_IPv4_A && inet_ntop(AF_INET, (const uint32_t *)addresses + i, ip, sizeof ip))
                add_address(ip, 0);
            else if (type == DNS_IPv6_AAAA && inet_ntop(AF_INET6, (const struct in6_addr *)addresses + i, ip, sizeof ip))
                add_address(ip, 1);
        }
    } else if (result == DNS_ERR_NOTEXIST || result == DNS_ERR_NODATA) {
        dn.answered[which] = 1; /* an answer: no such records */
    } else {
        snprintf(dn.why, sizeof dn.why, "%s", evdns_err_to_string(result));
    }
    if (--dn.left == 0)
        round_done();
}

static void resolve(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    if (dn.left)
        return; /* the last round is still out (its timeout is shorter than the interval) */
    dn.n = 0;
    dn.answered[0] = dn.answered[1] = 0;
    dn.left = 2;
    snprintf(dn.why, sizeof dn.why, "no answer");
    if (!evdns_base_resolve_ipv4(dn.dns, dn.name, 0, on_answer, &dn.answered[0]))
        dn.left--;
    if (!evdns_base_resolve_ipv6(dn.dns, dn.name, 0, on_answer, &dn.answered[1]))
        dn.left--;
    if (dn.left == 0)
        round_done();
}

/* evdns's own messages ("nameserver has failed") go to the gateway's log at debug: the outage
 * itself is logged once by round_done(), in words an operator can act on. */
static void evdns_log(int is_warning, const char *msg) {
    tlab__log(TLAB_LOG_DEBUG, NULL, "evdns%s: %s", is_warning ? " warning" : "", msg);
}

int tlab__discovery_dns_start(struct event_base *base, const char *name, long port, long interval_ms, const char *server,
                              tlab__discovered_fn found, char *err, size_t errlen) {
    tlab__discovery_dns_stop();
    dn.found = found;
    dn.port = port;
    if (!(dn.name = strdup(name)))
        return snprintf(err, errlen, "out of memory"), -1;
    evdns_set_log_fn(evdns_log);
    dn.dns = evdns_base_new(base, *server ? 0 : EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!dn.dns)
        return snprintf(err, errlen, "discovery.dns: cannot set up the resolver (/etc/resolv.conf)"), -1;
    if (*server && evdns_base_nameserver_ip_add(dn.dns, server) != 0)
        return snprintf(err, errlen, "discovery.dns_server: '%s' is not an IP address with an optional :port", server), -1;
    /* Each try waits at most a fifth of the interval (1 s at most), so a round ends before the next. */
    char timeout[32];
    double t = (double)interval_ms / 5000.0;
    snprintf(timeout, sizeof timeout, "%.3f", t > 1 ? 1.0 : t);
    evdns_base_set_option(dn.dns, "timeout:", timeout);
    evdns_base_set_option(dn.dns, "attempts:", "2");
    if (!(dn.timer = event_new(base, -1, EV_PERSIST, resolve, NULL)))
        return snprintf(err, errlen, "out of memory"), -1;
    struct timeval tv = {interval_ms / 1000, (interval_ms % 1000) * 1000};
    event_add(dn.timer, &tv);
    resolve(-1, 0, NULL);
    return 0;
}

void tlab__discovery_dns_stop(void) {
    if (dn.timer)
        event_free(dn.timer);
    if (dn.dns)
        evdns_base_free(dn.dns, 0); /* 0: pending requests end without their callbacks */
    free(dn.name);
    memset(&dn, 0, sizeof dn);
}
