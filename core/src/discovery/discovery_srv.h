/*
 * discovery_srv.h - the pool from a DNS SRV name (discovery.dns starting with '_', such as
 * _http._tcp.vllm.llm.svc.cluster.local): each SRV record is a worker at its own port, which is
 * what SRV adds over A records (a Kubernetes headless Service publishes one per named port and
 * ready pod). evdns reads no SRV records, so this file sends the query itself over UDP on the loop,
 * with glibc's resolver library (res_mkquery, ns_initparse, dn_expand) for the message format.
 *
 * A record's target is turned into addresses from the answer's additional section (CoreDNS and
 * dnsmasq put them there); a target without one is used by name (libcurl resolves it). Priority
 * and weight are not used: the router balances by load. As with A records, only an answer changes
 * the pool; a timeout, a failing server or a truncated answer keeps it, logged once per outage.
 */
#ifndef TLAB_DISCOVERY_SRV_H
#define TLAB_DISCOVERY_SRV_H

#include <stddef.h>

#include <event2/event.h>

#include "discovery/discovered.h"

/* `server`: "ip[:port]", or "" for /etc/resolv.conf's first nameserver. Asks at once, then every
 * interval_ms. -1 with err when no server can be found or the socket cannot be opened. */
int tlab__discovery_srv_start(struct event_base *base, const char *name, long interval_ms, const char *server,
                              tlab__discovered_fn found, char *err, size_t errlen);
void tlab__discovery_srv_stop(void);

#endif
