/*
 * runner.c - the send loop, response callbacks and progress line (see runner.h).
 *
 * The schedule is walked by one timer: when it fires, every request due by now is sent (at most
 * SEND_BATCH per turn, so responses are still read while catching up), then the timer is armed
 * for the next due time. A request is sent when due whatever is still in flight; if
 * --max-inflight is reached it is dropped and recorded as such, never delayed in silence.
 *
 * --retry-429: a request answered 429 (with or without Retry-After) or 503 with Retry-After is
 * sent again after the Retry-After, up to retry_max times, on its own timer: the schedule never
 * waits for it, so the run stays open loop. The retry keeps the record and its due time, so its
 * latencies count from the original arrival: a client that had to come back later waited all
 * that time, and a retried request is good only if the whole wait fits the SLO.
 */
#include "runner.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "http_client.h"
#include "response.h"
#include "stats.h"

#define SEND_BATCH 512

typedef struct live {
    tlab_response resp;
    struct run *run;
    double retry_after_s; /* of this attempt's response, -1 if none */
    size_t body_len;
    char body[]; /* the workload's body with this request's own "user" */
} live;

/* Room for ,"user":"tlab-bench-<seq>" */
#define USER_FIELD_MAX 40

/* A rejected request waiting for its Retry-After before it is sent again. */
typedef struct retry_wait {
    struct event *ev;
    struct run *run;
    tlab_req *rec;
    struct retry_wait *prev, *next;
} retry_wait;

typedef struct run {
    const tlab_run_cfg *cfg;
    tlab_run_result *res;
    struct event_base *base;
    tlab_http *http;
    const tlab_workload *w;
    struct event *send_ev, *progress_ev, *sigint_ev, *sigterm_ev, *early_ev;
    size_t planned;        /* requests due in the window, for early stop */
    double t0;
    double end_s;          /* no request is due at or after this */
    tlab_arrival arrival;
    double next_due;
    int sending;           /* still scheduling */
    int oom;
    int stopping;          /* hard stop: requests still in flight end as unfinished */
    retry_wait *waiting;   /* --retry-429: pending retries (their timers), a list */
    /* progress */
    size_t sent, done, errors;
    size_t done_at_last_tick;
    tlab_samples tick_e2e;
} run;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(const run *r) {
    return mono() - r->t0;
}

static void maybe_finish(run *r) {
    if (!r->sending && !r->waiting && tlab_http_active(r->http) == 0)
        event_base_loopbreak(r->base);
}

static int send_one(run *r, double due);
static int start_request(run *r, tlab_req *rec);

static void on_headers(void *arg, int status, int is_sse, double retry_after_s) {
    live *l = arg;
    l->retry_after_s = retry_after_s;
    tlab_response_headers(&l->resp, status, is_sse);
}

static void retry_unlink(run *r, retry_wait *w) {
    if (w->prev)
        w->prev->next = w->next;
    else
        r->waiting = w->next;
    if (w->next)
        w->next->prev = w->prev;
    event_free(w->ev);
    free(w);
}

/* The Retry-After has passed: send the request again (same record, same due time). An
 * interrupted run sends no more retries; the record keeps its last answer. */
static void on_retry_timer(evutil_socket_t fd, short what, void *arg) {
    retry_wait *w = arg;
    run *r = w->run;
    tlab_req *rec = w->rec;
    retry_unlink(r, w);
    if (!r->res->interrupted) {
        rec->retries++;
        rec->first = rec->last = rec->done = -1;
        rec->n_itl = rec->chunks = 0;
        rec->usage_out = rec->usage_in = -1;
        rec->status = 0;
        rec->kind = TLAB_K_OK;
        r->res->retries_sent++;
        int rc = start_request(r, rec);
        if (rc < 0) {
            r->oom = 1;
            rec->kind = TLAB_K_NO_RESPONSE;
            rec->done = now_s(r);
        }
        if (rc != 0)
            r->errors++;
        if (rec->kind == TLAB_K_DROPPED)
            r->res->retries_dropped++;
    } else {
        r->done++;
        r->errors++;
    }
    maybe_finish(r);
}

