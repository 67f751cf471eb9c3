/*
 * report.c - computes the summary, goodput, generator lag and SLO verdict from the records.
 */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double req_metric(const tlab_req *r, tlab_metric m, int *has) {
    *has = 1;
    switch (m) {
    case TLAB_M_TTFT:
        *has = r->first >= 0;
        return r->first - r->sched;
    case TLAB_M_E2E:
        return r->done - r->sched;
    case TLAB_M_TPOT: {
        long out = tlab_req_output_tokens(r);
        *has = r->chunks > 1 && out > 1 && r->first >= 0;
        return *has ? (r->done - r->first) / (double)(out - 1) : 0;
    }
    default:
        *has = 0;
        return 0;
    }
}

static int meets_latency_slos(const tlab_req *r, const tlab_slo_set *slos) {
    for (int i = 0; i < slos->n; i++) {
        const tlab_slo *s = &slos->items[i];
        if (s->metric == TLAB_M_ERROR_RATE || s->metric == TLAB_M_ITL)
            continue;
        int has;
        double v = req_metric(r, s->metric, &has);
        if (has && v > s->limit)
            return 0;
    }
    return 1;
}

int tlab_report_req_good(const tlab_req *r, const tlab_slo_set *slos) {
    return r->kind == TLAB_K_OK && meets_latency_slos(r, slos);
}

static void count_http(tlab_report *rep, int status) {
    for (int i = 0; i < rep->n_http; i++)
        if (rep->http[i].status == status) {
            rep->http[i].n++;
            return;
        }
    if (rep->n_http < TLAB_HTTP_STATUS_MAX) {
        rep->http[rep->n_http].status = status;
        rep->http[rep->n_http].n = 1;
        rep->n_http++;
    }
}

/* Late or dropped requests less than this apart belong to one "behind" stretch. */
#define BEHIND_GAP_S 1.0

static void note_behind(tlab_report *rep, const tlab_req *r, double lag, int dropped) {
    tlab_behind *b = rep->n_behind ? &rep->behind[rep->n_behind - 1] : NULL;
    if (!b || r->sched - b->to_s > BEHIND_GAP_S) {
        rep->n_behind_total++;
        if (rep->n_behind == TLAB_BEHIND_MAX)
            return; /* keep the first stretches; the total says how many more there were */
        b = &rep->behind[rep->n_behind++];
        *b = (tlab_behind){.from_s = r->sched, .to_s = r->sched};
    } else if (rep->n_behind_total > (size_t)rep->n_behind) {
        return;
    }
    b->to_s = r->sched;
    if (dropped)
        b->dropped++;
    else
        b->late++;
    if (lag > b->max_lag_s)
        b->max_lag_s = lag;
}

static double aggregate(const tlab_slo *s, const tlab_report *rep, tlab_samples *sorted[4]) {
    if (s->metric == TLAB_M_ERROR_RATE)
        return rep->error_rate;
    tlab_samples *v = sorted[s->metric];
    if (s->agg == TLAB_AGG_MEAN || s->agg == TLAB_AGG_REQUEST) {
        const tlab_summary *sum = s->metric == TLAB_M_TTFT ? &rep->ttft
                                  : s->metric == TLAB_M_TPOT ? &rep->tpot
                                  : s->metric == TLAB_M_ITL  ? &rep->itl
                                                             : &rep->e2e;
        return s->agg == TLAB_AGG_MEAN ? sum->mean : sum->max;
    }
    return tlab_quantile_sorted(v->v, v->n, s->q);
}

