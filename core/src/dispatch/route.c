/*
 * route.c - filter, score, pick (route.h).
 */
#include "dispatch/route.h"

#include <stdlib.h>
#include <string.h>

#include "dispatch/gate.h"

#define NEAR_EQUAL 1.10 /* scores within 10 % of the best are a tie: P2C picks among them */

static struct {
    char *affinity_header; /* NULL: off */
    uint64_t rng;
} rt;

int tlab__route_init(const tlab__config *cfg) {
    memset(&rt, 0, sizeof rt);
    rt.rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&rt;
    if (cfg->pool_affinity_header[0] && !(rt.affinity_header = strdup(cfg->pool_affinity_header)))
        return -1;
    return 0;
}

void tlab__route_shutdown(void) {
    free(rt.affinity_header);
    rt.affinity_header = NULL;
}

static uint64_t next_random(void) {
    /* xorshift64*: routing needs spread, not secrecy */
    rt.rng ^= rt.rng >> 12;
    rt.rng ^= rt.rng << 25;
    rt.rng ^= rt.rng >> 27;
    return rt.rng * 0x2545f4914f6cdd1dull;
}

double tlab__route_tokens(const tlab_request *r) {
    double out = r->info.max_tokens > 0 ? (double)r->info.max_tokens : 0;
    if (out <= 0) {
        const tlab__autopilot_view *v = tlab__gate_view();
        out = v && v->typical_tokens > 0 ? v->typical_tokens : 256;
    }
    return (double)tlab__request_info_prompt_tokens(&r->info) + out;
}

static int past_gates; /* tlab__route_pick_now: the filter leaves the gates' limits out */

/* The filter. */
static int eligible(const tlab__pool_worker *w, uint64_t exclude, uint64_t now) {
    return !(exclude >> w->id & 1) && tlab__pool_worker_routable(w, now) && (past_gates || tlab__gate_worker_open(w));
}

/* The score: lower is better. */
static double score(const tlab__pool_worker *w, double tokens) {
    double limit = w->ap ? (double)tlab__autopilot_limit(w->ap) : 1;
    return (w->in_flight_tokens + tokens) / (limit > 0 ? limit : 1);
}

/* FNV-1a of the value and the worker's name: the highest weight wins (rendezvous hashing). */
static uint64_t weight(const char *value, const char *name) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = value; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static tlab__pool_worker *affinity_target(const tlab_request *r) {
    const char *value = rt.affinity_header && r->http ? tlab__http_req_header(r->http, rt.affinity_header) : NULL;
    if (!value || !*value)
        return NULL;
    tlab__pool_worker *best = NULL;
    uint64_t best_w = 0;
    for (size_t i = 0; i < tlab__pool_size(); i++) {
        tlab__pool_worker *w = tlab__pool_worker_at(i);
        if (!w->member)
            continue;
        uint64_t wt = weight(value, w->name);
        if (!best || wt > best_w) {
            best = w;
            best_w = wt;
        }
    }
    return best;
}

tlab__pool_worker *tlab__route_pick(const tlab_request *r, uint64_t exclude, uint64_t now) {
    size_t n = tlab__pool_size();
    if (tlab__pool_single()) {
        tlab__pool_worker *w = tlab__pool_worker_at(0);
        return tlab__gate_worker_open(w) ? w : NULL; /* the single-worker path: its gate alone */
    }
    double tokens = tlab__route_tokens(r);
    tlab__pool_worker *sticky = affinity_target(r);
    /* The session's worker while it passes the filter: its prefix cache is worth more than
     * perfect balance. When it is full the request goes elsewhere rather than waiting. */
    if (sticky && eligible(sticky, exclude, now))
        return sticky;
    double best = -1;
    for (size_t i = 0; i < n; i++) {
        const tlab__pool_worker *w = tlab__pool_worker_at(i);
        if (!eligible(w, exclude, now))
            continue;
        double s = score(w, tokens);
        if (best < 0 || s < best)
            best = s;
    }
    if (best < 0)
        return NULL;
    /* Power of two choices among the near-equal: two random ones, the lower score wins. */
    tlab__pool_worker *near[64];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 64; i++) {
        tlab__pool_worker *w = tlab__pool_worker_at(i);
        if (eligible(w, exclude, now) && score(w, tokens) <= best * NEAR_EQUAL + 1e-9)
            near[k++] = w;
    }
    if (k == 1)
        return near[0];
    tlab__pool_worker *a = near[next_random() % k], *b = near[next_random() % k];
    double sa = score(a, tokens), sb = score(b, tokens);
    return sa < sb || (sa == sb && a->in_flight <= b->in_flight) ? a : b;
}

tlab__pool_worker *tlab__route_pick_now(const tlab_request *r, uint64_t exclude, uint64_t now) {
    if (tlab__pool_single())
        return NULL;
    past_gates = 1;
    tlab__pool_worker *w = tlab__route_pick(r, exclude, now);
    past_gates = 0;
    return w;
}

void tlab__route_commit(tlab__pool_worker *w, uint64_t now) {
    tlab__breaker_allows(&w->breaker, now);
}
