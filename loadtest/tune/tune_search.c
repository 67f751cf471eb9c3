/*
 * tune_search.c - bracket and bisect the sustainable rate (see tune_search.h).
 */
#include "tune_search.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const tune_search_cfg *cfg;
    tune_probe_fn probe;
    void *ctx;
    void (*on_probe)(void *, const tune_probe *, const char *);
    unsigned seq;
} searcher;

/* One verdict at `rate`: 1 pass, 0 fail, -1 could not probe. */
static int judge(searcher *s, double rate, const char *phase, tune_probe *kept) {
    const tune_search_cfg *c = s->cfg;
    tune_probe_plan plan = {.rate = rate,
                            .duration_s = tune_probe_duration(rate, c->min_requests, c->min_duration_s, c->max_duration_s),
                            .seed = c->seed + s->seq++,
                            .early_stop = c->early_stop};
    tune_probe p;
    if (s->probe(s->ctx, &plan, phase, &p) != 0) {
        if (s->on_probe)
            s->on_probe(s->ctx, &p, phase);
        return -1;
    }
    if (s->on_probe)
        s->on_probe(s->ctx, &p, phase);
    if (!p.certain && c->retry_uncertain && plan.duration_s < c->max_duration_s) {
        plan.duration_s = plan.duration_s * 2 < c->max_duration_s ? plan.duration_s * 2 : c->max_duration_s;
        plan.seed = c->seed + s->seq++;
        if (s->probe(s->ctx, &plan, "retry", &p) != 0) {
            if (s->on_probe)
                s->on_probe(s->ctx, &p, "retry");
            return -1;
        }
        if (s->on_probe)
            s->on_probe(s->ctx, &p, "retry");
    }
    if (p.pass && kept)
        *kept = p;
    return p.pass;
}

void tune_search(const tune_search_cfg *cfg, tune_probe_fn probe, void *ctx,
                 void (*on_probe)(void *ctx, const tune_probe *p, const char *phase), tune_search_result *res) {
    memset(res, 0, sizeof *res);
    searcher s = {cfg, probe, ctx, on_probe, 0};
    double lo = 0, hi = 0;
    double r = cfg->start_rate;
    if (cfg->hint_lo > 0)
        r = cfg->hint_lo < cfg->min_rate ? cfg->min_rate : cfg->hint_lo > cfg->max_rate ? cfg->max_rate : cfg->hint_lo;
    int used_hint_hi = cfg->hint_hi <= 0;
    /* Bracket. */
    for (;;) {
        int v = judge(&s, r, "bracket", &res->best_probe);
        if (v < 0) {
            res->aborted = 1;
            break;
        }
        if (v) {
            lo = r;
            if (hi > 0)
                break;
            if (r >= cfg->max_rate) {
                res->hit_max = 1;
                break;
            }
            double next = r * cfg->growth;
            if (!used_hint_hi) { /* the remembered failing rate is the likeliest upper bound */
                next = cfg->hint_hi > r ? cfg->hint_hi : next;
                used_hint_hi = 1;
            }
            r = next > cfg->max_rate ? cfg->max_rate : next;
        } else {
            hi = r;
            used_hint_hi = 1;
            if (lo > 0)
                break;
            if (r <= cfg->min_rate) {
                res->infeasible = 1;
                break;
            }
            double next = r / cfg->growth;
            r = next < cfg->min_rate ? cfg->min_rate : next;
        }
    }
    /* Bisect. */
    while (!res->aborted && lo > 0 && hi > 0 && (hi - lo) / lo > cfg->tolerance) {
        double mid = (lo + hi) / 2;
        int v = judge(&s, mid, "bisect", &res->best_probe);
        if (v < 0) {
            res->aborted = 1;
            break;
        }
        if (v)
            lo = mid;
        else
            hi = mid;
    }
    res->best_rate = lo;
    res->fail_rate = hi;
    /* best_probe must be the probe at lo: the last passing one is, since lo only rises. */
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double tune_median(double *v, size_t n) {
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
