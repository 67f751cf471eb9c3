/*
 * discovery_dns.h - the pool from a DNS name (discovery.dns): every address in its A and AAAA
 * records is a worker at discovery.port, resolved again every discovery.interval_ms on the loop
 * (libevent's evdns; /etc/resolv.conf's servers and search list, or discovery.dns_server). This
 * is what a Kubernetes headless Service gives: one record per ready pod.
 *
 * Only an answer changes the pool: records, or "no such name" / "no records" (an empty pool, as
 * a Service with no ready pod). A timeout or a server failure keeps the pool as it is, logged
 * once per outage: a DNS hiccup must not drain the workers.
 */
#ifndef TLAB_DISCOVERY_DNS_H
#define TLAB_DISCOVERY_DNS_H

#include <stddef.h>

#include <event2/event.h>

#include "discovery/discovered.h"

/* `server`: "host[:port]" to ask, or "" for /etc/resolv.conf's. Resolves at once, then every
 * interval_ms. -1 with err when the resolver cannot be set up. */
int tlab__discovery_dns_start(struct event_base *base, const char *name, long port, long interval_ms, const char *server,
                              tlab__discovered_fn found, char *err, size_t errlen);
void tlab__discovery_dns_stop(void);

#endif
