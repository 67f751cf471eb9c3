/*
 * tune_report.h - the end of a tuning run: the best point, its gain over the baseline, the
 * benchmark time spent, the table on stdout, and the model profile written for the supervisor
 * (configs/model_profiles/tuned.yaml by default).
 */
#ifndef TLAB_TUNE_REPORT_H
#define TLAB_TUNE_REPORT_H

#include <jansson.h>
#include <stdio.h>

#include "tune_runfile.h"

/* What an entry sustains, in req/s: the median throughput of its confirming runs when it has
 * them (0 if they did not confirm), else the highest passing offered rate; 0 when not ok. */
double tune_entry_score(const json_t *entry);

/* Fills rf->doc.result, writes tuned_out (unless NULL or ""), prints the table to `out`.
 * Returns 0, or -1 when no point met the SLO. */
int tune_report_finish(tune_runfile *rf, const json_t *base_profile, const char *tuned_out, double wall_s, FILE *out);

/* Writes a model profile (base knobs with `knobs` on top) with `header` as comment lines.
 * 0, or -1 with errno. */
int tune_write_profile(const char *path, const json_t *base, const json_t *knobs, const char *header);

#endif
