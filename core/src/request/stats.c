/*
 * stats.c - rolling per-second counters and recent-latency rings behind tlab__stats_get().
 * See stats.h for the definitions of each figure.
 */
#include "request/stats.h"

#include <string.h>

#include "base/clock.h"

typedef struct bucket {
    uint64_t sec; /* which second this bucket holds (monotonic seconds); stale when older than the window */
    uint32_t arrived, finished, errors, rejects, drained, good;
} bucket;

typedef struct sample {
    uint64_t t_us;
    double ms;
} sample;

typedef struct ring {
    sample s[TLAB_STATS_SAMPLES];
    size_t next, n;
} ring;

static struct {
    int window_s;
    uint64_t started_us;
    bucket b[TLAB_STATS_MAX_WINDOW_S];
    ring e2e, ttft, qwait;
    tlab__stats_view view;
    uint64_t view_at_us; /* 0: stale */
} st = {.window_s = 10};

void tlab__stats_init(int window_s) {
    memset(&st, 0, sizeof st);
    st.window_s = window_s < 1 ? 1 : window_s > TLAB_STATS_MAX_WINDOW_S ? TLAB_STATS_MAX_WINDOW_S : window_s;
    st.started_us = tlab__now_us();
}

int tlab__stats_window_s(void) {
    return st.window_s;
}

void tlab__stats_invalidate(void) {
    st.view_at_us = 0;
}

static bucket *bucket_at(uint64_t now_us) {
    uint64_t sec = now_us / 1000000u;
    bucket *b = &st.b[sec % TLAB_STATS_MAX_WINDOW_S];
    if (b->sec != sec) {
        memset(b, 0, sizeof *b);
        b->sec = sec;
    }
    return b;
}

static void ring_add(ring *r, uint64_t t_us, uint64_t us) {
    r->s[r->next] = (sample){t_us, (double)us / 1000.0};
    r->next = (r->next + 1) % TLAB_STATS_SAMPLES;
    if (r->n < TLAB_STATS_SAMPLES)
        r->n++;
}

void tlab__stats_arrival(uint64_t now_us) {
    bucket_at(now_us)->arrived++;
}

void tlab__stats_done(uint64_t now_us, int status, int dispatched, uint64_t e2e_us, uint64_t ttft_us, uint64_t queue_wait_us) {
    bucket *b = bucket_at(now_us);
    if (dispatched)
        b->drained++;
    if (status == 499)
        return; /* the client left: says nothing about the gateway or the worker */
    b->finished++;
    if (status >= 500)
        b->errors++;
    if (status == 429)
        b->rejects++;
    if (dispatched && status >= 200 && status < 300) {
        ring_add(&st.e2e, now_us, e2e_us);
        if (ttft_us)
            ring_add(&st.ttft, now_us, ttft_us);
    }
    if (dispatched)
        ring_add(&st.qwait, now_us, queue_wait_us);
}

void tlab__stats_good(uint64_t now_us) {
    bucket_at(now_us)->good++;
}

void tlab__stats_on_event(const tlab_request *r, tlab_event ev) {
    if (ev == TLAB_EV_ARRIVED) {
        tlab__stats_arrival(r->t[ev]);
    } else if (ev == TLAB_EV_DONE) {
        uint64_t arrived = r->t[TLAB_EV_ARRIVED];
        uint64_t first = r->t[TLAB_EV_FIRST_BYTE];
        int dispatched = r->t[TLAB_EV_DISPATCHED] != 0;
        tlab__stats_done(r->t[ev], r->status, dispatched, r->t[ev] - arrived, first > arrived ? first - arrived : 0,
                        dispatched ? r->queue_wait_us : 0);
        if (dispatched && r->status >= 200 && r->status < 300 && (!r->deadline_us || r->t[ev] <= r->deadline_us))
            tlab__stats_good(r->t[ev]);
    }
}

/*
 * Quickselect: reorders v[lo..hi] so that v[k] holds the value a sort would put there, with
 * nothing greater before it and nothing smaller after it. Expected O(n), where a qsort of the
 * whole ring (2048 samples, three rings, a comparison call each) was most of a policy tick.
 */
static void select_kth(double *v, long lo, long hi, long k) {
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        /* median of three at v[mid]: sorted or reversed input then splits evenly */
        double t;
        if (v[mid] < v[lo])
            t = v[mid], v[mid] = v[lo], v[lo] = t;
        if (v[hi] < v[lo])
            t = v[hi], v[hi] = v[lo], v[lo] = t;
        if (v[hi] < v[mid])
            t = v[hi], v[hi] = v[mid], v[mid] = t;
        double pivot = v[mid];
        long i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                t = v[i], v[i] = v[j], v[j] = t;
                i++;
                j--;
            }
        }
        /* v[lo..j] <= pivot, v[i..hi] >= pivot, and anything between equals the pivot */
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

/* Nearest-rank p50/p95/p99 of the ring's samples newer than `since_us`; zeros when none. */
static void quantiles(const ring *r, uint64_t since_us, double out[3]) {
    static double v[TLAB_STATS_SAMPLES];
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->s[i].t_us >= since_us)
            v[n++] = r->s[i].ms;
    out[0] = out[1] = out[2] = 0;
    if (n == 0)
        return;
    static const double q[3] = {0.50, 0.95, 0.99};
    long from = 0; /* the ranks grow: each selection only needs the part above the previous one */
    for (int k = 0; k < 3; k++) {
        size_t rank = (size_t)(q[k] * (double)n + 0.999999);
        long at = (long)(rank ? rank : 1) - 1;
        select_kth(v, from, (long)n - 1, at);
        out[k] = v[at];
        from = at;
    }
}

const tlab__stats_view *tlab__stats_get(void) {
    uint64_t now = tlab__now_us();
    if (st.view_at_us && now - st.view_at_us < TLAB_STATS_CACHE_US)
        return &st.view;
    uint64_t now_sec = now / 1000000u, w = (uint64_t)st.window_s;
    uint64_t arrived = 0, finished = 0, errors = 0, rejects = 0, drained = 0, good = 0;
    for (size_t i = 0; i < TLAB_STATS_MAX_WINDOW_S; i++) {
        const bucket *b = &st.b[i];
        if (b->sec + w > now_sec && b->sec <= now_sec) {
            arrived += b->arrived;
            finished += b->finished;
            errors += b->errors;
            rejects += b->rejects;
            drained += b->drained;
            good += b->good;
        }
    }
    /* Right after start-up the window is not full yet: divide by the time actually covered. */
    double span = (double)w, up = (double)(now - st.started_us) / 1e6;
    if (st.started_us && up < span)
        span = up < 1.0 ? 1.0 : up;
    tlab__stats_view *v = &st.view;
    v->rps = (double)arrived / span;
    v->drain_rate = (double)drained / span;
    v->error_rate = finished ? (double)errors / (double)finished : 0;
    v->reject_rate = finished ? (double)rejects / (double)finished : 0;
    v->completed = finished;
    v->goodput = (double)good / span;
    v->slo_attainment = finished ? (double)good / (double)finished : 1.0;
    uint64_t since = now > w * 1000000u ? now - w * 1000000u : 0;
    quantiles(&st.e2e, since, v->e2e_ms);
    quantiles(&st.ttft, since, v->ttft_ms);
    quantiles(&st.qwait, since, v->queue_wait_ms);
    st.view_at_us = now;
    return v;
}