/* Whether the attempt that just ended is retried; if so its timer is armed. */
static int maybe_retry(run *r, tlab_req *rec, double retry_after_s) {
    if (r->cfg->retry_max <= 0 || rec->kind != TLAB_K_HTTP || rec->retries >= r->cfg->retry_max || r->res->interrupted)
        return 0;
    if (!(rec->status == 429 || (rec->status == 503 && retry_after_s >= 0)))
        return 0;
    double wait = retry_after_s >= 0 ? retry_after_s : r->cfg->retry_default_s;
    retry_wait *w = calloc(1, sizeof *w);
    if (!w)
        return 0;
    w->run = r;
    w->rec = rec;
    w->ev = evtimer_new(r->base, on_retry_timer, w);
    if (!w->ev) {
        free(w);
        return 0;
    }
    struct timeval tv = {.tv_sec = (time_t)wait, .tv_usec = (suseconds_t)((wait - floor(wait)) * 1e6)};
    w->next = r->waiting;
    if (r->waiting)
        r->waiting->prev = w;
    r->waiting = w;
    evtimer_add(w->ev, &tv);
    return 1;
}

static void on_data(void *arg, const char *data, size_t len) {
    live *l = arg;
    tlab_response_data(&l->resp, data, len, now_s(l->run));
}

static void on_done(void *arg, tlab_http_result result, const char *detail) {
    live *l = arg;
    run *r = l->run;
    double t = now_s(r);
    tlab_response_finish(&l->resp, result, t);
    tlab_req *rec = l->resp.rec;
    double retry_after_s = l->retry_after_s;
    free(l);
    if (r->stopping) {
        rec->kind = TLAB_K_UNFINISHED;
        return;
    }
    if (!rec->admitted && rec->status > 0 && !TLAB_STATUS_REJECTED(rec->status))
        rec->admitted = (uint8_t)(rec->retries + 1);
    if (maybe_retry(r, rec, retry_after_s))
        return; /* not done yet: it comes back on its timer */
    r->done++;
    if (rec->kind != TLAB_K_OK)
        r->errors++;
    else if (r->cfg->progress)
        tlab_samples_push(&r->tick_e2e, rec->done - rec->sched);
    /* Closed loop: each finished request makes room for the next, sent at once. */
    if (r->cfg->arrival.kind == TLAB_ARRIVAL_CLOSED && r->sending) {
        if (t < r->end_s)
            send_one(r, t);
        else
            r->sending = 0;
    }
    maybe_finish(r);
}

/* Records and sends one request due at `due`. Returns 0, or -1 when out of memory. */
static int send_one(run *r, double due) {
    tlab_req *rec = tlab_reqs_add(&r->res->reqs);
    if (!rec)
        return -1;
    rec->sched = due;
    rec->in_window = due >= r->res->window_start && due < r->res->window_end;
    int rc = start_request(r, rec);
    if (rc > 0)
        r->errors++;
    else if (rc == 0)
        r->sent++;
    return rc < 0 ? -1 : 0;
}

/* Sends rec now (a first attempt or a retry). Returns 0 when sent; 1 when it could not be (rec
 * ends as dropped at the --max-inflight cap, or as no_response); -1 when out of memory. */
static int start_request(run *r, tlab_req *rec) {
    long inflight = (long)tlab_http_active(r->http);
    if (inflight >= r->cfg->max_inflight) {
        rec->kind = TLAB_K_DROPPED;
        return 1;
    }
    /* Each request names its end user (OpenAI's `user` field), as clients of a real service differ:
     * a gateway that recognises a retry by its body (to keep the Retry-After it promised) must
     * not take one client for another. A retry sends the same body again. */
    const tlab_workload *w = r->w;
    live *l = malloc(sizeof *l + w->body_len + USER_FIELD_MAX);
    if (!l)
        return -1;
    l->body_len = w->body_len;
    memcpy(l->body, w->body, w->body_len);
    if (w->body_len && w->body[w->body_len - 1] == '}') {
        int n = snprintf(l->body + w->body_len - 1, USER_FIELD_MAX + 1, ",\"user\":\"tlab-bench-%u\"}", rec->seq);
        l->body_len += (size_t)n - 1;
    }
    l->run = r;
    l->retry_after_s = -1;
    tlab_response_init(&l->resp, rec);
    double t = now_s(r);
    if (!rec->retries)
        rec->sent = t;
    if (tlab_http_send_body(r->http, l->body, l->body_len, l) != 0) {
        free(l);
        rec->kind = TLAB_K_NO_RESPONSE;
        rec->done = t;
        return 1;
    }
    if (inflight + 1 > r->res->peak_inflight)
        r->res->peak_inflight = inflight + 1;
    return 0;
}