int tlab_report_compute(const tlab_run_result *run, const tlab_slo_set *slos, long declared_input, tlab_report *rep) {
    memset(rep, 0, sizeof *rep);
    tlab_samples ttft = {0}, tpot = {0}, itl = {0}, e2e = {0}, lag = {0};
    int oom = 0;
    rep->window_s = run->window_end - run->window_start;
    for (size_t i = 0; i < run->reqs.n; i++) {
        const tlab_req *r = tlab_reqs_at(&run->reqs, i);
        /* Generator lag, whole run. */
        if (r->kind == TLAB_K_DROPPED) {
            rep->dropped_all++;
            note_behind(rep, r, 0, 1);
        } else if (r->sent >= 0) {
            double l = r->sent - r->sched;
            rep->sent_all++;
            oom |= tlab_samples_push(&lag, l);
            if (l > TLAB_LAG_THRESHOLD_S) {
                rep->late_all++;
                note_behind(rep, r, l, 0);
            }
        }
        if (!r->in_window)
            continue;
        rep->num_prompts++;
        rep->by_kind[r->kind]++;
        if (r->retries) {
            rep->retried++;
            rep->admitted_first_retry += r->admitted == 2;
            rep->admitted_later_retry += r->admitted > 2;
            rep->never_admitted += r->admitted == 0;
        }
        if (r->kind == TLAB_K_HTTP)
            count_http(rep, r->status);
        if (r->kind != TLAB_K_OK) {
            rep->failed++;
            continue;
        }
        rep->completed++;
        long out = tlab_req_output_tokens(r);
        rep->total_output += out;
        rep->total_input += r->usage_in >= 0 ? r->usage_in : declared_input;
        int has;
        double v = req_metric(r, TLAB_M_TTFT, &has);
        if (has)
            oom |= tlab_samples_push(&ttft, v);
        v = req_metric(r, TLAB_M_TPOT, &has);
        if (has)
            oom |= tlab_samples_push(&tpot, v);
        oom |= tlab_samples_push(&e2e, r->done - r->sched);
        for (uint32_t k = 0; k < r->n_itl; k++)
            oom |= tlab_samples_push(&itl, r->itl[k]);
        if (meets_latency_slos(r, slos))
            rep->good++;
    }
    if (rep->window_s > 0) {
        rep->request_throughput = (double)rep->completed / rep->window_s;
        rep->output_throughput = (double)rep->total_output / rep->window_s;
        rep->total_token_throughput = (double)(rep->total_output + rep->total_input) / rep->window_s;
        rep->request_goodput = (double)rep->good / rep->window_s;
    }
    rep->error_rate = rep->num_prompts ? (double)rep->failed / (double)rep->num_prompts : 0;
    rep->ttft = tlab_summarize(ttft.v, ttft.n);
    rep->tpot = tlab_summarize(tpot.v, tpot.n);
    rep->itl = tlab_summarize(itl.v, itl.n);
    rep->e2e = tlab_summarize(e2e.v, e2e.n);
    rep->lag = tlab_summarize(lag.v, lag.n);

    /* The verdict: every aggregate objective, plus error_rate. With nothing measured it fails. */
    tlab_samples *sorted[4] = {&ttft, &tpot, &itl, &e2e};
    rep->slo_pass = 1;
    for (int i = 0; i < slos->n; i++) {
        const tlab_slo *s = &slos->items[i];
        tlab_slo_result *res = &rep->slo[rep->n_slo++];
        res->slo = s;
        res->actual = aggregate(s, rep, sorted);
        res->pass = res->actual <= s->limit;
        if (s->agg != TLAB_AGG_REQUEST || s->metric == TLAB_M_ERROR_RATE) {
            rep->n_aggregate++;
            if (!res->pass)
                rep->slo_pass = 0;
        }
    }
    if (rep->n_aggregate && rep->completed == 0)
        rep->slo_pass = 0;
    if (run->early_stop) /* the cut window's figures may look fine; the stop itself proved FAIL */
        rep->slo_pass = 0;
    tlab_samples_free(&ttft);
    tlab_samples_free(&tpot);
    tlab_samples_free(&itl);
    tlab_samples_free(&e2e);
    tlab_samples_free(&lag);
    return oom ? -1 : 0;
}
