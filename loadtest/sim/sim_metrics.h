/*
 * sim_metrics.h - the counters and histograms tlab-sim exposes on GET /metrics, under vLLM's names
 * (vllm:...) plus the simulator's own (tlab_sim:...). All latencies are in simulated seconds.
 */
#ifndef SIM_METRICS_H
#define SIM_METRICS_H

#include <stdint.h>

#include "sim_sched.h"

struct evbuffer;

#define SIM_HIST_MAX_BUCKETS 24

typedef struct sim_hist {
    int n;
    const double *bounds;
    uint64_t counts[SIM_HIST_MAX_BUCKETS + 1]; /* per bucket, last = +Inf; cumulated at render time */
    uint64_t count;
    double sum;
} sim_hist;

typedef struct sim_metrics {
    uint64_t prompt_tokens, generation_tokens;
    uint64_t success_stop, success_length, aborted, rejected;
    uint64_t sleeps, wakes, sleep_aborted; /* sleep mode: completed sleeps / wakes, requests aborted by /sleep */
    uint64_t peak_requests; /* most requests held at once (running + waiting), since start */
    sim_hist ttft, itl, e2e, queue;
    /* Loop health: real-time lag of step deadlines and how much of real time the sim clock kept. */
    uint64_t steps;
    double lag_last, lag_max;
    double sim_busy, real_busy; /* summed simulated step durations / real time spanned while busy */
} sim_metrics;

void sim_metrics_init(sim_metrics *m);
void sim_hist_observe(sim_hist *h, double v);

/* Simulated seconds advanced per (real second * time_scale) while busy; 1.0 = keeping up. */
double sim_metrics_realtime_ratio(const sim_metrics *m, double time_scale);

/* Appends the Prometheus text exposition (format 0.0.4) to out. */
void sim_metrics_render(const sim_metrics *m, const sim_sched_stats *st, const char *model_name, double time_scale,
                        double sim_now, struct evbuffer *out);

#endif
