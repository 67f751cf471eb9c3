/*
 * report_text.c - the human-readable result table on stdout, laid out like vllm bench serve's
 * "Serving Benchmark Result" so the two read side by side.
 */
#include "report.h"

#include <stdio.h>

static void line(FILE *o, const char *label, const char *fmt, double v) {
    fprintf(o, "%-40s", label);
    fprintf(o, fmt, v);
    fputc('\n', o);
}

static void section(FILE *o, const char *title) {
    fprintf(o, "%s\n", title);
}

static void latency(FILE *o, const char *title, const char *abbr, const tlab_summary *s) {
    char label[64];
    section(o, title);
    if (!s->n) {
        fprintf(o, "%-40s%s\n", "(no samples)", "");
        return;
    }
    snprintf(label, sizeof label, "Mean %s (ms):", abbr);
    line(o, label, "%.2f", 1e3 * s->mean);
    snprintf(label, sizeof label, "Median %s (ms):", abbr);
    line(o, label, "%.2f", 1e3 * s->p50);
    snprintf(label, sizeof label, "P90 %s (ms):", abbr);
    line(o, label, "%.2f", 1e3 * s->p90);
    snprintf(label, sizeof label, "P95 %s (ms):", abbr);
    line(o, label, "%.2f", 1e3 * s->p95);
    snprintf(label, sizeof label, "P99 %s (ms):", abbr);
    line(o, label, "%.2f", 1e3 * s->p99);
}

static void slo_value(char *buf, size_t len, const tlab_slo_result *r) {
    if (r->slo->metric == TLAB_M_ERROR_RATE)
        snprintf(buf, len, "%.3f%%", 100 * r->actual);
    else
        snprintf(buf, len, "%.0f ms", 1e3 * r->actual);
}

void tlab_report_print(const tlab_report *rep, const tlab_report_meta *meta, FILE *o) {
    const tlab_run_cfg *c = meta->cfg;
    fprintf(o, "============ tlab-bench result ============\n");
    fprintf(o, "%-40s%s\n", "Target:", meta->url);
    fprintf(o, "%-40s%s (%s)\n", "Workload:", meta->workload, meta->endpoint_type);
    if (c->arrival.kind == TLAB_ARRIVAL_CLOSED)
        fprintf(o, "%-40sclosed loop, concurrency %ld\n", "Arrival:", c->concurrency);
    else
        fprintf(o, "%-40s%s, %.6g req/s%s\n", "Arrival:", tlab_arrival_name(c->arrival.kind), c->arrival.rate,
                c->arrival.burstiness > 0 ? " (gamma gaps)" : "");
    fprintf(o, "%-40s%.0f s (after %.0f s warm-up; %.0f s cool-down)%s\n", "Measured window:", rep->window_s, c->warmup_s,
            c->cooldown_s, meta->run->interrupted ? " INTERRUPTED" : "");
    line(o, "Requests due in window:", "%.0f", (double)rep->num_prompts);
    line(o, "Successful requests:", "%.0f", (double)rep->completed);
    line(o, "Failed requests:", "%.0f", (double)rep->failed);
    line(o, "Error rate (%):", "%.3f", 100 * rep->error_rate);
    for (int k = 1; k < TLAB_K_COUNT; k++) {
        if (!rep->by_kind[k])
            continue;
        if (k == TLAB_K_HTTP) {
            for (int i = 0; i < rep->n_http; i++) {
                char label[64];
                snprintf(label, sizeof label, "  http_%d:", rep->http[i].status);
                line(o, label, "%.0f", (double)rep->http[i].n);
            }
            continue;
        }
        char label[64];
        snprintf(label, sizeof label, "  %s:", tlab_kind_base_name((tlab_kind)k));
        line(o, label, "%.0f", (double)rep->by_kind[k]);
    }
    line(o, "Total input tokens:", "%.0f", (double)rep->total_input);
    line(o, "Total generated tokens:", "%.0f", (double)rep->total_output);
    line(o, "Request throughput (req/s):", "%.2f", rep->request_throughput);
    line(o, "Request goodput (req/s):", "%.2f", rep->request_goodput);
    line(o, "Output token throughput (tok/s):", "%.2f", rep->output_throughput);
    line(o, "Total token throughput (tok/s):", "%.2f", rep->total_token_throughput);
    latency(o, "---------------Time to First Token----------------", "TTFT", &rep->ttft);
    latency(o, "-----Time per Output Token (excl. 1st token)------", "TPOT", &rep->tpot);
    latency(o, "---------------Inter-token Latency----------------", "ITL", &rep->itl);
    latency(o, "----------------End-to-end Latency----------------", "E2EL", &rep->e2e);
    section(o, "-----------------Generator (whole run)------------");
    line(o, "Sent:", "%.0f", (double)rep->sent_all);
    line(o, "Peak in flight:", "%.0f", (double)meta->run->peak_inflight);
    line(o, "Send lag p99 (ms):", "%.3f", 1e3 * rep->lag.p99);
    line(o, "Send lag max (ms):", "%.3f", 1e3 * rep->lag.max);
    line(o, "Sent > 10 ms late:", "%.0f", (double)rep->late_all);
    line(o, "Dropped by --max-inflight:", "%.0f", (double)rep->dropped_all);
    if (rep->n_behind_total == 0) {
        fprintf(o, "%-40s%s\n", "Fell behind schedule:", "never");
    } else {
        fprintf(o, "%-40s%zu time(s)\n", "Fell behind schedule:", rep->n_behind_total);
        for (int i = 0; i < rep->n_behind; i++) {
            const tlab_behind *b = &rep->behind[i];
            fprintf(o, "  %.1f s - %.1f s: %zu late (max %.1f ms), %zu dropped\n", b->from_s, b->to_s, b->late,
                    1e3 * b->max_lag_s, b->dropped);
        }
    }
    if (c->retry_max > 0) {
        section(o, "------------Retries (--retry-429, window)---------");
        line(o, "Retried requests:", "%.0f", (double)rep->retried);
        line(o, "  admitted at the first retry:", "%.0f", (double)rep->admitted_first_retry);
        line(o, "  admitted at a later retry:", "%.0f", (double)rep->admitted_later_retry);
        line(o, "  never admitted:", "%.0f", (double)rep->never_admitted);
        if (rep->retried)
            line(o, "Admitted at first retry (%):", "%.1f", 100.0 * (double)rep->admitted_first_retry / (double)rep->retried);
        line(o, "Retries sent (whole run):", "%.0f", (double)meta->run->retries_sent);
    }
    if (rep->n_slo) {
        section(o, "-----------------------SLO------------------------");
        for (int i = 0; i < rep->n_slo; i++) {
            const tlab_slo_result *r = &rep->slo[i];
            char v[48];
            slo_value(v, sizeof v, r);
            int per_request = r->slo->agg == TLAB_AGG_REQUEST && r->slo->metric != TLAB_M_ERROR_RATE;
            fprintf(o, "  %-14s <= %-8s %s%-12s %s\n", r->slo->name, r->slo->value, per_request ? "worst " : "", v,
                    per_request ? "(per request: goodput)" : r->pass ? "ok" : "MISSED");
        }
        if (meta->run->early_stop)
            fprintf(o, "%-40sat %.1f s: %s\n", "Early stop (FAIL certain):", meta->run->early_stop_s, meta->run->early_why);
        if (rep->n_aggregate)
            fprintf(o, "%-40s%s\n", "SLO verdict:", rep->slo_pass ? "PASS" : "FAIL");
    }
    fprintf(o, "==================================================\n");
}
