/*
 * sim_metrics.c - Prometheus exposition for tlab-sim. Bucket bounds are vLLM's (vllm/v1/metrics/loggers.py),
 * so dashboards built on vLLM work unchanged. Labels: model_name and engine="0", as vLLM V1.
 */
#include "sim_metrics.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

static const double ttft_bounds[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                     1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
static const double itl_bounds[] = {0.01, 0.025, 0.05, 0.075, 0.1,  0.15, 0.2,  0.3,  0.4, 0.5,
                                    0.75, 1.0,   2.5,  5.0,   7.5,  10.0, 20.0, 40.0, 80.0};
static const double req_bounds[] = {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
                                    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

#define NB(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void hist_init(sim_hist *h, const double *b, int n) {
    memset(h, 0, sizeof(*h));
    h->bounds = b;
    h->n = n;
}

void sim_metrics_init(sim_metrics *m) {
    memset(m, 0, sizeof(*m));
    hist_init(&m->ttft, ttft_bounds, NB(ttft_bounds));
    hist_init(&m->itl, itl_bounds, NB(itl_bounds));
    hist_init(&m->e2e, req_bounds, NB(req_bounds));
    hist_init(&m->queue, req_bounds, NB(req_bounds));
}

void sim_hist_observe(sim_hist *h, double v) {
    int i = 0;
    while (i < h->n && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

double sim_metrics_realtime_ratio(const sim_metrics *m, double time_scale) {
    if (m->real_busy <= 0)
        return 1.0;
    return m->sim_busy / (m->real_busy * time_scale);
}

static void render_hist(struct evbuffer *out, const char *name, const char *help, const sim_hist *h, const char *lbl) {
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->counts[i];
        evbuffer_add_printf(out, "%s_bucket{%s,le=\"%g\"} %llu\n", name, lbl, h->bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[h->n];
    evbuffer_add_printf(out, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, lbl, (unsigned long long)cum);
    evbuffer_add_printf(out, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, lbl, h->sum, name, lbl,
                        (unsigned long long)h->count);
}

static void gauge(struct evbuffer *out, const char *name, const char *help, const char *lbl, double v) {
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s{%s} %.9g\n", name, help, name, name, lbl, v);
}

static void counter(struct evbuffer *out, const char *name, const char *help, const char *lbl, uint64_t v) {
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s_total{%s} %llu\n", name, help, name, name, lbl,
                        (unsigned long long)v);
}

void sim_metrics_render(const sim_metrics *m, const sim_sched_stats *st, const char *model_name, double time_scale,
                        double sim_now, struct evbuffer *out) {
    char lbl[400];
    snprintf(lbl, sizeof lbl, "engine=\"0\",model_name=\"%s\"", model_name);
    gauge(out, "vllm:num_requests_running", "Number of requests in model execution batches.", lbl, st->num_running);
    gauge(out, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", lbl, st->num_waiting);
    gauge(out, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", lbl,
          st->num_blocks ? (double)st->used_blocks / (double)st->num_blocks : 0.0);
    counter(out, "vllm:num_preemptions", "Cumulative number of preemption from the engine.", lbl, st->preemptions_total);
    counter(out, "vllm:prompt_tokens", "Number of prefill tokens processed.", lbl, m->prompt_tokens);
    counter(out, "vllm:generation_tokens", "Number of generation tokens processed.", lbl, m->generation_tokens);
    evbuffer_add_printf(out,
                        "# HELP vllm:request_success Count of successfully processed requests.\n"
                        "# TYPE vllm:request_success counter\n"
                        "vllm:request_success_total{%s,finished_reason=\"stop\"} %llu\n"
                        "vllm:request_success_total{%s,finished_reason=\"length\"} %llu\n"
                        "vllm:request_success_total{%s,finished_reason=\"abort\"} %llu\n",
                        lbl, (unsigned long long)m->success_stop, lbl, (unsigned long long)m->success_length, lbl,
                        (unsigned long long)(m->aborted + m->sleep_aborted));
    render_hist(out, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", &m->ttft, lbl);
    render_hist(out, "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", &m->itl, lbl);
    render_hist(out, "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", &m->e2e, lbl);
    render_hist(out, "vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
                &m->queue, lbl);
    counter(out, "tlab_sim:aborted_requests", "Requests aborted because the client disconnected.", lbl, m->aborted);
    counter(out, "tlab_sim:rejected_requests", "Requests rejected with a 4xx before reaching the scheduler.", lbl,
            m->rejected);
    counter(out, "tlab_sim:sleeps", "Completed sleeps (POST /sleep).", lbl, m->sleeps);
    counter(out, "tlab_sim:wakes", "Completed wake-ups (POST /wake_up that restored weights and/or KV cache).", lbl,
            m->wakes);
    counter(out, "tlab_sim:sleep_aborted_requests", "Requests aborted by POST /sleep (mode=abort).", lbl,
            m->sleep_aborted);
    gauge(out, "tlab_sim:peak_requests", "Most requests held at once (running + waiting) since start.", lbl,
          (double)m->peak_requests);
    counter(out, "tlab_sim:steps", "Scheduler steps executed.", lbl, m->steps);
    gauge(out, "tlab_sim:step_lag_seconds", "Real seconds the last step ended after its deadline.", lbl, m->lag_last);
    gauge(out, "tlab_sim:step_lag_max_seconds", "Largest real lag of a step deadline since start.", lbl, m->lag_max);
    gauge(out, "tlab_sim:realtime_ratio",
          "Simulated time advanced per real time x time_scale while busy (1 = keeping up with the clock).", lbl,
          sim_metrics_realtime_ratio(m, time_scale));
    gauge(out, "tlab_sim:time_scale", "Simulated seconds per real second.", lbl, time_scale);
    gauge(out, "tlab_sim:sim_time_seconds", "Simulated clock since start.", lbl, sim_now);
}