static void arm_send_timer(run *r, double t) {
    double wait = r->next_due - t;
    if (wait < 0)
        wait = 0;
    struct timeval tv = {.tv_sec = (time_t)wait, .tv_usec = (suseconds_t)((wait - floor(wait)) * 1e6)};
    evtimer_add(r->send_ev, &tv);
}

static void on_send_timer(evutil_socket_t fd, short what, void *arg) {
    run *r = arg;
    if (!r->sending)
        return;
    double t = now_s(r);
    for (int i = 0; i < SEND_BATCH && r->next_due <= t; i++) {
        if (r->next_due >= r->end_s)
            break;
        if (send_one(r, r->next_due) != 0) {
            r->oom = 1;
            r->sending = 0;
            break;
        }
        r->next_due = tlab_arrival_next(&r->arrival);
    }
    if (r->next_due >= r->end_s) {
        r->sending = 0;
        r->res->send_end_s = t;
        maybe_finish(r);
        return;
    }
    if (r->sending)
        arm_send_timer(r, now_s(r));
}

static void on_progress(evutil_socket_t fd, short what, void *arg) {
    run *r = arg;
    double t = now_s(r);
    size_t finished = r->done - r->done_at_last_tick;
    r->done_at_last_tick = r->done;
    char p95[32] = "-";
    if (r->tick_e2e.n) {
        tlab_sort(r->tick_e2e.v, r->tick_e2e.n);
        snprintf(p95, sizeof p95, "%.0f ms", 1e3 * tlab_quantile_sorted(r->tick_e2e.v, r->tick_e2e.n, 0.95));
    }
    r->tick_e2e.n = 0;
    const char *phase = t < r->res->window_start ? "warm-up" : t < r->res->window_end ? "measuring" : r->sending ? "cool-down" : "draining";
    printf("\r\033[K%6.1fs %-9s sent %zu  done %zu  errors %zu  in flight %zu  rps %zu  p95 e2e %s", t, phase, r->sent, r->done,
           r->errors, tlab_http_active(r->http), finished, p95);
    fflush(stdout);
}

/* The number of requests the schedule puts in [from, to): the same generator, walked ahead. */
static size_t count_due(const tlab_arrival_cfg *cfg, uint64_t seed, double from, double to) {
    tlab_arrival a;
    tlab_arrival_init(&a, cfg, seed);
    size_t n = 0;
    for (double t = tlab_arrival_next(&a); t < to; t = tlab_arrival_next(&a))
        n += t >= from;
    return n;
}

/* Early stop: classify the window's requests so far; stop the run when FAIL is certain. */
static void on_early_check(evutil_socket_t fd, short what, void *arg) {
    run *r = arg;
    const tlab_early_rule *rule = r->cfg->early;
    double t = now_s(r);
    tlab_early_counts c = {.planned = r->planned};
    for (size_t i = 0; i < r->res->reqs.n; i++) {
        const tlab_req *q = tlab_reqs_at(&r->res->reqs, i);
        if (!q->in_window)
            continue;
        int finished = q->done >= 0 || q->kind != TLAB_K_OK;
        if (finished && q->kind != TLAB_K_OK) {
            c.failed++;
            continue;
        }
        if (!rule->has_latency)
            continue;
        /* A finished success counts as late only by a measured value; one still in flight is
         * pending (late success or failure yet) once its value is, or must be, past the limit. */
        double mark = rule->metric == TLAB_M_TTFT ? q->first : q->done;
        if (finished)
            c.late_ok += mark >= 0 && mark - q->sched > rule->limit_s;
        else
            c.late_inflight += (mark >= 0 ? mark : t) - q->sched > rule->limit_s;
    }
    if (!tlab_early_certain_fail(rule, &c, r->res->early_why, sizeof r->res->early_why))
        return;
    r->res->early_stop = 1;
    r->res->early_stop_s = t;
    r->sending = 0;
    r->res->send_end_s = t;
    if (r->res->window_end > t)
        r->res->window_end = t > r->res->window_start ? t : r->res->window_start;
    event_base_loopbreak(r->base); /* what is still in flight ends as unfinished */
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    run *r = arg;
    double t = now_s(r);
    if (r->sending) {
        /* First signal: stop sending, let in-flight requests finish, report what was measured. */
        r->sending = 0;
        r->res->interrupted = 1;
        r->res->send_end_s = t;
        if (r->res->window_end > t)
            r->res->window_end = t > r->res->window_start ? t : r->res->window_start;
        fprintf(stderr, "\ntlab-bench: interrupted; waiting for %zu requests in flight (again to stop now)\n",
                tlab_http_active(r->http));
        while (r->waiting) { /* no more retries: those waiting keep their last answer */
            r->done++;
            r->errors++;
            retry_unlink(r, r->waiting);
        }
        maybe_finish(r);
    } else {
        event_base_loopbreak(r->base);
    }
}

