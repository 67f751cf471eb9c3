/*
 * tune_progress.c - the live line and the per-probe log lines (see tune_progress.h).
 */
#include "tune_progress.h"

#include "tune_worker.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void hms(double s, char *buf, size_t len) {
    long t = s > 0 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
}

void tune_progress_init(tune_progress *p, int tty) {
    memset(p, 0, sizeof *p);
    p->tty = tty;
    p->t0 = tune_mono();
}

double tune_progress_elapsed(const tune_progress *p) {
    return tune_mono() - p->t0;
}

void tune_progress_stage(tune_progress *p, const char *stage, size_t points) {
    p->stage = stage;
    p->points_in_stage = points;
    p->spent_in_stage = 0;
    p->finished_in_stage = 0;
}

void tune_progress_point(tune_progress *p, size_t index, const char *id) {
    p->point_index = index;
    snprintf(p->point_id, sizeof p->point_id, "%s", id);
    p->point_started = tune_mono();
    p->probe_no = 0;
}

/* ETA of the stage: the mean time of its finished points times the points left. */
static void eta(const tune_progress *p, char *buf, size_t len) {
    if (!p->finished_in_stage) {
        snprintf(buf, len, "?");
        return;
    }
    double per = p->spent_in_stage / (double)p->finished_in_stage;
    double left = per * (double)(p->points_in_stage - p->point_index) - (tune_mono() - p->point_started);
    hms(left > 0 ? left : 0, buf, len);
}

void tune_progress_probe(tune_progress *p, const char *phase, double rate, double duration_s) {
    p->probe_no++;
    if (!p->tty)
        return;
    char el[32], et[32];
    hms(tune_progress_elapsed(p), el, sizeof el);
    eta(p, et, sizeof et);
    fprintf(stderr, "\r\033[K[%s %zu/%zu] %s  probe %d %s %.3g req/s for %.0f s  | elapsed %s  ETA %s", p->stage,
            p->point_index + 1, p->points_in_stage, p->point_id, p->probe_no, phase, rate, duration_s, el, et);
    fflush(stderr);
}

void tune_progress_note(tune_progress *p, const char *what) {
    if (!p->tty)
        return;
    char el[32], et[32];
    hms(tune_progress_elapsed(p), el, sizeof el);
    eta(p, et, sizeof et);
    fprintf(stderr, "\r\033[K[%s %zu/%zu] %s  %s  | elapsed %s  ETA %s", p->stage, p->point_index + 1, p->points_in_stage,
            p->point_id, what, el, et);
    fflush(stderr);
}

void tune_progress_result(tune_progress *p, const char *phase, const tune_probe *r) {
    if (p->tty)
        return;
    char el[32];
    hms(tune_progress_elapsed(p), el, sizeof el);
    if (!r->ok)
        fprintf(stderr, "tlab-tune: [%s %zu/%zu %s] %s %.3g req/s: probe failed: %s\n", p->stage, p->point_index + 1,
                p->points_in_stage, p->point_id, phase, r->plan.rate, r->error);
    else
        fprintf(stderr, "tlab-tune: [%s %zu/%zu %s] %s %.3g req/s: %s%s%s, p95 e2e %.2f s, %.3g req/s done, %ld due (%s)\n",
                p->stage, p->point_index + 1, p->points_in_stage, p->point_id, phase, r->plan.rate, r->pass ? "PASS" : "FAIL",
                r->certain ? "" : " (uncertain)", r->early_stopped ? " (stopped early)" : "", r->e2e_p95_s, r->throughput,
                r->due, el);
}

void tune_progress_point_done(tune_progress *p, const char *summary) {
    p->spent_in_stage += tune_mono() - p->point_started;
    p->finished_in_stage++;
    if (p->tty)
        fprintf(stderr, "\r\033[K");
    fprintf(stderr, "tlab-tune: [%s %zu/%zu] %s: %s\n", p->stage, p->point_index + 1, p->points_in_stage, p->point_id, summary);
}

void tune_progress_say(tune_progress *p, const char *msg) {
    if (p->tty)
        fprintf(stderr, "\r\033[K");
    fprintf(stderr, "tlab-tune: %s\n", msg);
}
