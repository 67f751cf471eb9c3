/*
 * tune_progress.h - telling the operator where a long tuning run stands: on a terminal one
 * live line (stage, point, probe, rate, elapsed, ETA) rewritten in place; elsewhere (CI logs,
 * files) one plain line per probe, so nothing is lost.
 */
#ifndef TLAB_TUNE_PROGRESS_H
#define TLAB_TUNE_PROGRESS_H

#include <stddef.h>

#include "tune_probe.h"

typedef struct {
    int tty;
    double t0;                /* monotonic start */
    const char *stage;
    size_t point_index, points_in_stage;
    char point_id[256];
    double point_started;
    double spent_in_stage;    /* wall seconds of the stage's finished points */
    size_t finished_in_stage;
    int probe_no;
} tune_progress;

void tune_progress_init(tune_progress *p, int tty);
void tune_progress_stage(tune_progress *p, const char *stage, size_t points);
void tune_progress_point(tune_progress *p, size_t index, const char *id);
/* A probe is about to run. */
void tune_progress_probe(tune_progress *p, const char *phase, double rate, double duration_s);
/* Something other than a probe is under way (the worker starting). */
void tune_progress_note(tune_progress *p, const char *what);
/* A probe finished. */
void tune_progress_result(tune_progress *p, const char *phase, const tune_probe *r);
/* The point is done; `summary` is one line about it. */
void tune_progress_point_done(tune_progress *p, const char *summary);
/* A message that must not be overwritten by the live line. */
void tune_progress_say(tune_progress *p, const char *msg);
double tune_progress_elapsed(const tune_progress *p);

#endif