int tlab_run(const tlab_run_cfg *cfg, const tlab_workload *w, tlab_run_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    err[0] = '\0';
    run r = {.cfg = cfg, .res = res, .w = w};
    res->window_start = cfg->warmup_s;
    res->window_end = cfg->warmup_s + cfg->duration_s;
    r.end_s = cfg->warmup_s + cfg->duration_s + cfg->cooldown_s;
    struct event_config *ec = event_config_new();
    if (ec) {
        /* timerfd-backed timers: epoll's millisecond timeouts would bunch sub-ms arrivals. */
        event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
        r.base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    tlab_http_callbacks cb = {on_headers, on_data, on_done};
    if (r.base)
        r.http = tlab_http_new(r.base, cfg->url, w->body, w->body_len, (long)(cfg->timeout_s * 1000), cfg->max_inflight, &cb);
    if (r.base) {
        r.send_ev = evtimer_new(r.base, on_send_timer, &r);
        r.sigint_ev = evsignal_new(r.base, SIGINT, on_signal, &r);
        r.sigterm_ev = evsignal_new(r.base, SIGTERM, on_signal, &r);
        if (cfg->progress)
            r.progress_ev = event_new(r.base, -1, EV_PERSIST, on_progress, &r);
        if (cfg->early && cfg->arrival.kind != TLAB_ARRIVAL_CLOSED)
            r.early_ev = event_new(r.base, -1, EV_PERSIST, on_early_check, &r);
    }
    if (!r.base || !r.http || !r.send_ev || !r.sigint_ev || !r.sigterm_ev || (cfg->progress && !r.progress_ev) ||
        (cfg->early && cfg->arrival.kind != TLAB_ARRIVAL_CLOSED && !r.early_ev)) {
        snprintf(err, errlen, "could not set up the event loop or libcurl");
        goto out;
    }
    event_add(r.sigint_ev, NULL);
    event_add(r.sigterm_ev, NULL);
    if (r.progress_ev) {
        struct timeval one = {1, 0};
        event_add(r.progress_ev, &one);
    }
    if (r.early_ev) {
        r.planned = count_due(&cfg->arrival, cfg->seed, res->window_start, res->window_end);
        struct timeval fifth = {0, 200000};
        event_add(r.early_ev, &fifth);
    }
    r.sending = 1;
    r.t0 = mono();
    if (cfg->arrival.kind == TLAB_ARRIVAL_CLOSED) {
        for (long i = 0; i < cfg->concurrency; i++)
            if (send_one(&r, 0) != 0) {
                r.oom = 1;
                break;
            }
    } else {
        tlab_arrival_init(&r.arrival, &cfg->arrival, cfg->seed);
        r.next_due = tlab_arrival_next(&r.arrival);
        arm_send_timer(&r, 0);
    }
    event_base_dispatch(r.base);
    res->wall_s = now_s(&r);
    if (!res->send_end_s)
        res->send_end_s = res->wall_s;
    if (r.progress_ev)
        printf("\r\033[K");
    res->connections = tlab_http_connections(r.http);
    if (r.oom)
        fprintf(stderr, "tlab-bench: out of memory; the run stopped sending early\n");
out:
    r.stopping = 1;
    tlab_http_free(r.http); /* ends what a hard stop left in flight as unfinished */
    while (r.waiting) /* a hard stop: pending retries keep their last answer */
        retry_unlink(&r, r.waiting);
    if (r.send_ev)
        event_free(r.send_ev);
    if (r.progress_ev)
        event_free(r.progress_ev);
    if (r.early_ev)
        event_free(r.early_ev);
    if (r.sigint_ev)
        event_free(r.sigint_ev);
    if (r.sigterm_ev)
        event_free(r.sigterm_ev);
    if (r.base)
        event_base_free(r.base);
    tlab_samples_free(&r.tick_e2e);
    return err[0] ? -1 : 0;
}

void tlab_run_result_free(tlab_run_result *res) {
    tlab_reqs_free(&res->reqs);
}
