/*
 * report_files.c - the JSON result (keys as vllm bench serve's where they overlap, so tools that
 * read its results read ours), the per-request CSV, and the run-file naming.
 */
#include "report.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

static void put_latency(json_t *o, const char *name, const tlab_summary *s) {
    char key[64];
#define PUT(prefix, field)                                                                                                 \
    snprintf(key, sizeof key, prefix "_%s_ms", name);                                                                    \
    json_object_set_new(o, key, json_real(1e3 * s->field))
    PUT("mean", mean);
    PUT("median", p50);
    PUT("std", std);
    PUT("p50", p50);
    PUT("p90", p90);
    PUT("p95", p95);
    PUT("p99", p99);
    PUT("min", min);
    PUT("max", max);
#undef PUT
}

int tlab_report_write_json(const tlab_report *rep, const tlab_report_meta *m, const char *path) {
    const tlab_run_cfg *c = m->cfg;
    json_t *o = json_object();
    json_object_set_new(o, "date", json_string(m->date));
    json_object_set_new(o, "backend", json_string("tlab-bench"));
    json_object_set_new(o, "endpoint_type", json_string(m->endpoint_type));
    json_object_set_new(o, "label", json_string(m->profile));
    json_object_set_new(o, "model_id", json_string(m->model));
    json_object_set_new(o, "base_url", json_string(m->url));
    json_object_set_new(o, "workload", json_string(m->workload));
    json_object_set_new(o, "num_prompts", json_integer((json_int_t)rep->num_prompts));
    if (c->arrival.kind == TLAB_ARRIVAL_CLOSED) {
        json_object_set_new(o, "request_rate", json_string("inf"));
        json_object_set_new(o, "max_concurrency", json_integer(c->concurrency));
    } else {
        json_object_set_new(o, "request_rate", json_real(c->arrival.rate));
        json_object_set_new(o, "max_concurrency", json_null());
    }
    json_object_set_new(o, "burstiness", json_real(c->arrival.burstiness > 0 ? c->arrival.burstiness : 0));
    json_object_set_new(o, "duration", json_real(rep->window_s));
    json_object_set_new(o, "completed", json_integer((json_int_t)rep->completed));
    json_object_set_new(o, "failed", json_integer((json_int_t)rep->failed));
    json_object_set_new(o, "total_input_tokens", json_integer(rep->total_input));
    json_object_set_new(o, "total_output_tokens", json_integer(rep->total_output));
    json_object_set_new(o, "request_throughput", json_real(rep->request_throughput));
    json_object_set_new(o, "request_goodput", json_real(rep->request_goodput));
    json_object_set_new(o, "output_throughput", json_real(rep->output_throughput));
    json_object_set_new(o, "total_token_throughput", json_real(rep->total_token_throughput));
    json_object_set_new(o, "max_concurrent_requests", json_integer(m->run->peak_inflight));
    put_latency(o, "ttft", &rep->ttft);
    put_latency(o, "tpot", &rep->tpot);
    put_latency(o, "itl", &rep->itl);
    put_latency(o, "e2el", &rep->e2e);

    /* tlab-bench's own fields. */
    json_object_set_new(o, "error_rate", json_real(rep->error_rate));
    json_t *errs = json_object();
    for (int k = 1; k < TLAB_K_COUNT; k++) {
        if (k == TLAB_K_HTTP) {
            for (int i = 0; i < rep->n_http; i++) {
                char key[32];
                snprintf(key, sizeof key, "http_%d", rep->http[i].status);
                json_object_set_new(errs, key, json_integer((json_int_t)rep->http[i].n));
            }
        } else if (rep->by_kind[k]) {
            json_object_set_new(errs, tlab_kind_base_name((tlab_kind)k), json_integer((json_int_t)rep->by_kind[k]));
        }
    }
    json_object_set_new(o, "errors_by_kind", errs);

    json_t *cfg = json_pack("{s:s, s:f, s:f, s:f, s:f, s:I, s:f, s:I}", "arrival", tlab_arrival_name(c->arrival.kind),
                            "warmup", c->warmup_s, "measure", c->duration_s, "cooldown", c->cooldown_s, "timeout",
                            c->timeout_s, "max_inflight", (json_int_t)c->max_inflight, "rate", c->arrival.rate, "seed",
                            (json_int_t)c->seed);
    if (c->arrival.kind == TLAB_ARRIVAL_RAMP)
        json_object_set_new(cfg, "ramp", json_pack("{s:f, s:f}", "rate_end", c->arrival.rate_end, "ramp_time", c->arrival.ramp_s));
    if (c->arrival.kind == TLAB_ARRIVAL_STEP)
        json_object_set_new(cfg, "step", json_pack("{s:f, s:f, s:f}", "factor", c->arrival.step_factor, "length",
                                                   c->arrival.step_len_s, "period", c->arrival.step_period_s));
    json_object_set_new(o, "config", cfg);

    json_t *gen = json_object();
    json_object_set_new(gen, "sent", json_integer((json_int_t)rep->sent_all));
    json_object_set_new(gen, "dropped_by_max_inflight", json_integer((json_int_t)rep->dropped_all));
    json_object_set_new(gen, "late_over_10ms", json_integer((json_int_t)rep->late_all));
    json_object_set_new(gen, "mean_lag_ms", json_real(1e3 * rep->lag.mean));
    json_object_set_new(gen, "p99_lag_ms", json_real(1e3 * rep->lag.p99));
    json_object_set_new(gen, "max_lag_ms", json_real(1e3 * rep->lag.max));
    json_object_set_new(gen, "connections_opened", json_integer((json_int_t)m->run->connections));
    json_object_set_new(gen, "wall_seconds", json_real(m->run->wall_s));
    json_object_set_new(gen, "interrupted", json_boolean(m->run->interrupted));
    json_object_set_new(o, "early_stop", m->run->early_stop ? json_pack("{s:f, s:s}", "at_s", m->run->early_stop_s, "reason",
                                                                        m->run->early_why)
                                                            : json_null());
    json_object_set_new(gen, "behind_count", json_integer((json_int_t)rep->n_behind_total));
    json_t *behind = json_array();
    for (int i = 0; i < rep->n_behind; i++) {
        const tlab_behind *b = &rep->behind[i];
        json_array_append_new(behind, json_pack("{s:f, s:f, s:f, s:I, s:I}", "from_s", b->from_s, "to_s", b->to_s,
                                                "max_lag_ms", 1e3 * b->max_lag_s, "late", (json_int_t)b->late, "dropped",
                                                (json_int_t)b->dropped));
    }
    json_object_set_new(gen, "behind", behind);
    json_object_set_new(o, "generator", gen);

    json_t *slo = json_object();
    json_t *items = json_array();
    for (int i = 0; i < rep->n_slo; i++) {
        const tlab_slo_result *r = &rep->slo[i];
        int per_request = r->slo->agg == TLAB_AGG_REQUEST && r->slo->metric != TLAB_M_ERROR_RATE;
        json_array_append_new(items, json_pack("{s:s, s:s, s:f, s:f, s:b, s:b}", "name", r->slo->name, "target", r->slo->value,
                                               "limit", r->slo->limit, "actual", r->actual, "pass", r->pass, "per_request",
                                               per_request));
    }
    json_object_set_new(slo, "objectives", items);
    json_object_set_new(slo, "good_requests", json_integer((json_int_t)rep->good));
    json_object_set_new(slo, "verdict", rep->n_aggregate ? json_string(rep->slo_pass ? "pass" : "fail") : json_null());
    json_object_set_new(o, "slo", slo);
    if (c->retry_max > 0) {
        json_t *rt = json_pack("{s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I}", "max_retries", (json_int_t)c->retry_max,
                               "default_wait_s", c->retry_default_s, "retries_sent", (json_int_t)m->run->retries_sent,
                               "retries_dropped", (json_int_t)m->run->retries_dropped, "retried_requests",
                               (json_int_t)rep->retried, "admitted_at_first_retry", (json_int_t)rep->admitted_first_retry,
                               "admitted_at_later_retry", (json_int_t)rep->admitted_later_retry, "never_admitted",
                               (json_int_t)rep->never_admitted);
        /* The honesty of Retry-After: the share of retried requests let in when told to come back. */
        json_object_set_new(rt, "first_retry_admitted_share",
                            rep->retried ? json_real((double)rep->admitted_first_retry / (double)rep->retried) : json_null());
        json_object_set_new(o, "retry", rt);
    }
    if (m->slices && m->slices->n) {
        const tlab_timeslices *ts = m->slices;
        json_t *arr = json_array();
        for (size_t k = 0; k < ts->n; k++) {
            const tlab_slice *sl = &ts->v[k];
            json_t *e = json_pack("{s:f, s:I, s:I, s:I, s:I, s:I, s:I}", "t_s", (double)k * ts->width_s, "offered",
                                  (json_int_t)sl->offered, "admitted", (json_int_t)sl->admitted, "good", (json_int_t)sl->good,
                                  "rejected", (json_int_t)sl->rejected, "errors", (json_int_t)sl->errors, "completed",
                                  (json_int_t)sl->completed);
            json_object_set_new(e, "p95_e2e_ms", sl->p95_e2e_s >= 0 ? json_real(1e3 * sl->p95_e2e_s) : json_null());
            json_array_append_new(arr, e);
        }
        json_object_set_new(o, "timeslices", json_pack("{s:f, s:f, s:f, s:o}", "width_s", ts->width_s, "window_start_s",
                                                       m->run->window_start, "window_end_s", m->run->window_end, "slices", arr));
    }
    if (m->csv_path)
        json_object_set_new(o, "requests_csv", json_string(m->csv_path));

    int rc = json_dump_file(o, path, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (rc != 0 && errno == 0)
        errno = EIO;
    return rc == 0 ? 0 : -1;
}

int tlab_report_write_csv(const tlab_run_result *run, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "index,due_s,sent_s,lag_ms,in_window,status,error_kind,ttft_ms,tpot_ms,e2e_ms,output_tokens,input_tokens,chunks,"
               "itl_ms,retries,admitted_attempt\n");
    for (size_t i = 0; i < run->reqs.n; i++) {
        const tlab_req *r = tlab_reqs_at(&run->reqs, i);
        char kbuf[24];
        const char *kind = tlab_kind_name(r, kbuf, sizeof kbuf);
        fprintf(f, "%zu,%.6f,", i, r->sched);
        if (r->sent >= 0)
            fprintf(f, "%.6f,%.3f,", r->sent, 1e3 * (r->sent - r->sched));
        else
            fputs(",,", f);
        fprintf(f, "%d,%d,%s,", r->in_window, r->status, kind);
        if (r->first >= 0)
            fprintf(f, "%.3f", 1e3 * (r->first - r->sched));
        fputc(',', f);
        long out = tlab_req_output_tokens(r);
        if (r->kind == TLAB_K_OK && r->chunks > 1 && out > 1)
            fprintf(f, "%.3f", 1e3 * (r->done - r->first) / (double)(out - 1));
        fputc(',', f);
        if (r->done >= 0)
            fprintf(f, "%.3f", 1e3 * (r->done - r->sched));
        fprintf(f, ",%ld,%d,%u,", out, r->usage_in, r->chunks);
        /* Every gap of the request, ';'-separated, so ITL distributions can be rebuilt. */
        for (uint32_t k = 0; k < r->n_itl; k++)
            fprintf(f, k ? ";%.3f" : "%.3f", 1e3 * r->itl[k]);
        fprintf(f, ",%u,%u\n", r->retries, r->admitted);
    }
    int err = ferror(f);
    if (fclose(f) != 0 || err)
        return -1;
    return 0;
}

static int mkdirs(const char *dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int tlab_report_default_path(const char *dir, const char *profile, char *out, size_t len) {
    if (mkdirs(dir) != 0)
        return -1;
    char day[16];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s_run", day);
    int next = 1;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        int n = atoi(e->d_name + strlen(prefix));
        if (n >= next)
            next = n + 1;
    }
    closedir(d);
    int w = snprintf(out, len, "%s/%s%02d_%s.json", dir, prefix, next, profile);
    if (w < 0 || (size_t)w >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}
