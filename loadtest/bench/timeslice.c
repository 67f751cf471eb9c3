/*
 * timeslice.c - the run cut into time slices, from the records after the run (see report.h).
 */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* More slices than this is a mistake in --timeslice, not a run. */
#define MAX_SLICES 10000000

static size_t slice_of(double t, double w, size_t n) {
    if (t < 0)
        return 0;
    size_t i = (size_t)(t / w);
    return i < n ? i : n - 1;
}

int tlab_timeslices_compute(const tlab_run_result *run, const tlab_slo_set *slos, double width_s, tlab_timeslices *ts) {
    memset(ts, 0, sizeof *ts);
    ts->width_s = width_s;
    if (!(width_s > 0))
        return 0;
    double end = run->wall_s;
    for (size_t i = 0; i < run->reqs.n; i++) {
        const tlab_req *r = tlab_reqs_at(&run->reqs, i);
        end = fmax(end, fmax(r->sched, r->done));
    }
    double n = floor(end / width_s) + 1;
    if (n > MAX_SLICES)
        n = MAX_SLICES;
    ts->n = (size_t)n;
    ts->v = calloc(ts->n, sizeof *ts->v);
    /* The completed requests' e2e, grouped by end slice: counts, then offsets, then the values. */
    size_t *off = calloc(ts->n + 1, sizeof *off);
    double *e2e = NULL;
    if (!ts->v || !off)
        goto oom;
    size_t n_ok = 0;
    for (size_t i = 0; i < run->reqs.n; i++) {
        const tlab_req *r = tlab_reqs_at(&run->reqs, i);
        tlab_slice *s = &ts->v[slice_of(r->sched, width_s, ts->n)];
        s->offered++;
        s->admitted += r->admitted > 0;
        if (r->kind == TLAB_K_OK) {
            s->good += tlab_report_req_good(r, slos);
            ts->v[slice_of(r->done, width_s, ts->n)].completed++;
            n_ok++;
        } else if (r->kind == TLAB_K_HTTP && TLAB_STATUS_REJECTED(r->status)) {
            s->rejected++;
        } else {
            s->errors++;
        }
    }
    for (size_t k = 0; k < ts->n; k++)
        off[k + 1] = off[k] + ts->v[k].completed;
    if (n_ok && !(e2e = malloc(n_ok * sizeof *e2e)))
        goto oom;
    size_t *fill = off; /* advanced per slice as values go in, then rebuilt */
    for (size_t i = 0; i < run->reqs.n; i++) {
        const tlab_req *r = tlab_reqs_at(&run->reqs, i);
        if (r->kind == TLAB_K_OK)
            e2e[fill[slice_of(r->done, width_s, ts->n)]++] = r->done - r->sched;
    }
    for (size_t k = ts->n; k > 0; k--) /* fill[k-1] now holds off[k]: shift back */
        off[k] = off[k - 1];
    off[0] = 0;
    for (size_t k = 0; k < ts->n; k++) {
        tlab_slice *s = &ts->v[k];
        s->p95_e2e_s = -1;
        if (s->completed) {
            tlab_sort(e2e + off[k], s->completed);
            s->p95_e2e_s = tlab_quantile_sorted(e2e + off[k], s->completed, 0.95);
        }
    }
    free(off);
    free(e2e);
    return 0;
oom:
    free(off);
    free(e2e);
    tlab_timeslices_free(ts);
    return -1;
}

void tlab_timeslices_free(tlab_timeslices *ts) {
    free(ts->v);
    ts->v = NULL;
    ts->n = 0;
}
